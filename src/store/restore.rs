//! Restoring a backup: the file is checked (SQLite's integrity check, a schema this binary
//! knows) before it replaces the database, and the database it replaces is kept beside it.

use std::fs::OpenOptions;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::{DATABASE_FILE, Store, StoreError, migrations};
use crate::clock::{self, UnixTime};

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("{path} is not a Latchkey backup: {detail}")]
    NotABackup { path: PathBuf, detail: String },
    #[error("{path} is damaged: SQLite's integrity check says {detail}")]
    Damaged { path: PathBuf, detail: String },
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a restore did.
#[derive(Debug)]
pub struct Restored {
    /// The schema version of the backup (migrated on open when older).
    pub version: i64,
    /// Where the replaced database went; `None` when there was none.
    pub kept: Option<PathBuf>,
}

/// Replaces `DATA_DIR/latchkey.db` by a checked copy of `backup`. The caller holds the data
/// directory's lock, so no server uses the database meanwhile.
pub fn restore(data_dir: &Path, backup: &Path, now: UnixTime) -> Result<Restored, RestoreError> {
    let (source, version) = check(backup)?;
    let database = data_dir.join(DATABASE_FILE);
    let incoming = data_dir.join(format!("{DATABASE_FILE}.restoring"));
    remove_if_present(&incoming)?;
    copy(&source, &incoming)?;
    drop(source);
    let kept = keep_current(&database, now)?;
    for stale in [sidecar(&database, "-wal"), sidecar(&database, "-shm")] {
        remove_if_present(&stale)?;
    }
    std::fs::rename(&incoming, &database).map_err(io("replace", &database))?;
    // Opening brings an older schema up to date, and proves the result usable.
    Store::open(data_dir)?;
    Ok(Restored { version, kept })
}

/// The backup, open read-only, and its schema version, once SQLite has checked the whole
/// file.
fn check(backup: &Path) -> Result<(Connection, i64), RestoreError> {
    let not_a_backup = |detail: String| RestoreError::NotABackup {
        path: backup.to_path_buf(),
        detail,
    };
    if !backup.is_file() {
        return Err(not_a_backup("no such file".into()));
    }
    let conn = Connection::open_with_flags(backup, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| not_a_backup(e.to_string()))?;
    let verdict: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .map_err(|e| not_a_backup(e.to_string()))?;
    if verdict != "ok" {
        // SQLite's report spans lines; the error stays one.
        let detail: Vec<&str> = verdict.lines().map(str::trim).collect();
        return Err(RestoreError::Damaged {
            path: backup.to_path_buf(),
            detail: detail.join(" "),
        });
    }
    let version = migrations::version(&conn).map_err(|e| not_a_backup(e.to_string()))?;
    let supported = migrations::supported();
    if version > supported {
        return Err(StoreError::TooNew {
            path: backup.display().to_string(),
            found: version,
            supported,
        }
        .into());
    }
    if version == 0 {
        return Err(not_a_backup("it holds no Latchkey schema".into()));
    }
    Ok((conn, version))
}

/// A consistent, owner-only copy of the backup (SQLite writes it, whatever journal it had).
fn copy(source: &Connection, dest: &Path) -> Result<(), RestoreError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dest)
        .map_err(io("create", dest))?;
    if let Err(error) = source.execute("VACUUM INTO ?1", [dest.to_string_lossy()]) {
        let _ = std::fs::remove_file(dest);
        return Err(StoreError::from(error).into());
    }
    Ok(())
}

/// Moves the current database, with its write-ahead log (committed work not yet copied into
/// the file), to `latchkey.db.before-restore-STAMP`.
fn keep_current(database: &Path, now: UnixTime) -> Result<Option<PathBuf>, RestoreError> {
    if !database.exists() {
        return Ok(None);
    }
    let kept = sidecar(
        database,
        &format!(".before-restore-{}", clock::file_stamp(now)),
    );
    std::fs::rename(database, &kept).map_err(io("keep", database))?;
    owner_only(&kept)?;
    let wal = sidecar(database, "-wal");
    if wal.exists() {
        let kept_wal = sidecar(&kept, "-wal");
        std::fs::rename(&wal, &kept_wal).map_err(io("keep", &wal))?;
        owner_only(&kept_wal)?;
    }
    Ok(Some(kept))
}

fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn owner_only(path: &Path) -> Result<(), RestoreError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(io("protect", path))
}

fn remove_if_present(path: &Path) -> Result<(), RestoreError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("remove", path)(e)),
        _ => Ok(()),
    }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RestoreError {
    let path = path.to_path_buf();
    move |source| RestoreError::Io {
        action,
        path,
        source,
    }
}
