//! The journal: how a commit reaches the disk on the event loop for the cost of one write.
//!
//! Without `fsync`, a commit is an append of its AT lines to `<NAME>.journal.<N>` beside
//! the database, in one `write`, no sync: once it returns, the records survive any crash
//! of the process (the kernel has them), which is what SQLite's WAL with `synchronous =
//! NORMAL` promised, and a check-in is acknowledged. SQLite catches up on a thread of its
//! own, the [`Applier`]'s: every 100 ms (or 10,000 records) it writes what the journal
//! took in one transaction, each client's newest record once, and syncs its checkpoints
//! there, never on the loop. A segment past 4 MiB is sealed and the next begun; the
//! applier deletes a sealed segment once everything in it is in the database.
//!
//! At start-up the records of every segment left behind (the process died before the
//! applier caught up) are read after the database's, under the herd's order, and folded
//! into it (`Database::fold_journal`). A last line cut short by the crash is no record and
//! is left out; a write that fails is cut back off the segment, so a retry never follows a
//! torn line.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use futures::channel::oneshot;

use super::durable::{Database, StoreError};
use super::table::Table;
use crate::metrics::StoreMetrics;
use crate::protocol::Record;

/// A segment this long is sealed and the next begun.
const SEGMENT_BYTES: u64 = 4 * 1024 * 1024;

/// How often the applier writes what the journal took into the database.
const APPLY_EVERY: Duration = Duration::from_millis(100);

/// Records waiting for the applier that make it write at once.
const APPLY_BATCH: usize = 10_000;

/// The segment files of the store at `db` (`<dir>/<NAME>.db`), by number, oldest first.
pub(crate) fn segments(db: &Path) -> Vec<(u64, PathBuf)> {
    let (Some(dir), Some(stem)) = (db.parent(), db.file_stem().and_then(|s| s.to_str())) else {
        return Vec::new();
    };
    let prefix = format!("{stem}.journal.");
    let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let n = name.to_str()?.strip_prefix(&prefix)?.parse().ok()?;
            Some((n, entry.path()))
        })
        .collect();
    found.sort();
    found
}

/// The path of segment `n` of the store at `db`.
fn segment_path(db: &Path, n: u64) -> PathBuf {
    let stem = db.file_stem().and_then(|s| s.to_str()).unwrap_or("store");
    db.with_file_name(format!("{stem}.journal.{n}"))
}

/// The records of a segment, in the order written. Only whole lines count: a last line
/// without its newline was cut short by a crash, and a record cut inside its time field
/// would parse as another, valid record that nobody sent.
pub(crate) fn read_segment(path: &Path) -> std::io::Result<Vec<Record>> {
    let bytes = std::fs::read(path)?;
    let whole = bytes
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(&bytes[..0], |end| &bytes[..end]);
    Ok(whole
        .split(|&b| b == b'\n')
        .filter_map(|line| std::str::from_utf8(line).ok())
        .filter_map(|line| Record::parse_at_line(line).ok())
        .collect())
}

/// Every record of the store at `db`: the database's, then what its journal took and the
/// database did not yet (newer, where it differs). Reads only: for looking at a store.
#[cfg(test)]
pub(crate) fn load(db: &Database) -> Result<Table, StoreError> {
    let mut table = db.load()?;
    for (_, segment) in segments(db.path()) {
        for record in read_segment(&segment).map_err(|e| damaged_segment(&segment, &e))? {
            table.offer(record);
        }
    }
    Ok(table)
}

/// Every record of the store at `db`, as [`load`] reads them, each segment read once; then
/// what the journal held (each client's newest record) written into `db` in one
/// transaction, and the segments deleted: the table, and the number the next segment takes.
pub(crate) fn recover(db: &mut Database) -> Result<(Table, u64), StoreError> {
    let mut table = db.load()?;
    let found = segments(db.path());
    let Some(&(last, _)) = found.last() else {
        return Ok((table, 0));
    };
    // Each client the journal names, whose newest record (the database's or the journal's,
    // under the herd's order) the table then holds.
    let mut clients: HashSet<std::sync::Arc<str>> = HashSet::new();
    for (_, segment) in &found {
        for record in read_segment(segment).map_err(|e| damaged_segment(segment, &e))? {
            clients.insert(record.client().clone());
            table.offer(record);
        }
    }
    let records: Vec<Record> = clients
        .iter()
        .filter_map(|client| table.get(client).cloned())
        .collect();
    db.commit(&records)?;
    for (_, segment) in found {
        std::fs::remove_file(&segment).map_err(|error| StoreError::Journal {
            path: segment.clone(),
            error,
        })?;
    }
    Ok((table, last + 1))
}

/// A journal segment that cannot be read.
fn damaged_segment(path: &Path, e: &std::io::Error) -> StoreError {
    StoreError::Damaged {
        path: path.into(),
        why: e.to_string(),
    }
}

/// What the loop tells the applier, in order.
enum ToApplier {
    /// Records the journal took.
    Records(Vec<Record>),
    /// A segment is complete: delete it once its records are in the database.
    Sealed(PathBuf),
    /// Delete the records older than this many nanoseconds (an age bound, a cap).
    ForgetBefore(i64),
    /// Write out everything taken, then say so.
    Flush(oneshot::Sender<()>),
}

/// The loop's side: the open segment, and the way to the applier.
pub(crate) struct Journal {
    db_path: PathBuf,
    segment: u64,
    file: File,
    /// Bytes of the open segment that are whole records.
    len: u64,
    applier: mpsc::Sender<ToApplier>,
    /// Counts the records appended and not yet in the database (the applier counts them
    /// off), so the figure is exact the moment an append returns.
    metrics: StoreMetrics,
    /// Tests: every append fails, as on a full disk (`Some(true)`) or a read-only file.
    #[cfg(test)]
    failing: Option<bool>,
}

impl Journal {
    /// Starts a journal for `db`, whose earlier segments were folded into it, and the
    /// applier thread that owns `db` from now on.
    pub(crate) fn start(
        db: Database,
        next: u64,
        metrics: StoreMetrics,
    ) -> Result<Journal, StoreError> {
        let db_path = db.path().to_owned();
        let file = open_segment(&db_path, next)?;
        let (applier, inbox) = mpsc::channel();
        let applier_metrics = metrics.clone();
        std::thread::Builder::new()
            .name("herd-apply".into())
            .spawn(move || Applier::new(db, applier_metrics).run(&inbox))
            .map_err(StoreError::Thread)?;
        Ok(Journal {
            db_path,
            segment: next,
            file,
            len: 0,
            applier,
            metrics,
            #[cfg(test)]
            failing: None,
        })
    }

    /// Appends `records` in one write, then hands them to the applier. On failure the
    /// segment is cut back to its last whole record, so that nothing follows a torn line,
    /// and the records come back, to be written again.
    pub(crate) fn append(&mut self, records: Vec<Record>) -> Result<(), (StoreError, Vec<Record>)> {
        let mut bytes = Vec::with_capacity(records.iter().map(|r| r.at_line().len() + 1).sum());
        for record in &records {
            bytes.extend_from_slice(record.at_line().as_bytes());
            bytes.push(b'\n');
        }
        if let Err(error) = self.write(&bytes) {
            let _ = self.file.set_len(self.len);
            return Err((self.cannot_write(error), records));
        }
        self.len += bytes.len() as u64;
        self.metrics.unapplied(records.len() as i64);
        let _ = self.applier.send(ToApplier::Records(records));
        if self.len >= SEGMENT_BYTES {
            self.seal();
        }
        Ok(())
    }

    /// Writes `bytes` at the end of the segment.
    #[cfg(not(test))]
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.file.write_all(bytes)
    }

    /// Writes `bytes` at the end of the segment; or, told to fail, writes half of them and
    /// fails as a full disk (or a file that cannot be written) does midway, so that what
    /// follows a failed write is tested on a torn one.
    #[cfg(test)]
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let Some(full) = self.failing else {
            return self.file.write_all(bytes);
        };
        self.file.write_all(&bytes[..bytes.len() / 2])?;
        Err(match full {
            true => std::io::Error::from_raw_os_error(28), // ENOSPC
            false => std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        })
    }

    fn cannot_write(&self, error: std::io::Error) -> StoreError {
        StoreError::Journal {
            path: segment_path(&self.db_path, self.segment),
            error,
        }
    }

    /// Begins the next segment, and hands the applier the sealed one to delete once it is
    /// in the database. (If the next cannot be opened, this one goes on.)
    fn seal(&mut self) {
        match open_segment(&self.db_path, self.segment + 1) {
            Ok(file) => {
                let sealed = segment_path(&self.db_path, self.segment);
                self.segment += 1;
                self.file = file;
                self.len = 0;
                let _ = self.applier.send(ToApplier::Sealed(sealed));
            }
            Err(e) => log::warn!("store: {e}"),
        }
    }

    /// Deletes the records older than `nanos` from the database, after what came before.
    pub(crate) fn forget_before(&self, nanos: i64) {
        let _ = self.applier.send(ToApplier::ForgetBefore(nanos));
    }

    /// Resolves once everything appended so far is in the database and its segments are
    /// gone (for a clean stop: the database alone then holds the store).
    pub(crate) fn flush(&mut self) -> oneshot::Receiver<()> {
        if self.len > 0 {
            self.seal();
        }
        let (done, flushed) = oneshot::channel();
        let _ = self.applier.send(ToApplier::Flush(done));
        flushed
    }

    /// Tests: see [`Database::fail_writes`].
    #[cfg(test)]
    pub(crate) fn fail_writes(&mut self, how: Option<bool>) {
        self.failing = how;
    }
}

fn open_segment(db: &Path, n: u64) -> Result<File, StoreError> {
    let path = segment_path(db, n);
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|error| StoreError::Journal { path, error })
}

/// The thread that writes what the journal took into the database.
struct Applier {
    db: Database,
    metrics: StoreMetrics,
    /// Each client's newest record not yet in the database.
    pending: HashMap<Arc<str>, Record>,
    /// Sealed segments to delete once `pending` is empty.
    sealed: Vec<PathBuf>,
    /// Records received (before they were merged into `pending`) since the last apply.
    received: usize,
}

impl Applier {
    fn new(db: Database, metrics: StoreMetrics) -> Applier {
        Applier {
            db,
            metrics,
            pending: HashMap::new(),
            sealed: Vec::new(),
            received: 0,
        }
    }

    /// Every [`APPLY_EVERY`], takes what the loop sent and writes it. It sleeps rather than
    /// waits on the channel: a sleeping receiver is not woken by each send, so a commit on
    /// the event loop never hands the CPU to this thread in the middle of its turn.
    fn run(mut self, inbox: &mpsc::Receiver<ToApplier>) {
        loop {
            std::thread::sleep(APPLY_EVERY);
            loop {
                match inbox.try_recv() {
                    Ok(ToApplier::Records(records)) => {
                        self.received += records.len();
                        for record in records {
                            self.pending.insert(record.client().clone(), record);
                        }
                        if self.pending.len() >= APPLY_BATCH {
                            self.apply();
                        }
                    }
                    Ok(ToApplier::Sealed(path)) => {
                        self.sealed.push(path);
                        self.apply();
                    }
                    Ok(ToApplier::ForgetBefore(nanos)) => {
                        // What the store dropped must not come back with a retry.
                        self.pending.retain(|_, r| r.time().nanos() >= nanos);
                        self.apply();
                        if let Err(e) = self.db.forget_before(nanos) {
                            log::error!("store: cannot delete old records: {e}");
                        }
                    }
                    Ok(ToApplier::Flush(done)) => {
                        self.apply();
                        let _ = done.send(());
                    }
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => {
                        self.apply();
                        return;
                    }
                }
            }
            self.apply();
        }
    }

    /// Writes what is pending in one transaction, then deletes the sealed segments; on
    /// failure keeps both for the next try.
    fn apply(&mut self) {
        if !self.pending.is_empty() {
            let records: Vec<Record> = self.pending.values().cloned().collect();
            match self.db.commit(&records) {
                Ok(()) => {
                    self.pending.clear();
                    self.metrics.unapplied(-(self.received as i64));
                    self.received = 0;
                    self.metrics.set_applying_fails(None);
                }
                Err(e) => {
                    log::error!("store: cannot apply the journal: {e}");
                    self.metrics.set_applying_fails(Some(e.to_string()));
                }
            }
        }
        if self.pending.is_empty() {
            for path in self.sealed.drain(..) {
                if let Err(e) = std::fs::remove_file(&path) {
                    log::warn!("store: cannot delete {}: {e}", path.display());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::record;

    fn rows(dir: &Path) -> i64 {
        let conn = rusqlite::Connection::open(dir.join("Hill.db")).expect("the store");
        conn.query_row("SELECT count(*) FROM records", [], |row| row.get(0))
            .expect("a count")
    }

    #[actix::test]
    async fn appended_records_reach_the_database_and_their_segments_go() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path(), "Hill", false).unwrap();
        let metrics = StoreMetrics::default();
        let mut journal = Journal::start(db, 0, metrics.clone()).unwrap();
        let records: Vec<Record> = (0..100)
            .map(|i| record("Hill", &format!("IAMAT c{i} +1+1 {}", 1000 + i)))
            .collect();
        journal.append(records).map_err(|(e, _)| e).unwrap();
        assert_eq!(metrics.unapplied.get(), 100);
        journal.flush().await.unwrap();
        assert_eq!(rows(dir.path()), 100);
        assert_eq!(metrics.unapplied.get(), 0);
        // The sealed segment is gone; the next, begun empty, is all that is left.
        let left = segments(&dir.path().join("Hill.db"));
        assert!(
            left.iter()
                .all(|(_, p)| std::fs::metadata(p).unwrap().len() == 0),
            "{left:?}"
        );
    }

    #[actix::test]
    async fn a_failed_append_is_cut_back_off_its_segment_so_no_record_follows_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path(), "Hill", false).unwrap();
        let mut journal = Journal::start(db, 0, StoreMetrics::default()).unwrap();
        let kiwi = record("Hill", "IAMAT kiwi +1+1 1");
        journal
            .append(vec![kiwi.clone()])
            .map_err(|(e, _)| e)
            .unwrap();
        // The disk fills in the middle of the next write: half of it lands, then it fails.
        journal.fail_writes(Some(true));
        let pear = record("Hill", "IAMAT pear +1+1 2");
        let (_, back) = journal.append(vec![pear.clone()]).expect_err("a full disk");
        journal.fail_writes(None);
        journal.append(back).map_err(|(e, _)| e).unwrap();
        let segment = segment_path(&dir.path().join("Hill.db"), 0);
        let text = std::fs::read_to_string(segment).unwrap();
        assert_eq!(text, format!("{}\n{}\n", kiwi.at_line(), pear.at_line()));
    }

    #[test]
    fn a_journal_left_by_a_crash_is_read_after_the_database_and_folded_into_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Database::open(dir.path(), "Hill", false).unwrap();
        let old_kiwi = record("Hill", "IAMAT kiwi +1+1 1");
        db.commit(std::slice::from_ref(&old_kiwi)).unwrap();
        let new_kiwi = record("Hill", "IAMAT kiwi +2+2 2");
        let pear = record("Hill", "IAMAT pear +1+1 1");
        // The process died after these appends, and in the middle of a third.
        let segment = segment_path(db.path(), 3);
        let text = format!(
            "{}\n{}\nAT Hill +0.000000000 fig +1+1 16",
            new_kiwi.at_line(),
            pear.at_line()
        );
        std::fs::write(&segment, text).unwrap();
        let table = load(&db).unwrap();
        assert_eq!(table.get("kiwi"), Some(&new_kiwi));
        assert_eq!(table.get("pear"), Some(&pear));
        assert_eq!(table.get("fig"), None, "a torn line is no record");
        let (recovered, next) = recover(&mut db).unwrap();
        assert_eq!(recovered.len(), table.len());
        assert_eq!(next, 4, "the next segment comes after it");
        assert!(segments(db.path()).is_empty());
        // The database alone now holds them.
        let back = db.load().unwrap();
        assert_eq!(
            (back.get("kiwi"), back.get("pear")),
            (Some(&new_kiwi), Some(&pear))
        );
    }
}
