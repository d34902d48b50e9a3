//! No secret reaches the log at any level: the real `serve` process logs everything
//! (`RUST_LOG=trace`, JSON lines) while a whole flow runs through it, and the captured output
//! holds none of the tokens, codes, secrets, links, cookies or CSRF tokens that went by.

use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::cookie::CookieStore;
use serde_json::{Value, json};
use url::Url;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use crate::helpers::*;
use crate::process::free_port;

/// `serve` as a process, every line it writes going to `log`.
struct Logged {
    child: Child,
    app: TestApp,
    log: std::path::PathBuf,
    /// Where `/metrics` answers.
    metrics: String,
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn serve_logging_everything() -> Logged {
    let data_dir = tempfile::tempdir().unwrap();
    let log = data_dir.path().join("serve.log");
    let port = free_port();
    let issuer = format!("http://localhost:{port}");
    let metrics = format!("127.0.0.1:{}", free_port());
    let output = std::fs::File::create(&log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .arg("--data-dir")
        .arg(data_dir.path())
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--issuer",
        ])
        .arg(&issuer)
        .env("RUST_LOG", "trace")
        .env("LATCHKEY_LOG_FORMAT", "json")
        .env("LATCHKEY_METRICS_LISTEN", &metrics)
        .env_remove("LATCHKEY_CONFIG")
        .env_remove("LATCHKEY_LOG_LEVEL")
        .stdout(output.try_clone().unwrap())
        .stderr(output)
        .spawn()
        .unwrap();
    let logged = Logged {
        child,
        app: TestApp::new(issuer, port, data_dir, None),
        log,
        metrics,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let http = logged.app.client_builder().build().unwrap();
    while http.get(logged.app.url("/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "serve did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    logged
}

/// A browser whose cookies the test can read.
fn browser_with_jar(app: &TestApp) -> (reqwest::Client, Arc<reqwest::cookie::Jar>) {
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let browser = app
        .client_builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    (browser, jar)
}

/// The values of the cookies `jar` holds for `app`.
fn cookie_values(app: &TestApp, jar: &reqwest::cookie::Jar) -> Vec<String> {
    let url = Url::parse(&app.issuer).unwrap();
    jar.cookies(&url)
        .map(|header| {
            header
                .to_str()
                .unwrap()
                .split("; ")
                .filter_map(|pair| pair.split_once('=').map(|(_, v)| v.to_string()))
                .collect()
        })
        .unwrap_or_default()
}

async fn post_json(app: &TestApp, browser: &reqwest::Client, path: &str, body: Value) -> Value {
    let (status, answer) = crate::ceremonies::post_json(app, browser, path, body).await;
    assert_eq!(status, 200, "{path}");
    answer
}

/// A ceremony's id, and its challenge as text and as the bytes a debug line would print.
fn ceremony_secrets(start: &Value) -> Vec<String> {
    use base64::Engine;
    let challenge = start["publicKey"]["challenge"].as_str().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(challenge)
        .unwrap();
    vec![
        start["ceremony"].as_str().unwrap().to_string(),
        challenge.to_string(),
        format!("{:?}", &bytes[..12])
            .trim_end_matches(']')
            .to_string(),
    ]
}

/// The first administrator's setup through the link `serve` printed, with a software passkey.
async fn set_up(app: &TestApp, token: &str, secrets: &mut Vec<String>) -> SoftPasskey {
    let (browser, jar) = browser_with_jar(app);
    let page = browser
        .get(app.url(&format!("/setup/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let start = post_json(
        app,
        &browser,
        &format!("/setup/{token}/start"),
        json!({ "username": "root", "display_name": "", "email": "" }),
    )
    .await;
    let mut options = json!({ "publicKey": start["publicKey"] });
    options["publicKey"]["authenticatorSelection"]["requireResidentKey"] = json!(false);
    let mut key = SoftPasskey::new(true);
    let credential = key
        .do_registration(
            Url::parse(&app.issuer).unwrap(),
            serde_json::from_value(options).unwrap(),
        )
        .unwrap();
    post_json(
        app,
        &browser,
        "/setup/finish",
        json!({ "ceremony": start["ceremony"], "credential": credential }),
    )
    .await;
    secrets.extend(ceremony_secrets(&start));
    secrets.extend(cookie_values(app, &jar));
    key
}

/// A passkey sign-in of root.
async fn passkey_sign_in(app: &TestApp, key: &mut SoftPasskey, secrets: &mut Vec<String>) {
    let (browser, jar) = browser_with_jar(app);
    let start = post_json(
        app,
        &browser,
        "/login/passkey/start",
        json!({ "username": "root" }),
    )
    .await;
    let options = serde_json::from_value(json!({ "publicKey": start["publicKey"] })).unwrap();
    let credential = key
        .do_authentication(Url::parse(&app.issuer).unwrap(), options)
        .unwrap();
    post_json(
        app,
        &browser,
        "/login/passkey/finish",
        json!({ "ceremony": start["ceremony"], "credential": credential }),
    )
    .await;
    secrets.extend(ceremony_secrets(&start));
    secrets.extend(cookie_values(app, &jar));
}

/// alice signs in with a login link and Proxmox gets, uses and refreshes her tokens; a
/// wrong secret and a replayed code fail on the way.
async fn sign_in_and_use_tokens(app: &TestApp, secrets: &mut Vec<String>) {
    let client_secret = app.setup_proxmox();
    let link = app.login_link("alice");
    let (browser, jar) = browser_with_jar(app);
    let page = browser.get(&link).send().await.unwrap();
    let csrf = csrf_token(&page.text().await.unwrap());
    let signed_in = browser
        .post(&link)
        .form(&[("csrf_token", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    secrets.extend([
        client_secret.clone(),
        link.rsplit('/').next().unwrap().to_string(),
        csrf,
    ]);
    secrets.extend(cookie_values(app, &jar));

    let pkce = pkce();
    let mut params = proxmox_params(&pkce);
    params.retain(|(k, _)| *k != "scope");
    params.push(("scope", "openid profile groups offline_access".to_string()));
    let code = code_for(app, &browser, &params).await;
    let wrong = "WRONG-CLIENT-SECRET-0123456789";
    assert_eq!(exchange(app, wrong, &code, &pkce.verifier).await.0, 401);
    let (status, tokens) = exchange(app, &client_secret, &code, &pkce.verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(userinfo(app, access).await.0, 200);
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, _, refreshed) = post_form(
        app,
        "/token",
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        Some(("proxmox", &client_secret)),
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");
    // A relying party's logout carries the ID token in the query; a careless client may send
    // an access token there too.
    let id_token = refreshed["id_token"].as_str().unwrap();
    let logout = url::Url::parse_with_params(&app.url("/logout"), [("id_token_hint", id_token)]);
    let logout = browser.get(logout.unwrap().as_str()).send().await.unwrap();
    assert!(logout.status().is_success(), "{}", logout.status());
    let in_query = format!("/userinfo?access_token={access}");
    let answered = reqwest::get(app.url(&in_query)).await.unwrap();
    let request_id = answered.headers()["x-request-id"].to_str().unwrap();
    secrets.push(format!("request id {request_id}"));
    assert_eq!(
        exchange(app, &client_secret, &code, &pkce.verifier).await.0,
        400
    );
    secrets.extend([code, pkce.verifier, wrong.to_string()]);
    for body in [&tokens, &refreshed] {
        for name in ["access_token", "refresh_token", "id_token"] {
            secrets.push(body[name].as_str().unwrap().to_string());
        }
    }
}

/// The passkey ceremonies and sign-ins of the flow, as the metrics count them.
async fn the_flow_was_counted(metrics: &str) {
    let samples = crate::metrics::scrape(metrics).await;
    let count = |name, labels: &[(&str, &str)]| crate::metrics::value(&samples, name, labels);
    for (ceremony, stage) in [
        ("setup", "started"),
        ("setup", "finished"),
        ("sign_in", "finished"),
    ] {
        assert_eq!(
            count(
                "latchkey_passkey_ceremonies_total",
                &[("ceremony", ceremony), ("stage", stage)]
            ),
            1.0,
            "{ceremony} {stage}"
        );
    }
    for method in ["setup", "passkey", "link"] {
        assert_eq!(
            count(
                "latchkey_sign_ins_total",
                &[("method", method), ("result", "success")]
            ),
            1.0,
            "{method}"
        );
    }
}

#[tokio::test]
async fn no_secret_reaches_the_log_at_any_level() {
    let mut served = serve_logging_everything().await;
    let app = &served.app;
    let banner = std::fs::read_to_string(&served.log).unwrap();
    let setup_link = banner
        .lines()
        .find(|line| line.contains("/setup/"))
        .expect("serve printed a setup link")
        .trim()
        .to_string();
    let setup_token = setup_link.rsplit('/').next().unwrap().to_string();

    let mut secrets = vec![setup_token.clone()];
    let mut key = set_up(app, &setup_token, &mut secrets).await;
    passkey_sign_in(app, &mut key, &mut secrets).await;
    sign_in_and_use_tokens(app, &mut secrets).await;
    the_flow_was_counted(&served.metrics).await;
    served.child.kill().unwrap();
    served.child.wait().unwrap();

    let log = std::fs::read_to_string(&served.log).unwrap();
    // The setup link is printed once for the operator, on purpose; nowhere else.
    let log = log.replacen(&setup_link, "", 1);
    assert!(
        log.lines().filter(|l| l.starts_with('{')).count() > 100,
        "trace-level JSON lines were captured"
    );
    assert!(log.contains("\"user\":\"alice\""), "lines name the user");
    assert!(
        log.contains("\"client\":\"proxmox\""),
        "lines name the client"
    );
    let request_id = secrets
        .iter()
        .find_map(|s| s.strip_prefix("request id "))
        .unwrap()
        .to_string();
    assert!(
        log.lines()
            .any(|l| l.contains(&format!("\"id\":\"{request_id}\"")) && l.contains("/userinfo")),
        "the access line carries the id the response returned"
    );
    secrets.retain(|s| s.len() >= 8);
    assert!(secrets.len() >= 15, "{} secrets collected", secrets.len());
    for secret in &secrets {
        if let Some(at) = log.find(secret.as_str()) {
            let line_start = log[..at].rfind('\n').map_or(0, |n| n + 1);
            let line: String = log[line_start..]
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(600)
                .collect();
            panic!("a secret reached the log: {line}");
        }
    }
}
