//! Where the writer thread writes: the log file, which it opens again at its path when
//! asked (SIGHUP), so that logrotate can rename the file and the server goes on in a new
//! one without a line lost or written twice (no `copytruncate` needed).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A destination the writer can open again.
pub(super) trait Sink: Write + Send + 'static {
    /// Starts a new file at the same path; what was written so far stays in the old one.
    fn reopen(&mut self) -> io::Result<()>;
}

/// `<dir>/<NAME>.log`, opened for appending.
pub(super) struct FileSink {
    path: PathBuf,
    file: File,
}

impl FileSink {
    /// Opens `path` for appending, creating it and its directory if they are missing.
    pub(super) fn open(path: &Path) -> io::Result<FileSink> {
        Ok(FileSink {
            path: path.to_owned(),
            file: append_to(path)?,
        })
    }
}

/// `path` opened for appending; its directory is made first if it is missing.
fn append_to(path: &Path) -> io::Result<File> {
    let with_path = |path: &Path, what: &str| {
        let path = path.display().to_string();
        let what = what.to_string();
        move |e: io::Error| io::Error::new(e.kind(), format!("cannot {what} {path}: {e}"))
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(with_path(dir, "create log directory"))?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(with_path(path, "open event log"))
}

impl Write for FileSink {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.file.write(bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Sink for FileSink {
    fn reopen(&mut self) -> io::Result<()> {
        // Opened before the old one is let go: if it cannot be, the old file stays in use.
        self.file = append_to(&self.path)?;
        Ok(())
    }
}
