//! Slurm's nodes from `scontrol show node -o` (one line per node, `Key=Value` words; a value
//! may hold spaces, as `Reason=Not responding [slurm@…]` does, so a word without `=` belongs
//! to the value before it).

use crate::node::{Node, NodeState, Resources};

/// The most nodes read from one report (a larger cluster is cut here, and the caller says so).
pub const MAX_NODES: usize = 100_000;

/// The nodes of `scontrol show node -o` output; lines that name no node are skipped.
pub fn parse_nodes(text: &str) -> Vec<Node> {
    text.lines()
        .filter_map(parse_line)
        .take(MAX_NODES)
        .collect()
}

/// The `Key=Value` pairs of one line, values with spaces joined back.
fn pairs(line: &str) -> Vec<(&str, String)> {
    let mut out: Vec<(&str, String)> = Vec::new();
    for word in line.split_whitespace() {
        match word.split_once('=') {
            Some((key, value))
                if !key.is_empty()
                    && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                out.push((key, value.to_string()));
            }
            _ => {
                if let Some((_, value)) = out.last_mut() {
                    value.push(' ');
                    value.push_str(word);
                }
            }
        }
    }
    out
}

fn parse_line(line: &str) -> Option<Node> {
    let pairs = pairs(line);
    let get = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    };
    let number = |key: &str| get(key).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let mut node = Node::new(get("NodeName").filter(|n| !n.is_empty())?);
    let raw = get("State").unwrap_or("UNKNOWN");
    node.scheduler_state = raw.to_string();
    node.state = state(raw);
    node.cpus = Resources::new(number("CPUTot"), number("CPUAlloc"));
    node.memory_mib = Resources::new(number("RealMemory"), number("AllocMem"));
    node.gpus = Resources::new(
        get("Gres").map_or(0.0, gpu_count),
        get("GresUsed").map_or(0.0, gpu_count),
    );
    node.address = get("NodeAddr").filter(|a| !a.is_empty()).map(String::from);
    node.scheduler_reason = get("Reason")
        .filter(|r| !r.is_empty() && *r != "(null)")
        .map(String::from);
    Some(node)
}

/// Slurm's state (`IDLE`, `MIXED`, `ALLOCATED`, `DOWN*`, `IDLE+DRAIN`, `ALLOCATED+COMPLETING`).
fn state(raw: &str) -> NodeState {
    let mut words = raw
        .split('+')
        .map(|w| w.trim_end_matches(['*', '~', '#', '!', '%', '$', '@', '^', '-']));
    let base = words.next().unwrap_or_default().to_ascii_uppercase();
    let flags: Vec<String> = words.map(|w| w.to_ascii_uppercase()).collect();
    let unusable = [
        "DOWN",
        "FAIL",
        "FAILING",
        "NOT_RESPONDING",
        "POWERED_DOWN",
        "FUTURE",
    ];
    if unusable.contains(&base.as_str())
        || flags
            .iter()
            .any(|f| f == "DRAIN" || f == "DRAINED" || f == "FAIL" || f == "NOT_RESPONDING")
        || raw.ends_with('*')
    {
        return NodeState::Down;
    }
    match base.as_str() {
        "IDLE" => NodeState::Idle,
        "MIXED" => NodeState::Mixed,
        "ALLOCATED" | "COMPLETING" => NodeState::Allocated,
        _ => NodeState::Other(raw.to_string()),
    }
}

/// GPUs in a `Gres=` or `GresUsed=` value: `gpu:2`, `gpu:a100:4(S:0-1)`, `gpu:a100:2(IDX:0-1),mps:0`.
fn gpu_count(gres: &str) -> f64 {
    gres.split(',')
        .filter(|item| item.starts_with("gpu"))
        .filter_map(|item| {
            let item = item.split('(').next().unwrap_or(item);
            item.rsplit(':').next()?.parse::<f64>().ok()
        })
        .fold(0.0, |sum, n| sum + n)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "NodeName=head Arch=x86_64 CoresPerSocket=1 CPUAlloc=0 CPUTot=2 CPULoad=0.51 AvailableFeatures=(null) ActiveFeatures=(null) Gres=(null) NodeAddr=10.231.0.10 NodeHostName=head RealMemory=2000 AllocMem=0 FreeMem=20000 Sockets=2 State=IDLE ThreadsPerCore=1 Partitions=batch Reason=(null)
NodeName=node1 CPUAlloc=2 CPUTot=2 Gres=gpu:a100:4(S:0-1) GresUsed=gpu:a100:1(IDX:0) RealMemory=2000 AllocMem=1024 State=ALLOCATED Partitions=batch
NodeName=node2 CPUAlloc=0 CPUTot=2 RealMemory=2000 AllocMem=0 State=DOWN* Reason=Not responding [slurm@2026-12-01T22:04:30]
NodeName=node3 CPUAlloc=0 CPUTot=2 State=IDLE+DRAIN Reason=maintenance
garbage line
NodeName=node4 CPUAlloc=1 CPUTot=2 State=MIXED+COMPLETING
";

    #[test]
    fn a_report_gives_states_allocations_gpus_and_reasons() {
        let nodes = parse_nodes(REPORT);
        let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["head", "node1", "node2", "node3", "node4"]);
        assert_eq!(nodes[0].state, NodeState::Idle);
        assert_eq!(nodes[0].scheduler_reason, None);
        assert_eq!(nodes[1].state, NodeState::Allocated);
        assert_eq!(nodes[1].cpus, Resources::new(2.0, 2.0));
        assert_eq!(nodes[1].memory_mib, Resources::new(2000.0, 1024.0));
        assert_eq!(nodes[1].gpus, Resources::new(4.0, 1.0));
        assert_eq!(nodes[2].state, NodeState::Down);
        assert_eq!(
            nodes[2].scheduler_reason.as_deref(),
            Some("Not responding [slurm@2026-12-01T22:04:30]")
        );
        assert_eq!(nodes[3].state, NodeState::Down, "drained");
        assert_eq!(nodes[4].state, NodeState::Mixed);
    }

    #[test]
    fn unexpected_text_never_panics() {
        for text in [
            "",
            "NodeName=",
            "NodeName=x State",
            "=== =",
            "NodeName=x CPUTot=two",
        ] {
            let _ = parse_nodes(text);
        }
        let odd = parse_nodes("NodeName=x State=PLANNED");
        assert_eq!(odd[0].state, NodeState::Other("PLANNED".into()));
    }
}

/// The `squeue` format [`parse_pending`] reads: id, expected start, planned nodes, nodes,
/// CPUs, time limit.
pub const PENDING_FORMAT: &str = "%i|%S|%Y|%D|%C|%l";

/// The pending jobs of `squeue -h -t PD -o PENDING_FORMAT --start` output: those with an
/// expected start become reservations (seconds from `now`, both as Slurm prints times,
/// `2026-12-01T23:10:00`), and every one is a candidate to place.
pub fn parse_pending(
    text: &str,
    now: &str,
) -> (
    Vec<crate::backfill::Reservation>,
    Vec<crate::backfill::Candidate>,
) {
    let now = seconds_of(now);
    let (mut reservations, mut candidates) = (Vec::new(), Vec::new());
    for line in text.lines().take(MAX_NODES) {
        let fields: Vec<&str> = line.split('|').map(str::trim).collect();
        let [id, start, planned, nodes, cpus, limit] = fields[..] else {
            continue;
        };
        if id.is_empty() {
            continue;
        }
        let nodes: u32 = nodes.parse().unwrap_or(1).max(1);
        if let (Some(start), Some(now)) = (seconds_of(start), now) {
            reservations.push(crate::backfill::Reservation {
                job: id.to_string(),
                starts_in: (start - now).max(0.0),
                nodes: expand_hosts(planned),
            });
        }
        candidates.push(crate::backfill::Candidate {
            name: format!("job {id}"),
            nodes,
            cpus_per_node: cpus.parse::<f64>().unwrap_or(1.0) / f64::from(nodes),
            walltime: time_limit(limit),
        });
    }
    (reservations, candidates)
}

/// The `squeue` format [`parse_queue`] reads: id, state, priority, nodes, CPUs, time limit,
/// start (expected, for a pending job), end, node list, over-subscription (`NO`: exclusive).
pub const QUEUE_FORMAT: &str = "%i|%T|%Q|%D|%C|%l|%S|%e|%N|%h";

/// The running and pending jobs of `squeue -h -t R,PD -o QUEUE_FORMAT` output, times in
/// seconds since 1970 as Slurm prints them (the zone of `date` on the same host). A running
/// job without an end is left out (it holds its nodes for good, as a down node does not).
pub fn parse_queue(text: &str) -> (Vec<crate::plan::Running>, Vec<crate::plan::Pending>) {
    let (mut running, mut pending) = (Vec::new(), Vec::new());
    for line in text.lines().take(MAX_NODES) {
        let fields: Vec<&str> = line.split('|').map(str::trim).collect();
        let [id, state, priority, nodes, cpus, limit, start, end, list, shared] = fields[..] else {
            continue;
        };
        if id.is_empty() {
            continue;
        }
        let count: u32 = nodes.parse().unwrap_or(1).max(1);
        let cpus_per_node = cpus.parse::<f64>().unwrap_or(1.0) / f64::from(count);
        match state {
            "RUNNING" | "COMPLETING" => {
                if let Some(ends_at) = seconds_of(end) {
                    running.push(crate::plan::Running {
                        job: id.to_string(),
                        nodes: expand_hosts(list),
                        cpus_per_node,
                        ends_at,
                    });
                }
            }
            "PENDING" => pending.push(crate::plan::Pending {
                job: id.to_string(),
                priority: priority.parse().unwrap_or(0.0),
                nodes: count,
                cpus_per_node,
                exclusive: shared == "NO",
                time_limit: time_limit(limit),
                scheduler_start: seconds_of(start),
            }),
            _ => {}
        }
    }
    (running, pending)
}

/// Seconds since 1970 of `YYYY-MM-DDTHH:MM:SS` as Slurm prints it (and `date +%FT%T`).
pub fn seconds(text: &str) -> Option<f64> {
    seconds_of(text)
}

/// Seconds since 1970 of `YYYY-MM-DDTHH:MM:SS` (the same zone as whatever it is compared with).
fn seconds_of(text: &str) -> Option<f64> {
    let (date, time) = text.trim().split_once('T')?;
    let d: Vec<i64> = date
        .split('-')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let t: Vec<i64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let (&[y, m, day], &[h, min, s]) = (&d[..], &t[..]) else {
        return None;
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + min * 60 + s) as f64)
}

/// A Slurm time limit (`30`, `30:00`, `1:00:00`, `2-00:00:00`) in seconds; none when unlimited.
fn time_limit(text: &str) -> Option<f64> {
    let (days, rest) = match text.split_once('-') {
        Some((d, r)) => (d.parse::<f64>().ok()?, r),
        None => (0.0, text),
    };
    let parts: Vec<f64> = rest
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let seconds = match parts[..] {
        [m] if days == 0.0 => m * 60.0,
        [h] => h * 3600.0,
        [m, s] if days == 0.0 => m * 60.0 + s,
        [h, m] => h * 3600.0 + m * 60.0,
        [h, m, s] => h * 3600.0 + m * 60.0 + s,
        _ => return None,
    };
    Some(days * 86_400.0 + seconds)
}

/// A Slurm host list (`node[1-3],head`) as names; `(null)` and `n/a` are empty.
fn expand_hosts(list: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut item = String::new();
    for c in list.chars().chain(std::iter::once(',')) {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            _ => {}
        }
        if c == ',' && depth == 0 {
            expand_one(&item, &mut out);
            item.clear();
        } else {
            item.push(c);
        }
    }
    out.retain(|n| !n.is_empty() && n != "(null)" && !n.eq_ignore_ascii_case("n/a"));
    out.truncate(MAX_NODES);
    out
}

fn expand_one(item: &str, out: &mut Vec<String>) {
    let Some((prefix, rest)) = item.split_once('[') else {
        out.push(item.to_string());
        return;
    };
    let inner = rest.trim_end_matches(']');
    for range in inner.split(',') {
        match range.split_once('-') {
            Some((a, b)) => {
                let width = a.len();
                let (Ok(a), Ok(b)) = (a.parse::<u64>(), b.parse::<u64>()) else {
                    continue;
                };
                for n in a..=b.min(a + MAX_NODES as u64) {
                    out.push(format!("{prefix}{n:0width$}"));
                }
            }
            None => out.push(format!("{prefix}{range}")),
        }
    }
}

#[cfg(test)]
mod pending_tests {
    use super::*;

    #[test]
    fn pending_jobs_give_reservations_and_candidates() {
        let text =
            "12|2026-12-01T23:10:00|node[1-2]|2|4|1:00:00\n13|N/A|(null)|1|2|UNLIMITED\n|x\n";
        let (reserved, candidates) = parse_pending(text, "2026-12-01T23:00:00");
        assert_eq!(reserved.len(), 1);
        assert_eq!(reserved[0].starts_in, 600.0);
        assert_eq!(reserved[0].nodes, ["node1", "node2"]);
        assert_eq!(candidates.len(), 2);
        assert_eq!(candidates[0].cpus_per_node, 2.0);
        assert_eq!(candidates[0].walltime, Some(3600.0));
        assert_eq!(candidates[1].walltime, None);
    }

    #[test]
    fn the_queue_gives_running_and_pending_jobs() {
        let text =
            "203|RUNNING|4294901758|1|2|2:00|2026-12-02T00:43:20|2026-12-02T00:45:20|head|NO\n\
                    206|PENDING|4294901755|3|3|1:00|2026-12-02T00:45:23|2026-12-02T00:46:23||NO\n\
                    207|PENDING|4294901754|1|1|UNLIMITED|N/A|N/A||OK\n\
                    208|COMPLETED|1|1|1|1:00|N/A|N/A||OK\nbroken\n";
        let (running, pending) = parse_queue(text);
        assert_eq!(running.len(), 1);
        assert_eq!(running[0].nodes, ["head"]);
        assert_eq!(running[0].cpus_per_node, 2.0);
        assert_eq!(
            running[0].ends_at - seconds("2026-12-02T00:43:20").unwrap(),
            120.0
        );
        assert_eq!(pending.len(), 2);
        assert!(pending[0].exclusive && !pending[1].exclusive);
        assert_eq!(pending[0].nodes, 3);
        assert_eq!(pending[0].time_limit, Some(60.0));
        assert!(pending[0].scheduler_start.is_some());
        assert_eq!(
            (pending[1].time_limit, pending[1].scheduler_start),
            (None, None)
        );
    }

    #[test]
    fn limits_hosts_and_dates_read_as_slurm_writes_them() {
        assert_eq!(time_limit("30"), Some(1800.0));
        assert_eq!(time_limit("5:30"), Some(330.0));
        assert_eq!(time_limit("2-01:00:00"), Some(176_400.0));
        assert_eq!(
            expand_hosts("head,node[01-02,5]"),
            ["head", "node01", "node02", "node5"]
        );
        assert_eq!(
            seconds_of("2026-12-02T00:00:00").unwrap() - seconds_of("2026-12-01T23:59:30").unwrap(),
            30.0
        );
        assert_eq!(seconds_of("1970-01-01T00:00:10"), Some(10.0));
    }
}
