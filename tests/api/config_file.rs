//! Configuration as code: groups and clients declared in the TOML file.

use std::process::Command;

use crate::helpers::*;
use latchkey::store::audit::EventKind;
use serde_json::Value;

fn declared_config(secret_line: &str) -> String {
    format!(
        r#"
[[groups]]
name = "pve-admins"

[[clients]]
client_id      = "proxmox"
name           = "Proxmox VE"
{secret_line}
redirect_uris  = ["{PVE_REDIRECT}"]
allowed_groups = ["pve-admins"]
"#
    )
}

fn clients(app: &TestApp) -> Value {
    serde_json::from_str(&app.cli_ok(&["client", "list", "--json"])).unwrap()
}

#[tokio::test]
async fn a_declared_client_serves_proxmox() {
    let phc = latchkey::secrets::hash_secret("declared-secret").unwrap();
    let app = spawn_app_with_config(&declared_config(&format!("secret = \"{phc}\"")));
    let listed = clients(&app);
    assert_eq!(listed[0]["client_id"], "proxmox");
    assert_eq!(listed[0]["declared"], true);
    assert_eq!(
        listed[0]["allowed_groups"],
        serde_json::json!(["pve-admins"])
    );

    app.cli_ok(&["user", "add", "alice", "--email", "alice@example.com"]);
    app.cli_ok(&["group", "add-member", "pve-admins", "alice"]);
    let browser = app.signed_in_browser("alice").await;
    let sign_in = proxmox_sign_in(&app, &browser, "proxmox", "declared-secret", &["groups"])
        .await
        .expect("the declared client signs in");
    assert_eq!(
        sign_in.id_token_json["groups"],
        serde_json::json!(["pve-admins"])
    );

    // Declared means read-only elsewhere.
    for args in [
        &["client", "remove", "proxmox"][..],
        &["group", "remove", "pve-admins"],
    ] {
        let out = app.cli(args);
        assert!(!out.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("declared in the config file"));
    }
}

#[tokio::test]
async fn a_plain_secret_works_too() {
    let app = spawn_app_with_config(&declared_config("secret = \"plain-text-secret\""));
    app.cli_ok(&["user", "add", "alice"]);
    app.cli_ok(&["group", "add-member", "pve-admins", "alice"]);
    let browser = app.signed_in_browser("alice").await;
    proxmox_sign_in(&app, &browser, "proxmox", "plain-text-secret", &[])
        .await
        .expect("a plain secret is hashed at start");
    let (status, _, _) = post_form(
        &app,
        "/introspect",
        &[("token", "x")],
        Some(("proxmox", "wrong")),
    )
    .await;
    assert_eq!(status, 401);
}

#[test]
fn removing_a_declaration_removes_it_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("latchkey.toml");
    std::fs::write(&config, declared_config("public = true")).unwrap();
    let (started, stderr) = start_serve(dir.path(), &config);
    assert!(started, "{stderr}");
    let list = |what: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_latchkey"))
            .arg("--data-dir")
            .arg(dir.path())
            .args([what, "list", "--json"])
            .output()
            .unwrap();
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    assert_eq!(list("client")[0]["client_id"], "proxmox");
    assert_eq!(list("group")[0]["name"], "pve-admins");

    std::fs::write(&config, "").unwrap();
    let (started, stderr) = start_serve(dir.path(), &config);
    assert!(started, "{stderr}");
    assert_eq!(list("client"), serde_json::json!([]));
    assert_eq!(list("group"), serde_json::json!([]));
}

#[test]
fn a_bad_declaration_stops_the_start_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("latchkey.toml");
    let cases = [
        (
            declared_config("public = true").replace(PVE_REDIRECT, "not a url"),
            "line 5",
            "invalid redirect URI",
        ),
        (
            declared_config("public = true").replace(
                "allowed_groups = [\"pve-admins\"]",
                "allowed_groups = [\"ghosts\"]",
            ),
            "line 5",
            "no group named",
        ),
        (declared_config(""), "line 5", "needs a secret"),
        (
            "[[groups]]\nname = \"team/ops\"\n".to_string(),
            "line 1",
            "invalid group name",
        ),
        (
            declared_config("public = true\nsecret = \"x\""),
            "line 5",
            "must not have a secret",
        ),
        (
            "[[clients]]\nclient_id = 5\n".to_string(),
            "line 2",
            "invalid type",
        ),
        (
            declared_config("public = true\nid_token_signed_response_alg = \"HS256\""),
            "line 5",
            "invalid ID token algorithm \"HS256\": use RS256, ES256 or EdDSA",
        ),
    ];
    for (text, line, reason) in cases {
        std::fs::write(&config, &text).unwrap();
        let (started, stderr) = start_serve(dir.path(), &config);
        assert!(!started, "refused to start with:\n{text}");
        assert!(
            stderr.contains(line) && stderr.contains(reason),
            "{stderr:?} should say {line} and {reason}"
        );
        assert!(!stderr.contains("panicked"));
    }
    let out = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["group", "list", "--json"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "[]",
        "nothing half-applied"
    );
}

#[test]
fn audit_events_past_their_retention_are_purged_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("latchkey.toml");
    std::fs::write(&config, "audit_retention = \"1d\"\n").unwrap();
    let store = latchkey::store::Store::open(dir.path()).unwrap();
    let now = latchkey::clock::now();
    store
        .write(|tx| {
            let origin = latchkey::store::audit::Origin::cli();
            let event = latchkey::store::audit::Event::new(EventKind::Signin);
            latchkey::store::audit::record(tx, &event, &origin, now - 2 * 86_400)?;
            let event = latchkey::store::audit::Event::new(EventKind::Signout);
            latchkey::store::audit::record(tx, &event, &origin, now - 3600)
        })
        .unwrap();
    let settings = latchkey::config::Settings::resolve(latchkey::config::Overrides {
        data_dir: Some(dir.path().to_path_buf()),
        config: Some(config),
        ..Default::default()
    })
    .unwrap();
    latchkey::server::prepare(&store, &settings).unwrap();
    let kinds: Vec<String> = store
        .read(|conn| latchkey::store::audit::recent(conn, 10))
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(kinds, vec![EventKind::Signout.as_str().to_string()]);
}
