//! Full sign-in flows against the release binary: authorize with a signed-in session →
//! token (client_secret_basic, PKCE) → userinfo. Reports flows/s and latency percentiles at
//! 1, 8 and 32 concurrent clients, and the server's memory idle and under load.
//!
//! Run with `cargo bench --bench flows`. Every loop is bounded by a count and a time limit;
//! all traffic goes to 127.0.0.1.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::cookie::Jar;
use sha2::{Digest, Sha256};

const REDIRECT: &str = "https://pve.example.com:8006";
const LEVELS: &[usize] = &[1, 8, 32];
const FLOWS_PER_LEVEL: usize = 3000;
const TIME_PER_LEVEL: Duration = Duration::from_secs(15);

struct Server {
    child: Child,
    issuer: String,
    data_dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start() -> Server {
        let data_dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let issuer = format!("http://127.0.0.1:{port}");
        let child = Command::new(env!("CARGO_BIN_EXE_latchkey"))
            .arg("--data-dir")
            .arg(data_dir.path())
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--issuer",
                &issuer,
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start latchkey serve");
        let server = Server {
            child,
            issuer,
            data_dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_latchkey"))
            .arg("--data-dir")
            .arg(self.data_dir.path())
            .args(args)
            .env("LATCHKEY_ISSUER", &self.issuer)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Resident memory of the server process, in MiB.
    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }
}

struct Client {
    http: reqwest::Client,
    issuer: String,
    secret: String,
}

/// Per-step latencies of one flow, in microseconds.
struct Timing {
    authorize: u128,
    token: u128,
    userinfo: u128,
}

impl Client {
    async fn flow(&self) -> Timing {
        let verifier = format!("{:0>64}", rand_hex());
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(Sha256::digest(verifier.as_bytes()));
        let start = Instant::now();
        let authorize = self
            .http
            .get(format!("{}/authorize", self.issuer))
            .query(&[
                ("response_type", "code"),
                ("client_id", "proxmox"),
                ("redirect_uri", REDIRECT),
                ("scope", "openid email profile groups"),
                ("state", r#"{"csrf_token":"bench","realm":"latchkey"}"#),
                ("nonce", "bench-nonce"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
                ("display", "page"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(authorize.status(), 303);
        let location = authorize.headers()["location"]
            .to_str()
            .unwrap()
            .to_string();
        let code = url::Url::parse(&location)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned();
        let t_authorize = start.elapsed().as_micros();

        let start = Instant::now();
        let token: serde_json::Value = self
            .http
            .post(format!("{}/token", self.issuer))
            .basic_auth("proxmox", Some(&self.secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &verifier),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let access = token["access_token"]
            .as_str()
            .expect("access token")
            .to_string();
        let t_token = start.elapsed().as_micros();

        let start = Instant::now();
        let info = self
            .http
            .get(format!("{}/userinfo", self.issuer))
            .bearer_auth(access)
            .send()
            .await
            .unwrap();
        assert_eq!(info.status(), 200);
        let _ = info.bytes().await.unwrap();
        Timing {
            authorize: t_authorize,
            token: t_token,
            userinfo: start.elapsed().as_micros(),
        }
    }
}

fn rand_hex() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn percentile(sorted: &[u128], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index] as f64 / 1000.0
}

/// Signs `user` in once (login links are rate-limited per address, like real sign-ins) and
/// returns the cookie jar holding the session, for every client to share.
async fn signed_in_jar(server: &Server, user: &str) -> Arc<Jar> {
    let jar = Arc::new(Jar::default());
    let http = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let link = server.cli(&["login-link", user]);
    let link = link.lines().last().unwrap();
    // The link's page names whom it signs in; only its button (a POST with the page's CSRF
    // token) spends it.
    let page = http.get(link).send().await.unwrap().text().await.unwrap();
    let csrf = page
        .split("name=\"csrf_token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the link's page carries a CSRF token");
    let signed_in = http
        .post(link)
        .header("origin", &server.issuer)
        .form(&[("csrf_token", csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    jar
}

/// A client with its own connection pool, signed in through the shared `jar`.
fn client(server: &Server, secret: &str, jar: &Arc<Jar>) -> Client {
    let http = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Client {
        http,
        issuer: server.issuer.clone(),
        secret: secret.to_string(),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let server = Server::start();
    server.cli(&[
        "user",
        "add",
        "alice",
        "--email",
        "alice@example.com",
        "--name",
        "Alice L",
    ]);
    server.cli(&["group", "add", "pve-admins"]);
    server.cli(&["group", "add-member", "pve-admins", "alice"]);
    let out = server.cli(&[
        "client",
        "add",
        "proxmox",
        "--redirect-uri",
        REDIRECT,
        "--allowed-group",
        "pve-admins",
        "--json",
    ]);
    let secret = serde_json::from_str::<serde_json::Value>(out.trim()).unwrap()["client_secret"]
        .as_str()
        .unwrap()
        .to_string();
    let jar = signed_in_jar(&server, "alice").await;
    // One warm-up flow pays argon2 once; the server then caches the verified secret.
    client(&server, &secret, &jar).flow().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = server.rss_mib();
    println!("latchkey full-flow benchmark (release build, 127.0.0.1, 2 cores)");
    println!("server memory idle: {idle:.1} MiB RSS");
    println!(
        "{:>11} {:>7} {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9} (p50 ms)",
        "concurrency", "flows", "flows/s", "p50 ms", "p99 ms", "authorize", "token", "userinfo"
    );
    let mut peak: f64 = idle;
    for &level in LEVELS {
        let mut clients = Vec::new();
        for _ in 0..level {
            clients.push(client(&server, &secret, &jar));
        }
        let started = Instant::now();
        let deadline = started + TIME_PER_LEVEL;
        let per_client = FLOWS_PER_LEVEL.div_ceil(level);
        let tasks: Vec<_> = clients
            .into_iter()
            .map(|client| {
                tokio::spawn(async move {
                    let mut timings = Vec::new();
                    for _ in 0..per_client {
                        if Instant::now() >= deadline {
                            break;
                        }
                        let start = Instant::now();
                        let timing = client.flow().await;
                        timings.push((start.elapsed().as_micros(), timing));
                    }
                    timings
                })
            })
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.unwrap());
        }
        let elapsed = started.elapsed().as_secs_f64();
        peak = peak.max(server.rss_mib());
        let mut total: Vec<u128> = all.iter().map(|(t, _)| *t).collect();
        let mut authorize: Vec<u128> = all.iter().map(|(_, t)| t.authorize).collect();
        let mut token: Vec<u128> = all.iter().map(|(_, t)| t.token).collect();
        let mut userinfo: Vec<u128> = all.iter().map(|(_, t)| t.userinfo).collect();
        for list in [&mut total, &mut authorize, &mut token, &mut userinfo] {
            list.sort_unstable();
        }
        println!(
            "{:>11} {:>7} {:>9.0} {:>9.2} {:>9.2} | {:>9.2} {:>9.2} {:>9.2}",
            level,
            total.len(),
            total.len() as f64 / elapsed,
            percentile(&total, 0.50),
            percentile(&total, 0.99),
            percentile(&authorize, 0.50),
            percentile(&token, 0.50),
            percentile(&userinfo, 0.50),
        );
    }
    println!("server memory after load: {peak:.1} MiB RSS (highest after any level)");
}
