//! Scheduled backups: while serving, a consistent copy of the database is written into
//! `backup_dir` as `latchkey-<UTC time>.db` every `backup_every`, and the oldest beyond
//! `backup_keep` are deleted (only files named like ours). The rule is a plain function of
//! the existing names and `now`; the task around it only lists, copies and deletes.

use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::time::Duration;

use crate::clock::{self, UnixTime};
use crate::config::BackupSettings;
use crate::store::Store;

const PREFIX: &str = "latchkey-";
const SUFFIX: &str = ".db";

/// The file name of a backup taken at `at`.
pub fn file_name(at: UnixTime) -> String {
    format!("{PREFIX}{}{SUFFIX}", clock::file_stamp(at))
}

/// When a backup was taken, for names this module writes; `None` for any other file.
pub fn taken_at(name: &str) -> Option<UnixTime> {
    let stamp = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let parsed = time::PrimitiveDateTime::parse(stamp, format).ok()?;
    Some(parsed.assume_utc().unix_timestamp()).filter(|at| file_name(*at) == name)
}

/// What the schedule says at `now`, given the names in the backup directory.
#[derive(Debug, PartialEq, Eq)]
pub struct Plan {
    /// When the next backup is due: now or earlier means take one.
    pub next_due: UnixTime,
    /// Our backups beyond the newest `keep`, oldest first.
    pub expired: Vec<String>,
}

pub fn plan(names: &[String], settings: &BackupSettings, now: UnixTime) -> Plan {
    let mut ours: Vec<(UnixTime, &String)> = names
        .iter()
        .filter_map(|name| taken_at(name).map(|at| (at, name)))
        .collect();
    ours.sort();
    let next_due = ours
        .last()
        .map_or(now, |(newest, _)| newest + settings.every_secs);
    let surplus = ours.len().saturating_sub(settings.keep);
    Plan {
        next_due,
        expired: ours[..surplus].iter().map(|(_, n)| n.to_string()).collect(),
    }
}

/// Runs the schedule for as long as the server does; does nothing without `backup_dir`.
pub async fn schedule(store: Store, settings: Option<BackupSettings>) {
    let Some(settings) = settings else { return };
    loop {
        let now = clock::now();
        let step = {
            let (store, settings) = (store.clone(), settings.clone());
            actix_web::web::block(move || step(&store, &settings, now)).await
        };
        match step {
            Ok(Ok(next_due)) => {
                let wait = (next_due - clock::now()).clamp(1, settings.every_secs);
                actix_web::rt::time::sleep(Duration::from_secs(wait.unsigned_abs())).await;
            }
            Ok(Err(error)) => {
                tracing::warn!("scheduled backup failed: {error}");
                actix_web::rt::time::sleep(Duration::from_secs(RETRY_SECS)).await;
            }
            Err(error) => {
                tracing::warn!("scheduled backup failed: {error}");
                return;
            }
        }
    }
}

/// How long a failed backup waits before the next attempt.
const RETRY_SECS: u64 = 60;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("cannot use the backup directory {path}: {source}")]
    Dir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Takes a backup if one is due, deletes the expired ones; returns when the next is due.
fn step(store: &Store, settings: &BackupSettings, now: UnixTime) -> Result<UnixTime, BackupError> {
    let dir = &settings.dir;
    let fail = |source| BackupError::Dir {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(fail)?;
    let mut names = list(dir).map_err(fail)?;
    if plan(&names, settings, now).next_due <= now {
        let name = file_name(now);
        store.backup(&dir.join(&name))?;
        tracing::info!("backup written to {}", dir.join(&name).display());
        names.push(name);
    }
    let after = plan(&names, settings, now);
    for name in &after.expired {
        std::fs::remove_file(dir.join(name)).map_err(fail)?;
    }
    Ok(after.next_due)
}

fn list(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        if let Ok(name) = entry?.file_name().into_string() {
            names.push(name);
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    /// 2026-11-30 00:00 UTC.
    const NOW: UnixTime = 1_795_996_800;

    fn daily(keep: usize) -> BackupSettings {
        BackupSettings {
            dir: "backups".into(),
            every_secs: DAY,
            keep,
        }
    }

    fn names(times: &[UnixTime]) -> Vec<String> {
        times.iter().map(|at| file_name(*at)).collect()
    }

    #[test]
    fn names_round_trip_and_others_are_not_ours() {
        assert_eq!(file_name(NOW), "latchkey-20261130T000000Z.db");
        assert_eq!(taken_at(&file_name(NOW + 61)), Some(NOW + 61));
        for other in [
            "latchkey.db",
            "latchkey-20261130T000000Z.db-wal",
            "latchkey-2026113T000000Z.db",
            "notes.txt",
            "latchkey-20261130T000000Z.db.bak",
        ] {
            assert_eq!(taken_at(other), None, "{other}");
        }
    }

    #[test]
    fn the_first_backup_is_due_at_once() {
        assert_eq!(plan(&[], &daily(7), NOW).next_due, NOW);
        let unrelated = vec!["notes.txt".to_string()];
        assert_eq!(plan(&unrelated, &daily(7), NOW).next_due, NOW);
    }

    #[test]
    fn the_next_is_due_one_period_after_the_newest() {
        let existing = names(&[NOW - 3 * DAY, NOW - 3600]);
        let plan = plan(&existing, &daily(7), NOW);
        assert_eq!(plan.next_due, NOW - 3600 + DAY);
        assert!(plan.expired.is_empty());
    }

    #[test]
    fn the_oldest_beyond_keep_expire_and_nothing_else() {
        let mut existing = names(&[NOW - DAY, NOW - 4 * DAY, NOW - 2 * DAY, NOW - 3 * DAY]);
        existing.push("latchkey.db".into());
        existing.push("mine.db".into());
        let plan = plan(&existing, &daily(2), NOW);
        assert_eq!(plan.expired, names(&[NOW - 4 * DAY, NOW - 3 * DAY]));
        assert_eq!(plan.next_due, NOW);
    }
}
