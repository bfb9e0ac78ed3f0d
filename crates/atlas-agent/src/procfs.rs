//! Reading the job's processes from /proc: every descendant of the agent (the agent is a
//! child subreaper, so processes that daemonize inside the job stay its descendants), with
//! CPU, resident memory, IO, threads. Node-wide figures are read separately.

use std::collections::HashMap;
use std::fs;

/// One process's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessFigures {
    pub pid: i32,
    pub ppid: i32,
    /// utime + cutime, seconds (own and reaped children's).
    pub cpu_user: f64,
    /// stime + cstime, seconds.
    pub cpu_system: f64,
    pub rss_bytes: u64,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub threads: u32,
}

/// Totals over a set of processes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TreeFigures {
    pub cpu_user: f64,
    pub cpu_system: f64,
    pub rss_bytes: u64,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub threads: u32,
    pub processes: u32,
}

/// Kernel constants, read once.
#[derive(Debug, Clone, Copy)]
pub struct Kernel {
    pub(crate) ticks_per_second: f64,
    pub(crate) page_size: u64,
}

impl Kernel {
    pub fn new() -> Self {
        // SAFETY: sysconf has no preconditions.
        let (ticks, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        Kernel {
            ticks_per_second: if ticks > 0 { ticks as f64 } else { 100.0 },
            page_size: if page > 0 { page as u64 } else { 4096 },
        }
    }
}

impl Default for Kernel {
    fn default() -> Self {
        Self::new()
    }
}

/// Parses /proc/PID/stat: the command name may hold spaces and parentheses, so fields are
/// counted from the last `)`.
fn parse_stat(text: &str, kernel: &Kernel) -> Option<ProcessFigures> {
    let pid = text.split_whitespace().next()?.parse().ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14) … num_threads(17)
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<i64>().ok());
    let ticks = kernel.ticks_per_second;
    Some(ProcessFigures {
        pid,
        ppid: num(1)? as i32,
        cpu_user: (num(11)? + num(13)?) as f64 / ticks,
        cpu_system: (num(12)? + num(14)?) as f64 / ticks,
        threads: num(17)? as u32,
        ..Default::default()
    })
}

/// Reads one process; `None` when it is gone.
pub fn read_process(pid: i32, kernel: &Kernel) -> Option<ProcessFigures> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut figures = parse_stat(&stat, kernel)?;
    if let Ok(statm) = fs::read_to_string(format!("/proc/{pid}/statm")) {
        let resident: u64 = statm
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        figures.rss_bytes = resident * kernel.page_size;
    }
    if let Ok(io) = fs::read_to_string(format!("/proc/{pid}/io")) {
        for line in io.lines() {
            if let Some(v) = line.strip_prefix("read_bytes: ") {
                figures.read_bytes = v.trim().parse().unwrap_or(0);
            } else if let Some(v) = line.strip_prefix("write_bytes: ") {
                figures.write_bytes = v.trim().parse().unwrap_or(0);
            }
        }
    }
    Some(figures)
}

/// A process's reads and writes through system calls, with those of every child it has waited
/// for (`/proc/PID/io` holds them: the kernel adds a reaped child's counts to its parent's).
/// Another user's process, or (for an unprivileged reader) a zombie, gives none.
pub fn io_of(pid: i32) -> Option<atlas_spec::record::PhaseIo> {
    let text = fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    let mut io = atlas_spec::record::PhaseIo::default();
    let mut seen = 0;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let Ok(value) = value.trim().parse::<u64>() else {
            continue;
        };
        let slot = match key {
            "rchar" => &mut io.read_chars,
            "wchar" => &mut io.write_chars,
            "syscr" => &mut io.read_calls,
            "syscw" => &mut io.write_calls,
            _ => continue,
        };
        *slot = value;
        seen += 1;
    }
    (seen == 4).then_some(io)
}

/// Field 22 of /proc/PID/stat (start time, clock ticks after boot) and field 4 (parent).
fn start_and_parent(stat: &str) -> Option<(u64, i32)> {
    let mut fields = stat.get(stat.rfind(')')? + 2..)?.split_whitespace();
    let ppid = fields.nth(1)?.parse().ok()?;
    let start = fields.nth(17)?.parse().ok()?;
    Some((start, ppid))
}

/// A process's start time (clock ticks after boot); `None` when there is no such process.
pub fn process_start(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    start_and_parent(&stat).map(|(start, _)| start)
}

/// Whether the process `pid` that started at `start` is still there and running (a reused pid
/// is not it; a zombie, dead and not yet reaped, is not alive).
pub fn is_alive(pid: u32, start: u64) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let zombie = stat
        .rfind(')')
        .and_then(|i| stat.get(i + 2..i + 3))
        .is_some_and(|state| state == "Z");
    !zombie && start_and_parent(&stat).is_some_and(|(s, _)| s == start)
}

/// Processes on this host whose environment says they belong to run `run_id`
/// (`ATLAS_RUN_ID`, which the agent gives every phase and which their children inherit).
/// Only processes whose environment this user may read are found.
pub fn processes_of_run(run_id: &str) -> Vec<i32> {
    let wanted = format!("ATLAS_RUN_ID={run_id}");
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == wanted.as_bytes()))
        })
        .collect()
}

/// Finds the descendants of one process. A process that started before `root` cannot be its
/// descendant, so once seen it is skipped; every `FULL_SCAN_EVERY` scans all are read again (pid_max may be as low as 32768),
/// in case a PID was reused.
pub struct TreeScanner {
    root: i32,
    root_start: u64,
    older: std::collections::HashSet<i32>,
    scans: u64,
}

const FULL_SCAN_EVERY: u64 = 10;

impl TreeScanner {
    pub fn new(root: i32) -> Self {
        let root_start = fs::read_to_string(format!("/proc/{root}/stat"))
            .ok()
            .and_then(|s| start_and_parent(&s))
            .map_or(0, |(start, _)| start);
        TreeScanner {
            root,
            root_start,
            older: Default::default(),
            scans: 0,
        }
    }

    /// All descendants of the root.
    pub fn descendants(&mut self) -> Vec<i32> {
        if self.scans.is_multiple_of(FULL_SCAN_EVERY) {
            self.older.clear();
        }
        self.scans += 1;
        let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
        let Ok(dir) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            if self.older.contains(&pid) {
                continue;
            }
            let Some((start, ppid)) = fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| start_and_parent(&s))
            else {
                continue;
            };
            if start < self.root_start || pid == self.root {
                self.older.insert(pid);
            } else {
                children.entry(ppid).or_default().push(pid);
            }
        }
        let mut out = Vec::new();
        let mut stack = vec![self.root];
        while let Some(p) = stack.pop() {
            if let Some(kids) = children.get(&p) {
                out.extend(kids);
                stack.extend(kids);
            }
        }
        out
    }
}

/// The processes whose parent is `pid` (one pass over /proc).
pub fn children(pid: i32) -> Vec<i32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| {
            fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| start_and_parent(&s))
                .is_some_and(|(_, parent)| parent == pid)
        })
        .collect()
}

/// All descendants of `root` (not `root` itself), in one full pass over /proc.
pub fn descendants(root: i32) -> Vec<i32> {
    TreeScanner::new(root).descendants()
}

/// A sample of the descendants of `root`: totals, their pids, and `root`'s direct children.
pub struct TreeSample {
    pub figures: TreeFigures,
    pub pids: Vec<i32>,
    pub direct_children: Vec<i32>,
}

/// Totals over the descendants of `root`.
pub fn sample_tree(scanner: &mut TreeScanner, kernel: &Kernel) -> TreeSample {
    let root = scanner.root;
    let mut t = TreeFigures::default();
    let pids = scanner.descendants();
    let mut direct_children = Vec::new();
    for &pid in &pids {
        if let Some(p) = read_process(pid, kernel) {
            if p.ppid == root {
                direct_children.push(pid);
            }
            t.cpu_user += p.cpu_user;
            t.cpu_system += p.cpu_system;
            t.rss_bytes += p.rss_bytes;
            t.read_bytes += p.read_bytes;
            t.write_bytes += p.write_bytes;
            t.threads += p.threads;
            t.processes += 1;
        }
    }
    TreeSample {
        figures: t,
        pids,
        direct_children,
    }
}

/// Node-wide figures: everyone's, labelled as node figures by the caller.
#[derive(Debug, Clone, Copy, Default)]
pub struct NodeFigures {
    pub load1: f64,
    pub memory_total: u64,
    pub memory_available: u64,
    /// (busy, total) jiffies of all CPUs since boot.
    pub cpu_jiffies: (u64, u64),
}

pub fn sample_node() -> NodeFigures {
    let mut n = NodeFigures::default();
    if let Ok(load) = fs::read_to_string("/proc/loadavg") {
        n.load1 = load
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
    }
    if let Ok(mem) = fs::read_to_string("/proc/meminfo") {
        for line in mem.lines() {
            let kib = || {
                line.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
                    * 1024
            };
            if line.starts_with("MemTotal:") {
                n.memory_total = kib();
            } else if line.starts_with("MemAvailable:") {
                n.memory_available = kib();
            }
        }
    }
    if let Ok(stat) = fs::read_to_string("/proc/stat") {
        if let Some(cpu) = stat.lines().next() {
            let v: Vec<u64> = cpu
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            let total: u64 = v.iter().take(8).sum();
            let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
            n.cpu_jiffies = (total - idle, total);
        }
    }
    n
}

/// The node's type, for comparing runs like for like: the CPU model, the CPUs online and the
/// memory (`AMD EPYC 7B13, 2 CPUs, 23.5 GiB`). Empty parts are left out.
pub fn node_type() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            let (key, value) = l.split_once(':')?;
            matches!(key.trim(), "model name" | "cpu model" | "Processor").then(|| value.trim())
        })
        .unwrap_or("");
    // SAFETY: sysconf has no preconditions.
    let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    let memory_kib: Option<f64> = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    });
    let mut parts: Vec<String> = Vec::new();
    if !model.is_empty() {
        parts.push(model.to_string());
    }
    if cpus > 0 {
        parts.push(format!("{cpus} CPUs"));
    }
    if let Some(kib) = memory_kib {
        parts.push(format!("{:.1} GiB", kib / 1024.0 / 1024.0));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_and_parentheses_in_the_name() {
        let k = Kernel {
            ticks_per_second: 100.0,
            page_size: 4096,
        };
        let text = "4242 (my (odd) name) S 17 4242 4242 0 -1 4194304 100 0 0 0 250 50 30 20 20 0 3 0 12345 1000 200";
        let p = parse_stat(text, &k).unwrap();
        assert_eq!((p.pid, p.ppid, p.threads), (4242, 17, 3));
        assert!((p.cpu_user - 2.8).abs() < 1e-9 && (p.cpu_system - 0.7).abs() < 1e-9);
    }

    #[test]
    fn start_time_and_parent_come_from_the_right_fields() {
        let text = "4242 (a (b) c) S 17 4242 4242 0 -1 4194304 100 0 0 0 250 50 30 20 20 0 3 0 12345 1000 200";
        assert_eq!(start_and_parent(text), Some((12345, 17)));
    }

    #[test]
    fn a_child_is_a_descendant() {
        let mut child = std::process::Command::new("sleep")
            .arg("2")
            .spawn()
            .unwrap();
        let me = std::process::id() as i32;
        assert!(descendants(me).contains(&(child.id() as i32)));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
