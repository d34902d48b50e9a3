//! `latchkey proxmox …` and `[clients.proxmox]` without a server to talk to: what is stored,
//! what is refused, and that an unreachable server never blocks an administrator.

use serde_json::Value;

use crate::helpers::*;

/// Nothing listens there: the connection is refused at once.
const UNREACHABLE: &str = "https://127.0.0.1:1";
const FINGERPRINT: &str = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89";

/// PEM armour around bytes that are no certificate.
const NOT_A_CERTIFICATE: &str =
    "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";

fn status(app: &TestApp) -> Value {
    serde_json::from_str(&app.cli_ok(&["proxmox", "status", "--json"])).unwrap()
}

/// `proxmox set` for the `proxmox` client against an unreachable server.
fn set_unreachable(app: &TestApp, extra: &[&str]) -> std::process::Output {
    set_trusting(app, &["--fingerprint", FINGERPRINT], extra)
}

/// `proxmox set` for the `proxmox` client against an unreachable server, trusting its
/// certificate by `trust`.
fn set_trusting(app: &TestApp, trust: &[&str], extra: &[&str]) -> std::process::Output {
    let secret = app.data_dir.path().join("token");
    std::fs::write(&secret, "token-secret-value\n").unwrap();
    let mut args = vec![
        "proxmox",
        "set",
        "proxmox",
        "--product",
        "pve",
        "--api-url",
        UNREACHABLE,
        "--token-id",
        "root@pam!latchkey",
        "--token-secret-file",
        secret.to_str().unwrap(),
    ];
    args.extend_from_slice(trust);
    args.extend_from_slice(extra);
    app.cli(&args)
}

#[test]
fn an_unreachable_server_never_blocks_the_administrator() {
    let app = spawn_app();
    app.setup_proxmox();
    let out = set_unreachable(&app, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning"));

    let out = app.cli(&[
        "proxmox",
        "allow",
        "proxmox",
        "--group",
        "pve-admins",
        "--role",
        "PVEAdmin",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let shown = status(&app);
    assert_eq!(shown[0]["client_id"], "proxmox");
    assert_eq!(shown[0]["product"], "pve");
    assert_eq!(shown[0]["trust"], "fingerprint");
    assert_eq!(shown[0]["realm"], "latchkey");
    assert_eq!(shown[0]["pending"], true);
    assert_eq!(
        shown[0]["rules"],
        serde_json::json!([{"group": "pve-admins", "role": "PVEAdmin", "path": "/", "propagate": true}])
    );
    let everything = app.cli_ok(&["proxmox", "status"]) + &status(&app).to_string();
    assert!(
        !everything.contains("token-secret-value"),
        "the secret is never shown"
    );

    // A sync against it fails, says why, and is kept as the status.
    let out = app.cli(&["proxmox", "sync", "proxmox"]);
    assert!(!out.status.success());
    let shown = status(&app);
    assert!(
        shown[0]["status"]["last_error"].as_str().is_some(),
        "{shown}"
    );
}

#[test]
fn bad_values_and_unknown_names_are_refused_in_one_line() {
    let app = spawn_app();
    app.setup_proxmox();
    for (extra, why) in [
        (vec!["--realm", "1bad"], "invalid realm"),
        (vec!["--leavers", "keep"], "invalid leavers"),
    ] {
        let out = set_unreachable(&app, &extra);
        assert!(!out.status.success(), "{extra:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(why), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
    let out = app.cli(&[
        "proxmox",
        "set",
        "ghost",
        "--product",
        "pbs",
        "--api-url",
        UNREACHABLE,
        "--token-id",
        "root@pam!x",
        "--token-secret-stdin",
        "--system-roots",
    ]);
    assert!(!out.status.success());

    set_unreachable(&app, &[]);
    for (args, why) in [
        (vec!["--group", "nobody", "--role", "Admin"], "no group"),
        (
            vec!["--group", "pve-admins", "--role", "Ad min"],
            "invalid role",
        ),
        (
            vec![
                "--group",
                "pve-admins",
                "--role",
                "Admin",
                "--path",
                "/a/../b",
            ],
            "invalid ACL path",
        ),
    ] {
        let mut full = vec!["proxmox", "allow", "proxmox"];
        full.extend(args);
        let out = app.cli(&full);
        assert!(!out.status.success(), "{full:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(why),
            "{full:?}"
        );
    }
    let out = app.cli(&[
        "proxmox",
        "deny",
        "proxmox",
        "--group",
        "pve-admins",
        "--role",
        "Admin",
    ]);
    assert!(!out.status.success(), "no such rule");
}

#[test]
fn a_group_named_by_a_rule_stays_until_the_rule_goes() {
    let app = spawn_app();
    app.setup_proxmox();
    set_unreachable(&app, &[]);
    app.cli_ok(&["group", "add", "ops"]);
    app.cli_ok(&[
        "proxmox",
        "allow",
        "proxmox",
        "--group",
        "ops",
        "--role",
        "PVEAuditor",
    ]);
    let out = app.cli(&["group", "remove", "ops"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Proxmox rules"));
    app.cli_ok(&[
        "proxmox",
        "deny",
        "proxmox",
        "--group",
        "ops",
        "--role",
        "PVEAuditor",
    ]);
    app.cli_ok(&["group", "remove", "ops"]);

    app.cli_ok(&["proxmox", "unset", "proxmox"]);
    assert_eq!(status(&app), serde_json::json!([]));
}

#[test]
fn taking_over_a_realm_mints_a_secret_for_it_and_rotation_hands_over_the_next() {
    let app = spawn_app();
    let old_secret = app.setup_proxmox();
    let out = set_unreachable(&app, &["--manage-realm"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("minted a new client secret"), "{stdout}");
    assert!(!stdout.contains(&old_secret));
    assert_eq!(status(&app)[0]["status"]["realm_secret_pending"], true);

    // The old secret stopped working: the realm gets the new one.
    let hash: String = app.value("SELECT secret_hash FROM clients WHERE client_id = 'proxmox'");
    assert!(!latchkey::secrets::verify_secret(&old_secret, &hash).unwrap_or(false));
    let pending: String =
        app.value("SELECT realm_secret FROM proxmox_sync WHERE client_id = 'proxmox'");
    assert!(latchkey::secrets::verify_secret(&pending, &hash).unwrap());

    let rotated: Value =
        serde_json::from_str(&app.cli_ok(&["client", "rotate-secret", "proxmox", "--json"]))
            .unwrap();
    let pending: String =
        app.value("SELECT realm_secret FROM proxmox_sync WHERE client_id = 'proxmox'");
    assert_eq!(pending, rotated["client_secret"].as_str().unwrap());
}

/// `proxmox set` with a CA file holding `pem` instead of a fingerprint.
fn set_with_ca(app: &TestApp, pem: &str) -> std::process::Output {
    let ca = app.data_dir.path().join("ca.pem");
    std::fs::write(&ca, pem).unwrap();
    set_trusting(app, &["--ca-file", ca.to_str().unwrap()], &[])
}

#[test]
fn a_ca_file_must_hold_a_usable_certificate() {
    let app = spawn_app();
    app.setup_proxmox();
    for (pem, why) in [
        (NOT_A_CERTIFICATE, "the CA certificate cannot be used"),
        ("a certificate, surely", "holds no PEM certificate"),
    ] {
        let out = set_with_ca(&app, pem);
        assert!(!out.status.success(), "{pem:?} was taken");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(why), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = params
        .self_signed(&key)
        .unwrap()
        .pem()
        .replace('\n', "\r\n");
    let out = set_with_ca(&app, &ca);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(status(&app)[0]["trust"], "ca");
}

fn declared(permission_group: &str, fingerprint: &str) -> String {
    format!(
        r#"
[[groups]]
name = "pbs-admins"

[[clients]]
client_id = "pbs"
public = true
redirect_uris = ["https://pbs.example.com:8007"]
[clients.proxmox]
product = "pbs"
api_url = "{UNREACHABLE}"
token_id = "root@pam!latchkey"
token_secret = "declared-token-secret"
fingerprint = "{fingerprint}"
[[clients.proxmox.permissions]]
group = "{permission_group}"
role = "Admin"
"#
    )
}

#[test]
fn the_config_file_declares_targets_and_rules_read_only() {
    let app = spawn_app_with_config(&declared("pbs-admins", FINGERPRINT));
    let shown = status(&app);
    assert_eq!(shown[0]["client_id"], "pbs");
    assert_eq!(shown[0]["declared"], true);
    assert_eq!(shown[0]["rules"][0]["group"], "pbs-admins");
    assert_eq!(shown[0]["rules"][0]["path"], "/");
    let out = app.cli(&["proxmox", "unset", "pbs"]);
    assert!(!out.status.success(), "declared targets are read-only");
    assert!(String::from_utf8_lossy(&out.stderr).contains("config file"));
}

#[test]
fn a_mistake_in_the_declaration_stops_the_start_with_its_line() {
    let files = tempfile::tempdir().unwrap();
    let broken = files.path().join("ca.pem");
    std::fs::write(&broken, NOT_A_CERTIFICATE).unwrap();
    let with_ca_file = declared("pbs-admins", FINGERPRINT).replace(
        &format!("fingerprint = \"{FINGERPRINT}\""),
        &format!("ca_file = \"{}\"", broken.display()),
    );
    for (config, why) in [
        (declared("nobody", FINGERPRINT), "no group"),
        (declared("pbs-admins", "AB:CD"), "invalid fingerprint"),
        (with_ca_file, "the CA certificate cannot be used"),
        (
            declared("pbs-admins", FINGERPRINT).replace(
                "token_secret = \"declared-token-secret\"",
                "token_secret = \"two words\"",
            ),
            "one line without spaces",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latchkey.toml");
        std::fs::write(&path, &config).unwrap();
        let (started, stderr) = start_serve(dir.path(), &path);
        assert!(!started, "started despite {why}");
        assert!(
            stderr.contains("line 5") && stderr.contains(why),
            "{stderr}"
        );
    }
}
