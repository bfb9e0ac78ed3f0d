//! The workflow's inputs onto its inputs claim (`NAME-inputs`), before the Job starts: a
//! short-lived pod `atlas-RUN-stage` mounts the claim, and each input goes into it as one tar
//! stream through the API server's exec (no other way in: the cluster may be anywhere). In the
//! claim, input N is `input-N` (a file or a directory), which is what the Job's pod mounts at
//! the input's path (`subPath: input-N`). The pod is deleted afterwards, whatever happened.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, DeleteParams, PostParams};
use tokio::io::AsyncWriteExt;

use super::connect::Cluster;
use crate::{BackendError, Figures, VerifiedInput};

/// How long the stage pod may take to start.
const START: Duration = Duration::from_secs(120);

/// The stage pod for `run`: the run's image, the claim at /inputs, the Job's security context.
fn stage_pod(run: &str, claim: &str, image: &str) -> Result<Pod, BackendError> {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": format!("atlas-{run}-stage"), "labels": {"atlas.dev/run": run}},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {
                "runAsUser": atlas_emit::k8s::pod::PLAIN_UID, "runAsGroup": 0,
                "runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}
            },
            "containers": [{
                "name": "stage",
                "image": image,
                "command": ["sleep", "3600"],
                "volumeMounts": [{"name": "inputs", "mountPath": "/inputs"}],
                "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}
            }],
            "volumes": [{"name": "inputs", "persistentVolumeClaim": {"claimName": claim}}]
        }
    }))
    .map_err(|e| BackendError::Unusable(format!("cannot make the stage pod: {e}")))
}

/// One input as a tar archive whose single entry is `input-N`.
fn archive(index: usize, input: &VerifiedInput) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(true);
    let name = format!("input-{index}");
    if input.source.is_dir() {
        builder.append_dir_all(&name, &input.source)?;
    } else {
        builder.append_path_with_name(&input.source, &name)?;
    }
    let mut bytes = builder.into_inner()?;
    // Whole 10 KiB records (tar's default blocking): tar in the pod then reads the
    // end-of-archive blocks and exits without waiting for an end of stdin.
    bytes.resize(bytes.len().div_ceil(RECORD) * RECORD, 0);
    Ok(bytes)
}

/// tar's default record: 20 blocks of 512 bytes.
const RECORD: usize = 20 * 512;

/// Waits until the pod runs; why not, when it does not in time.
async fn running(pods: &Api<Pod>, name: &str) -> Result<(), String> {
    let started = Instant::now();
    loop {
        let pod = pods.get(name).await.map_err(|e| e.to_string())?;
        let status = pod.status.unwrap_or_default();
        match status.phase.as_deref() {
            Some("Running") => return Ok(()),
            Some("Failed" | "Succeeded") => return Err("it ended before the copy".into()),
            _ if started.elapsed() > START => {
                let why = status
                    .container_statuses
                    .iter()
                    .flatten()
                    .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.message.clone())
                    .next()
                    .unwrap_or_else(|| "no reason given".into());
                return Err(format!("it did not start in {} s: {why}", START.as_secs()));
            }
            _ => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

/// Sends every input through exec into the pod: `tar -x -C /inputs` reading stdin.
async fn send(pods: &Api<Pod>, name: &str, inputs: &[VerifiedInput]) -> Result<u64, String> {
    let total: u64 = inputs.iter().map(|i| i.bytes).sum();
    // At least 10 MB/s through the API server, and never less than a minute.
    let limit = Duration::from_secs(60 + total / 10_000_000);
    tokio::time::timeout(limit, send_all(pods, name, inputs))
        .await
        .unwrap_or_else(|_| Err(format!("the copy took longer than {} s", limit.as_secs())))
}

async fn send_all(pods: &Api<Pod>, name: &str, inputs: &[VerifiedInput]) -> Result<u64, String> {
    let mut sent = 0;
    for (index, input) in inputs.iter().enumerate() {
        let bytes = archive(index, input)
            .map_err(|e| format!("cannot read {}: {e}", input.source.display()))?;
        let params = AttachParams::default()
            .stdin(true)
            .stdout(false)
            .stderr(true);
        let mut process = pods
            .exec(
                name,
                ["tar", "-x", "-o", "-C", "/inputs", "-f", "-"],
                &params,
            )
            .await
            .map_err(|e| e.to_string())?;
        let mut stdin = process.stdin().ok_or("no stdin to the stage pod")?;
        let mut stderr = process.stderr().ok_or("no stderr from the stage pod")?;
        let status = process
            .take_status()
            .ok_or("no exit status from the stage pod")?;
        // tar stops at the archive's end-of-archive blocks by itself: the exec protocol of
        // older servers (v4, before 1.29) cannot carry an end of stdin.
        stdin.write_all(&bytes).await.map_err(|e| e.to_string())?;
        stdin.flush().await.map_err(|e| e.to_string())?;
        let mut said = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut said).await;
        let status = status.await;
        if status.as_ref().and_then(|s| s.status.as_deref()) != Some("Success") {
            let why = status.and_then(|s| s.message).unwrap_or_default();
            return Err(format!(
                "tar in the stage pod failed for {}: {why} {}",
                input.path,
                said.trim()
            ));
        }
        drop(stdin);
        process.join().await.map_err(|e| e.to_string())?;
        sent += bytes.len() as u64;
    }
    Ok(sent)
}

/// Copies the inputs onto `claim` through a stage pod; the figures of the copy.
pub(crate) async fn stage_inputs(
    cluster: &Cluster,
    run: &str,
    claim: &str,
    image: &str,
    inputs: &[VerifiedInput],
) -> Result<Figures, BackendError> {
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let pod = stage_pod(run, claim, image)?;
    let name = pod.metadata.name.clone().unwrap_or_default();
    let started = Instant::now();
    pods.create(&PostParams::default(), &pod)
        .await
        .map_err(|e| super::api_error(cluster, &format!("the stage pod {name}"), e))?;
    let copied = match running(&pods, &name).await {
        Ok(()) => send(&pods, &name, inputs).await,
        Err(why) => Err(format!("the stage pod {name}: {why}")),
    };
    // At once: it holds nothing, and `sleep` as PID 1 would sit out the grace period.
    let now = DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::background()
    };
    let _ = pods.delete(&name, &now).await;
    let sent = copied.map_err(|why| {
        BackendError::Rejected(format!(
            "cannot copy the inputs onto the claim {claim}: {why}"
        ))
    })?;
    Ok(Figures::from([
        (
            "stageInSeconds".to_string(),
            started.elapsed().as_secs_f64(),
        ),
        ("stageInBytes".to_string(), sent as f64),
    ]))
}
