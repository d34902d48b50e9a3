//! Running Latchkey as a service: `healthcheck`, `--version`, `completions`, `man`,
//! `setup-link`, `restore`, scheduled backups, and secrets read from files.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::*;
use crate::process::{Served, free_port, latchkey_under_umask};

/// How long a test polls for something the server does on its own.
const POLL_LIMIT: Duration = Duration::from_secs(20);

/// The real binary with a clean environment, on `data_dir`.
fn latchkey(data_dir: &Path, args: &[&str]) -> Output {
    latchkey_under_umask("022")
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .output()
        .expect("run latchkey")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A refusal: a non-zero exit and exactly one line on stderr, containing `expected`.
fn assert_refused(out: &Output, expected: &str) {
    assert!(!out.status.success(), "should fail: {}", stdout(out));
    let err = stderr(out);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains(expected), "{expected:?} in {err}");
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Polls `done` until it holds, for at most `POLL_LIMIT`.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + POLL_LIMIT;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {POLL_LIMIT:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn healthcheck_passes_against_a_running_server_and_fails_against_nothing() {
    let app = spawn_app();
    let listen = format!("127.0.0.1:{}", app.port);
    let data = app.data_dir.path();
    let out = latchkey(
        data,
        &["healthcheck", "--listen", &listen, "--issuer", &app.issuer],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // The issuer's path prefixes /healthz: a wrong one is a failed check.
    let elsewhere = format!("{}/elsewhere", app.issuer);
    let out = latchkey(
        data,
        &["healthcheck", "--listen", &listen, "--issuer", &elsewhere],
    );
    assert_refused(&out, "answered 404");

    let nothing = format!("127.0.0.1:{}", free_port());
    let out = latchkey(data, &["healthcheck", "--listen", &nothing]);
    assert_refused(&out, "healthcheck");
}

#[test]
fn version_completions_and_man_page() {
    let data = tempfile::tempdir().unwrap();
    let out = latchkey(data.path(), &["--version"]);
    assert_eq!(stdout(&out), "latchkey 0.1.0\n");
    for shell in ["bash", "zsh", "fish"] {
        let out = latchkey(data.path(), &["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        assert!(stdout(&out).contains("setup-link"), "{shell}");
    }
    let out = latchkey(data.path(), &["man"]);
    assert!(out.status.success());
    let page = stdout(&out);
    let first_macro = page
        .lines()
        .find(|l| !l.starts_with(".ie") && !l.starts_with(".el"));
    assert!(
        first_macro.is_some_and(|l| l.starts_with(".TH latchkey 1")),
        "{page}"
    );
    assert!(page.contains("healthcheck"));
    // Neither needs a data dir: nothing was created.
    assert_eq!(std::fs::read_dir(data.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn setup_link_works_until_an_administrator_exists() {
    let app = spawn_app();
    let link = app
        .cli_ok(&["setup-link"])
        .lines()
        .last()
        .unwrap()
        .to_string();
    assert!(
        link.starts_with(&format!("{}/setup/", app.issuer)),
        "{link}"
    );
    let page = app.browser().get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200, "the printed link opens the setup page");

    app.cli_ok(&["user", "add", "root", "--admin"]);
    assert_refused(&app.cli(&["setup-link"]), "an administrator exists");
}

fn usernames(data_dir: &Path) -> String {
    let out = latchkey(data_dir, &["user", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

#[test]
fn restore_is_refused_while_serving_and_brings_the_backup_back_when_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let backup = dir.path().join("before-bob.db");
    let served = Served::start(&data, free_port(), "022");
    assert!(latchkey(&data, &["user", "add", "alice"]).status.success());
    assert!(
        latchkey(&data, &["backup", backup.to_str().unwrap()])
            .status
            .success()
    );
    assert!(latchkey(&data, &["user", "add", "bob"]).status.success());

    let restore = ["restore", backup.to_str().unwrap()];
    assert_refused(&latchkey(&data, &restore), "latchkey serve");
    assert!(usernames(&data).contains("bob"), "nothing was replaced");

    served.kill();
    let out = latchkey(&data, &restore);
    assert!(out.status.success(), "{}", stderr(&out));
    let users = usernames(&data);
    assert!(users.contains("alice") && !users.contains("bob"), "{users}");

    // The replaced database is kept, bob in it, and every file is owner-only.
    let kept = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("latchkey.db.before-restore-") && !name.ends_with("-wal")
        })
        .expect("the old database is kept");
    let bob: i64 = rusqlite::Connection::open(&kept)
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM users WHERE username = 'bob'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(bob, 1);
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
    // And serve starts on the restored database.
    drop(Served::start(&data, free_port(), "022"));
}

#[test]
fn restore_refuses_a_damaged_file_and_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(latchkey(&data, &["user", "add", "alice"]).status.success());
    let backup = |name: &str| {
        let path = dir.path().join(name);
        assert!(
            latchkey(&data, &["backup", path.to_str().unwrap()])
                .status
                .success()
        );
        path
    };

    let damaged = backup("damaged.db");
    let mut bytes = std::fs::read(&damaged).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle..middle + 4096].fill(0x5a);
    std::fs::write(&damaged, bytes).unwrap();
    let out = latchkey(&data, &["restore", damaged.to_str().unwrap()]);
    assert_refused(&out, "damaged.db");

    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, "not a database at all").unwrap();
    let out = latchkey(&data, &["restore", garbage.to_str().unwrap()]);
    assert_refused(&out, "not a Latchkey backup");

    let newer = backup("newer.db");
    rusqlite::Connection::open(&newer)
        .unwrap()
        .pragma_update(None, "user_version", 999)
        .unwrap();
    let out = latchkey(&data, &["restore", newer.to_str().unwrap()]);
    assert_refused(&out, "schema version 999");

    assert!(
        usernames(&data).contains("alice"),
        "the database is untouched"
    );
    let kept = std::fs::read_dir(&data)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().contains("before-restore")
        })
        .count();
    assert_eq!(kept, 0);
}

/// `latchkey serve` with a config file and extra environment, its output (both streams)
/// going to `log`; waits until its health check passes.
fn serve(data: &Path, config: &Path, env: &[(&str, &Path)], log: &Path) -> (Child, u16) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let log_file = std::fs::File::create(log).unwrap();
    let mut command = latchkey_under_umask("022");
    command
        .arg("--data-dir")
        .arg(data)
        .arg("--config")
        .arg(config)
        .args(["serve", "--listen", &listen, "--issuer"])
        .arg(format!("http://{listen}"))
        .stdout(Stdio::from(log_file.try_clone().unwrap()))
        .stderr(Stdio::from(log_file));
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("start serve");
    eventually("serve answers /healthz", || {
        assert!(child.try_wait().unwrap().is_none(), "serve exited");
        latchkey(data, &["healthcheck", "--listen", &listen])
            .status
            .success()
    });
    (child, port)
}

fn write_secret(path: &Path, content: &str, mode: u32) {
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Our backups in `dir`, by name.
fn backups_in(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| latchkey::backups::taken_at(n).is_some())
        .collect();
    names.sort();
    names
}

#[test]
fn scheduled_backups_appear_and_only_the_newest_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let backup_dir = dir.path().join("backups");
    std::fs::create_dir(&backup_dir).unwrap();
    let foreign = backup_dir.join("latchkey-mine.db");
    std::fs::write(&foreign, "mine").unwrap();
    let backup_dir = backup_dir.join("scheduled");
    let config = dir.path().join("latchkey.toml");
    std::fs::write(&config, "backup_every = \"1s\"\nbackup_keep = 2\n").unwrap();
    // The directory comes from LATCHKEY_BACKUP_DIR_FILE: any setting may come from a file.
    let dir_file = dir.path().join("backup-dir");
    write_secret(&dir_file, &format!("{}\n", backup_dir.display()), 0o600);
    let log = dir.path().join("serve.log");
    let env = [("LATCHKEY_BACKUP_DIR_FILE", dir_file.as_path())];
    let (mut child, _) = serve(&data, &config, &env, &log);

    let mut seen = std::collections::BTreeSet::new();
    eventually("three scheduled backups", || {
        seen.extend(backups_in(&backup_dir));
        seen.len() >= 3
    });
    eventually("no more than backup_keep backups", || {
        backups_in(&backup_dir).len() <= 2
    });
    child.kill().unwrap();
    child.wait().unwrap();

    assert_eq!(mode(&backup_dir), 0o700);
    let newest = backup_dir.join(backups_in(&backup_dir).pop().unwrap());
    assert_eq!(mode(&newest), 0o600);
    let check: String = rusqlite::Connection::open(&newest)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    assert!(foreign.exists(), "files not named like ours are left alone");
}

fn declared_client(secret_line: &str) -> String {
    format!(
        "[[clients]]\nclient_id = \"proxmox\"\n{secret_line}\nredirect_uris = [\"{PVE_REDIRECT}\"]\n"
    )
}

#[tokio::test]
async fn a_client_secret_from_a_file_plain_or_hashed() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain");
    write_secret(&plain, "secret-from-file\n", 0o600);
    let hashed = dir.path().join("hashed");
    let phc = latchkey::secrets::hash_secret("hashed-secret").unwrap();
    write_secret(&hashed, &format!("{phc}\n"), 0o600);
    for (file, secret) in [(&plain, "secret-from-file"), (&hashed, "hashed-secret")] {
        let line = format!("secret_file = \"{}\"", file.display());
        let app = spawn_app_with_config(&declared_client(&line));
        app.cli_ok(&["user", "add", "alice"]);
        let browser = app.signed_in_browser("alice").await;
        proxmox_sign_in(&app, &browser, "proxmox", secret, &[])
            .await
            .expect("the secret from the file signs in");
    }
}

#[test]
fn a_secret_both_inline_and_in_a_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret");
    write_secret(&file, "s", 0o600);
    let config = dir.path().join("latchkey.toml");
    let line = format!("secret = \"s\"\nsecret_file = \"{}\"", file.display());
    std::fs::write(&config, declared_client(&line)).unwrap();
    let out = latchkey(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap(), "serve"],
    );
    assert_refused(&out, "secret_file");
}

#[test]
fn a_secret_file_readable_by_others_gets_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret");
    write_secret(&file, "secret-from-file\n", 0o644);
    let config = dir.path().join("latchkey.toml");
    let line = format!("secret_file = \"{}\"", file.display());
    std::fs::write(&config, declared_client(&line)).unwrap();
    let log = dir.path().join("serve.log");
    let (mut child, _) = serve(&dir.path().join("data"), &config, &[], &log);
    child.kill().unwrap();
    child.wait().unwrap();
    let log = std::fs::read_to_string(&log).unwrap();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&file.display().to_string()))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(warnings[0].contains("readable by other users"), "{log}");
    assert!(
        !log.contains("secret-from-file"),
        "the secret is not logged"
    );
    assert!(!log.contains("plain text in the config file"), "{log}");
}

/// A secret file for a variable that does not exist is named in the error.
#[test]
fn a_missing_setting_file_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = PathBuf::from("/nonexistent/backup-dir");
    let out = latchkey_under_umask("022")
        .arg("--data-dir")
        .arg(dir.path())
        .arg("user")
        .arg("list")
        .env("LATCHKEY_BACKUP_DIR_FILE", &missing)
        .output()
        .unwrap();
    assert_refused(&out, "LATCHKEY_BACKUP_DIR_FILE");
}
