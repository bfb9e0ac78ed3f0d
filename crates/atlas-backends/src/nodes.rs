//! The nodes of a target as its scheduler reports them (`atlas nodes`): Slurm's
//! `scontrol show node -o`, here or on the login node over SSH; a Kubernetes cluster's nodes,
//! each with its allocatable CPUs, memory and GPUs and the requests of the pods bound to it
//! that have not ended. What is measured on a node (its use) comes from node agents, not here.

use std::collections::BTreeMap;

use atlas_capacity::backfill::{Candidate, Reservation};
use atlas_capacity::plan::{Pending, Running};
use atlas_capacity::{Node, NodeState, Resources, Usage};
use k8s_openapi::api::core::v1::{Node as K8sNode, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, ListParams};

use crate::target::{Kind, Named};
use crate::BackendError;

/// The nodes of `target`; a target whose kind has no nodes of its own is refused.
pub fn nodes(target: &Named) -> Result<Vec<Node>, BackendError> {
    match target.target.kind {
        Kind::Slurm => {
            let argv = ["scontrol", "show", "node", "-o"];
            let text = match &target.target.host {
                Some(host) => {
                    crate::remote::Ssh::new(host, target.target.ssh_config.as_deref()).run(&argv)?
                }
                None => crate::process::output(argv[0], &argv[1..]).map_err(|why| {
                    BackendError::Unusable(format!("target `{}`: {why}", target.name))
                })?,
            };
            Ok(atlas_capacity::slurm::parse_nodes(&text))
        }
        Kind::Kubernetes => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| BackendError::Unusable(format!("cannot start a runtime: {e}")))?;
            runtime.block_on(kubernetes_nodes(target))
        }
        kind => Err(BackendError::Rejected(format!(
            "target `{}` is {kind:?}: only slurm and kubernetes targets have nodes to list",
            target.name
        ))),
    }
}

/// The most lines `logs` returns per source.
pub const MAX_LOG_LINES: usize = 10_000;

/// A node's recent log lines: its slurmd log (the path `scontrol show config` gives, `%n` and
/// `%h` filled in) and the kernel's (`dmesg`), each read on the node itself over the target's
/// ssh (a node name the ssh config knows, or reached through it), else here. A source that
/// cannot be read says why instead of its lines.
pub fn logs(
    target: &Named,
    node: &str,
    lines: usize,
) -> Result<Vec<(String, String)>, BackendError> {
    if target.target.kind != Kind::Slurm {
        return Err(BackendError::Rejected(format!(
            "target `{}`: node logs are read from Slurm targets only",
            target.name
        )));
    }
    let plain = atlas_spec::check_name(node).is_ok();
    if !plain {
        return Err(BackendError::Rejected(format!(
            "`{}` is not a node name",
            node.escape_debug()
        )));
    }
    let known = nodes(target)?;
    if !known.iter().any(|n| n.name == node) {
        let names: Vec<&str> = known.iter().map(|n| n.name.as_str()).collect();
        return Err(BackendError::Rejected(format!(
            "target `{}` has no node `{node}` (it has: {})",
            target.name,
            names.join(", ")
        )));
    }
    let lines = lines.clamp(1, MAX_LOG_LINES).to_string();
    let on = |host: &str, argv: &[&str]| -> Result<String, String> {
        match &target.target.host {
            Some(_) => crate::remote::Ssh::new(host, target.target.ssh_config.as_deref())
                .run(argv)
                .map_err(|e| e.to_string()),
            None => crate::process::output(argv[0], &argv[1..]),
        }
    };
    let login = target.target.host.as_deref().unwrap_or("localhost");
    let config = on(login, &["scontrol", "show", "config"]).map_err(BackendError::Unusable)?;
    let pattern = config
        .lines()
        .find_map(|l| {
            l.strip_prefix("SlurmdLogFile")
                .and_then(|r| r.split_once('='))
        })
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| v.starts_with('/') && !v.contains(".."));
    let slurmd = match pattern {
        Some(path) => {
            let path = path.replace("%n", node).replace("%h", node);
            let label = format!("slurmd ({path})");
            (
                label,
                on(node, &["tail", "-n", &lines, &path])
                    .unwrap_or_else(|e| format!("(cannot read it: {e})")),
            )
        }
        None => (
            "slurmd".into(),
            "(SlurmdLogFile is not set: slurmd logs to syslog)".into(),
        ),
    };
    let kernel = on(node, &["dmesg", "--ctime", "--level=err,warn"])
        .map(|text| {
            let all: Vec<&str> = text.lines().collect();
            let keep: usize = lines.parse().unwrap_or(50);
            all[all.len().saturating_sub(keep)..].join("\n")
        })
        .unwrap_or_else(|e| format!("(cannot read it: {e})"));
    Ok(vec![
        slurmd,
        ("kernel (dmesg, errors and warnings)".into(), kernel),
    ])
}

/// Asks each node's agent (`atlas node-agent`, at the node's address) for its average use over
/// the last `minutes`; a node whose agent does not answer keeps `used: None` with the reason.
/// Slurm nodes are asked through the login node when the target is reached over SSH;
/// Kubernetes nodes at their InternalIP (the DaemonSet of `atlas emit k8s --node-agent` answers
/// on the node's network).
pub fn measure(target: &Named, nodes: &mut [Node], minutes: f64) {
    let port = target.target.node_agent_port.unwrap_or(9101);
    let ssh = target
        .target
        .host
        .as_ref()
        .map(|host| crate::remote::Ssh::new(host, target.target.ssh_config.as_deref()));
    for node in nodes.iter_mut() {
        let Some(address) = node.address.clone().filter(|a| is_address(a)) else {
            node.usage_note = Some("no address for its node agent".into());
            continue;
        };
        let url = format!("http://{address}:{port}/usage?minutes={minutes}");
        let body = match &ssh {
            // The nodes' network is the login node's: ask from there.
            Some(ssh) => ssh
                .run(&["curl", "-fsS", "--max-time", "3", &url])
                .map_err(|e| e.to_string()),
            None => ureq::get(&url)
                .config()
                .timeout_global(Some(std::time::Duration::from_secs(3)))
                .build()
                .call()
                .and_then(|mut r| r.body_mut().read_to_string())
                .map_err(|e| e.to_string()),
        };
        match body.and_then(|b| usage_of(&b)) {
            Ok(usage) => node.used = Some(usage),
            Err(why) => {
                let why: String = why
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .chars()
                    .take(200)
                    .collect();
                node.usage_note = Some(format!("node agent at {address}:{port}: {why}"));
            }
        }
    }
}

/// A node address safe to put in a URL (a host name or IPv4/IPv6 address).
fn is_address(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
}

/// The node agent's `/usage` answer.
fn usage_of(body: &str) -> Result<Usage, String> {
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("not its answer ({e})"))?;
    match (value["cores"].as_f64(), value["windowMinutes"].as_f64()) {
        (Some(cores), Some(window_minutes)) => Ok(Usage {
            cores,
            window_minutes,
        }),
        _ => Err("no sample yet".into()),
    }
}

/// What backfill planning needs from `target`: its nodes, the pending jobs' reservations and
/// the pending jobs as candidates (Slurm: `squeue --start`; Kubernetes has no reservations).
pub fn queue(target: &Named) -> Result<(Vec<Reservation>, Vec<Candidate>), BackendError> {
    if target.target.kind != Kind::Slurm {
        return Ok((Vec::new(), Vec::new()));
    }
    let format = atlas_capacity::slurm::PENDING_FORMAT;
    let squeue = ["squeue", "-h", "-t", "PD", "--start", "-o", format];
    let date = ["date", "+%Y-%m-%dT%H:%M:%S"];
    let (pending, now) = match &target.target.host {
        Some(host) => {
            let ssh = crate::remote::Ssh::new(host, target.target.ssh_config.as_deref());
            (ssh.run(&squeue)?, ssh.run(&date)?)
        }
        None => {
            let run = |argv: &[&str]| {
                crate::process::output(argv[0], &argv[1..]).map_err(|why| {
                    BackendError::Unusable(format!("target `{}`: {why}", target.name))
                })
            };
            (run(&squeue)?, run(&date)?)
        }
    };
    Ok(atlas_capacity::slurm::parse_pending(&pending, &now))
}

/// A Slurm target's queue as one snapshot: its running and pending jobs, the time on the
/// login node when it was read (Unix seconds, in the zone Slurm prints), and the step its
/// backfill plans in (`bf_resolution`, 60 s unless SchedulerParameters says).
pub fn queue_snapshot(
    target: &Named,
) -> Result<(Vec<Running>, Vec<Pending>, f64, f64), BackendError> {
    if target.target.kind != Kind::Slurm {
        return Err(BackendError::Unusable(format!(
            "target `{}` is not a slurm target: only Slurm predicts start times",
            target.name
        )));
    }
    let format = atlas_capacity::slurm::QUEUE_FORMAT;
    let date = ["date", "+%Y-%m-%dT%H:%M:%S"];
    let squeue = ["squeue", "-h", "-t", "R,PD", "-o", format];
    let config = ["scontrol", "show", "config"];
    let [now, queue, config] = match &target.target.host {
        Some(host) => {
            let ssh = crate::remote::Ssh::new(host, target.target.ssh_config.as_deref());
            [ssh.run(&date)?, ssh.run(&squeue)?, ssh.run(&config)?]
        }
        None => {
            let run = |argv: &[&str]| {
                crate::process::output(argv[0], &argv[1..]).map_err(|why| {
                    BackendError::Unusable(format!("target `{}`: {why}", target.name))
                })
            };
            [run(&date)?, run(&squeue)?, run(&config)?]
        }
    };
    let now = atlas_capacity::slurm::seconds(now.trim()).ok_or_else(|| {
        BackendError::Unusable(format!(
            "target `{}`: `date` printed `{}`, not a time",
            target.name,
            now.trim().chars().take(40).collect::<String>()
        ))
    })?;
    let (running, pending) = atlas_capacity::slurm::parse_queue(&queue);
    Ok((running, pending, now, backfill_resolution(&config)))
}

/// `bf_resolution` from `scontrol show config`'s SchedulerParameters; 60 s when not set.
fn backfill_resolution(config: &str) -> f64 {
    config
        .lines()
        .find(|l| l.trim_start().starts_with("SchedulerParameters"))
        .and_then(|l| l.split_once('='))
        .and_then(|(_, v)| {
            v.split(',')
                .find_map(|p| p.trim().strip_prefix("bf_resolution="))
                .and_then(|n| n.trim().parse::<f64>().ok())
        })
        .filter(|r| *r >= 1.0)
        .unwrap_or(60.0)
}

async fn kubernetes_nodes(target: &Named) -> Result<Vec<Node>, BackendError> {
    let cluster = crate::kubernetes::connect(target).await?;
    let fail = |what: &str, e| crate::kubernetes::api_error(&cluster, what, e);
    let listed: Api<K8sNode> = Api::all(cluster.client.clone());
    let listed = listed
        .list(&ListParams::default())
        .await
        .map_err(|e| fail("listing nodes", e))?;
    let pods: Api<Pod> = Api::all(cluster.client.clone());
    let live = ListParams::default().fields("status.phase!=Succeeded,status.phase!=Failed");
    let pods = pods
        .list(&live)
        .await
        .map_err(|e| fail("listing pods", e))?;
    // Requests of the pods bound to each node: (CPUs, MiB, GPUs).
    let mut requested: BTreeMap<String, (f64, f64, f64)> = BTreeMap::new();
    for pod in &pods.items {
        let Some(spec) = &pod.spec else { continue };
        let Some(node) = &spec.node_name else {
            continue;
        };
        let sum = requested.entry(node.clone()).or_default();
        for container in &spec.containers {
            let resources = container.resources.as_ref();
            let get = |name: &str| {
                resources.and_then(|r| {
                    r.requests
                        .as_ref()
                        .and_then(|q| q.get(name))
                        .or(r.limits.as_ref().and_then(|q| q.get(name)))
                })
            };
            sum.0 += get("cpu").map_or(0.0, cpu);
            sum.1 += get("memory").map_or(0.0, mebibytes);
            sum.2 += get("nvidia.com/gpu").map_or(0.0, cpu);
        }
    }
    Ok(listed
        .items
        .iter()
        .map(|n| {
            kubernetes_node(
                n,
                requested.get(n.metadata.name.as_deref().unwrap_or_default()),
            )
        })
        .collect())
}

fn kubernetes_node(k8s: &K8sNode, requested: Option<&(f64, f64, f64)>) -> Node {
    let mut node = Node::new(k8s.metadata.name.clone().unwrap_or_default());
    let status = k8s.status.as_ref();
    node.address = status
        .and_then(|s| s.addresses.as_ref())
        .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
        .map(|a| a.address.clone());
    let allocatable = status.and_then(|s| s.allocatable.as_ref());
    let have = |name: &str, parse: fn(&Quantity) -> f64| {
        allocatable.and_then(|a| a.get(name)).map_or(0.0, parse)
    };
    let (cpus, mib, gpus) = requested.copied().unwrap_or_default();
    node.cpus = Resources::new(have("cpu", cpu), cpus);
    node.memory_mib = Resources::new(have("memory", mebibytes), mib);
    node.gpus = Resources::new(have("nvidia.com/gpu", cpu), gpus);
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
    let unschedulable = k8s
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    node.scheduler_state = match ready {
        Some(c) if c.status == "True" && !unschedulable => "Ready".into(),
        Some(c) if c.status == "True" => "Ready,SchedulingDisabled".into(),
        Some(c) => format!("NotReady ({})", c.reason.clone().unwrap_or_default()),
        None => "Unknown".into(),
    };
    node.scheduler_reason = ready
        .and_then(|c| c.message.clone())
        .filter(|_| node.scheduler_state != "Ready");
    node.state = match node.scheduler_state.as_str() {
        "Ready" if cpus <= 0.0 && gpus <= 0.0 => NodeState::Idle,
        "Ready" if cpus >= node.cpus.total && node.cpus.total > 0.0 => NodeState::Allocated,
        "Ready" => NodeState::Mixed,
        "Unknown" => NodeState::Other("Unknown".into()),
        _ => NodeState::Down,
    };
    node
}

/// A CPU (or GPU count) quantity: `2`, `500m`, `1.5`.
fn cpu(q: &Quantity) -> f64 {
    let text = q.0.trim();
    match text.strip_suffix('m') {
        Some(milli) => milli.parse::<f64>().map_or(0.0, |m| m / 1000.0),
        None => text.parse().unwrap_or(0.0),
    }
}

/// A memory quantity in MiB (`1Gi`, `256Mi`, `16380660Ki`, `1G`).
fn mebibytes(q: &Quantity) -> f64 {
    q.0.parse::<atlas_spec::Quantity>()
        .map_or(0.0, |b| b.bytes() as f64 / f64::from(1u32 << 20))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backfill_step_is_read_from_the_scheduler_parameters() {
        let config = "SchedulerTimeSlice      = 30 sec\nSchedulerParameters     = bf_interval=2,bf_resolution=30\n";
        assert_eq!(backfill_resolution(config), 30.0);
        assert_eq!(
            backfill_resolution("SchedulerParameters = bf_interval=2\n"),
            60.0
        );
        assert_eq!(backfill_resolution(""), 60.0);
    }

    #[test]
    fn quantities_read_as_kubernetes_writes_them() {
        assert_eq!(cpu(&Quantity("500m".into())), 0.5);
        assert_eq!(cpu(&Quantity("2".into())), 2.0);
        assert_eq!(mebibytes(&Quantity("1Gi".into())), 1024.0);
        assert_eq!(mebibytes(&Quantity("2048Ki".into())), 2.0);
        assert_eq!(cpu(&Quantity("lots".into())), 0.0);
    }
}
