//! Full sign-in flows against the release binary: authorize with a signed-in session →
//! token (client_secret_basic, PKCE) → userinfo. Reports flows/s, latency percentiles and the
//! server's CPU per flow (from `/proc/<pid>/stat`) at 1, 8 and 32 concurrent clients; then
//! userinfo alone and a refresh grant alone at 8 clients; the server's memory idle and under
//! load; and the time from launching `serve` on the used database, killed, to its first
//! `/healthz` 200.
//!
//! `cargo bench --bench flows` runs it all on an empty database, then on one it first fills
//! with 100,000 people, 10,000 clients, 1,000,000 live access tokens and 1,000,000 audit rows,
//! and prints one table of both. Then the full flows again on PostgreSQL (a throwaway cluster
//! with its default durability: fsync and synchronous commits on), with one instance and with
//! two instances on the same database, the clients alternating between them; there the CPU
//! is that of the instances and of every PostgreSQL process together.
//! `LATCHKEY_BENCH_DATABASE=empty` (or `seeded`, or `postgres`) runs one. Every loop is bounded
//! by a count and a time limit; all traffic goes to 127.0.0.1.

use std::future::Future;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::cookie::Jar;
use sha2::{Digest, Sha256};

const REDIRECT: &str = "https://pve.example.com:8006";
const SCOPE: &str = "openid email profile groups";
const LEVELS: &[usize] = &[1, 8, 32];
const FLOWS_PER_LEVEL: usize = 3000;
const TIME_PER_LEVEL: Duration = Duration::from_secs(15);
/// userinfo alone and a refresh grant alone run at this many clients.
const SINGLE_STEP_CLIENTS: usize = 8;
const USERINFO_REQUESTS: usize = 40_000;
const REFRESH_REQUESTS: usize = 8000;
const TIME_PER_SINGLE_STEP: Duration = Duration::from_secs(10);

const SEED_PEOPLE: usize = 100_000;
const SEED_CLIENTS: usize = 10_000;
const SEED_TOKENS: usize = 1_000_000;
const SEED_AUDIT_ROWS: usize = 1_000_000;

#[path = "../tests/api/postgres.rs"]
mod postgres;

struct Server {
    child: Option<Child>,
    port: u16,
    issuer: String,
    /// Where this instance answers (the issuer's host and port for the first instance).
    base: String,
    data_dir: tempfile::TempDir,
    database_url: Option<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Server {
    /// A data directory and a free port, on `database_url` when given (else SQLite in the
    /// data directory); `serve` is not running yet.
    fn new(database_url: Option<String>) -> Server {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        Server {
            child: None,
            port,
            issuer: base.clone(),
            base,
            data_dir: tempfile::tempdir().unwrap(),
            database_url,
        }
    }

    /// A second instance of `first`: the same issuer and database, its own port.
    fn beside(first: &Server) -> Server {
        let mut second = Server::new(first.database_url.clone());
        second.issuer = first.issuer.clone();
        second
    }

    /// `latchkey` with this server's data directory and database.
    fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_latchkey"));
        command.arg("--data-dir").arg(self.data_dir.path());
        if let Some(url) = &self.database_url {
            command.args(["--database-url", url]);
        }
        command
    }

    /// Launches `serve` and returns the time from launch to its first `/healthz` 200.
    fn start(&mut self) -> Duration {
        let launched = Instant::now();
        let child = self
            .command()
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{}", self.port),
                "--issuer",
                &self.issuer,
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start latchkey serve");
        self.child = Some(child);
        let deadline = launched + Duration::from_secs(10);
        while !healthz_ok(self.port) {
            assert!(Instant::now() < deadline, "server did not start");
            std::thread::sleep(Duration::from_millis(1));
        }
        launched.elapsed()
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("serve is running").id()
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = self
            .command()
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
        self.status_mib("VmRSS:")
    }

    /// Forgets the highest RSS so far: from now on `peak_rss_mib` is the peak under load.
    fn reset_peak_rss(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5").unwrap();
    }

    /// The highest RSS since launch or since `reset_peak_rss`.
    fn peak_rss_mib(&self) -> f64 {
        self.status_mib("VmHWM:")
    }

    fn status_mib(&self, field: &str) -> f64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// CPU a process has used so far (user + system), in seconds, and its command name; `None`
/// once it has gone.
fn process_cpu(pid: u32) -> Option<(String, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after it are plain. utime and
    // stime are fields 14 and 15, that is the 12th and 13th after the name.
    let name = stat[stat.find('(')? + 1..stat.rfind(')')?].to_string();
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().ok()? + fields[12].parse::<u64>().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Some((name, ticks as f64 / per_second as f64))
}

/// The CPU a measurement counts: the serving instances', and on PostgreSQL every `postgres`
/// process's too (the database works for the flows as much as the instances do).
struct Meter {
    pids: Vec<u32>,
    postgres: bool,
}

impl Meter {
    fn of(servers: &[&Server]) -> Meter {
        Meter {
            pids: servers.iter().map(|server| server.pid()).collect(),
            postgres: servers[0].database_url.is_some(),
        }
    }

    /// CPU used so far by what this meter counts, in seconds.
    fn cpu_seconds(&self) -> f64 {
        let mut total: f64 = self
            .pids
            .iter()
            .filter_map(|&pid| process_cpu(pid))
            .map(|(_, cpu)| cpu)
            .sum();
        if self.postgres {
            total += all_pids()
                .filter_map(process_cpu)
                .filter(|(name, _)| name == "postgres")
                .map(|(_, cpu)| cpu)
                .sum::<f64>();
        }
        total
    }
}

fn all_pids() -> impl Iterator<Item = u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
}

/// One `GET /healthz` over a fresh connection: did it answer 200?
fn healthz_ok(port: u16) -> bool {
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request =
        format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.ends_with(b" 200")
}

/// The id of seeded person `i`: a version 4 UUID in its canonical text, as real ids are.
fn seed_user_id(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012x}")
}

/// Fills the data directory's database (already migrated) in one transaction: people, clients,
/// one grant per person, live access tokens spread over those grants, and audit rows.
fn seed(data_dir: &Path) {
    let started = Instant::now();
    let mut db = rusqlite::Connection::open(data_dir.join("latchkey.db")).unwrap();
    db.execute_batch("PRAGMA synchronous=OFF; PRAGMA cache_size=-262144;")
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let tx = db.transaction().unwrap();
    {
        let mut user = tx
            .prepare(
                "INSERT INTO users (id, username, display_name, email, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            )
            .unwrap();
        for i in 0..SEED_PEOPLE {
            let name = format!("seed{i}");
            user.execute(rusqlite::params![
                seed_user_id(i),
                name,
                format!("Seed Person {i}"),
                format!("{name}@example.com"),
                now
            ])
            .unwrap();
        }
        let mut client = tx
            .prepare(
                "INSERT INTO clients (client_id, name, public, redirect_uris, created_at, updated_at)
                 VALUES (?1, ?2, 1, ?3, ?4, ?4)",
            )
            .unwrap();
        for i in 0..SEED_CLIENTS {
            client
                .execute(rusqlite::params![
                    format!("seed-client-{i}"),
                    format!("Seed app {i}"),
                    format!(r#"["https://app{i}.example.com/callback"]"#),
                    now
                ])
                .unwrap();
        }
        let mut grant = tx
            .prepare(
                "INSERT INTO grants (id, client_id, user_id, scope, auth_time, amr, created_at)
                 VALUES (?1, ?2, ?3, 'openid email', ?4, '[\"hwk\"]', ?4)",
            )
            .unwrap();
        for i in 0..SEED_PEOPLE {
            grant
                .execute(rusqlite::params![
                    format!("seed-grant-{i}"),
                    format!("seed-client-{}", i % SEED_CLIENTS),
                    seed_user_id(i),
                    now
                ])
                .unwrap();
        }
        let mut token = tx
            .prepare(
                "INSERT INTO access_tokens (token_hash, grant_id, scope, created_at, expires_at)
                 VALUES (?1, ?2, 'openid email', ?3, ?4)",
            )
            .unwrap();
        for i in 0..SEED_TOKENS {
            let hash: String = Sha256::digest(i.to_le_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            token
                .execute(rusqlite::params![
                    hash,
                    format!("seed-grant-{}", i % SEED_PEOPLE),
                    now,
                    now + 30 * 86_400
                ])
                .unwrap();
        }
        let mut audit = tx
            .prepare(
                "INSERT INTO audit_events (at, event, user_id, username, client_id, ip)
                 VALUES (?1, 'token.issued', ?2, ?3, ?4, '192.0.2.7')",
            )
            .unwrap();
        for i in 0..SEED_AUDIT_ROWS {
            let person = i % SEED_PEOPLE;
            audit
                .execute(rusqlite::params![
                    now - (SEED_AUDIT_ROWS - i) as i64,
                    seed_user_id(person),
                    format!("seed{person}"),
                    format!("seed-client-{}", person % SEED_CLIENTS)
                ])
                .unwrap();
        }
    }
    tx.commit().unwrap();
    println!(
        "seeded {SEED_PEOPLE} people, {SEED_CLIENTS} clients, {SEED_TOKENS} live access tokens \
         and {SEED_AUDIT_ROWS} audit rows in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    jar: Arc<Jar>,
    /// The instance this client talks to.
    base: String,
    secret: String,
}

/// Per-step latencies of one flow, in microseconds.
struct Timing {
    authorize: u128,
    token: u128,
    userinfo: u128,
}

impl Client {
    /// Authorize (signed in) and exchange the code: the token endpoint's JSON answer.
    async fn tokens(&self, scope: &str) -> (serde_json::Value, u128, u128) {
        let verifier = format!("{:0>64}", rand_hex());
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(Sha256::digest(verifier.as_bytes()));
        let start = Instant::now();
        let authorize = self
            .http
            .get(format!("{}/authorize", self.base))
            .query(&[
                ("response_type", "code"),
                ("client_id", "proxmox"),
                ("redirect_uri", REDIRECT),
                ("scope", scope),
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
        let token = self
            .token_request(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &verifier),
            ])
            .await;
        (token, t_authorize, start.elapsed().as_micros())
    }

    async fn token_request(&self, form: &[(&str, &str)]) -> serde_json::Value {
        let response = self
            .http
            .post(format!("{}/token", self.base))
            .basic_auth("proxmox", Some(&self.secret))
            .form(form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    async fn userinfo(&self, access: &str) {
        let info = self
            .http
            .get(format!("{}/userinfo", self.base))
            .bearer_auth(access)
            .send()
            .await
            .unwrap();
        assert_eq!(info.status(), 200);
        let _ = info.bytes().await.unwrap();
    }

    async fn flow(&self) -> Timing {
        let (token, authorize, t_token) = self.tokens(SCOPE).await;
        let start = Instant::now();
        self.userinfo(token["access_token"].as_str().expect("access token"))
            .await;
        Timing {
            authorize,
            token: t_token,
            userinfo: start.elapsed().as_micros(),
        }
    }

    /// Spends `refresh` and returns the next refresh token.
    async fn refresh(&self, refresh: &str) -> String {
        let token = self
            .token_request(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
            .await;
        token["refresh_token"]
            .as_str()
            .expect("a refresh grant returns the next refresh token")
            .to_string()
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
    let http = http_client(&jar);
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

/// An HTTP client with its own connection pool that does not follow redirects.
fn http_client(jar: &Arc<Jar>) -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A client with its own connection pool, signed in through the shared `jar`.
fn client(server: &Server, secret: &str, jar: &Arc<Jar>) -> Client {
    Client {
        http: http_client(jar),
        jar: jar.clone(),
        base: server.base.clone(),
        secret: secret.to_string(),
    }
}

/// What one bounded run measured: each step's wall time (µs) with its sample, the run's wall
/// time, and the server CPU it cost.
struct Run<T> {
    samples: Vec<(u128, T)>,
    elapsed: f64,
    cpu_seconds: f64,
}

impl<T> Run<T> {
    fn rate(&self) -> f64 {
        self.samples.len() as f64 / self.elapsed
    }

    /// Server CPU per step, in ms.
    fn cpu_ms_each(&self) -> f64 {
        self.cpu_seconds * 1000.0 / self.samples.len().max(1) as f64
    }

    fn sorted_totals(&self) -> Vec<u128> {
        let mut totals: Vec<u128> = self.samples.iter().map(|(t, _)| *t).collect();
        totals.sort_unstable();
        totals
    }
}

/// Runs `step` over every state concurrently (one task each), each task at most `count /
/// states` times and until `limit` has passed. `step` takes its task's state and hands it back
/// (a refresh token chain moves along) with a sample.
async fn drive<S, T, F, Fut>(
    meter: &Meter,
    states: Vec<S>,
    count: usize,
    limit: Duration,
    step: F,
) -> Run<T>
where
    S: Send + 'static,
    T: Send + 'static,
    F: Fn(S) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = (S, T)> + Send,
{
    let cpu_before = meter.cpu_seconds();
    let started = Instant::now();
    let deadline = started + limit;
    let per_task = count.div_ceil(states.len());
    let tasks: Vec<_> = states
        .into_iter()
        .map(|state| {
            let step = step.clone();
            tokio::spawn(async move {
                let mut state = state;
                let mut samples = Vec::new();
                for _ in 0..per_task {
                    if Instant::now() >= deadline {
                        break;
                    }
                    let start = Instant::now();
                    let (next, sample) = step(state).await;
                    state = next;
                    samples.push((start.elapsed().as_micros(), sample));
                }
                samples
            })
        })
        .collect();
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    Run {
        samples,
        elapsed,
        cpu_seconds: meter.cpu_seconds() - cpu_before,
    }
}

/// The server's memory after the warm-up: all resident pages, and those only it has (its heap
/// and stacks; the rest are pages of the binary and libraries, shared and reclaimable).
#[derive(Clone, Copy)]
struct Idle {
    rss: f64,
    private: f64,
}

/// One line of the closing table.
struct Row {
    database: &'static str,
    step: &'static str,
    clients: usize,
    /// Flows, requests or (for the start) nothing per second.
    rate: Option<f64>,
    p50_ms: f64,
    p99_ms: Option<f64>,
    cpu_ms: Option<f64>,
    idle: Idle,
    /// The server's highest RSS (VmHWM) from the end of the warm-up to the end of this step;
    /// for the start, from launch to the first answer.
    rss_peak: f64,
}

impl Row {
    fn of_run<T>(
        database: &'static str,
        step: &'static str,
        clients: usize,
        run: &Run<T>,
        server: &Server,
        idle: Idle,
    ) -> Row {
        let totals = run.sorted_totals();
        Row {
            database,
            step,
            clients,
            rate: Some(run.rate()),
            p50_ms: percentile(&totals, 0.50),
            p99_ms: Some(percentile(&totals, 0.99)),
            cpu_ms: Some(run.cpu_ms_each()),
            idle,
            rss_peak: server.peak_rss_mib(),
        }
    }
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "{:<8} {:<22} {:>7} {:>9} {:>8} {:>8} {:>11} {:>12} {:>12} {:>12}",
        "database",
        "step",
        "clients",
        "per s",
        "p50 ms",
        "p99 ms",
        "CPU ms each",
        "RSS idle MiB",
        "private MiB",
        "RSS peak MiB"
    );
    let or_dash = |value: Option<f64>, decimals: usize| {
        value.map_or("-".to_string(), |v| format!("{v:.decimals$}"))
    };
    for row in rows {
        println!(
            "{:<8} {:<22} {:>7} {:>9} {:>8.2} {:>8} {:>11} {:>12.1} {:>12.1} {:>12.1}",
            row.database,
            row.step,
            if row.clients == 0 {
                "-".to_string()
            } else {
                row.clients.to_string()
            },
            or_dash(row.rate, 0),
            row.p50_ms,
            or_dash(row.p99_ms, 2),
            or_dash(row.cpu_ms, 3),
            row.idle.rss,
            row.idle.private,
            row.rss_peak,
        );
    }
}

/// The full flows at each of `levels`, the clients taking `servers` in turn; prints each
/// level's per-step medians as it goes.
async fn full_flows(
    database: &'static str,
    levels: &[usize],
    servers: &[&Server],
    proxmox: &Client,
    idle: Idle,
) -> Vec<Row> {
    let mut rows = Vec::new();
    let meter = Meter::of(servers);
    for &level in levels {
        let clients = (0..level)
            .map(|i| Client {
                base: servers[i % servers.len()].base.clone(),
                ..fresh(proxmox)
            })
            .collect();
        let run = drive(
            &meter,
            clients,
            FLOWS_PER_LEVEL,
            TIME_PER_LEVEL,
            |client: Client| async move {
                let timing = client.flow().await;
                (client, timing)
            },
        )
        .await;
        let step = |pick: fn(&Timing) -> u128| {
            let mut list: Vec<u128> = run.samples.iter().map(|(_, t)| pick(t)).collect();
            list.sort_unstable();
            percentile(&list, 0.50)
        };
        println!(
            "{database}, {level} clients: {} flows; p50 per step: authorize {:.2} ms, \
             token {:.2} ms, userinfo {:.2} ms",
            run.samples.len(),
            step(|t| t.authorize),
            step(|t| t.token),
            step(|t| t.userinfo),
        );
        rows.push(Row::of_run(
            database,
            "full flow",
            level,
            &run,
            servers[0],
            idle,
        ));
    }
    rows
}

/// The same client with its own connection pool (same session, same secret).
fn fresh(template: &Client) -> Client {
    Client {
        http: http_client(&template.jar),
        ..template.clone()
    }
}

async fn single_steps(
    database: &'static str,
    server: &Server,
    proxmox: &Client,
    idle: Idle,
) -> Vec<Row> {
    let mut with_access = Vec::new();
    let mut with_refresh = Vec::new();
    for _ in 0..SINGLE_STEP_CLIENTS {
        let client = proxmox.clone();
        let (token, _, _) = client.tokens(&format!("{SCOPE} offline_access")).await;
        let access = token["access_token"].as_str().unwrap().to_string();
        let refresh = token["refresh_token"].as_str().unwrap().to_string();
        with_access.push((fresh(&client), Arc::new(access)));
        with_refresh.push((fresh(&client), refresh));
    }
    let meter = Meter::of(&[server]);
    let userinfo = drive(
        &meter,
        with_access,
        USERINFO_REQUESTS,
        TIME_PER_SINGLE_STEP,
        |(client, access): (Client, Arc<String>)| async move {
            client.userinfo(&access).await;
            ((client, access), ())
        },
    )
    .await;
    let userinfo = Row::of_run(
        database,
        "userinfo alone",
        SINGLE_STEP_CLIENTS,
        &userinfo,
        server,
        idle,
    );
    let refresh = drive(
        &meter,
        with_refresh,
        REFRESH_REQUESTS,
        TIME_PER_SINGLE_STEP,
        |(client, refresh): (Client, String)| async move {
            let next = client.refresh(&refresh).await;
            ((client, next), ())
        },
    )
    .await;
    let refresh = Row::of_run(
        database,
        "refresh grant alone",
        SINGLE_STEP_CLIENTS,
        &refresh,
        server,
        idle,
    );
    vec![userinfo, refresh]
}

/// One person in a group and the Proxmox client admitting it; the client's secret.
fn populate(server: &Server) -> String {
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
    serde_json::from_str::<serde_json::Value>(out.trim()).unwrap()["client_secret"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Signs alice in on `server` and runs one warm-up flow (it pays argon2 once; the server
/// then caches the verified secret); the client, and the server's memory once idle.
async fn warmed_up(server: &Server, secret: &str) -> (Client, Idle) {
    let jar = signed_in_jar(server, "alice").await;
    let proxmox = client(server, secret, &jar);
    proxmox.flow().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = Idle {
        rss: server.rss_mib(),
        private: server.status_mib("RssAnon:"),
    };
    server.reset_peak_rss();
    (proxmox, idle)
}

/// A server on a fresh SQLite database (seeded or not) with one person and the Proxmox
/// client; every step measured on it, and its start after a SIGKILL.
async fn bench(seeded: bool) -> Vec<Row> {
    let database = if seeded { "seeded" } else { "empty" };
    let mut server = Server::new(None);
    let secret = populate(&server);
    if seeded {
        seed(server.data_dir.path());
    }
    server.start();
    let (proxmox, idle) = warmed_up(&server, &secret).await;
    let mut rows = full_flows(database, LEVELS, &[&server], &proxmox, idle).await;
    rows.extend(single_steps(database, &server, &proxmox, idle).await);
    // Killed, not stopped: the start replays whatever log the load left.
    server.stop();
    let start = server.start();
    rows.push(Row {
        database,
        step: "start after SIGKILL",
        clients: 0,
        rate: None,
        p50_ms: start.as_secs_f64() * 1000.0,
        p99_ms: None,
        cpu_ms: None,
        idle,
        rss_peak: server.peak_rss_mib(),
    });
    rows
}

/// The full flows on an empty PostgreSQL database: one instance, then two on the same
/// database with the clients taking them in turn.
async fn bench_postgres() -> Vec<Row> {
    let url = postgres::fresh_database();
    durable(&url);
    let mut first = Server::new(Some(url));
    let secret = populate(&first);
    first.start();
    let (proxmox, idle) = warmed_up(&first, &secret).await;
    let mut rows = full_flows("postgres", LEVELS, &[&first], &proxmox, idle).await;
    let mut second = Server::beside(&first);
    second.start();
    rows.extend(
        full_flows(
            "pg, 2 inst",
            &LEVELS[1..],
            &[&first, &second],
            &proxmox,
            idle,
        )
        .await,
    );
    rows
}

/// Gives the throwaway cluster PostgreSQL's default durability back (the test suite turns it
/// off): every commit is synced, as SQLite's are here.
fn durable(url: &str) {
    for setting in [
        "ALTER SYSTEM SET fsync = on",
        "ALTER SYSTEM SET synchronous_commit = on",
        "ALTER SYSTEM SET full_page_writes = on",
        "SELECT pg_reload_conf()",
    ] {
        let out = Command::new("psql")
            .args(["--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1"])
            .arg(format!("--dbname={url}"))
            .arg(format!("--command={setting}"))
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "{setting}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (sqlite, postgres): (&[bool], bool) =
        match std::env::var("LATCHKEY_BENCH_DATABASE").as_deref() {
            Ok("empty") => (&[false], false),
            Ok("seeded") => (&[true], false),
            Ok("postgres") => (&[], true),
            Ok("all") | Err(_) => (&[false, true], true),
            Ok(other) => {
                panic!("LATCHKEY_BENCH_DATABASE is empty, seeded, postgres or all, not {other}")
            }
        };
    println!("latchkey benchmark: release build, 127.0.0.1, 2 cores shared with this load");
    let mut rows = Vec::new();
    for &seeded in sqlite {
        rows.extend(bench(seeded).await);
    }
    if postgres {
        rows.extend(bench_postgres().await);
    }
    print_table(&rows);
    println!(
        "full flow: authorize (signed in) → token (client_secret_basic, PKCE) → userinfo; \
         CPU is the server's user + system time per flow or request (on PostgreSQL, the \
         instances' and the database's together); the start is from launch to the first \
         /healthz 200"
    );
}
