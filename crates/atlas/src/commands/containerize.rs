//! `atlas containerize WORKFLOW_OR_SCRIPT [-o DIR]`: a build context that runs the workflow
//! under `atlas agent` in an image: Containerfile, entrypoint.sh, atlas.def (Apptainer),
//! workflow.yaml and the atlas binary itself. Says what the image cannot carry over.

use std::path::PathBuf;

use crate::exit::Failure;

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  atlas containerize atlas.yaml -o build/\n  podman build -t my-job build/"
)]
pub struct Args {
    /// A Workflow (atlas.yaml) or a job script (imported first).
    workflow: PathBuf,
    /// The build context directory (created).
    #[arg(short, long, default_value = "build")]
    output: PathBuf,
    /// The image to build on (default: the workflow's spec.image.base, else the local
    /// localhost/atlas-base:bookworm made by scripts/base-image).
    #[arg(long, value_name = "REF")]
    base_image: Option<String>,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let mut workflow = super::load_workflow_or_script(&args.workflow)?;
    if let Some(base) = &args.base_image {
        workflow
            .spec
            .image
            .get_or_insert_with(Default::default)
            .base = Some(base.clone());
    }
    let files = atlas_emit::container_files(&workflow).map_err(Failure::input)?;
    let dir = &args.output;
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::environment(format!("cannot create {}: {e}", dir.display())))?;
    let write = |name: &str, text: &str| super::write_output(Some(&dir.join(name)), text);
    write("Containerfile", &files.containerfile)?;
    write("atlas.def", &files.apptainer)?;
    write("workflow.yaml", &atlas_spec::to_yaml(&workflow))?;
    let exe = std::env::current_exe()
        .map_err(|e| Failure::environment(format!("cannot find the atlas binary: {e}")))?;
    let mut binary = std::fs::File::open(&exe)
        .map_err(|e| Failure::environment(format!("cannot read the atlas binary: {e}")))?;
    super::write_file(&dir.join("atlas"), 0o755, |file| {
        std::io::copy(&mut binary, file).map(|_| ())
    })?;
    let entrypoint = files.entrypoint.as_bytes();
    super::write_file(&dir.join("entrypoint.sh"), 0o755, |file| {
        std::io::Write::write_all(file, entrypoint)
    })?;
    eprintln!(
        "wrote {}: Containerfile, entrypoint.sh, atlas.def, workflow.yaml, atlas",
        dir.display()
    );
    for note in &files.notes {
        eprintln!("  not carried over: {note}");
    }
    eprintln!(
        "build: podman build -t {} {}",
        workflow.metadata.name,
        dir.display()
    );
    Ok(())
}
