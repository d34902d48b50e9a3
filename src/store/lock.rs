//! `serve` holds an exclusive advisory lock on `DATA_DIR/latchkey.lock` for its whole life;
//! `restore` takes the same lock, so that it never replaces a database a server is using.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = "latchkey.lock";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{0} is in use by a running `latchkey serve` (or a restore); stop it first")]
    Busy(PathBuf),
    #[error("cannot lock {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The data directory's lock, released when dropped (or when the process ends, however).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Takes the lock without waiting, creating the data directory (0700) if needed.
    pub fn try_acquire(data_dir: &Path) -> Result<DataDirLock, LockError> {
        let path = data_dir.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)
            .map_err(io)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        // SAFETY: flock only reads the descriptor, which `file` keeps open.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let error = std::io::Error::last_os_error();
            return Err(match error.raw_os_error() {
                Some(libc::EWOULDBLOCK) => LockError::Busy(data_dir.to_path_buf()),
                _ => io(error),
            });
        }
        Ok(DataDirLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let held = DataDirLock::try_acquire(dir.path()).unwrap();
        assert!(matches!(
            DataDirLock::try_acquire(dir.path()),
            Err(LockError::Busy(_))
        ));
        drop(held);
        DataDirLock::try_acquire(dir.path()).unwrap();
    }
}
