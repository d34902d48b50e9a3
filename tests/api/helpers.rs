//! A real server on 127.0.0.1 with a temporary data dir, the real CLI binary against the same
//! database, and a browser-like HTTP client.
//!
//! The suite runs twice: `api` on SQLite files, `api_postgres` (or `api` with
//! `LATCHKEY_TEST_DATABASE=postgres`) on a fresh database of a throwaway PostgreSQL cluster
//! per server (see `postgres`).

use std::net::TcpListener;
use std::process::{Command, Output};

use latchkey::config::{Overrides, Settings};
use latchkey::server;
use latchkey::state::AppState;
use std::sync::OnceLock;

use latchkey::store::db::Column;
use latchkey::store::{Database, Store};
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthenticationFlow, CoreClient, CoreGenderClaim, CoreIdTokenClaims,
    CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AccessTokenHash, AdditionalClaims, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
    UserInfoClaims,
};
use reqwest::redirect::Policy;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tempfile::TempDir;

pub const PVE_REDIRECT: &str = "https://pve.example.com:8006";

pub struct TestApp {
    /// `http://127.0.0.1:PORT` or `http://localhost:PORT`, perhaps with a path: the issuer.
    pub issuer: String,
    pub port: u16,
    pub data_dir: TempDir,
    /// The PostgreSQL database, when the suite runs on PostgreSQL.
    pub database_url: Option<String>,
    store: OnceLock<Store>,
}

/// Whether this run of the suite is the PostgreSQL one.
pub fn on_postgres() -> bool {
    env!("CARGO_CRATE_NAME") == "api_postgres"
        || std::env::var("LATCHKEY_TEST_DATABASE").as_deref() == Ok("postgres")
}

/// A fresh PostgreSQL database in the PostgreSQL run; none (SQLite in the data dir) otherwise.
pub fn test_database() -> Option<String> {
    on_postgres().then(crate::postgres::fresh_database)
}

/// Starts the real server on a free port, in a thread of its own with its own runtime.
pub fn spawn_app() -> TestApp {
    spawn_app_at("127.0.0.1")
}

/// Starts the server with the issuer `http://HOST:PORT`; it always listens on 127.0.0.1.
/// Passkeys need a domain name, so their tests use `localhost`.
pub fn spawn_app_at(host: &str) -> TestApp {
    spawn_app_with("http", host, "", None, test_database())
}

/// Starts the server with the issuer `http://127.0.0.1:PORT{path}`: its routes under `path`.
pub fn spawn_app_under(path: &str) -> TestApp {
    spawn_app_with("http", "127.0.0.1", path, None, test_database())
}

/// Starts the server with the issuer `https://localhost:PORT`, as behind a TLS proxy; it
/// still answers plain http on 127.0.0.1.
pub fn spawn_app_https() -> TestApp {
    spawn_app_with("https", "localhost", "", None, test_database())
}

/// Starts the server with `config` as its TOML config file (written into the data dir).
pub fn spawn_app_with_config(config: &str) -> TestApp {
    spawn_app_with("http", "127.0.0.1", "", Some(config), test_database())
}

/// Starts the server on the PostgreSQL database `url`, whichever backend the run uses.
pub fn spawn_app_on(url: String) -> TestApp {
    spawn_app_with("http", "127.0.0.1", "", None, Some(url))
}

fn spawn_app_with(
    scheme: &str,
    host: &str,
    path: &str,
    config: Option<&str>,
    database_url: Option<String>,
) -> TestApp {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let config = config.map(|text| {
        let path = data_dir.path().join("latchkey.toml");
        std::fs::write(&path, text).expect("write config");
        path
    });
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    let issuer = format!("{scheme}://{host}:{port}{path}");
    let settings = Settings::resolve(Overrides {
        data_dir: Some(data_dir.path().to_path_buf()),
        database_url: database_url.clone(),
        config,
        listen: Some(format!("127.0.0.1:{port}")),
        issuer: Some(issuer.clone()),
        ..Overrides::default()
    })
    .expect("settings");
    let store = Store::connect(&settings.database).expect("store");
    server::prepare(&store, &settings).expect("prepare");
    let state = AppState::new(store, settings);
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            server::run(listener, state)
                .expect("server")
                .await
                .expect("serve")
        })
    });
    TestApp::new(issuer, port, data_dir, database_url)
}

impl TestApp {
    /// A server started some other way (its own process), on `database_url` when given.
    pub fn new(
        issuer: String,
        port: u16,
        data_dir: TempDir,
        database_url: Option<String>,
    ) -> TestApp {
        TestApp {
            issuer,
            port,
            data_dir,
            database_url,
            store: OnceLock::new(),
        }
    }

    /// Where this server's data lives.
    pub fn database(&self) -> Database {
        let overrides = Overrides {
            data_dir: Some(self.data_dir.path().to_path_buf()),
            database_url: self.database_url.clone(),
            ..Overrides::default()
        };
        Settings::resolve(overrides).expect("settings").database
    }

    /// The server's database, opened beside it (whichever backend).
    pub fn store(&self) -> &Store {
        self.store
            .get_or_init(|| Store::connect(&self.database()).expect("store"))
    }

    /// The first column of the first row of the test's own query.
    pub fn value<T: Column>(&self, sql: &str) -> T {
        self.store()
            .read(|db| db.value(sql, latchkey::args![]))
            .expect("query")
            .expect("a row")
    }

    /// Runs the test's own statement, committed.
    pub fn execute(&self, sql: &str, args: &[&dyn latchkey::store::db::Param]) {
        self.store()
            .write(|db| db.execute(sql, args))
            .expect("statement");
    }

    /// The flags that point the binary at this server's database.
    pub fn database_args(&self) -> Vec<String> {
        let mut args = vec!["--data-dir".to_string(), path_text(self.data_dir.path())];
        if let Some(url) = &self.database_url {
            args.extend(["--database-url".to_string(), url.clone()]);
        }
        args
    }

    /// The URL of `path` on this server, over plain http whatever the issuer says.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer.replacen("https://", "http://", 1))
    }

    /// The database's size as its backend sees it (SQLite: the write-ahead log included).
    pub fn db_bytes(&self) -> i64 {
        self.value(match self.database_url {
            None => "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
            Some(_) => "SELECT pg_database_size(current_database())",
        })
    }

    /// Adds a public client (no secret, PKCE required) with one redirect URI.
    pub fn add_public_client(&self, client_id: &str, redirect_uri: &str) {
        self.cli_ok(&[
            "client",
            "add",
            client_id,
            "--public",
            "--redirect-uri",
            redirect_uri,
        ]);
    }

    /// Runs the real `latchkey` binary against this server's data dir.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_latchkey"))
            .args(self.database_args())
            .args(args)
            .env_remove("LATCHKEY_CONFIG")
            .env("LATCHKEY_ISSUER", &self.issuer)
            .output()
            .expect("run latchkey")
    }

    /// Runs the CLI, insists on success, returns stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "latchkey {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The homelab set-up: alice in pve-admins, and a Proxmox client restricted to it.
    /// Returns the client secret.
    pub fn setup_proxmox(&self) -> String {
        self.cli_ok(&[
            "user",
            "add",
            "alice",
            "--email",
            "alice@example.com",
            "--name",
            "Alice Liddell",
        ]);
        self.cli_ok(&["group", "add", "pve-admins"]);
        self.cli_ok(&["group", "add-member", "pve-admins", "alice"]);
        let out = self.cli_ok(&[
            "client",
            "add",
            "proxmox",
            "--redirect-uri",
            PVE_REDIRECT,
            "--name",
            "Proxmox VE",
            "--allowed-group",
            "pve-admins",
            "--json",
        ]);
        let json: Value = serde_json::from_str(out.trim()).unwrap();
        json["client_secret"].as_str().unwrap().to_string()
    }

    /// A one-time login link for `user`, as the CLI prints it (last line of stdout).
    pub fn login_link(&self, user: &str) -> String {
        let out = self.cli_ok(&["login-link", user]);
        out.lines().last().unwrap().to_string()
    }

    /// A client builder that reaches the issuer's host on 127.0.0.1 (`localhost` may also
    /// resolve to ::1, where nothing listens).
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder().resolve(
            "localhost",
            std::net::SocketAddr::from(([127, 0, 0, 1], self.port)),
        )
    }

    /// A cookie-keeping client that does not follow redirects, so tests see every hop.
    pub fn browser(&self) -> reqwest::Client {
        self.client_builder()
            .cookie_store(true)
            .redirect(Policy::none())
            .build()
            .unwrap()
    }

    /// A new browser, signed in as `user` through a login link.
    pub async fn signed_in_browser(&self, user: &str) -> reqwest::Client {
        let browser = self.browser();
        let response = open_login_link(&browser, &self.login_link(user)).await;
        assert_eq!(response.status(), 303, "the login link signs in");
        browser
    }
}

/// Opens a login link as a person does: its page, then its button (a POST with the page's
/// CSRF token). Returns the POST's response.
pub async fn open_login_link(browser: &reqwest::Client, link: &str) -> reqwest::Response {
    let page = browser.get(link).send().await.unwrap();
    assert_eq!(page.status(), 200, "the login link's page");
    let token = csrf_token(&page.text().await.unwrap());
    browser
        .post(link)
        .form(&[("csrf_token", token)])
        .send()
        .await
        .unwrap()
}

pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .expect("a Location header")
        .to_str()
        .unwrap()
        .to_string()
}

/// The query parameters of a URL.
pub fn query(url: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Claims beyond the standard ones: Proxmox reads `groups`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct GroupsClaim {
    pub groups: Option<Vec<String>>,
}
impl AdditionalClaims for GroupsClaim {}

/// What a relying party ends up with after signing someone in.
pub struct SignIn {
    pub id_token: CoreIdTokenClaims,
    /// The ID token's payload as plain JSON (after the library verified it).
    pub id_token_json: Value,
    pub id_token_raw: String,
    pub userinfo: UserInfoClaims<GroupsClaim, CoreGenderClaim>,
    pub access_token: String,
    pub refresh_token: Option<String>,
    /// The `state` that came back on the redirect.
    pub returned_state: String,
    pub returned_iss: String,
}

/// Proxmox VE's exact sequence with the `openidconnect` crate (version 4): discovery,
/// authorize with PKCE S256, nonce, `display=page` and a JSON state, client_secret_basic code
/// exchange, ID token verification with the library's defaults, then userinfo GET.
pub async fn proxmox_sign_in(
    app: &TestApp,
    browser: &reqwest::Client,
    client_id: &str,
    secret: &str,
    scopes: &[&str],
) -> anyhow::Result<SignIn> {
    sign_in_accepting(app, browser, client_id, secret, scopes, None).await
}

/// The same sequence, with the ID token verified as signed with `alg` (with `None`, the
/// library's default: RS256 only) and its `at_hash` checked as a relying party does.
pub async fn sign_in_accepting(
    app: &TestApp,
    browser: &reqwest::Client,
    client_id: &str,
    secret: &str,
    scopes: &[&str],
    alg: Option<CoreJwsSigningAlgorithm>,
) -> anyhow::Result<SignIn> {
    let http = app
        .client_builder()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()?;
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(app.issuer.clone())?, &http).await?;
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(client_id.to_string()),
        Some(ClientSecret::new(secret.to_string())),
    )
    .set_redirect_uri(RedirectUrl::new(PVE_REDIRECT.to_string())?);
    let state = format!(
        r#"{{"csrf_token":"{}","realm":"latchkey","pad":"{}"}}"#,
        CsrfToken::new_random().secret(),
        "x".repeat(1100)
    );
    let (pkce_challenge, pkce_verifier) = PkceCodeChallenge::new_random_sha256();
    let sent_state = state.clone();
    let mut request = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            move || CsrfToken::new(sent_state),
            Nonce::new_random,
        )
        .set_pkce_challenge(pkce_challenge)
        .set_display(CoreAuthDisplay::Page);
    for scope in scopes {
        request = request.add_scope(Scope::new(scope.to_string()));
    }
    let (auth_url, _, nonce) = request.url();

    let response = browser.get(auth_url.as_str()).send().await?;
    anyhow::ensure!(
        response.status() == 303,
        "authorize answered {}",
        response.status()
    );
    let redirect = location(&response);
    anyhow::ensure!(
        redirect.starts_with(&format!("{PVE_REDIRECT}?")),
        "redirected to {redirect}"
    );
    let params = query(&redirect);
    let code = params
        .get("code")
        .ok_or_else(|| anyhow::anyhow!("no code in {redirect}"))?;

    let tokens = client
        .exchange_code(AuthorizationCode::new(code.clone()))?
        .set_pkce_verifier(pkce_verifier)
        .request_async(&http)
        .await?;
    let id_token = tokens
        .id_token()
        .ok_or_else(|| anyhow::anyhow!("no id_token"))?;
    let verifier = match alg {
        Some(alg) => client.id_token_verifier().set_allowed_algs([alg]),
        None => client.id_token_verifier(),
    };
    let claims = id_token.claims(&verifier, &nonce)?.clone();
    let expected_hash = claims
        .access_token_hash()
        .ok_or_else(|| anyhow::anyhow!("no at_hash"))?;
    let access_token_hash = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg()?,
        id_token.signing_key(&verifier)?,
    )?;
    anyhow::ensure!(
        &access_token_hash == expected_hash,
        "at_hash {expected_hash:?} is not {access_token_hash:?}"
    );
    let raw = id_token.to_string();
    let payload = raw.split('.').nth(1).unwrap();
    use base64::Engine;
    let id_token_json: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload)?)?;
    let userinfo = client
        .user_info(tokens.access_token().clone(), None)?
        .request_async(&http)
        .await?;
    Ok(SignIn {
        id_token: claims,
        id_token_json,
        id_token_raw: raw,
        userinfo,
        access_token: tokens.access_token().secret().clone(),
        refresh_token: tokens.refresh_token().map(|t| t.secret().clone()),
        returned_state: params.get("state").cloned().unwrap_or_default(),
        returned_iss: params.get("iss").cloned().unwrap_or_default(),
    })
}

/// A PKCE verifier and its S256 challenge.
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

pub fn pkce() -> Pkce {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    Pkce {
        verifier: verifier.secret().clone(),
        challenge: challenge.as_str().to_string(),
    }
}

/// Sends the browser to `/authorize` with `params`.
pub async fn authorize(
    app: &TestApp,
    browser: &reqwest::Client,
    params: &[(&str, &str)],
) -> reqwest::Response {
    let url = url::Url::parse_with_params(&app.url("/authorize"), params).unwrap();
    browser.get(url.as_str()).send().await.unwrap()
}

/// Parameters of a typical Proxmox authorization request for client `proxmox`.
pub fn proxmox_params(pkce: &Pkce) -> Vec<(&'static str, String)> {
    vec![
        ("response_type", "code".into()),
        ("client_id", "proxmox".into()),
        ("redirect_uri", PVE_REDIRECT.into()),
        ("scope", "openid email profile groups".into()),
        ("state", r#"{"csrf_token":"abc","realm":"latchkey"}"#.into()),
        ("nonce", "n-0S6_WzA2Mj".into()),
        ("code_challenge", pkce.challenge.clone()),
        ("code_challenge_method", "S256".into()),
        ("display", "page".into()),
    ]
}

/// `params` with `name` set to `value` (replacing it if present).
pub fn with_param(
    params: &[(&'static str, String)],
    name: &'static str,
    value: &str,
) -> Vec<(&'static str, String)> {
    let mut out: Vec<_> = params.iter().filter(|(k, _)| *k != name).cloned().collect();
    out.push((name, value.to_string()));
    out
}

pub fn as_refs<'a>(params: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    params.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Runs an authorization that must succeed and returns its code.
pub async fn code_for(
    app: &TestApp,
    browser: &reqwest::Client,
    params: &[(&'static str, String)],
) -> String {
    let response = authorize(app, browser, &as_refs(params)).await;
    assert_eq!(response.status(), 303);
    let to = location(&response);
    query(&to)
        .remove("code")
        .unwrap_or_else(|| panic!("no code in {to}"))
}

/// A token-endpoint style POST: returns status, headers and the JSON body (or null).
pub async fn post_form(
    app: &TestApp,
    path: &str,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> (reqwest::StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = reqwest::Client::new().post(app.url(path)).form(form);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

/// Exchanges a code with client_secret_basic.
pub async fn exchange(
    app: &TestApp,
    secret: &str,
    code: &str,
    verifier: &str,
) -> (reqwest::StatusCode, Value) {
    let (status, _, body) = post_form(
        app,
        "/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", PVE_REDIRECT),
            ("code_verifier", verifier),
        ],
        Some(("proxmox", secret)),
    )
    .await;
    (status, body)
}

/// Userinfo with a bearer token: status and body.
pub async fn userinfo(app: &TestApp, access_token: &str) -> (reqwest::StatusCode, Value) {
    let response = reqwest::Client::new()
        .get(app.url("/userinfo"))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The CSRF token a page's forms carry.
pub fn csrf_token(page: &str) -> String {
    page.split("name=\"csrf_token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a form with a CSRF token")
        .to_string()
}

/// The status of `browser`'s request for /account: 200 signed in, 303 to /login if not.
pub async fn account_status(app: &TestApp, browser: &reqwest::Client) -> u16 {
    let response = browser.get(app.url("/account")).send().await.unwrap();
    response.status().as_u16()
}

/// `browser`'s account page.
pub async fn account_page(app: &TestApp, browser: &reqwest::Client) -> String {
    let response = browser.get(app.url("/account")).send().await.unwrap();
    response.text().await.unwrap()
}

/// The CSRF token of the signed-in `browser`'s account page.
pub async fn account_csrf(app: &TestApp, browser: &reqwest::Client) -> String {
    csrf_token(&account_page(app, browser).await)
}

/// The keys the JWKS publishes now.
pub async fn jwks(app: &TestApp) -> Vec<Value> {
    let jwks: Value = reqwest::get(app.url("/.well-known/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    jwks["keys"].as_array().unwrap().clone()
}

/// `latchkey serve --config FILE` against `dir`, stopped at once: its exit and stderr.
pub fn start_serve(dir: &std::path::Path, config: &std::path::Path) -> (bool, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .arg("--data-dir")
        .arg(dir)
        .arg("--config")
        .arg(config)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            return (status.success(), stderr);
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    (true, String::new())
}

/// A temporary path as the text a command line gets.
pub fn path_text(path: &std::path::Path) -> String {
    path.to_str().expect("a UTF-8 temporary path").to_string()
}
