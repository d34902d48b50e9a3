//! The command line, as an operator uses it, next to a running server.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::helpers::*;
use serde_json::Value;

fn latchkey() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_latchkey"));
    command
        .env_remove("LATCHKEY_CONFIG")
        .env_remove("LATCHKEY_ISSUER")
        .env_remove("LATCHKEY_DATA_DIR");
    command
}

/// A failed command: non-zero exit, one line on stderr, no panic.
fn assert_fails(out: &std::process::Output, says: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "should fail: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("latchkey: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains(says), "{stderr:?} should say {says:?}");
}

/// A stored name or id that breaks its rule (a damaged row) is reported as one, on either
/// backend: never a panic, never "no such user", group or client.
#[tokio::test]
async fn a_damaged_row_is_reported_not_panicked_on() {
    let app = spawn_app();
    app.cli_ok(&["user", "add", "alice"]);
    app.execute(
        "UPDATE users SET username = 'Bad Name!' WHERE username = 'alice'",
        latchkey::args![],
    );
    assert_fails(
        &app.cli(&["user", "list"]),
        "damaged record: column 1 holds invalid username \"Bad Name!\"",
    );
    app.execute(
        "UPDATE users SET username = 'alice', id = 'u1' WHERE username = 'Bad Name!'",
        latchkey::args![],
    );
    assert_fails(
        &app.cli(&["user", "show", "alice"]),
        "damaged record: column 0 holds invalid user id \"u1\"",
    );
    app.execute(
        "INSERT INTO groups (name, declared, created_at) VALUES ('ops team', FALSE, 0)",
        latchkey::args![],
    );
    assert_fails(
        &app.cli(&["group", "list"]),
        "damaged record: column 1 holds invalid group name \"ops team\"",
    );
    app.execute(
        "INSERT INTO clients (client_id, name, public, redirect_uris, \
         post_logout_redirect_uris, created_at, updated_at) \
         VALUES ('my/app', 'App', FALSE, '[]', '[]', 0, 0)",
        latchkey::args![],
    );
    assert_fails(
        &app.cli(&["client", "list"]),
        "damaged record: column 0 holds invalid client id \"my/app\"",
    );
}

#[tokio::test]
async fn mistakes_get_one_line_and_a_failure_exit() {
    let app = spawn_app();
    app.setup_proxmox();
    assert_fails(&app.cli(&["user", "add", "Bad Name!"]), "invalid username");
    assert_fails(&app.cli(&["user", "add", "alice"]), "already exists");
    assert_fails(
        &app.cli(&["user", "add", "carol", "--email", "nope"]),
        "invalid email",
    );
    assert_fails(&app.cli(&["user", "show", "ghost"]), "no user named");
    assert_fails(
        &app.cli(&["group", "add", "team/ops"]),
        "invalid group name",
    );
    assert_fails(
        &app.cli(&["group", "add-member", "nope", "alice"]),
        "no group named",
    );
    assert_fails(
        &app.cli(&["client", "add", "x", "--redirect-uri", "not a url"]),
        "invalid redirect URI",
    );
    assert_fails(
        &app.cli(&["client", "add", "x", "--redirect-uri", "https://x/cb#frag"]),
        "fragment",
    );
    assert_fails(
        &app.cli(&["client", "add", "proxmox", "--redirect-uri", PVE_REDIRECT]),
        "already exists",
    );
    assert_fails(
        &app.cli(&[
            "client",
            "add",
            "y",
            "--redirect-uri",
            PVE_REDIRECT,
            "--allowed-group",
            "ghosts",
        ]),
        "no group named",
    );
    assert_fails(&app.cli(&["login-link", "ghost"]), "no user named");
    assert_fails(
        &app.cli(&["login-link", "alice", "--ttl", "soon"]),
        "invalid --ttl",
    );
    assert_fails(
        &app.cli(&["group", "remove", "pve-admins"]),
        "allowed group of client",
    );
    assert_fails(&app.cli(&["client", "rotate-secret", "ghost"]), "no client");

    // Nothing half-written: the failed client is not there.
    let clients: Value = serde_json::from_str(&app.cli_ok(&["client", "list", "--json"])).unwrap();
    assert_eq!(clients.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn clients_print_their_secret_once_as_json() {
    let app = spawn_app();
    let out = app.cli_ok(&[
        "client",
        "add",
        "web",
        "--redirect-uri",
        "https://web.example.com/cb",
        "--json",
    ]);
    let json: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(json["client_id"], "web");
    let first = json["client_secret"].as_str().unwrap().to_string();
    assert!(first.len() >= 43, "256 bits");

    let out = app.cli_ok(&[
        "client",
        "add",
        "spa",
        "--public",
        "--redirect-uri",
        "http://127.0.0.1/cb",
        "--json",
    ]);
    let json: Value = serde_json::from_str(out.trim()).unwrap();
    assert!(json.get("client_secret").is_none());

    let shown = app.cli_ok(&["client", "show", "web"]);
    assert!(!shown.contains(&first), "never shown again");
    let listed = app.cli_ok(&["client", "list", "--json"]);
    assert!(!listed.contains(&first) && !listed.contains("argon2"));

    let out = app.cli_ok(&["client", "rotate-secret", "web", "--json"]);
    let second = serde_json::from_str::<Value>(out.trim()).unwrap()["client_secret"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(first, second);
    let (status, _, _) = post_form(
        &app,
        "/introspect",
        &[("token", "x")],
        Some(("web", &first)),
    )
    .await;
    assert_eq!(status, 401, "the old secret stopped working");
    let (status, _, _) = post_form(
        &app,
        "/introspect",
        &[("token", "x")],
        Some(("web", &second)),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn lists_as_json() {
    let app = spawn_app();
    app.setup_proxmox();
    let users: Value = serde_json::from_str(&app.cli_ok(&["user", "list", "--json"])).unwrap();
    assert_eq!(users[0]["username"], "alice");
    assert_eq!(users[0]["email"], "alice@example.com");
    let groups: Value = serde_json::from_str(&app.cli_ok(&["group", "list", "--json"])).unwrap();
    assert_eq!(
        groups,
        serde_json::json!([{"name": "pve-admins", "declared": false, "members": ["alice"]}])
    );
    app.cli_ok(&["group", "remove-member", "pve-admins", "alice"]);
    app.cli_ok(&["client", "remove", "proxmox"]);
    app.cli_ok(&["group", "remove", "pve-admins"]);
    app.cli_ok(&["user", "remove", "alice"]);
    assert_eq!(app.cli_ok(&["user", "list", "--json"]).trim(), "[]");
}

/// Lists put each member and each allowed group with its own group and client.
#[tokio::test]
async fn lists_keep_members_and_allowed_groups_apart() {
    let app = spawn_app();
    for user in ["carol", "bob", "dave"] {
        app.cli_ok(&["user", "add", user]);
    }
    for (group, members) in [
        ("ops", &["dave", "bob"][..]),
        ("devs", &["carol"]),
        ("idle", &[]),
    ] {
        app.cli_ok(&["group", "add", group]);
        for member in members {
            app.cli_ok(&["group", "add-member", group, member]);
        }
    }
    for (client, groups) in [
        ("wiki", &["ops", "devs"][..]),
        ("pve", &["ops"]),
        ("open", &[]),
    ] {
        let mut args = vec![
            "client",
            "add",
            client,
            "--redirect-uri",
            "https://app.example/cb",
        ];
        for group in groups {
            args.extend(["--allowed-group", group]);
        }
        app.cli_ok(&args);
    }
    let groups: Value = serde_json::from_str(&app.cli_ok(&["group", "list", "--json"])).unwrap();
    assert_eq!(
        pairs(&groups, "name", "members"),
        [
            ("devs", &serde_json::json!(["carol"])),
            ("idle", &serde_json::json!([])),
            ("ops", &serde_json::json!(["bob", "dave"])),
        ]
    );
    let clients: Value = serde_json::from_str(&app.cli_ok(&["client", "list", "--json"])).unwrap();
    assert_eq!(
        pairs(&clients, "client_id", "allowed_groups"),
        [
            ("open", &serde_json::json!([])),
            ("pve", &serde_json::json!(["ops"])),
            ("wiki", &serde_json::json!(["devs", "ops"])),
        ]
    );
}

/// Each listed item's `name` with its `field`.
fn pairs<'a>(list: &'a Value, name: &str, field: &str) -> Vec<(&'a str, &'a Value)> {
    let items = list.as_array().unwrap().iter();
    items
        .map(|item| (item[name].as_str().unwrap(), &item[field]))
        .collect()
}

#[tokio::test]
async fn backup_while_serving_is_a_consistent_database() {
    let app = spawn_app();
    app.setup_proxmox();
    let browser = app.signed_in_browser("alice").await;
    let target = app.data_dir.path().join("copy.db");
    if on_postgres() {
        // PostgreSQL has its own tools for this (pg_dump); the command says so.
        let out = app.cli(&["backup", target.to_str().unwrap()]);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("SQLite file only"), "{stderr}");
        assert!(!target.exists());
        return;
    }
    let out = app.cli_ok(&["backup", target.to_str().unwrap()]);
    assert!(out.contains("Backed up"));
    assert_eq!(account_status(&app, &browser).await, 200);

    let copy = rusqlite::Connection::open(&target).unwrap();
    let users: i64 = copy
        .query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(users, 1);
    let check: String = copy
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    assert_fails(
        &app.cli(&["backup", target.to_str().unwrap()]),
        "already exists",
    );
}

#[tokio::test]
async fn hash_secret_prints_a_phc_string_that_verifies() {
    let mut child = latchkey()
        .arg("hash-secret")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let phc = String::from_utf8(out.stdout).unwrap();
    let phc = phc.trim();
    assert!(phc.starts_with("$argon2id$v=19$"), "{phc}");
    assert!(latchkey::secrets::verify_secret("correct horse", phc).unwrap());

    let empty = latchkey()
        .arg("hash-secret")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_fails(&empty, "no secret");
}

#[tokio::test]
async fn key_rotation_keeps_the_old_key_published() {
    let app = spawn_app();
    let secret = app.setup_proxmox();
    let jwks = || async {
        reqwest::get(app.url("/.well-known/jwks.json"))
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let before = jwks().await;
    assert_eq!(before["keys"].as_array().unwrap().len(), 3);
    let out = app.cli_ok(&["keys", "rotate"]);
    assert!(out.contains("are active"));
    let after = jwks().await;
    assert_eq!(
        after["keys"].as_array().unwrap().len(),
        6,
        "the old keys stay published"
    );
    let listed = app.cli_ok(&["keys", "list"]);
    assert!(listed.contains("active") && listed.contains("retired"));

    // The running server signs with the new key at once, and the client verifies it.
    let browser = app.signed_in_browser("alice").await;
    let sign_in = proxmox_sign_in(&app, &browser, "proxmox", &secret, &["groups"])
        .await
        .unwrap();
    let header = sign_in.id_token_raw.split('.').next().unwrap();
    use base64::Engine;
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], after["keys"][0]["kid"]);
    assert_eq!(header["typ"], "JWT");
}

#[test]
fn a_database_newer_than_the_binary_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        latchkey()
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .output()
            .unwrap()
    };
    assert!(run(&["user", "list"]).status.success());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("latchkey.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the database (signing keys) is owner-only"
    );
    let db = rusqlite::Connection::open(dir.path().join("latchkey.db")).unwrap();
    db.pragma_update(None, "user_version", 999).unwrap();
    drop(db);
    assert_fails(&run(&["user", "list"]), "newer latchkey");
}

#[test]
fn settings_come_from_flags_environment_and_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("state");
    let config = dir.path().join("latchkey.toml");
    std::fs::write(
        &config,
        format!(
            "issuer = \"https://id.example.com/\"\ndata_dir = \"{}\"\n",
            data.display()
        ),
    )
    .unwrap();
    let out = latchkey()
        .args(["--config", config.to_str().unwrap(), "user", "add", "dora"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(data.join("latchkey.db").exists(), "data_dir from the file");
    let out = latchkey()
        .env("LATCHKEY_CONFIG", &config)
        .args(["login-link", "dora"])
        .output()
        .unwrap();
    let link = String::from_utf8(out.stdout).unwrap();
    assert!(
        link.lines()
            .last()
            .unwrap()
            .starts_with("https://id.example.com/login/link/"),
        "issuer from the file, without its trailing slash: {link}"
    );
    let out = latchkey()
        .env("LATCHKEY_CONFIG", &config)
        .env("LATCHKEY_ISSUER", "https://other.example.com")
        .args(["login-link", "dora"])
        .output()
        .unwrap();
    let link = String::from_utf8(out.stdout).unwrap();
    assert!(
        link.lines()
            .last()
            .unwrap()
            .starts_with("https://other.example.com/"),
        "env beats file"
    );

    std::fs::write(&config, "issuer = \"https://x\"\nlisten = 8080\n").unwrap();
    let out = latchkey()
        .args(["--config", config.to_str().unwrap(), "user", "list"])
        .output()
        .unwrap();
    assert_fails(&out, "line 2");
    std::fs::write(&config, "isuer = \"https://x\"\n").unwrap();
    let out = latchkey()
        .args(["--config", config.to_str().unwrap(), "user", "list"])
        .output()
        .unwrap();
    assert_fails(&out, "isuer");
    let out = latchkey()
        .args([
            "--data-dir",
            data.to_str().unwrap(),
            "serve",
            "--issuer",
            "ftp://nope",
        ])
        .output()
        .unwrap();
    assert_fails(&out, "invalid issuer");
}

#[test]
fn serve_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let added = latchkey()
        .arg("--data-dir")
        .arg(dir.path())
        .args([
            "client",
            "add",
            "app",
            "--redirect-uri",
            "https://app.example/cb",
        ])
        .args(["--json"])
        .output()
        .unwrap();
    let added: Value = serde_json::from_slice(&added.stdout).unwrap();
    let child = latchkey()
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Ready means answering HTTP: by then the server has its signal handlers.
    let mut ready = false;
    for _ in 0..100 {
        let answered = http_status(&format!("http://127.0.0.1:{port}/healthz"));
        if answered == Some(200) {
            ready = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(ready, "serve listens");
    // A code exchange goes through the database's writer thread, which keeps a connection.
    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("app:{}", added["client_secret"].as_str().unwrap()),
    );
    let exchanged = http(
        &format!("http://127.0.0.1:{port}/token"),
        "POST",
        &format!(
            "Authorization: Basic {basic}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\n"
        ),
        "grant_type=authorization_code&code=unknown&redirect_uri=https%3A%2F%2Fapp.example%2Fcb",
    );
    assert_eq!(exchanged, Some(400), "invalid_grant");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "a clean exit on SIGTERM: {:?}",
        out.status
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("Latchkey serving http://localhost:8080"),
        "{stdout}"
    );
    assert!(stdout.contains("No administrator yet"), "{stdout}");
    assert!(dir.path().join("latchkey.db").exists());
    // The log was copied into the database at the stop: the next start replays nothing.
    let log = std::fs::metadata(dir.path().join("latchkey.db-wal")).map_or(0, |m| m.len());
    assert_eq!(log, 0, "log left at stop");
}

/// The status of a plain HTTP/1.1 GET, without an async runtime.
fn http_status(url: &str) -> Option<u16> {
    http(url, "GET", "", "")
}

/// The status of a plain HTTP/1.1 request with `headers` (each ending in CRLF) and `body`.
fn http(url: &str, method: &str, headers: &str, body: &str) -> Option<u16> {
    use std::io::Read;
    let url = url::Url::parse(url).ok()?;
    let mut stream = std::net::TcpStream::connect((url.host_str()?, url.port()?)).ok()?;
    write!(
        stream,
        "{method} {} HTTP/1.1\r\nHost: {}\r\n{headers}Content-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        url.path(),
        url.host_str()?,
        body.len()
    )
    .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test]
async fn a_setup_link_dies_once_an_administrator_exists() {
    let app = spawn_app();
    let token = app
        .store()
        .write(|tx| latchkey::auth::setup::issue_if_needed(tx, latchkey::clock::now()))
        .unwrap()
        .expect("no administrator yet");
    let setup = app.url(&format!("/setup/{token}"));
    assert_eq!(reqwest::get(&setup).await.unwrap().status(), 200);

    app.cli_ok(&["user", "add", "root", "--admin"]);
    app.cli_ok(&["user", "disable", "root", "--force"]);
    assert_eq!(
        reqwest::get(&setup).await.unwrap().status(),
        410,
        "no administrator again, but the old link stays spent"
    );
}

#[tokio::test]
async fn the_last_administrator_stays_unless_forced() {
    let app = spawn_app();
    app.cli_ok(&["user", "add", "root", "--admin"]);
    app.cli_ok(&["user", "add", "bob"]);
    for command in ["disable", "remove"] {
        assert_fails(&app.cli(&["user", command, "root"]), "root is the last one");
    }
    app.cli_ok(&["user", "disable", "bob"]);
    app.cli_ok(&["user", "remove", "bob"]);

    let forced = app.cli(&["user", "disable", "root", "--force"]);
    assert!(forced.status.success());
    let warning = String::from_utf8_lossy(&forced.stderr);
    assert!(warning.starts_with("latchkey: warning: "), "{warning}");
    assert!(
        app.cli_ok(&["user", "show", "root"])
            .contains("disabled:     true")
    );
    // A disabled administrator is not the last enabled one.
    app.cli_ok(&["user", "remove", "root"]);
}

#[tokio::test]
async fn a_deleted_username_is_reused_only_on_purpose() {
    let app = spawn_app();
    app.cli_ok(&["user", "add", "bob"]);
    app.cli_ok(&["user", "remove", "bob"]);
    assert_fails(
        &app.cli(&["user", "add", "Bob"]),
        "belonged to someone who was deleted or renamed",
    );
    let reused = app.cli_ok(&["user", "add", "bob", "--reuse-username"]);
    assert!(reused.contains("Created user bob"), "{reused}");
    // Taken again, then deleted again: retired again.
    app.cli_ok(&["user", "remove", "bob"]);
    assert_fails(&app.cli(&["user", "add", "bob"]), "--reuse-username");
}
