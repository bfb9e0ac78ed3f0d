//! `atlas operator`: the storage-service operator's commands (issue 20). `crd` prints the
//! `StorageService` CustomResourceDefinition, generated from its Rust type; `check FILE` reads
//! a `StorageService` and says whether the operator would take it (the reasons the API
//! server's schema cannot give: fewer chunk servers than the goal, a storage size that is not
//! a quantity), with the file and line of a YAML error.

use std::path::PathBuf;

use atlas_operator::StorageService;

use crate::exit::Failure;

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  atlas operator crd | kubectl apply -f -\n  atlas operator check storage.yaml"
)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand)]
enum What {
    /// Print the StorageService CustomResourceDefinition (atlas.dev/v1alpha1).
    Crd,
    /// Check a StorageService file: what the operator would refuse, and why.
    Check { file: PathBuf },
}

pub fn run(args: Args) -> Result<(), Failure> {
    match args.what {
        What::Crd => {
            let yaml = serde_yaml_ng::to_string(&atlas_operator::crd())
                .map_err(|e| Failure::environment(format!("cannot write the CRD: {e}")))?;
            super::write_output(None, &yaml)
        }
        What::Check { file } => {
            let bytes = super::read_bytes(&file)?;
            let text = String::from_utf8(bytes)
                .map_err(|_| Failure::input(format!("{}: not UTF-8", file.display())))?;
            let service: StorageService = serde_yaml_ng::from_str(&text).map_err(|e| {
                let at = e
                    .location()
                    .map(|l| format!(":{}:{}", l.line(), l.column()))
                    .unwrap_or_default();
                Failure::input(format!("{}{at}: {e}", file.display()))
            })?;
            let refuse = |why: String| Failure::input(format!("{}: {why}", file.display()));
            let value: serde_yaml_ng::Value =
                serde_yaml_ng::from_str(&text).map_err(|e| refuse(e.to_string()))?;
            if value["apiVersion"].as_str() != Some("atlas.dev/v1alpha1")
                || value["kind"].as_str() != Some("StorageService")
            {
                return Err(refuse(
                    "not a StorageService (apiVersion: atlas.dev/v1alpha1, kind: StorageService)"
                        .into(),
                ));
            }
            if let Some(extra) = value.as_mapping().into_iter().flatten().find_map(|(k, _)| {
                let k = k.as_str().unwrap_or("?");
                (!["apiVersion", "kind", "metadata", "spec", "status"].contains(&k))
                    .then(|| k.to_string())
            }) {
                return Err(refuse(format!("unknown field `{extra}`")));
            }
            let name = service.metadata.name.as_deref().unwrap_or("");
            if !atlas_spec::is_dns1123_label(name) {
                return Err(refuse(
                    "metadata.name must be a DNS-1123 label (lowercase letters, digits and `-`, at most 63)".into(),
                ));
            }
            atlas_operator::check(&service.spec).map_err(|e| refuse(e.to_string()))?;
            println!(
                "{}: StorageService {name}: {} chunk servers of {} each, goal {}, MooseFS {}: the operator takes it",
                file.display(),
                service.spec.chunk_servers,
                service.spec.storage_per_chunk_server,
                service.spec.goal,
                service.spec.version
            );
            Ok(())
        }
    }
}
