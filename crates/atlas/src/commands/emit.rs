//! `atlas emit k8s WORKFLOW_OR_SCRIPT [--flavor …] [--openshift] [--image REF] [-o DIR]`: the
//! Kubernetes/OpenShift objects for a workflow (atlas-emit's `k8s` module), as one YAML stream
//! on stdout or one file per object, with what has no Kubernetes counterpart on stderr.

use std::path::PathBuf;

use atlas_emit::k8s::{self, Flavor, K8sOptions};

use crate::exit::Failure;

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  atlas emit k8s job.lsf\n  atlas emit k8s atlas.yaml --flavor jobset --openshift -o k8s/"
)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand)]
enum What {
    /// Kubernetes/OpenShift objects: Job, Indexed Job, JobSet, PyTorchJob or MPIJob, with the
    /// workflow's ConfigMap and volume claims.
    K8s(K8sArgs),
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum FlavorArg {
    Auto,
    Job,
    IndexedJob,
    Jobset,
    Pytorchjob,
    Mpijob,
}

#[derive(clap::Args)]
struct K8sArgs {
    /// A Workflow (atlas.yaml) or a job script (imported first).
    workflow: PathBuf,
    /// The job's shape (auto: from the array and the launcher).
    #[arg(long, value_enum, default_value = "auto")]
    flavor: FlavorArg,
    /// Also emit the OpenShift BuildConfig and ImageStream; no fixed runAsUser.
    #[arg(long)]
    openshift: bool,
    /// The image the pods run (default: NAME:latest).
    #[arg(long)]
    image: Option<String>,
    /// Write one file per object into DIR instead of one YAML stream to stdout.
    #[arg(short, long)]
    output: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let What::K8s(args) = args.what;
    let workflow = super::load_workflow_or_script(&args.workflow)?;
    let containerfile = if args.openshift {
        Some(
            atlas_emit::container_files(&workflow)
                .map_err(Failure::input)?
                .containerfile,
        )
    } else {
        None
    };
    let options = K8sOptions {
        flavor: match args.flavor {
            FlavorArg::Auto => Flavor::Auto,
            FlavorArg::Job => Flavor::Job,
            FlavorArg::IndexedJob => Flavor::IndexedJob,
            FlavorArg::Jobset => Flavor::Jobset,
            FlavorArg::Pytorchjob => Flavor::Pytorchjob,
            FlavorArg::Mpijob => Flavor::Mpijob,
        },
        openshift: args.openshift,
        image: args.image,
        containerfile,
        agent_flags: Vec::new(),
    };
    let emitted = k8s::k8s_objects(&workflow, &options).map_err(Failure::input)?;
    match &args.output {
        None => super::write_output(None, &k8s::to_yaml(&emitted.objects))?,
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| {
                Failure::environment(format!("cannot create {}: {e}", dir.display()))
            })?;
            for (i, object) in emitted.objects.iter().enumerate() {
                let (kind, name) = k8s::kind_and_name(object);
                let file = dir.join(format!("{:02}-{}-{name}.yaml", i + 1, kind.to_lowercase()));
                super::write_output(Some(&file), &k8s::to_yaml(std::slice::from_ref(object)))?;
            }
            eprintln!(
                "wrote {} object(s) to {}",
                emitted.objects.len(),
                dir.display()
            );
        }
    }
    let flavor = serde_json::to_value(emitted.flavor)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    eprintln!("{}: flavor {flavor}", args.workflow.display());
    for gap in &emitted.gaps {
        eprintln!("  {}: {}", gap.field, gap.note);
    }
    Ok(())
}
