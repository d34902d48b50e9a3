//! The server killed with SIGKILL in the middle of full flows, three times, and restarted on
//! the same data dir: the database stays intact, and every token a client received with a
//! 200 still works. A committed write survives a killed process.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::*;
use crate::process::{Served, database, free_port};

const CLIENTS: usize = 8;
const KILLS: usize = 3;
/// Each kill lands this many milliseconds after the load (re)started.
const KILL_AFTER_MS: std::ops::RangeInclusive<u64> = 200..=1500;
/// Every loop below gives up after this long.
const LIMIT: Duration = Duration::from_secs(30);
const SCOPE: &str = "openid offline_access";

/// What the load clients may do: run flows, wait (the server is down), or stop.
const UP: u8 = 0;
const DOWN: u8 = 1;
const STOP: u8 = 2;

/// What one load client received.
#[derive(Default)]
struct Received {
    /// Every access token answered with a 200.
    access_tokens: Vec<String>,
    /// The newest refresh token of each grant, received with a 200 and never presented
    /// since. Refresh tokens rotate, so only the newest of a chain is valid.
    refresh_tokens: Vec<String>,
    /// Refresh tokens presented when the server died: whether the rotation committed before
    /// the kill is unknowable, so they are not checked.
    in_doubt: usize,
    /// Answers that were neither a success nor a lost connection: there must be none.
    unexpected: Vec<String>,
}

/// How a browser of the load gets signed in: the one place to adapt when sign-in changes.
async fn signed_in(app: &TestApp) -> reqwest::Client {
    app.signed_in_browser("alice").await
}

/// The JSON body of a 200 answer; any other answer is noted as unexpected. A lost connection
/// is an `Err`.
async fn ok_json(
    request: reqwest::RequestBuilder,
    what: &str,
    received: &mut Received,
) -> Result<Option<Value>, reqwest::Error> {
    let response = request.send().await?;
    let status = response.status();
    let body = response.text().await?;
    if status != 200 {
        received.unexpected.push(format!("{what}: {status} {body}"));
        return Ok(None);
    }
    Ok(Some(serde_json::from_str(&body).unwrap_or(Value::Null)))
}

fn token(body: &Value, name: &str) -> String {
    body[name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} in {body}"))
        .to_string()
}

/// One full flow: authorize with PKCE, exchange the code (client_secret_basic), rotate the
/// refresh token once, then userinfo with the newest access token.
async fn flow(
    app: &TestApp,
    secret: &str,
    browser: &reqwest::Client,
    http: &reqwest::Client,
    received: &mut Received,
) -> Result<(), reqwest::Error> {
    let pkce = pkce();
    let mut params = proxmox_params(&pkce);
    params.retain(|(name, _)| *name != "scope");
    params.push(("scope", SCOPE.into()));
    let url = url::Url::parse_with_params(&app.url("/authorize"), as_refs(&params)).unwrap();
    let response = browser.get(url.as_str()).send().await?;
    if response.status() != 303 {
        let status = response.status();
        received.unexpected.push(format!("authorize: {status}"));
        return Ok(());
    }
    let code = query(&location(&response)).remove("code").unwrap();
    let exchange = http
        .post(app.url("/token"))
        .basic_auth("proxmox", Some(secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", PVE_REDIRECT),
            ("code_verifier", pkce.verifier.as_str()),
        ]);
    let Some(tokens) = ok_json(exchange, "code exchange", received).await? else {
        return Ok(());
    };
    received.access_tokens.push(token(&tokens, "access_token"));
    let rotation = http
        .post(app.url("/token"))
        .basic_auth("proxmox", Some(secret))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", token(&tokens, "refresh_token").as_str()),
        ]);
    let rotated = match ok_json(rotation, "refresh", received).await {
        Ok(Some(rotated)) => rotated,
        Ok(None) => return Ok(()),
        Err(lost) => {
            received.in_doubt += 1;
            return Err(lost);
        }
    };
    let access = token(&rotated, "access_token");
    received.access_tokens.push(access.clone());
    received
        .refresh_tokens
        .push(token(&rotated, "refresh_token"));
    let userinfo = http.get(app.url("/userinfo")).bearer_auth(access);
    ok_json(userinfo, "userinfo", received).await?;
    Ok(())
}

/// A load client: runs flows while the gate is up, until it says stop.
async fn load(
    app: Arc<TestApp>,
    secret: Arc<String>,
    browser: reqwest::Client,
    gate: Arc<AtomicU8>,
    flows: Arc<AtomicUsize>,
) -> Received {
    let http = reqwest::Client::new();
    let mut received = Received::default();
    let deadline = Instant::now() + LIMIT;
    while Instant::now() < deadline {
        match gate.load(Ordering::SeqCst) {
            STOP => break,
            DOWN => tokio::time::sleep(Duration::from_millis(10)).await,
            _ => {
                // A lost connection only ends this flow: the next one starts when the server
                // is back.
                if flow(&app, &secret, &browser, &http, &mut received)
                    .await
                    .is_ok()
                {
                    flows.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    }
    received
}

/// Every access token a client received answers at userinfo, then the newest refresh token
/// of each of its chains refreshes (in that order: a refused refresh token would revoke its
/// family's access tokens).
async fn still_work(app: Arc<TestApp>, secret: Arc<String>, received: Received) {
    let http = reqwest::Client::new();
    for access in &received.access_tokens {
        let response = http
            .get(app.url("/userinfo"))
            .bearer_auth(access)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "a recorded access token");
    }
    for refresh in &received.refresh_tokens {
        let response = http
            .post(app.url("/token"))
            .basic_auth("proxmox", Some(secret.as_str()))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(status, 200, "the newest refresh token of a chain: {body}");
    }
}

/// After a start, one client authentication pays argon2 and fills the server's cache, so that
/// eight clients at once do not spend the per-address hashing budget.
async fn warm_up(app: &TestApp, secret: &str) {
    let (status, _, body) = post_form(
        app,
        "/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "warm-up"),
        ],
        Some(("proxmox", secret)),
    )
    .await;
    assert_eq!(
        (status.as_u16(), &body["error"]),
        (400, &"invalid_grant".into())
    );
}

/// Waits until `flows` reaches `target`, bounded.
async fn until_flows(flows: &AtomicUsize, target: usize) {
    let deadline = Instant::now() + LIMIT;
    while flows.load(Ordering::SeqCst) < target {
        assert!(Instant::now() < deadline, "the load made no progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_three_times_mid_flow_the_database_is_intact_and_every_token_works() {
    let port = free_port();
    let app = Arc::new(TestApp::new(
        format!("http://127.0.0.1:{port}"),
        port,
        tempfile::tempdir().unwrap(),
        test_database(),
    ));
    let data = app.data_dir.path().to_path_buf();
    let mut served = Served::start_for(&app, port, "077");
    let secret = Arc::new(app.setup_proxmox());
    warm_up(&app, &secret).await;

    let gate = Arc::new(AtomicU8::new(UP));
    let flows = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let browser = signed_in(&app).await;
        clients.push(tokio::spawn(load(
            app.clone(),
            secret.clone(),
            browser,
            gate.clone(),
            flows.clone(),
        )));
    }
    for _ in 0..KILLS {
        let delay = rand::random_range(KILL_AFTER_MS);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        served.kill();
        gate.store(DOWN, Ordering::SeqCst);
        served = Served::start_for(&app, port, "077");
        warm_up(&app, &secret).await;
        gate.store(UP, Ordering::SeqCst);
    }
    // Some flows on the last start too, then stop.
    until_flows(&flows, flows.load(Ordering::SeqCst) + CLIENTS).await;
    gate.store(STOP, Ordering::SeqCst);
    // Each client's tokens are checked by a task of its own, all at once.
    let (mut access_tokens, mut refresh_tokens, mut in_doubt) = (0, 0, 0);
    let mut checks = Vec::new();
    for client in clients {
        let received = client.await.unwrap();
        assert_eq!(received.unexpected, Vec::<String>::new());
        access_tokens += received.access_tokens.len();
        refresh_tokens += received.refresh_tokens.len();
        in_doubt += received.in_doubt;
        checks.push(tokio::spawn(still_work(
            app.clone(),
            secret.clone(),
            received,
        )));
    }
    for check in checks {
        if let Err(failed) = check.await {
            std::panic::resume_unwind(failed.into_panic());
        }
    }
    assert!(
        access_tokens > 0 && refresh_tokens > 0,
        "tokens were checked"
    );
    served.kill();

    // PostgreSQL checks its own pages; the SQLite file is checked whole.
    if app.database_url.is_none() {
        let db = rusqlite::Connection::open_with_flags(
            database(&data),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        let check: String = db
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .unwrap();
        assert_eq!(check, "ok");
    }
    eprintln!(
        "crash test: {access_tokens} access and {refresh_tokens} refresh tokens checked, \
         {in_doubt} refresh tokens in doubt"
    );
}
