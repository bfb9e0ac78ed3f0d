//! The sampler of one host of a multi-node job (`atlas agent-host`), one per node, started
//! beside the job by `srun --overlap`. The main agent runs the phases on the batch host and
//! samples its own process tree; the ranks a launcher starts on other hosts are not in that
//! tree, so each host's sampler finds the job's processes on its host (`ATLAS_RUN_ID` in
//! their environment, which the phases pass on to what they start) and writes `hostSample`
//! records to `RUN_DIR/hosts/HOST.jsonl`, with the phase the main agent's spool says is running.
//! It stops once that spool has the run's end, after one last sample.
//!
//! Where several hosts share one kernel (the namespaced test cluster), a process belongs to
//! the host whose UTS namespace it is in; on a real cluster every process in `/proc` is on the
//! host, and the test changes nothing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use atlas_spec::record::RecordBody;

use crate::procfs::{self, Kernel};
use crate::spool::{read_spool, SpoolWriter};

/// The most processes whose CPU time one sampler remembers (exited ones keep their last
/// figures, so the host's CPU seconds never go down).
const MAX_REMEMBERED: usize = 100_000;

/// What one host's sampler needs.
#[derive(Debug, Clone)]
pub struct HostConfig {
    pub run_id: String,
    pub run_dir: PathBuf,
    /// The host's index in the job (Slurm's node id): its records' seq numbers start at
    /// (index + 1) × 2^40, a range of their own.
    pub index: u32,
    pub interval: Duration,
}

/// This host's name as a file name: the kernel's host name when it is plain, else `host-N`.
pub fn host_name(index: u32) -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name = name.trim();
    let plain = atlas_spec::check_name(name).is_ok();
    if plain {
        name.to_string()
    } else {
        format!("host-{index}")
    }
}

/// The UTS namespace of a process (`uts:[4026531838]`).
fn uts_of(pid: &str) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/uts")).ok()
}

/// The phase the main agent runs now, and whether the run has ended, from its spool.
#[derive(Default)]
struct MainSpool {
    offset: u64,
    phase: Option<String>,
    ended: bool,
}

impl MainSpool {
    fn follow(&mut self, spool: &Path) {
        let Ok(contents) = read_spool(spool, self.offset) else {
            return;
        };
        self.offset = contents.complete_bytes;
        for record in contents.records {
            match record.body {
                RecordBody::PhaseStart { phase, .. } => self.phase = Some(phase),
                RecordBody::PhaseEnd { .. } => self.phase = None,
                RecordBody::RunEnd { .. } => self.ended = true,
                _ => {}
            }
        }
    }
}

/// The job's processes on this host, summed: CPU seconds of all seen so far (user, system),
/// resident memory and count of the live ones.
fn sample(
    run_id: &str,
    own_uts: &Option<PathBuf>,
    kernel: &Kernel,
    seen: &mut HashMap<i32, (f64, f64)>,
) -> (f64, f64, u64, u32) {
    let me = std::process::id() as i32;
    let (mut rss, mut live) = (0, 0);
    for pid in procfs::processes_of_run(run_id) {
        if pid == me || uts_of(&pid.to_string()) != *own_uts {
            continue;
        }
        let Some(figures) = procfs::read_process(pid, kernel) else {
            continue;
        };
        rss += figures.rss_bytes;
        live += 1;
        if seen.len() < MAX_REMEMBERED || seen.contains_key(&pid) {
            seen.insert(pid, (figures.cpu_user, figures.cpu_system));
        }
    }
    let user = seen.values().map(|v| v.0).sum();
    let system = seen.values().map(|v| v.1).sum();
    (user, system, rss, live)
}

/// Samples this host's share of the job until the main agent's spool has the run's end (or
/// `stop` is set); the number of samples written.
pub fn run_host_sampler(config: &HostConfig, stop: &AtomicBool) -> std::io::Result<u64> {
    let host = host_name(config.index);
    let dir = config.run_dir.join("hosts");
    std::fs::create_dir_all(&dir)?;
    let first_seq = (u64::from(config.index) + 1) << 40;
    let mut out = SpoolWriter::open(
        &dir.join(format!("{host}.jsonl")),
        &config.run_id,
        first_seq,
        Instant::now(),
    )?;
    let main = config.run_dir.join("spool.jsonl");
    let own_uts = uts_of("self");
    let kernel = Kernel::new();
    let mut seen = HashMap::new();
    let mut spool = MainSpool::default();
    let mut samples = 0;
    loop {
        spool.follow(&main);
        let (user, system, rss, processes) = sample(&config.run_id, &own_uts, &kernel, &mut seen);
        out.append(RecordBody::HostSample {
            host: host.clone(),
            phase: spool.phase.clone(),
            cpu_user_seconds: user,
            cpu_system_seconds: system,
            rss_bytes: rss,
            processes,
        })?;
        out.flush()?;
        samples += 1;
        if spool.ended || stop.load(Ordering::SeqCst) {
            out.sync()?;
            return Ok(samples);
        }
        std::thread::sleep(config.interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_name_is_the_kernels_when_plain() {
        let name = host_name(3);
        assert!(!name.is_empty() && !name.contains('/'), "{name}");
    }
}
