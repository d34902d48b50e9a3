//! Group-based permissions, end to end: the real server keeps a Proxmox test server's `@realm`
//! users, groups and ACL entries in step with its groups (see proxmox_server.rs for how faithful
//! that server is to Proxmox's sources).

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::*;
use crate::proxmox_server::{AclEntry, Flavor, Group, Mode, ProxmoxServer, Realm, Rights, User};

const TOKEN_ID: &str = "root@pam!latchkey";
const TOKEN_SECRET: &str = "0b6c2f0a-token-secret";

/// A Proxmox server with Latchkey's token, and (unless Latchkey is to manage it) the realm an
/// administrator would have added.
fn proxmox(flavor: Flavor, app: &TestApp, with_realm: bool) -> ProxmoxServer {
    let server = ProxmoxServer::start(flavor);
    server.add_token(TOKEN_ID, TOKEN_SECRET, Rights::Full);
    if with_realm {
        server.add_realm(Realm::openid("latchkey", &app.issuer, "proxmox"));
    }
    server
}

/// `latchkey proxmox set proxmox …` for `server`, pinning `fingerprint`.
fn try_connect(
    app: &TestApp,
    server: &ProxmoxServer,
    fingerprint: &str,
    extra: &[&str],
) -> std::process::Output {
    let token = app.data_dir.path().join("token");
    std::fs::write(&token, TOKEN_SECRET).unwrap();
    let product = match server.flavor() {
        Flavor::Pbs => "pbs",
        Flavor::Pve => "pve",
    };
    let url = server.url();
    let mut args = vec![
        "proxmox",
        "set",
        "proxmox",
        "--product",
        product,
        "--api-url",
        &url,
        "--token-id",
        TOKEN_ID,
        "--token-secret-file",
        token.to_str().unwrap(),
        "--fingerprint",
        fingerprint,
    ];
    args.extend_from_slice(extra);
    app.cli(&args)
}

/// Connects `server`, which must succeed; returns what the command printed.
fn connect(app: &TestApp, server: &ProxmoxServer, extra: &[&str]) -> String {
    let out = try_connect(app, server, &server.fingerprint(), extra);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The one-line error of a refused `proxmox set`.
fn refused(out: &std::process::Output) -> String {
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr
}

/// Waits (bounded) until `check` holds; the queue worker syncs within a second or two.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn has_acl(server: &ProxmoxServer, entry: &AclEntry) -> bool {
    server.acl().contains(entry)
}

fn status(app: &TestApp) -> Value {
    serde_json::from_str(&app.cli_ok(&["proxmox", "status", "proxmox", "--json"])).unwrap()
}

#[tokio::test]
async fn pbs_users_and_acl_entries_follow_group_membership() {
    let app = spawn_app();
    app.setup_proxmox();
    let server = proxmox(Flavor::Pbs, &app, true);
    connect(&app, &server, &[]);
    app.cli_ok(&["group", "add", "backup-users"]);
    app.cli_ok(&[
        "proxmox",
        "allow",
        "proxmox",
        "--group",
        "backup-users",
        "--role",
        "DatastoreBackup",
        "--path",
        "/datastore/main",
    ]);
    let entry = AclEntry::user("/datastore/main", "alice@latchkey", "DatastoreBackup");

    app.cli_ok(&["group", "add-member", "backup-users", "alice"]);
    eventually("alice gets the role", || has_acl(&server, &entry)).await;
    let alice = server.user("alice@latchkey").expect("alice is provisioned");
    assert!(alice.enabled());
    assert_eq!(alice.email.as_deref(), Some("alice@example.com"));
    assert_eq!(alice.firstname.as_deref(), Some("Alice"));
    assert_eq!(alice.lastname.as_deref(), Some("Liddell"));

    app.cli_ok(&["group", "remove-member", "backup-users", "alice"]);
    eventually("alice loses the role", || !has_acl(&server, &entry)).await;
    eventually("alice is disabled", || {
        server.user("alice@latchkey").is_some_and(|u| !u.enabled())
    })
    .await;
    let shown = status(&app);
    assert!(shown[0]["status"]["last_success_at"].is_number(), "{shown}");

    // Each applied change is in the audit log.
    let applied: i64 =
        app.value("SELECT COUNT(*) FROM audit_events WHERE event = 'proxmox.applied'");
    assert!(applied >= 3, "{applied}");
}

#[tokio::test]
async fn pve_groups_hold_their_members_and_carry_the_acl_entries() {
    let app = spawn_app();
    app.setup_proxmox();
    let server = proxmox(Flavor::Pve, &app, true);
    connect(&app, &server, &[]);
    app.cli_ok(&[
        "proxmox",
        "allow",
        "proxmox",
        "--group",
        "pve-admins",
        "--role",
        "Administrator",
    ]);
    let entry = AclEntry::group("/", "pve-admins-latchkey", "Administrator");
    eventually("the group carries the role", || has_acl(&server, &entry)).await;
    eventually("alice is in the group", || {
        server
            .groups()
            .iter()
            .any(|g| g.groupid == "pve-admins-latchkey" && g.members == ["alice@latchkey"])
    })
    .await;
    assert!(
        !server.acl().iter().any(|e| e.ugid == "alice@latchkey"),
        "on PVE the entries go on the group, not the user"
    );

    app.cli_ok(&["user", "disable", "alice", "--force"]);
    eventually("alice leaves the group and is disabled", || {
        server.user("alice@latchkey").is_some_and(|u| !u.enabled())
            && server
                .groups()
                .iter()
                .any(|g| g.groupid == "pve-admins-latchkey" && g.members.is_empty())
    })
    .await;
}

#[tokio::test]
async fn drift_on_the_server_is_repaired_by_the_periodic_run() {
    let app = spawn_app_with_config("proxmox_sync_every = \"1s\"\n");
    app.setup_proxmox();
    let server = proxmox(Flavor::Pbs, &app, true);
    connect(&app, &server, &[]);
    app.cli_ok(&[
        "proxmox",
        "allow",
        "proxmox",
        "--group",
        "pve-admins",
        "--role",
        "Audit",
    ]);
    let entry = AclEntry::user("/", "alice@latchkey", "Audit");
    eventually("alice gets the role", || has_acl(&server, &entry)).await;

    // Someone edits the server directly: the entry goes, a stray one appears, alice is disabled.
    server.remove_acl(&entry);
    let stray = AclEntry::user("/", "alice@latchkey", "Admin");
    server.add_acl(stray.clone());
    let mut alice = server.user("alice@latchkey").unwrap();
    alice.enable = Some(false);
    server.put_user(alice);
    eventually("the drift is repaired", || {
        has_acl(&server, &entry)
            && !has_acl(&server, &stray)
            && server.user("alice@latchkey").is_some_and(|u| u.enabled())
    })
    .await;
}

#[tokio::test]
async fn nothing_outside_the_realm_is_touched() {
    let app = spawn_app();
    app.setup_proxmox();
    let server = proxmox(Flavor::Pve, &app, true);
    server.add_realm(Realm::openid("other", "https://elsewhere", "x"));
    let foreign_users = ["bob@pve", "carol@other", "alice@pam"];
    for userid in foreign_users {
        server.put_user(User::new(userid));
    }
    let foreign_acl = [
        AclEntry::user("/", "bob@pve", "Administrator"),
        AclEntry::user("/vms", "alice@pam", "PVEVMAdmin"),
        AclEntry::group("/", "admins", "Administrator"),
        AclEntry::group("/", "pve-admins-other", "PVEAuditor"),
    ];
    server.put_group(Group {
        groupid: "admins".into(),
        comment: None,
        members: vec!["bob@pve".into()],
    });
    server.put_group(Group {
        groupid: "pve-admins-other".into(),
        comment: None,
        members: vec!["carol@other".into()],
    });
    for entry in &foreign_acl {
        server.add_acl(entry.clone());
    }
    let users_before: Vec<_> = server
        .users()
        .into_iter()
        .filter(|u| !u.userid.ends_with("@latchkey"))
        .collect();
    let groups_before: Vec<_> = server
        .groups()
        .into_iter()
        .filter(|g| !g.groupid.ends_with("-latchkey"))
        .collect();

    connect(&app, &server, &[]);
    app.cli_ok(&[
        "proxmox",
        "allow",
        "proxmox",
        "--group",
        "pve-admins",
        "--role",
        "PVEAuditor",
    ]);
    let entry = AclEntry::group("/", "pve-admins-latchkey", "PVEAuditor");
    eventually("the rule is applied", || has_acl(&server, &entry)).await;
    app.cli_ok(&["proxmox", "sync", "proxmox"]);

    for foreign in &foreign_acl {
        assert!(has_acl(&server, foreign), "{foreign:?} was touched");
    }
    let users_after: Vec<_> = server
        .users()
        .into_iter()
        .filter(|u| !u.userid.ends_with("@latchkey"))
        .collect();
    assert_eq!(users_after, users_before);
    let groups_after: Vec<_> = server
        .groups()
        .into_iter()
        .filter(|g| !g.groupid.ends_with("-latchkey"))
        .collect();
    assert_eq!(groups_after, groups_before);
    for request in server.requests() {
        if request.method != "GET" {
            let text = format!("{} {} {}", request.path, request.query, request.body);
            for name in [
                "bob",
                "carol",
                "alice%40pam",
                "alice@pam",
                "admins,",
                "-other",
            ] {
                assert!(!text.contains(name), "a write named {name}: {text}");
            }
        }
    }
}

#[test]
fn a_dry_run_prints_the_plan_and_writes_nothing() {
    // The command line alone, on a data dir no server runs on: no worker syncs behind its back.
    let dir = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .env_remove("LATCHKEY_CONFIG")
            .env("LATCHKEY_ISSUER", "https://id.example.com")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let server = ProxmoxServer::start(Flavor::Pbs);
    server.add_token(TOKEN_ID, TOKEN_SECRET, Rights::Full);
    server.add_realm(Realm::openid(
        "latchkey",
        "https://id.example.com",
        "proxmox",
    ));
    let token = dir.path().join("token");
    std::fs::write(&token, TOKEN_SECRET).unwrap();
    cli(&["user", "add", "alice"]);
    cli(&["group", "add", "ops"]);
    cli(&["group", "add-member", "ops", "alice"]);
    cli(&[
        "client",
        "add",
        "proxmox",
        "--redirect-uri",
        "https://pbs.example.com:8007",
    ]);
    let (url, fingerprint) = (server.url(), server.fingerprint());
    cli(&[
        "proxmox",
        "set",
        "proxmox",
        "--product",
        "pbs",
        "--api-url",
        &url,
        "--token-id",
        TOKEN_ID,
        "--token-secret-file",
        token.to_str().unwrap(),
        "--fingerprint",
        &fingerprint,
    ]);
    cli(&[
        "proxmox", "allow", "proxmox", "--group", "ops", "--role", "Audit",
    ]);
    let (users, acl) = (server.users(), server.acl());
    server.clear_requests();

    let plan: Value =
        serde_json::from_str(&cli(&["proxmox", "sync", "proxmox", "--dry-run", "--json"])).unwrap();
    let planned = plan[0]["planned"].as_array().cloned().unwrap_or_default();
    assert!(
        planned.len() >= 2,
        "alice is created and given Audit: {plan}"
    );
    assert!(server.requests().iter().all(|r| r.method == "GET"));
    assert_eq!(
        (server.users(), server.acl()),
        (users, acl),
        "nothing changed"
    );
    let text = cli(&["proxmox", "sync", "proxmox", "--dry-run"]);
    assert!(text.contains("would make"), "{text}");

    cli(&["proxmox", "sync", "proxmox"]);
    assert!(has_acl(
        &server,
        &AclEntry::user("/", "alice@latchkey", "Audit")
    ));
}

#[tokio::test]
async fn a_down_server_queues_the_changes_and_a_later_start_applies_them() {
    let app = spawn_app();
    app.setup_proxmox();
    let server = proxmox(Flavor::Pbs, &app, true);
    connect(&app, &server, &[]);
    server.set_mode(Mode::Fail500);
    app.cli_ok(&[
        "proxmox",
        "allow",
        "proxmox",
        "--group",
        "pve-admins",
        "--role",
        "Audit",
    ]);
    eventually("the failure shows in the status", || {
        status(&app)[0]["status"]["last_error"].is_string()
    })
    .await;
    let shown = status(&app);
    assert_eq!(shown[0]["pending"], true, "{shown}");
    assert!(server.user("alice@latchkey").is_none());

    // The server comes back; a new Latchkey start on the same data dir applies the queue.
    server.set_mode(Mode::Normal);
    let port = crate::process::free_port();
    let _served = crate::process::Served::start_for(&app, port, "077");
    let entry = AclEntry::user("/", "alice@latchkey", "Audit");
    eventually("the queued change is applied", || has_acl(&server, &entry)).await;
}

#[tokio::test]
async fn a_wrong_fingerprint_is_refused_before_anything_is_sent() {
    let app = spawn_app();
    app.setup_proxmox();
    let server = proxmox(Flavor::Pbs, &app, true);
    let wrong = "00:".repeat(31) + "00";
    let stderr = refused(&try_connect(&app, &server, &wrong, &[]));
    assert!(stderr.contains("fingerprint"), "{stderr}");
    assert!(server.requests().is_empty(), "{:?}", server.requests());
}

#[tokio::test]
async fn a_token_without_rights_is_refused_with_what_it_needs() {
    let app = spawn_app();
    app.setup_proxmox();
    let server = ProxmoxServer::start(Flavor::Pbs);
    server.add_token(TOKEN_ID, TOKEN_SECRET, Rights::Nothing);
    let stderr = refused(&try_connect(&app, &server, &server.fingerprint(), &[]));
    assert!(stderr.contains("Admin"), "{stderr}");
    assert_eq!(
        status_list(&app),
        serde_json::json!([]),
        "nothing was saved"
    );
}

fn status_list(app: &TestApp) -> Value {
    serde_json::from_str(&app.cli_ok(&["proxmox", "status", "--json"])).unwrap()
}

#[tokio::test]
async fn a_managed_realm_is_created_ready_for_sign_in() {
    for flavor in [Flavor::Pve, Flavor::Pbs] {
        managed_realm(flavor).await;
    }
}

#[tokio::test]
async fn leavers_are_deleted_when_asked_after_their_entries_go() {
    let app = spawn_app();
    app.setup_proxmox();
    let server = proxmox(Flavor::Pbs, &app, true);
    connect(&app, &server, &["--leavers", "delete"]);
    app.cli_ok(&[
        "proxmox",
        "allow",
        "proxmox",
        "--group",
        "pve-admins",
        "--role",
        "Audit",
    ]);
    let entry = AclEntry::user("/", "alice@latchkey", "Audit");
    eventually("alice gets the role", || has_acl(&server, &entry)).await;
    app.cli_ok(&["group", "remove-member", "pve-admins", "alice"]);
    eventually("alice is deleted", || {
        server.user("alice@latchkey").is_none()
    })
    .await;
    assert!(
        !server.acl().iter().any(|e| e.ugid == "alice@latchkey"),
        "PBS keeps a deleted user's entries: they were removed first"
    );
}

async fn managed_realm(flavor: Flavor) {
    let app = spawn_app();
    app.setup_proxmox();
    let server = proxmox(flavor, &app, false);
    let out = connect(&app, &server, &["--manage-realm"]);
    assert!(out.contains("minted a new client secret"), "{out}");
    eventually("the realm exists", || server.realm("latchkey").is_some()).await;
    let realm = server.realm("latchkey").unwrap();
    let option = |name: &str| realm.options.get(name).cloned().unwrap_or(Value::Null);
    assert_eq!(option("issuer-url"), app.issuer.as_str());
    assert_eq!(option("client-id"), "proxmox");
    assert_eq!(option("username-claim"), "username");
    let key = option("client-key");
    let key = key.as_str().expect("the realm has the client secret");
    let hash: String = app.value("SELECT secret_hash FROM clients WHERE client_id = 'proxmox'");
    assert!(
        latchkey::secrets::verify_secret(key, &hash).unwrap(),
        "the same secret"
    );
    eventually("the secret was delivered and dropped", || {
        status(&app)[0]["status"]["realm_secret_pending"] == false
    })
    .await;
}
