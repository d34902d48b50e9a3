//! The connection to PostgreSQL: verified TLS, the password apart from the URL, and one-line
//! errors when it cannot be made. These talk to the throwaway cluster whichever backend the
//! rest of the run uses.

use std::process::{Command, Output};

use latchkey::store::{Database, Store};

use crate::postgres::fresh_database;

fn latchkey(database_url: &str, env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--database-url", database_url, "user", "list"])
        .env_remove("LATCHKEY_CONFIG")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn one_line_error(out: &Output) -> String {
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr).trim_end().to_string();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr
}

/// The URL with its password taken out, and the password.
fn without_password(url: &str) -> (String, String) {
    let mut parsed = url::Url::parse(url).unwrap();
    let password = parsed.password().unwrap().to_string();
    parsed.set_password(None).unwrap();
    (parsed.to_string(), password)
}

#[test]
fn the_connection_is_tls_checked_against_the_named_ca() {
    let url = fresh_database();
    assert!(url.contains("sslmode=verify-full&sslrootcert="), "{url}");
    let Ok(Database::Postgres(target)) = postgres_database(&url) else {
        panic!("a PostgreSQL URL");
    };
    let store = Store::connect(&Database::Postgres(target)).unwrap();
    let tls: bool = store
        .read(|db| {
            db.value(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                latchkey::args![],
            )
        })
        .unwrap()
        .unwrap();
    assert!(tls);
}

fn postgres_database(url: &str) -> Result<Database, latchkey::config::ConfigError> {
    let overrides = latchkey::config::Overrides {
        database_url: Some(url.to_string()),
        ..Default::default()
    };
    latchkey::config::Settings::resolve(overrides).map(|settings| settings.database)
}

#[test]
fn a_certificate_from_another_ca_is_refused_in_one_line() {
    let url = fresh_database();
    let other = tempfile::NamedTempFile::new().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    std::fs::write(other.path(), params.self_signed(&key).unwrap().pem()).unwrap();
    let (before, _) = url.split_once("sslrootcert=").unwrap();
    let url = format!("{before}sslrootcert={}", other.path().display());
    let stderr = one_line_error(&latchkey(&url, &[]));
    assert!(
        stderr.contains("cannot connect to the PostgreSQL database"),
        "{stderr}"
    );
    assert!(stderr.contains("certificate"), "{stderr}");
    let (_, password) = without_password(&url);
    assert!(
        !stderr.contains(&password),
        "the password stays out of messages"
    );
}

#[test]
fn the_password_may_come_from_a_file() {
    let (url, password) = without_password(&fresh_database());
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), format!("{password}\n")).unwrap();
    let path = file.path().to_str().unwrap();
    let out = latchkey(&url, &[("LATCHKEY_DATABASE_PASSWORD_FILE", path)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = one_line_error(&latchkey(&url, &[("LATCHKEY_DATABASE_PASSWORD", "wrong")]));
    assert!(
        stderr.contains("password authentication failed"),
        "{stderr}"
    );
}

/// A balancer's health check must not queue behind a busy pool, or under load it takes every
/// instance out at once.
#[test]
fn the_health_check_answers_while_every_pooled_connection_is_busy() {
    let Ok(database) = postgres_database(&fresh_database()) else {
        panic!("a PostgreSQL URL");
    };
    let store = Store::connect(&database).unwrap();
    let size = latchkey::store::POOL_SIZE as usize;
    let gate = std::sync::Arc::new(std::sync::Barrier::new(size + 1));
    let (held, holding) = std::sync::mpsc::channel();
    let busy: Vec<_> = (0..size)
        .map(|_| {
            let (store, gate, held) = (store.clone(), gate.clone(), held.clone());
            std::thread::spawn(move || {
                store
                    .read(|_| {
                        held.send(()).unwrap();
                        gate.wait();
                        Ok::<_, latchkey::store::StoreError>(())
                    })
                    .unwrap();
            })
        })
        .collect();
    for _ in 0..size {
        holding.recv().unwrap();
    }
    let answered = store.ping();
    gate.wait();
    busy.into_iter().for_each(|thread| thread.join().unwrap());
    answered.unwrap();
}

/// A request that waits for PostgreSQL waits off the event loop. Here every `/token` request
/// of a burst is stuck behind a lock on the clients table; the server still answers what
/// needs no database, and every stuck request is answered once the lock goes.
#[tokio::test]
async fn token_requests_waiting_for_postgresql_hold_up_no_other_request() {
    let app = crate::helpers::spawn_app_on(fresh_database());
    app.add_public_client("app", "https://app.example.com/cb");
    let (locked, release) = hold_lock(app.store().clone(), "LOCK TABLE clients");
    locked.recv().unwrap();
    let verifier = "v".repeat(43);
    let burst: Vec<_> = (0..16)
        .map(|_| {
            // A client of its own for each: a connection of its own.
            let request = reqwest::Client::new().post(app.url("/token")).form(&[
                ("grant_type", "authorization_code"),
                ("code", "no-such-code"),
                ("client_id", "app"),
                ("redirect_uri", "https://app.example.com/cb"),
                ("code_verifier", verifier.as_str()),
            ]);
            tokio::spawn(request.send())
        })
        .collect();
    wait_for_lock_waiters(&app, stuck_at_once()).await;
    let discovery = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .unwrap()
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await;
    release.send(()).unwrap();
    assert_eq!(
        discovery
            .expect("an answer while the lock is held")
            .status(),
        200
    );
    for request in burst {
        let answer = request.await.unwrap().unwrap();
        assert_eq!(answer.status(), 400);
        let body: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(body["error"], "invalid_grant", "{body}");
    }
}

/// How many `/token` requests of the burst wait at once for the lock: one per server worker
/// before the fix (each stalls its worker), more after it; as many as the workers suffice.
fn stuck_at_once() -> i64 {
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    workers.min(latchkey::store::POOL_SIZE as usize) as i64
}

/// Takes `lock` in a transaction on a thread of its own, held until told to let go.
fn hold_lock(
    store: Store,
    lock: &'static str,
) -> (std::sync::mpsc::Receiver<()>, std::sync::mpsc::Sender<()>) {
    let (locked, is_locked) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        store
            .read(|db| {
                db.batch(&format!("BEGIN; {lock} IN ACCESS EXCLUSIVE MODE"))?;
                locked.send(()).unwrap();
                let _ = released.recv();
                db.batch("ROLLBACK")
            })
            .unwrap();
    });
    (is_locked, release)
}

/// Waits (a bounded number of times) until `count` sessions wait for a lock.
async fn wait_for_lock_waiters(app: &crate::helpers::TestApp, count: i64) {
    let sql = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'";
    for _ in 0..2000 {
        if app.value::<i64>(sql) >= count {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("fewer than {count} requests ever waited for the lock");
}

/// When PostgreSQL closes every connection (a restart, a failover, an administrator), the
/// server makes new ones as it needs them: no restart, and sign-ins go on.
#[tokio::test]
async fn the_server_serves_again_once_the_database_has_closed_its_connections() {
    let url = fresh_database();
    // The server's connections carry a name of their own, so that only they are closed.
    let app = crate::helpers::spawn_app_on(format!("{url}&application_name=server"));
    let secret = app.setup_proxmox();
    let browser = app.signed_in_browser("alice").await;
    crate::helpers::proxmox_sign_in(&app, &browser, "proxmox", &secret, &[])
        .await
        .unwrap();
    let admin = Store::connect(&postgres_database(&url).unwrap()).unwrap();
    let servers = "pg_stat_activity WHERE application_name = 'server'";
    let pids: String = value_of(
        &admin,
        &format!("SELECT string_agg(pid::text, ',') FROM {servers}"),
    );
    let closed: i64 = value_of(
        &admin,
        &format!("SELECT count(pg_terminate_backend(pid)) FROM {servers} AND pid IN ({pids})"),
    );
    assert!(closed > 0);
    let left = format!("SELECT count(*) FROM pg_stat_activity WHERE pid IN ({pids})");
    for _ in 0..2000 {
        if value_of::<i64>(&admin, &left) == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let health = reqwest::Client::new();
    let mut answered = false;
    for _ in 0..2000 {
        let status = health
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status();
        if status == 200 {
            answered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(answered, "the health check never answered again");
    let browser = app.signed_in_browser("alice").await;
    crate::helpers::proxmox_sign_in(&app, &browser, "proxmox", &secret, &[])
        .await
        .unwrap();
}

fn value_of<T: latchkey::store::db::Column>(store: &Store, sql: &str) -> T {
    store
        .read(|db| db.value(sql, latchkey::args![]))
        .unwrap()
        .expect("a row")
}

/// Instances started together on an empty database set its schema up once between them, and
/// a database a newer release has migrated is refused, in one line.
#[test]
fn instances_starting_together_migrate_once_and_a_newer_schema_is_refused() {
    let url = fresh_database();
    let database = postgres_database(&url).unwrap();
    let gate = std::sync::Arc::new(std::sync::Barrier::new(4));
    let starting: Vec<_> = (0..4)
        .map(|_| {
            let (database, gate) = (database.clone(), gate.clone());
            std::thread::spawn(move || {
                gate.wait();
                Store::connect(&database).map(drop)
            })
        })
        .collect();
    for start in starting {
        start.join().unwrap().unwrap();
    }
    let store = Store::connect(&database).unwrap();
    let rows: i64 = value_of(&store, "SELECT count(*) FROM latchkey_schema");
    assert_eq!(rows, 1);
    let version: i64 = value_of(&store, "SELECT version FROM latchkey_schema");
    assert!(version > 0);
    store
        .write(|db| {
            db.execute(
                "UPDATE latchkey_schema SET version = version + 1",
                latchkey::args![],
            )
        })
        .unwrap();
    let stderr = one_line_error(&latchkey(&url, &[]));
    assert!(stderr.contains("newer latchkey"), "{stderr}");
}
