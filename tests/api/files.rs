//! What Latchkey writes to disk is owner-only, whatever the umask it was started with: the
//! database holds the signing keys.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::process::{Served, database, free_port, latchkey_under_umask};

fn assert_mode(path: &Path, expected: u32) {
    let mode = std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(
        format!("{mode:o}"),
        format!("{expected:o}"),
        "mode of {}",
        path.display()
    );
}

/// Every entry under `dir` (and `dir` itself): directories 0700, files 0600.
fn assert_owner_only(dir: &Path) {
    assert_mode(dir, 0o700);
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            assert_owner_only(&path);
        } else {
            assert_mode(&path, 0o600);
        }
    }
}

#[test]
fn files_are_0600_and_directories_0700_under_a_permissive_umask() {
    let root = tempfile::tempdir().unwrap();
    let made = root.path().join("var-lib");
    let data = made.join("latchkey");
    let served = Served::start(&data, free_port(), "022");

    // The operator's own directory for backups keeps its mode; the copy in it is owner-only.
    let backups = root.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    std::fs::set_permissions(&backups, std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = backups.join("copy.db");
    let out = latchkey_under_umask("022")
        .arg("--data-dir")
        .arg(&data)
        .arg("backup")
        .arg(&copy)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let db = database(&data);
    for file in [
        db.clone(),
        db.with_extension("db-wal"),
        db.with_extension("db-shm"),
    ] {
        assert!(file.exists(), "{} exists while serving", file.display());
    }
    assert_owner_only(&made);
    assert_mode(&copy, 0o600);
    let left: Vec<_> = std::fs::read_dir(&backups)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["copy.db"], "nothing else is left next to the backup");
    served.kill();
}
