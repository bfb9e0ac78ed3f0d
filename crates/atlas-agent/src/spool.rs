//! The spool: records appended as JSON lines, flushed and fsync'ed per batch (at most once a
//! second, and at every phase boundary), so a SIGKILL loses at most the last second.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use atlas_spec::record::{Record, RecordBody};

/// Appends records for one run.
pub struct SpoolWriter {
    out: BufWriter<File>,
    run: String,
    seq: u64,
    started: Instant,
    last_sync: Instant,
    dirty: bool,
    /// Get every record line too, flushed at each sync (`--records-to-stdout`: the pod log
    /// carries the records out of a Kubernetes job; a push to `atlas serve`).
    mirrors: Vec<Box<dyn Write + Send>>,
    /// The record being written, reused so appending allocates nothing once warm.
    line: Vec<u8>,
}

impl SpoolWriter {
    /// Opens (creating or appending to) the spool file for `run`, continuing after `last_seq`.
    pub fn open(path: &Path, run: &str, last_seq: u64, started: Instant) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(SpoolWriter {
            out: BufWriter::with_capacity(64 * 1024, file),
            run: run.to_string(),
            seq: last_seq,
            started,
            last_sync: Instant::now(),
            dirty: false,
            mirrors: Vec::new(),
            line: Vec::with_capacity(512),
        })
    }

    /// Also writes every record line to `mirror`.
    pub fn with_mirror(mut self, mirror: Box<dyn Write + Send>) -> Self {
        self.mirrors.push(mirror);
        self
    }

    /// Appends one record (buffered) and returns it.
    pub fn append(&mut self, body: RecordBody) -> std::io::Result<Record> {
        self.seq += 1;
        let record = Record {
            run: self.run.clone(),
            seq: self.seq,
            time: unix_now(),
            mono: self.started.elapsed().as_secs_f64(),
            body,
        };
        self.line.clear();
        record.to_line(&mut self.line)?;
        self.out.write_all(&self.line)?;
        for mirror in &mut self.mirrors {
            mirror.write_all(&self.line)?;
        }
        self.dirty = true;
        Ok(record)
    }

    /// Flushes and fsyncs if a second has passed since the last sync.
    pub fn sync_if_due(&mut self) -> std::io::Result<()> {
        if self.dirty && self.last_sync.elapsed() >= Duration::from_secs(1) {
            self.sync()?;
        }
        Ok(())
    }

    /// Writes the buffered records out to the kernel and the mirrors now, and fsyncs only when
    /// a second has passed since the last fsync. Used at the run's start, phase boundaries and
    /// signals: a killed agent then loses nothing (the kernel has the lines); only a crash of
    /// the machine itself could lose the last second, which the once-a-second fsync bounds.
    /// Each fsync costs a disk round trip (0.2 ms here, 25 ms on some VMs), so a short run pays
    /// one, at its end, instead of one per boundary.
    pub fn flush(&mut self) -> std::io::Result<()> {
        if self.last_sync.elapsed() >= Duration::from_secs(1) {
            return self.sync();
        }
        self.out.flush()?;
        for mirror in &mut self.mirrors {
            mirror.flush()?;
        }
        Ok(())
    }

    /// Flushes and fsyncs now: at the run's end, so its result is on disk before the agent
    /// exits and `atlas run` reports it.
    pub fn sync(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_data()?;
        for mirror in &mut self.mirrors {
            mirror.flush()?;
        }
        self.last_sync = Instant::now();
        self.dirty = false;
        Ok(())
    }
}

/// Current wall-clock time, Unix seconds.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// What reading a spool found.
#[derive(Debug, Default)]
pub struct SpoolContents {
    /// Records, in file order.
    pub records: Vec<Record>,
    /// Complete lines that were not records: (line, reason). Lines count from 1 at `offset`.
    pub bad_lines: Vec<(usize, String)>,
    /// The line of an incomplete last line, left unread (still being written, or torn by a
    /// crash): a follower reads it again next time, so it is not an error until the end.
    pub torn_line: Option<usize>,
    /// Complete lines read, records and bad lines together (where a follower's count resumes).
    pub complete_lines: usize,
    /// Bytes of complete lines read (where a follower resumes).
    pub complete_bytes: u64,
}

/// The most bytes of a spool one [`read_spool`] reads; a follower reads the rest next time.
pub const MAX_SPOOL_READ: u64 = 16 << 20;

/// Reads the complete lines of a spool from byte `offset` on, at most [`MAX_SPOOL_READ`] bytes;
/// a last line without its newline is left for later (it may still be being written, or was
/// torn by a crash). The job can write its spool, so it is opened without following a link and
/// only as a regular file.
pub fn read_spool(path: &Path, offset: u64) -> std::io::Result<SpoolContents> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = crate::rundir_io::open_regular(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut reader = BufReader::new(file.take(MAX_SPOOL_READ));
    let mut contents = SpoolContents {
        complete_bytes: offset,
        ..Default::default()
    };
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        number += 1;
        if line.last() != Some(&b'\n') {
            contents.torn_line = Some(number);
            break;
        }
        contents.complete_bytes += n as u64;
        contents.complete_lines = number;
        match Record::parse_line(&line) {
            Ok(record) => contents.records.push(record),
            Err(why) => contents.bad_lines.push((number, why.to_string())),
        }
    }
    Ok(contents)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn written_records_read_back_and_a_torn_line_is_reported() {
        let dir = std::env::temp_dir().join(format!("atlas-spool-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("spool.jsonl");
        let mut w = SpoolWriter::open(&path, "r-1", 0, Instant::now()).unwrap();
        for i in 0..3 {
            w.append(RecordBody::Signal { signal: i }).unwrap();
        }
        w.sync().unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"run\":\"r-1\",\"se")
            .unwrap();
        let c = read_spool(&path, 0).unwrap();
        assert_eq!(
            c.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert!(c.bad_lines.is_empty());
        assert_eq!((c.torn_line, c.complete_lines), (Some(4), 3));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A `Write` whose bytes a test can read after handing it away.
    #[derive(Clone, Default)]
    pub(crate) struct Shared(pub(crate) std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_mirror_gets_the_same_lines_as_the_file() {
        let dir = std::env::temp_dir().join(format!("atlas-mirror-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("spool.jsonl");
        let mirror = Shared::default();
        let mut w = SpoolWriter::open(&path, "r-2", 0, Instant::now())
            .unwrap()
            .with_mirror(Box::new(mirror.clone()));
        for i in 0..2 {
            w.append(RecordBody::Signal { signal: i }).unwrap();
        }
        w.sync().unwrap();
        let file = std::fs::read(&path).unwrap();
        assert_eq!(file.iter().filter(|b| **b == b'\n').count(), 2);
        assert_eq!(*mirror.0.lock().unwrap(), file);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
