//! Dead runs: a run the store calls running whose agent is gone from this host (kill -9 of the
//! agent and of `atlas run`, a reboot). [`settle`] catches the store up with the run's spool,
//! stops what the job left behind, and ends the run as failed with the cause, so listings stop
//! saying "running" and `atlas logs --follow` returns.
//!
//! Only agents on this host are judged: the runStart record names the agent's host, pid and
//! process start time (a reused pid is not mistaken for the agent). Runs elsewhere (a container,
//! another node) are left to their backend.

use atlas_spec::record::RunStatus;
use atlas_spec::RunDir;
use atlas_store::Store;

/// What `settle` found.
#[derive(Debug, PartialEq)]
pub enum Liveness {
    /// Ended, alive, or not judged from here.
    Unchanged,
    /// The agent was gone: the run is now failed, and this many leftover processes were killed.
    Lost { killed: usize },
}

/// This host's name as the agent records it.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Judges one run; ends it when its agent is gone.
pub fn settle(store: &mut dyn Store, run: &str) -> Result<Liveness, atlas_store::StoreError> {
    let detail = store.run(run)?;
    if !matches!(detail.run.status, RunStatus::Running | RunStatus::Frozen) {
        return Ok(Liveness::Unchanged);
    }
    let Some((host, agent)) = store.agent_process(&detail.run.id)? else {
        return Ok(Liveness::Unchanged);
    };
    if host != host_name() || atlas_agent::procfs::is_alive(agent.pid, agent.start) {
        return Ok(Liveness::Unchanged);
    }
    Ok(Liveness::Lost {
        killed: end_lost_run(store, &detail, agent.pid)?,
    })
}

/// Ingests what the run's spool holds, a bounded piece at a time, and only the run's own
/// records (the job can write its spool: it must not speak for another run).
pub(crate) fn catch_up(
    store: &mut dyn Store,
    run: &str,
    dir: &RunDir,
) -> Result<(), atlas_store::StoreError> {
    let mut offset = 0;
    while let Ok(contents) = atlas_agent::spool::read_spool(&dir.spool(), offset) {
        let own: Vec<_> = contents
            .records
            .into_iter()
            .filter(|r| r.run == run)
            .collect();
        store.ingest(&own)?;
        if contents.complete_bytes == offset {
            break;
        }
        offset = contents.complete_bytes;
    }
    Ok(())
}

/// Ingests what the spool still holds, and, when the run has no end even then, kills the
/// processes left with its id and ends it as failed.
fn end_lost_run(
    store: &mut dyn Store,
    detail: &atlas_store::RunDetail,
    pid: u32,
) -> Result<usize, atlas_store::StoreError> {
    let writer = store;
    if let Some(dir) = detail.run.run_dir.as_deref().map(RunDir::new) {
        catch_up(writer, &detail.run.id, &dir)?;
    }
    if writer.run(&detail.run.id)?.run.status != RunStatus::Running {
        return Ok(0);
    }
    let leftovers = atlas_agent::procfs::processes_of_run(&detail.run.id);
    for &p in &leftovers {
        // SAFETY: plain kill(2) of a process whose environment names this run.
        unsafe { libc::kill(p, libc::SIGKILL) };
    }
    let cause = format!(
        "lost: the agent (pid {pid} on {}) ended without recording the run's end; {} leftover process(es) killed",
        host_name(),
        leftovers.len()
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    writer.finish_run(&detail.run.id, RunStatus::Failed, &cause, now)?;
    Ok(leftovers.len())
}
