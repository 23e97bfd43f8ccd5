//! The store's durable copy: each server's records in SQLite, `<store.dir>/<NAME>.db`.
//!
//! One row per client, its latest record: the AT line as the receiving server produced it,
//! and the client time it is ordered by. SQLite runs in WAL mode; `synchronous = NORMAL` (the
//! default) keeps every commit through any crash of the process, `FULL` (`fsync = true`)
//! through a power cut too. The file carries its schema's version in `PRAGMA user_version`.
//!
//! Who writes the commits is a [`Committer`](super::committer::Committer): without
//! `fsync`, the store itself, on the event loop, as one append to the
//! [journal](super::journal), which an applier thread then writes into this database; with
//! `fsync = true`, the [`Writer`], a `SyncActor` on a `SyncArbiter` of one thread, into this
//! database, since every commit then waits for the disk.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use actix::prelude::*;
use rusqlite::{params, Connection, OpenFlags};

use super::table::Table;
use crate::protocol::Record;

/// The schema this server writes, in `PRAGMA user_version`.
const SCHEMA: i64 = 1;

/// WAL pages between checkpoints (16 MiB) when the writer's thread checkpoints (`fsync =
/// true`): a checkpoint syncs the file, so fewer of them cost the writer less, for a longer
/// WAL to replay after a crash (still well under a second).
const CHECKPOINT_PAGES: u32 = 4000;

/// SQLite's page cache: 16 MiB, so that a store of a million clients (about 100 MB) keeps
/// its upper B-tree pages in memory.
const CACHE_KIB: u32 = 16 * 1024;

/// Why the database cannot be used; each message names the file and what to do, and says the
/// cause, so that none is also a `source()` (`{:#}` would print it twice).
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    #[error("cannot create the store directory {}: {error}", dir.display())]
    CreateDir { dir: PathBuf, error: std::io::Error },
    #[error("cannot start a thread of the store: {0}")]
    Thread(std::io::Error),
    #[error("cannot write {}: {error} (check its permissions and the free space of its disk)", path.display())]
    Journal {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(
        "{} is not a herd store or is damaged ({why}): move it away and start again; \
         the server gets its records back from its neighbours",
        path.display()
    )]
    Damaged { path: PathBuf, why: String },
    #[error(
        "{} was written by a newer herd (schema {found}; this one knows {SCHEMA}): \
         run the newer herd, or move the file away",
        path.display()
    )]
    NewerSchema { path: PathBuf, found: i64 },
    #[error(
        "cannot write {}: {error} (the server must write the file and create files beside \
         it in its directory: check their owner and permissions and the free space of the \
         disk; nothing says the store is damaged, keep it)",
        path.display()
    )]
    NotWritable {
        path: PathBuf,
        error: rusqlite::Error,
    },
}

impl StoreError {
    /// Why `path` could not be read or set up: damaged only if SQLite found the file itself
    /// unsound; a file it cannot open, lock or write where it is (permissions, a read-only
    /// directory where the WAL cannot be made, a full disk) is not, and must not be thrown
    /// away.
    fn opening(path: &Path, error: rusqlite::Error) -> StoreError {
        let damaged = matches!(
            error.sqlite_error_code(),
            Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
        );
        if damaged {
            StoreError::Damaged {
                path: path.into(),
                why: error.to_string(),
            }
        } else {
            StoreError::NotWritable {
                path: path.into(),
                error,
            }
        }
    }
}

/// An open store file.
pub(crate) struct Database {
    conn: Connection,
    path: PathBuf,
}

impl Database {
    /// Opens (or creates) the store of server `name` in `dir`, ready to write.
    pub(crate) fn open(dir: &Path, name: &str, fsync: bool) -> Result<Database, StoreError> {
        std::fs::create_dir_all(dir).map_err(|error| StoreError::CreateDir {
            dir: dir.into(),
            error,
        })?;
        let path = dir.join(format!("{name}.db"));
        let opening = |e| StoreError::opening(&path, e);
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE;
        let conn = Connection::open_with_flags(&path, flags).map_err(opening)?;
        let found: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(opening)?;
        if found > SCHEMA {
            return Err(StoreError::NewerSchema { path, found });
        }
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |row| row.get(0))
            .map_err(opening)?;
        if check != "ok" {
            return Err(StoreError::Damaged { path, why: check });
        }
        let writable = |error| StoreError::NotWritable {
            path: path.clone(),
            error,
        };
        let synchronous = if fsync { "FULL" } else { "NORMAL" };
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous};
             PRAGMA wal_autocheckpoint = {CHECKPOINT_PAGES}; PRAGMA cache_size = -{CACHE_KIB};
             CREATE TABLE IF NOT EXISTS records (
                 client TEXT PRIMARY KEY NOT NULL,
                 nanos INTEGER NOT NULL,
                 at_line TEXT NOT NULL
             ) WITHOUT ROWID;
             PRAGMA user_version = {SCHEMA};"
        ))
        .map_err(writable)?;
        Ok(Database { conn, path })
    }

    /// The file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Every record kept, in a table, built as the rows are read (no second copy of a
    /// large store is ever held).
    pub(crate) fn load(&self) -> Result<Table, StoreError> {
        let failed = |e| StoreError::opening(&self.path, e);
        let mut rows = self
            .conn
            .prepare("SELECT at_line FROM records")
            .map_err(failed)?;
        let lines = rows
            .query_map([], |row| row.get::<_, String>(0))
            .map_err(failed)?;
        // Sized once, so that a large table is not copied as it grows.
        let rows: i64 = self
            .conn
            .query_row("SELECT count(*) FROM records", [], |row| row.get(0))
            .map_err(failed)?;
        let mut table = Table::with_capacity(usize::try_from(rows).unwrap_or(0));
        for line in lines {
            let line = line.map_err(failed)?;
            // A row this server wrote is a record it accepted; one that does not parse was
            // changed by hand, and is left out rather than trusted.
            match Record::parse_at_line(&line) {
                Ok(record) => {
                    table.offer(record);
                }
                Err(e) => log::warn!("{}: ignored a row: {e}: {line}", self.path.display()),
            }
        }
        Ok(table)
    }

    /// Writes `records` (each newer than what is kept for its client) in one transaction.
    pub(crate) fn commit(&mut self, records: &[Record]) -> Result<(), StoreError> {
        let path = &self.path;
        let failed = |error| StoreError::NotWritable {
            path: path.clone(),
            error,
        };
        let tx = self.conn.transaction().map_err(failed)?;
        {
            let mut upsert = tx
                .prepare_cached(
                    "INSERT INTO records (client, nanos, at_line) VALUES (?1, ?2, ?3)
                     ON CONFLICT (client) DO UPDATE SET nanos = ?2, at_line = ?3",
                )
                .map_err(failed)?;
            for record in records {
                upsert
                    .execute(params![
                        &**record.client(),
                        record.time().nanos(),
                        record.at_line()
                    ])
                    .map_err(failed)?;
            }
        }
        tx.commit().map_err(failed)
    }

    /// From now on every write fails, as on a full disk (`Some(true)`) or a file that can
    /// no longer be written (`Some(false)`); or writes work again (`None`).
    #[cfg(test)]
    pub(crate) fn fail_writes(&self, how: Option<bool>) {
        let pragma = match how {
            Some(true) => "PRAGMA max_page_count = 1",
            Some(false) => "PRAGMA query_only = ON",
            None => "PRAGMA max_page_count = 1073741823; PRAGMA query_only = OFF",
        };
        self.conn
            .execute_batch(pragma)
            .expect("a pragma on an open database");
    }

    /// Deletes the records whose client time is after `nanos`; how many.
    pub(crate) fn forget_after(&mut self, nanos: i64) -> Result<usize, StoreError> {
        self.delete("DELETE FROM records WHERE nanos > ?1", nanos)
    }

    /// Deletes the records whose client time is before `nanos`; how many.
    pub(crate) fn forget_before(&mut self, nanos: i64) -> Result<usize, StoreError> {
        self.delete("DELETE FROM records WHERE nanos < ?1", nanos)
    }

    fn delete(&mut self, sql: &str, nanos: i64) -> Result<usize, StoreError> {
        self.conn
            .execute(sql, [nanos])
            .map_err(|error| StoreError::NotWritable {
                path: self.path.clone(),
                error,
            })
    }
}

/// Writes `lines`, AT lines as servers produce them, into the store of server `name` in
/// `dir` (made if missing), as fast as SQLite takes them, a transaction per 50,000 rows:
/// for benchmarks and tests that need a large store without checking each record in.
/// Returns how many rows were written; a line that is not an AT line stops it.
pub fn fill_store(
    dir: &Path,
    name: &str,
    lines: impl IntoIterator<Item = String>,
) -> Result<usize, String> {
    const BATCH: usize = 50_000;
    let mut db = Database::open(dir, name, false).map_err(|e| e.to_string())?;
    let mut batch = Vec::with_capacity(BATCH);
    let mut written = 0;
    for line in lines {
        let record = Record::parse_at_line(&line).map_err(|e| format!("{line:?}: {e}"))?;
        batch.push(record);
        if batch.len() == BATCH {
            db.commit(&batch).map_err(|e| e.to_string())?;
            written += batch.len();
            batch.clear();
        }
    }
    db.commit(&batch).map_err(|e| e.to_string())?;
    Ok(written + batch.len())
}

/// The one thread that touches the database.
pub(crate) struct Writer {
    db: Database,
}

impl Actor for Writer {
    type Context = SyncContext<Self>;
}

impl Writer {
    /// Starts the writer on a thread of its own, owning `db`.
    pub(crate) fn start(db: Database) -> Addr<Writer> {
        let db = Mutex::new(Some(db));
        SyncArbiter::start(1, move || Writer {
            // An arbiter of one thread makes its actor once, and the writer never stops.
            db: db
                .lock()
                .ok()
                .and_then(|mut db| db.take())
                .expect("the writer is made once"),
        })
    }
}

/// Request: write these records, in one transaction.
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub(crate) struct Commit(pub(crate) Vec<Record>);

impl Handler<Commit> for Writer {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, Commit(records): Commit, _: &mut SyncContext<Self>) -> Self::Result {
        self.db.commit(&records)
    }
}

/// Request (tests): see [`Database::fail_writes`].
#[cfg(test)]
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct FailWrites(pub(crate) Option<bool>);

#[cfg(test)]
impl Handler<FailWrites> for Writer {
    type Result = ();

    fn handle(&mut self, FailWrites(how): FailWrites, _: &mut SyncContext<Self>) {
        self.db.fail_writes(how);
    }
}

/// Request: delete the records whose client time is before this many nanoseconds.
#[derive(Message)]
#[rtype(result = "Result<usize, StoreError>")]
pub(crate) struct ForgetBefore(pub(crate) i64);

impl Handler<ForgetBefore> for Writer {
    type Result = Result<usize, StoreError>;

    fn handle(
        &mut self,
        ForgetBefore(nanos): ForgetBefore,
        _: &mut SyncContext<Self>,
    ) -> Self::Result {
        self.db.forget_before(nanos)
    }
}
