//! Reaching a cluster: the kubeconfig (the target's file, else `$KUBECONFIG`, else
//! `~/.kube/config`), its context (the target's, else the file's current one) and a first call
//! to the API server, so an unusable cluster is said before anything is created.

use std::time::Duration;

use kube::config::{Config, KubeConfigOptions, Kubeconfig};
use kube::Client;

use atlas_emit::k8s::ServerVersion;

use crate::target::Named;
use crate::BackendError;

/// How long a first answer from the API server may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// A reachable cluster and where in it the jobs go.
#[derive(Clone)]
pub(crate) struct Cluster {
    pub client: Client,
    pub namespace: String,
    /// The kubeconfig context, named in every error.
    pub context: String,
    /// The API server's URL.
    pub server: String,
    /// The API server's version (`v1.33.0`), from the first call.
    pub version: String,
    /// The same as major.minor, which decides the objects' shapes (the newest known when the
    /// server's answer cannot be read).
    pub api: ServerVersion,
}

impl Cluster {
    /// An error about this cluster, naming the context and server.
    pub fn unreachable(&self, error: impl std::fmt::Display) -> BackendError {
        BackendError::Unusable(format!(
            "cannot reach the API server of context `{}` ({}): {error}",
            self.context, self.server
        ))
    }
}

/// An error with its causes (`client error (Connect): Connection refused`), which kube's own
/// message leaves out.
pub(crate) fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text = format!("{text}: {said}");
        }
        source = cause.source();
    }
    text
}

/// The most bytes a kubeconfig may have (real ones are a few KiB; certificates inline).
const MAX_KUBECONFIG_BYTES: u64 = 1 << 20;

/// Each kubeconfig that will be read (the target's, else `$KUBECONFIG`'s, else
/// `~/.kube/config`) is a regular file of at most 1 MiB: `/dev/zero` or a FIFO is refused
/// before it is read.
pub(crate) fn bounded_kubeconfigs(explicit: Option<&std::path::Path>) -> Result<(), String> {
    let paths: Vec<std::path::PathBuf> = match (explicit, std::env::var_os("KUBECONFIG")) {
        (Some(path), _) => vec![path.to_path_buf()],
        (None, Some(list)) => std::env::split_paths(&list).collect(),
        (None, None) => std::env::var_os("HOME")
            .map(|h| std::path::PathBuf::from(h).join(".kube/config"))
            .into_iter()
            .collect(),
    };
    for path in paths {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue; // a missing file is the kubeconfig reader's to say
        };
        if !meta.is_file() {
            return Err(format!(
                "the kubeconfig {} is not a regular file",
                path.display()
            ));
        }
        if meta.len() > MAX_KUBECONFIG_BYTES {
            return Err(format!(
                "the kubeconfig {} has {} bytes (at most {MAX_KUBECONFIG_BYTES})",
                path.display(),
                meta.len()
            ));
        }
    }
    Ok(())
}

/// Where the kubeconfig is read from, for messages.
fn kubeconfig_place(target: &Named) -> String {
    match (&target.target.kubeconfig, std::env::var_os("KUBECONFIG")) {
        (Some(path), _) => path.display().to_string(),
        (None, Some(env)) if !env.is_empty() => format!("$KUBECONFIG={}", env.to_string_lossy()),
        (None, _) => "~/.kube/config".into(),
    }
}

/// Reads the kubeconfig, picks the context and checks that the API server answers.
pub(crate) async fn connect(target: &Named) -> Result<Cluster, BackendError> {
    let wanted = target.target.context.clone();
    let name_of = |context: &Option<String>| context.clone().unwrap_or_else(|| "(current)".into());
    let unusable = |context: &Option<String>, why: String| {
        BackendError::Unusable(format!(
            "target `{}`: context `{}`: {why}",
            target.name,
            name_of(context)
        ))
    };
    if let Err(why) = bounded_kubeconfigs(target.target.kubeconfig.as_deref()) {
        return Err(unusable(&wanted, why));
    }
    let read = match &target.target.kubeconfig {
        Some(path) => Kubeconfig::read_from(path),
        None => Kubeconfig::read(),
    };
    let kubeconfig = read.map_err(|e| {
        unusable(
            &wanted,
            format!(
                "cannot read the kubeconfig ({}): {e}",
                kubeconfig_place(target)
            ),
        )
    })?;
    let context = wanted
        .clone()
        .or_else(|| kubeconfig.current_context.clone())
        .ok_or_else(|| {
            unusable(
                &wanted,
                format!(
                    "the kubeconfig ({}) has no current context; set `context` on the target",
                    kubeconfig_place(target)
                ),
            )
        })?;
    let options = KubeConfigOptions {
        context: Some(context.clone()),
        ..Default::default()
    };
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| unusable(&Some(context.clone()), e.to_string()))?;
    config.connect_timeout = Some(PROBE_TIMEOUT);
    let server = config.cluster_url.to_string();
    let namespace = target
        .target
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client =
        Client::try_from(config).map_err(|e| unusable(&Some(context.clone()), e.to_string()))?;
    let mut cluster = Cluster {
        client,
        namespace,
        context,
        server,
        version: String::new(),
        api: ServerVersion::NEWEST,
    };
    match tokio::time::timeout(PROBE_TIMEOUT, cluster.client.apiserver_version()).await {
        Ok(Ok(info)) => {
            cluster.api = ServerVersion::parse(&format!("{}.{}", info.major, info.minor))
                .or_else(|| ServerVersion::parse(&info.git_version))
                .unwrap_or(ServerVersion::NEWEST);
            cluster.version = info.git_version;
            Ok(cluster)
        }
        Ok(Err(e)) => Err(cluster.unreachable(with_causes(&e))),
        Err(_) => Err(cluster.unreachable(format!("no answer in {} s", PROBE_TIMEOUT.as_secs()))),
    }
}
