//! `latchkey migrate-store`: a populated SQLite database copied into PostgreSQL (and from
//! there into a new SQLite file) serves the same sign-ins and tokens; a target that is not
//! empty, a server running on the source and a bad URL are refused. The source is a SQLite
//! file in both runs of the suite, the target a fresh database of the test cluster.

use base64::Engine;
use serde_json::Value;

use crate::helpers::*;
use crate::process::{Served, free_port};

/// What a relying party and a browser hold from the source: they must keep working.
struct Held {
    secret: String,
    browser: reqwest::Client,
    tokens: Value,
}

/// A SQLite data dir served by a real `latchkey serve` on a free port.
fn served_on_sqlite() -> (TestApp, Served) {
    let data_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let served = Served::start(data_dir.path(), port, "077");
    let issuer = format!("http://127.0.0.1:{port}");
    (TestApp::new(issuer, port, data_dir, None), served)
}

/// A new data dir (and `database_url`, when given) for a server with `app`'s issuer and port.
fn like(app: &TestApp, database_url: Option<String>) -> TestApp {
    let data_dir = tempfile::tempdir().unwrap();
    TestApp::new(app.issuer.clone(), app.port, data_dir, database_url)
}

/// `latchkey serve` on `app`'s database, issuer and port.
fn serve(app: &TestApp) -> Served {
    let args = app.database_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Served::start_with(&args, app.port, "077")
}

/// People, groups, a Proxmox client with a secret, a signed-in browser, a consent, a token
/// pair, audit rows, a passkey and a Proxmox target with a rule and its sync state; the
/// server stopped.
async fn populated_sqlite() -> (TestApp, Held) {
    let (app, served) = served_on_sqlite();
    let secret = app.setup_proxmox();
    app.cli_ok(&["user", "add", "bob"]);
    // No kept-alive connections: the same browser later reaches the copy's server.
    let browser = app
        .client_builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let signed_in = open_login_link(&browser, &app.login_link("alice")).await;
    assert_eq!(signed_in.status(), 303);
    let pkce = pkce();
    let mut params = proxmox_params(&pkce);
    params.retain(|(k, _)| *k != "scope");
    params.push(("scope", "openid profile groups offline_access".to_string()));
    let code = code_for(&app, &browser, &params).await;
    let (status, tokens) = exchange(&app, &secret, &code, &pkce.verifier).await;
    assert_eq!(status, 200, "{tokens}");
    drop(served);
    let alice: String = app.value("SELECT id FROM users WHERE username = 'alice'");
    app.execute(
        "INSERT INTO consents (user_id, client_id, scope, granted_at) \
         VALUES (?1, 'proxmox', 'openid profile', 1700000000)",
        latchkey::args![alice],
    );
    app.execute(
        "INSERT INTO passkeys (user_id, credential_id, name, passkey, created_at) \
         VALUES (?1, 'credential-1', 'laptop', '{}', 1700000000)",
        latchkey::args![alice],
    );
    app.execute(
        "INSERT INTO proxmox_targets (client_id, product, api_url, token_id, token_secret, \
         trust, realm, leavers, manage_realm, created_at, updated_at) VALUES ('proxmox', \
         'pve', 'https://127.0.0.1:1', 'root@pam!latchkey', 's', 'system', 'latchkey', \
         'disable', 1, 1700000000, 1700000000)",
        latchkey::args![],
    );
    app.execute(
        "INSERT INTO proxmox_rules (client_id, group_id, role, path, propagate) \
         SELECT 'proxmox', id, 'Administrator', '/', 0 FROM groups WHERE name = 'pve-admins'",
        latchkey::args![],
    );
    // A state the triggers would never leave behind: the copy must keep it as it is.
    app.execute(
        "UPDATE proxmox_sync SET due_at = NULL, generation = 7, attempts = 3, \
         last_error = 'unreachable', realm_secret = 'pending'",
        latchkey::args![],
    );
    (
        app,
        Held {
            secret,
            browser,
            tokens,
        },
    )
}

/// Runs migrate-store from `app`'s database; its output.
fn migrate(app: &TestApp, to: &str) -> std::process::Output {
    app.cli(&["migrate-store", "--to", to])
}

/// The rows of every table, and the Proxmox sync state, as one comparable text.
fn contents(app: &TestApp) -> Vec<String> {
    let mut seen = Vec::new();
    for table in [
        "users",
        "groups",
        "group_members",
        "clients",
        "client_allowed_groups",
        "sessions",
        "grants",
        "access_tokens",
        "refresh_tokens",
        "signing_keys",
        "audit_events",
        "passkeys",
        "consents",
        "proxmox_targets",
        "proxmox_rules",
    ] {
        let rows: i64 = app.value(&format!("SELECT count(*) FROM {table}"));
        seen.push(format!("{table}: {rows}"));
    }
    let sync = app
        .store()
        .read(|db| {
            db.query_one(
                "SELECT due_at, generation, attempts, last_error, realm_secret FROM proxmox_sync",
                latchkey::args![],
                |row| {
                    Ok(format!(
                        "{:?} {} {} {:?} {:?}",
                        row.get::<Option<i64>>(0)?,
                        row.get::<i64>(1)?,
                        row.get::<i64>(2)?,
                        row.get::<Option<String>>(3)?,
                        row.get::<Option<String>>(4)?,
                    ))
                },
            )
        })
        .unwrap();
    seen.push(format!("proxmox_sync: {sync}"));
    let keys: Vec<String> = app
        .store()
        .read(|db| {
            db.column(
                "SELECT kid FROM signing_keys ORDER BY created_at DESC, rowid DESC",
                latchkey::args![],
            )
        })
        .unwrap();
    seen.push(format!("keys: {keys:?}"));
    seen
}

/// The `kid` in a JWT's header.
fn kid_of(jwt: &str) -> String {
    let header = jwt.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_string()
}

/// The copy signs the browser in, refreshes with the refresh token and the client secret,
/// answers userinfo for the access token, and publishes the ID token's key.
async fn serves_the_same(app: &TestApp, held: &Held, refresh_token: &str, access_token: &str) {
    assert_eq!(account_status(app, &held.browser).await, 200, "the session");
    let (status, userinfo_body) = userinfo(app, access_token).await;
    assert_eq!(status, 200, "{userinfo_body}");
    assert_eq!(userinfo_body["preferred_username"], "alice");
    let kid = kid_of(held.tokens["id_token"].as_str().unwrap());
    assert!(
        jwks(app).await.iter().any(|key| key["kid"] == kid.as_str()),
        "the ID token's key is published"
    );
    let (status, _, refreshed) = post_form(
        app,
        "/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
        Some(("proxmox", &held.secret)),
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");
    let (status, _) = userinfo(app, refreshed["access_token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn sqlite_copied_to_postgres_serves_the_same_sign_ins_and_tokens() {
    let (app, held) = populated_sqlite().await;
    let before = contents(&app);
    let url = crate::postgres::fresh_database();
    let password = url::Url::parse(&url)
        .unwrap()
        .password()
        .unwrap()
        .to_string();

    let out = migrate(&app, &url);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("  users: 2\n"), "{stdout}");
    assert!(stdout.contains("  proxmox_sync: 1\n"), "{stdout}");
    let mut shown = url::Url::parse(&url).unwrap();
    shown.set_password(None).unwrap();
    assert!(
        stdout.contains(&format!("Set database_url = \"{shown}\"")),
        "{stdout}"
    );
    let source = app.data_dir.path().join("latchkey.db");
    assert!(
        stdout.contains(&format!("; {} is left as it was.", source.display())),
        "{stdout}"
    );
    assert!(!stdout.contains(&password) && !stderr.contains(&password));

    let copy = like(&app, Some(url));
    assert_eq!(contents(&copy), before);
    assert_eq!(contents(&app), before, "the SQLite file is left as it was");
    let _served = serve(&copy);
    let refresh_token = held.tokens["refresh_token"].as_str().unwrap();
    let access_token = held.tokens["access_token"].as_str().unwrap();
    serves_the_same(&copy, &held, refresh_token, access_token).await;
    // The identity sequences continue after the copied ids.
    copy.cli_ok(&["group", "add", "newcomers"]);
    copy.cli_ok(&["user", "add", "carol"]);
}

#[tokio::test]
async fn postgres_copied_to_a_new_sqlite_file_serves_the_same_sign_ins_and_tokens() {
    let (app, held) = populated_sqlite().await;
    let before = contents(&app);
    let url = crate::postgres::fresh_database();
    let out = migrate(&app, &url);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let on_postgres = like(&app, Some(url));

    let copy = like(&app, None);
    let out = migrate(&on_postgres, copy.data_dir.path().to_str().unwrap());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("  users: 2\n"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "Set data_dir = \"{}\" (or LATCHKEY_DATA_DIR) without database_url",
            copy.data_dir.path().display()
        )),
        "{stdout}"
    );

    assert_eq!(contents(&copy), before);
    let _served = serve(&copy);
    let refresh_token = held.tokens["refresh_token"].as_str().unwrap();
    let access_token = held.tokens["access_token"].as_str().unwrap();
    serves_the_same(&copy, &held, refresh_token, access_token).await;
    copy.cli_ok(&["group", "add", "newcomers"]);
}

/// The one line a failed command prints.
fn refusal(out: &std::process::Output) -> String {
    assert!(!out.status.success(), "refused");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("internal error"));
    stderr
}

#[tokio::test]
async fn a_target_that_is_not_empty_is_refused_and_left_unchanged() {
    let (app, _held) = populated_sqlite().await;
    let target = like(&app, Some(crate::postgres::fresh_database()));
    target.execute(
        "INSERT INTO meta (key, value) VALUES ('kept', 'as it was')",
        latchkey::args![],
    );

    let stderr = refusal(&migrate(&app, target.database_url.as_deref().unwrap()));
    assert!(stderr.contains("not empty (meta holds 1 rows)"), "{stderr}");
    let users: i64 = target.value("SELECT count(*) FROM users");
    let meta: String = target.value("SELECT key || '=' || value FROM meta");
    assert_eq!((users, meta.as_str()), (0, "kept=as it was"));

    // A SQLite file with data is refused the same way.
    let copied = like(&app, None);
    copied.cli_ok(&["user", "add", "dora"]);
    let stderr = refusal(&migrate(&target, copied.data_dir.path().to_str().unwrap()));
    assert!(
        stderr.contains("not empty (users holds 1 rows)"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_running_server_on_the_sqlite_file_refuses_the_command() {
    let (app, _served) = served_on_sqlite();
    let url = crate::postgres::fresh_database();
    let stderr = refusal(&migrate(&app, &url));
    assert!(stderr.contains("stop it first"), "{stderr}");
    let target = like(&app, Some(url));
    let users: i64 = target.value("SELECT count(*) FROM users");
    assert_eq!(users, 0, "nothing copied");
}

#[test]
fn a_bad_url_is_one_line() {
    let app = like_nothing();
    for (to, says) in [
        ("mysql://root@localhost/latchkey", "takes postgres://"),
        ("postgres://u@127.0.0.1/d?sslmode=sometimes", "sslmode"),
        ("postgres://u:secret@[::1/d", "not a URL"),
    ] {
        let stderr = refusal(&migrate(&app, to));
        assert!(stderr.contains(says), "{to}: {stderr}");
        assert!(!stderr.contains("secret"), "{stderr}");
    }
}

/// A data dir with no server: the command's own checks run before any database is reached.
fn like_nothing() -> TestApp {
    TestApp::new(
        "http://127.0.0.1:9".to_string(),
        9,
        tempfile::tempdir().unwrap(),
        None,
    )
}
