//! The master's view of the file system, read from `mfscli`'s plain output (tab-separated
//! lines when not on a terminal, as MooseFS 3.0.117 prints them): the connected chunk servers
//! (`-SCS`), the metaloggers (`-SMB`), the chunks' goal/copies classes counting copies on
//! servers marked for removal (`-SIC`) and not counting them (`-SIC -m 1`), and the master's
//! totals (`-SIG`). Pure: a driver runs `mfscli` where the master is reachable and hands the
//! text here. The tests use outputs recorded from a real master.

use crate::reconcile::FsHealth;

/// The largest chunk MooseFS writes (its files are split into chunks of at most 64 MiB).
pub const MAX_CHUNK_BYTES: u64 = 64 << 20;

/// The `mfscli` data sets, in the order [`health`] takes their outputs (and `mfs-run view`
/// prints them, each after a `@@ ARGS` line).
pub const DATA_SETS: [&str; 5] = ["-SCS", "-SMB", "-SIC", "-SIC -m 1", "-SIG"];

/// One connected chunk server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkServerRow {
    pub ip: String,
    pub port: u16,
    /// Chunks on its disks not marked for removal.
    pub chunks: u64,
    pub used_bytes: u64,
    pub total_bytes: u64,
    /// Whether any of its disks is marked for removal, and what they hold.
    pub marked: bool,
    pub marked_chunks: u64,
    pub marked_used_bytes: u64,
}

/// What `mfscli` said, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MasterView {
    pub chunk_servers: Vec<ChunkServerRow>,
    /// The addresses of connected metaloggers.
    pub metaloggers: Vec<String>,
    pub health: FsHealth,
}

/// Why an output could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mfscli {data_set}: cannot read line {line:?}")]
pub struct ParseError {
    pub data_set: &'static str,
    pub line: String,
}

/// The outputs of the five [`DATA_SETS`], in their order, read together.
pub fn health(outputs: [&str; 5]) -> Result<MasterView, ParseError> {
    let [servers, metaloggers, all, regular, info] = outputs;
    let chunk_servers = chunk_servers(servers)?;
    let metaloggers = lines(metaloggers, "metadata backup loggers:")
        .filter_map(|fields| fields.first().map(|ip| ip.to_string()))
        .collect();
    let (all, regular, info) = (classes(all), classes(regular), master_info(info));
    let counted = |classes: &[(String, u64)], names: &[&str]| -> u64 {
        classes
            .iter()
            .filter(|(name, _)| names.contains(&name.as_str()))
            .map(|(_, n)| n)
            .sum()
    };
    let short = ["missing", "endangered", "undergoal"];
    let total = info("total space");
    let health = FsHealth {
        missing_chunks: counted(&all, &["missing"]),
        under_goal_chunks: counted(&all, &short),
        under_goal_without_marked: counted(&regular, &short),
        chunks: info("chunks"),
        capacity_bytes: total,
        used_bytes: total.saturating_sub(info("avail space")),
        // A server's "used" is its disk's (other files and other servers on a shared disk
        // too); its chunks are at most 64 MiB each: the smaller bounds what must move.
        marked_used_bytes: chunk_servers
            .iter()
            .map(|s| {
                s.marked_used_bytes
                    .min(s.marked_chunks.saturating_mul(MAX_CHUNK_BYTES))
            })
            .sum(),
        disconnected: lines(servers, "Disconnected chunk servers:")
            .filter(|fields| fields.len() >= 2)
            .map(|fields| format!("{}:{}", fields[0], fields[1]))
            .collect(),
    };
    Ok(MasterView {
        chunk_servers,
        metaloggers,
        health,
    })
}

/// The master's view from `mfs-run view`'s output: the five data sets, each after its
/// `@@ ARGS` line.
pub fn view(text: &str) -> Result<MasterView, ParseError> {
    let mut outputs: [String; 5] = Default::default();
    let mut current: Option<usize> = None;
    for line in text.lines() {
        if let Some(args) = line.strip_prefix("@@ ") {
            current = DATA_SETS.iter().position(|d| *d == args.trim());
            continue;
        }
        if let Some(i) = current {
            outputs[i].push_str(line);
            outputs[i].push('\n');
        }
    }
    if !text.lines().any(|l| l.starts_with("@@ -SIG")) {
        return Err(ParseError {
            data_set: "view",
            line: text.lines().next().unwrap_or("").to_string(),
        });
    }
    let [a, b, c, d, e] = &outputs;
    health([a, b, c, d, e])
}

/// The fields of the lines that start with `prefix` (a data set's title).
fn lines<'a>(text: &'a str, prefix: &'a str) -> impl Iterator<Item = Vec<&'a str>> + 'a {
    text.lines()
        .filter_map(move |line| line.strip_prefix(prefix))
        .map(|rest| {
            rest.split('\t')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .collect()
        })
}

fn chunk_servers(text: &str) -> Result<Vec<ChunkServerRow>, ParseError> {
    let refuse = |fields: &[&str]| ParseError {
        data_set: "-SCS",
        line: fields.join("\t"),
    };
    let mut rows = Vec::new();
    for fields in lines(text, "chunk servers:") {
        // ip, port, id, labels, version, load, maintenance, chunks, used, total,
        // removal status, marked chunks, marked used, marked total
        if fields.len() < 14 {
            return Err(refuse(&fields));
        }
        let number = |i: usize| fields[i].parse::<u64>().map_err(|_| refuse(&fields));
        rows.push(ChunkServerRow {
            ip: fields[0].to_string(),
            port: fields[1].parse().map_err(|_| refuse(&fields))?,
            chunks: number(7)?,
            used_bytes: number(8)?,
            total_bytes: number(9)?,
            // "READY"/"NOT READY" while it holds chunks; "-" with a marked disk once empty.
            marked: fields[10] != "-" || number(13)? > 0,
            marked_chunks: number(11)?,
            marked_used_bytes: number(12)?,
        });
    }
    Ok(rows)
}

/// `chunkclass NAME: N` lines of a chunks matrix.
fn classes(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter_map(|line| {
            let (_, rest) = line.split_once("chunkclass ")?;
            let (name, count) = rest.split_once(':')?;
            Some((name.trim().to_string(), count.trim().parse().ok()?))
        })
        .collect()
}

/// A lookup of the master's `-SIG` figures (0 for one it did not give).
fn master_info(text: &str) -> impl Fn(&str) -> u64 + '_ {
    move |name: &str| {
        lines(text, "master info:")
            .find(|fields| fields.first() == Some(&name))
            .and_then(|fields| fields.get(1)?.parse().ok())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Recorded from MooseFS 3.0.117 (Debian 12): three chunk servers, the third marked for
    // removal, two chunks of goal 2 whose copies are on it and one other server.
    const SERVERS: &str = "chunk servers:\t192.0.2.2\t19430\t1\t-\t3.0.117\t0\tmaintenance_off\t1\t17347481600\t97572749312\t-\t0\t0\t0
chunk servers:\t192.0.2.2\t19431\t2\t-\t3.0.117\t0\tmaintenance_off\t1\t17348382720\t97572749312\t-\t0\t0\t0
chunk servers:\t192.0.2.2\t19432\t3\t-\t3.0.117\t0\tmaintenance_off\t0\t0\t0\tNOT READY\t2\t17817300992\t97572749312
chunk servers:\t10.89.1.7\t9422\t4\t-\t3.0.117\t0\tmaintenance_off\t0\t0\t0\t-\t0\t36925341696\t97572749312

Disconnected chunk servers:\t10.89.0.4\t9422\t3\tmaintenance_off
";
    const METALOGGERS: &str = "metadata backup loggers:\t10.89.0.5\t3.0.117\n";
    const ALL: &str = "all chunks matrix:\tgoal/copies/chunks:\t2\t2\t2
all chunks matrix:\tchunkclass missing:\t0
all chunks matrix:\tchunkclass endangered:\t0
all chunks matrix:\tchunkclass undergoal:\t0
all chunks matrix:\tchunkclass stable:\t2
all chunks matrix:\tchunkclass overgoal:\t0
";
    const REGULAR: &str = "regular chunks matrix:\tgoal/copies/chunks:\t2\t1\t2
regular chunks matrix:\tchunkclass missing:\t0
regular chunks matrix:\tchunkclass endangered:\t2
regular chunks matrix:\tchunkclass undergoal:\t0
regular chunks matrix:\tchunkclass stable:\t0
";
    const INFO: &str = "master info:\tmaster version\t3.0.117
master info:\ttotal space\t292718247936
master info:\tavail space\t238070476800
master info:\tchunks\t2
master info:\tlast successful store\t-
";

    #[test]
    fn a_recorded_master_view_is_read() {
        let view = health([SERVERS, METALOGGERS, ALL, REGULAR, INFO]).unwrap();
        // The fourth: marked and empty; the disconnected one is not listed.
        assert_eq!(view.chunk_servers.len(), 4);
        assert!(view.chunk_servers[3].marked);
        let third = &view.chunk_servers[2];
        assert_eq!(
            (third.port, third.marked, third.marked_chunks),
            (19432, true, 2)
        );
        assert!(!view.chunk_servers[0].marked);
        assert_eq!(view.metaloggers, ["10.89.0.5"]);
        assert_eq!(
            view.health,
            FsHealth {
                missing_chunks: 0,
                under_goal_chunks: 0,
                under_goal_without_marked: 2,
                chunks: 2,
                capacity_bytes: 292718247936,
                used_bytes: 292718247936 - 238070476800,
                // Two chunks on the marked servers (a shared disk says 17.8 + 36.9 GB used).
                marked_used_bytes: 2 * MAX_CHUNK_BYTES,
                disconnected: vec!["10.89.0.4:9422".into()],
            }
        );
    }

    #[test]
    fn the_view_is_split_into_its_data_sets() {
        let text = format!(
            "@@ -SCS\n{SERVERS}@@ -SMB\n{METALOGGERS}@@ -SIC\n{ALL}@@ -SIC -m 1\n{REGULAR}@@ -SIG\n{INFO}"
        );
        let whole = view(&text).unwrap();
        assert_eq!(
            whole,
            health([SERVERS, METALOGGERS, ALL, REGULAR, INFO]).unwrap()
        );
        assert!(view("can't connect to master").is_err());
    }

    #[test]
    fn an_empty_service_and_a_truncated_line() {
        let view = health(["", "", "", "", ""]).unwrap();
        assert_eq!(view, MasterView::default());
        let cut = "chunk servers:\t10.0.0.2\t9422\t1\n";
        assert!(health([cut, "", "", "", ""]).is_err());
        let bad = SERVERS.replace("17347481600", "lots");
        let error = health([&bad, "", "", "", ""]).unwrap_err();
        assert!(error.to_string().contains("-SCS"), "{error}");
    }
}
