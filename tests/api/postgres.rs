//! A throwaway PostgreSQL cluster for the tests that run against PostgreSQL. The first call
//! starts one for this test binary with `initdb` and `pg_ctl` from Debian's `postgresql`
//! package: in a temporary directory, on a free loopback port, with no Unix socket, with
//! `max_connections = 1000` (every test server keeps a small pool open until the process
//! ends) and without fsync (the suite proves behaviour, not durability). It speaks TLS with
//! a certificate from a CA made for it, and every URL asks for that CA to be checked
//! (`sslmode=verify-full&sslrootcert=…`), so the suite runs over verified TLS. Each
//! `fresh_database` is a new, empty database on it.
//!
//! PostgreSQL refuses to run as root. When the tests run as root (as in CI), the cluster
//! belongs to the unprivileged user `nobody`, and `initdb` and `pg_ctl` run as that user
//! through `runuser`; otherwise they run as whoever runs the tests.
//!
//! A reaper process stops the cluster (`pg_ctl stop -m immediate`) and removes its directory
//! when the test process ends: it waits on a pipe that only this process holds open, so it
//! wakes up however the process ends, even killed. At a normal exit (libtest ends with
//! `std::process::exit`) an `atexit` hook closes the pipe and waits for the reaper, so no
//! postmaster outlives `cargo test`. A start that fails half-way is cleaned up the same way.

use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// The cluster's superuser, who owns every test database.
const SUPERUSER: &str = "latchkey";
/// Who runs the cluster when the tests run as root.
const UNPRIVILEGED: &str = "nobody";
/// Where Debian's `postgresql-NN` packages put the server's programs.
const INSTALLS: &str = "/usr/lib/postgresql";

struct Cluster {
    bin: PathBuf,
    port: u16,
    password: String,
    /// The CA that signed the cluster's certificate: every URL asks for TLS checked against
    /// it, so the whole suite runs over verified TLS.
    ca: PathBuf,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static REAPER: Mutex<Option<(ChildStdin, Child)>> = Mutex::new(None);
static DATABASES: AtomicUsize = AtomicUsize::new(0);

/// A new, empty database on this test binary's throwaway cluster (started on first use), as a
/// URL with user and password: postgres://latchkey:PASSWORD@127.0.0.1:PORT/tN
pub fn fresh_database() -> String {
    let cluster = cluster();
    let name = format!("t{}", DATABASES.fetch_add(1, Ordering::Relaxed) + 1);
    let created = Command::new(cluster.bin.join("psql"))
        .args(["--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1"])
        .arg(format!("--dbname={}", cluster.url("postgres")))
        .arg(format!("--command=CREATE DATABASE {name}"))
        .output();
    if let Err(problem) = succeeded("psql (CREATE DATABASE)", created) {
        panic!("{problem}");
    }
    cluster.url(&name)
}

fn cluster() -> &'static Cluster {
    match CLUSTER.get_or_init(start) {
        Ok(cluster) => cluster,
        Err(problem) => panic!("{problem}"),
    }
}

impl Cluster {
    fn url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@127.0.0.1:{}/{database}?sslmode=verify-full&sslrootcert={}",
            self.password,
            self.port,
            self.ca.display()
        )
    }
}

/// Makes the cluster's directory, hands it to the reaper, then creates and starts the cluster;
/// on failure the reaper removes what was made at once.
fn start() -> Result<Cluster, String> {
    let bin = binaries()?;
    let dir = tempfile::Builder::new()
        .prefix("latchkey-postgres-")
        .tempdir()
        .map_err(|e| format!("cannot make the PostgreSQL test cluster's directory: {e}"))?
        .keep();
    let as_root = unsafe { libc::geteuid() } == 0;
    spawn_reaper(&dir, &pg_ctl(&bin, as_root))?;
    let started = init_and_start(&bin, &dir, as_root);
    if started.is_err() {
        stop_cluster();
    }
    started
}

fn init_and_start(bin: &Path, dir: &Path, as_root: bool) -> Result<Cluster, String> {
    let password = random_hex()?;
    let pwfile = dir.join("pwfile");
    fs::write(&pwfile, &password).map_err(|e| format!("cannot write {pwfile:?}: {e}"))?;
    let ca = certificates(dir)?;
    if as_root {
        let chown = Command::new("chown")
            .arg("-R")
            .arg(format!("{UNPRIVILEGED}:"))
            .arg(dir)
            .output();
        succeeded("chown", chown)?;
    }
    let data = dir.join("data");
    let initdb = as_owner(bin.join("initdb"), as_root)
        .current_dir(dir)
        .arg(format!("--pgdata={}", data.display()))
        .arg(format!("--username={SUPERUSER}"))
        .arg(format!("--pwfile={}", pwfile.display()))
        .args(["--auth-host=scram-sha-256", "--auth-local=trust"])
        .args(["--encoding=UTF8", "--locale=C", "--no-sync"])
        .output();
    succeeded("initdb", initdb)?;
    let port = free_port()?;
    configure(&data, port)?;
    let log = dir.join("log");
    let started = pg_ctl(bin, as_root)
        .current_dir(dir)
        .arg("start")
        .arg(format!("--pgdata={}", data.display()))
        .arg(format!("--log={}", log.display()))
        .args(["--wait", "--silent"])
        .stdin(Stdio::null())
        .output();
    succeeded("pg_ctl start", started).map_err(|problem| {
        let log = fs::read_to_string(&log).unwrap_or_default();
        format!("{problem}\nserver log:\n{log}")
    })?;
    Ok(Cluster {
        bin: bin.to_path_buf(),
        port,
        password,
        ca,
    })
}

/// The newest installed PostgreSQL's programs.
fn binaries() -> Result<PathBuf, String> {
    let newest = fs::read_dir(INSTALLS)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|version| {
            let bin = Path::new(INSTALLS).join(version.to_string()).join("bin");
            ["initdb", "pg_ctl", "postgres", "psql"]
                .iter()
                .all(|program| bin.join(program).is_file())
        })
        .max();
    match newest {
        Some(version) => Ok(Path::new(INSTALLS).join(version.to_string()).join("bin")),
        None => Err(format!(
            "the PostgreSQL tests need PostgreSQL's server programs in {INSTALLS}/NN/bin: apt-get install postgresql"
        )),
    }
}

/// A program that must run as the cluster's owner: through `runuser` when we are root.
fn as_owner(program: PathBuf, as_root: bool) -> Command {
    if as_root {
        let mut command = Command::new("runuser");
        command.args(["-u", UNPRIVILEGED, "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn pg_ctl(bin: &Path, as_root: bool) -> Command {
    as_owner(bin.join("pg_ctl"), as_root)
}

/// Starts the reaper: a shell, in a process group of its own so that a Ctrl-C on the test run
/// does not kill it, that reads its standard input (a pipe only this process holds) until it
/// closes, then stops the cluster and removes its directory. `pg_ctl` is how to run pg_ctl.
fn spawn_reaper(dir: &Path, pg_ctl: &Command) -> Result<(), String> {
    const SCRIPT: &str = r#"dir=$1; shift; read -r _
"$@" stop --pgdata="$dir/data" --mode=immediate --silent >/dev/null 2>&1
rm -rf "$dir""#;
    let mut command = Command::new("sh");
    command
        .args(["-c", SCRIPT, "sh"])
        .arg(dir)
        .arg(pg_ctl.get_program())
        .args(pg_ctl.get_args());
    let mut reaper = command
        .current_dir("/")
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start sh to clean up the PostgreSQL test cluster: {e}"))?;
    let pipe = reaper.stdin.take().expect("the reaper's stdin is piped");
    *REAPER.lock().unwrap_or_else(|e| e.into_inner()) = Some((pipe, reaper));
    if unsafe { libc::atexit(stop_at_exit) } != 0 {
        stop_cluster();
        return Err("cannot register the PostgreSQL test cluster's clean-up (atexit)".into());
    }
    Ok(())
}

extern "C" fn stop_at_exit() {
    stop_cluster();
}

/// Closes the reaper's pipe and waits until it has stopped the cluster and removed it.
fn stop_cluster() {
    let reaper = REAPER.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some((pipe, mut reaper)) = reaper {
        drop(pipe);
        let _ = reaper.wait();
    }
}

/// A CA (`ca.pem`) and the cluster's certificate for 127.0.0.1 signed by it, with its key
/// (owner-only, as PostgreSQL insists), in `dir`; the CA's path.
fn certificates(dir: &Path) -> Result<PathBuf, String> {
    let failed = |e: rcgen::Error| format!("cannot make the cluster's certificate: {e}");
    let ca_key = rcgen::KeyPair::generate().map_err(failed)?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Latchkey test database CA");
    let ca = ca_params.self_signed(&ca_key).map_err(failed)?;
    let key = rcgen::KeyPair::generate().map_err(failed)?;
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).map_err(failed)?;
    let cert = params.signed_by(&key, &ca, &ca_key).map_err(failed)?;
    let write = |name: &str, text: String, mode: u32| {
        let path = dir.join(name);
        fs::write(&path, text)
            .and_then(|()| fs::set_permissions(&path, fs::Permissions::from_mode(mode)))
            .map_err(|e| format!("cannot write {path:?}: {e}"))
    };
    write("server.crt", cert.pem(), 0o644)?;
    write("server.key", key.serialize_pem(), 0o600)?;
    write("ca.pem", ca.pem(), 0o644)?;
    Ok(dir.join("ca.pem"))
}

fn configure(data: &Path, port: u16) -> Result<(), String> {
    let dir = data
        .parent()
        .expect("the data directory is in the cluster's");
    let settings = format!(
        "\n# The test suite's throwaway cluster\n\
         listen_addresses = '127.0.0.1'\n\
         port = {port}\n\
         ssl = on\n\
         ssl_cert_file = '{}'\n\
         ssl_key_file = '{}'\n\
         unix_socket_directories = ''\n\
         max_connections = 1000\n\
         fsync = off\n\
         synchronous_commit = off\n\
         full_page_writes = off\n",
        dir.join("server.crt").display(),
        dir.join("server.key").display(),
    );
    let conf = data.join("postgresql.conf");
    let mut text = fs::read_to_string(&conf).map_err(|e| format!("cannot read {conf:?}: {e}"))?;
    text.push_str(&settings);
    fs::write(&conf, text).map_err(|e| format!("cannot write {conf:?}: {e}"))
}

/// A loopback port nobody listens on now.
fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|e| format!("cannot find a free port for PostgreSQL: {e}"))
}

/// 128 random bits as hex: the superuser's password, safe in a URL.
fn random_hex() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// What went wrong running `what`, if it did not exit with success.
fn succeeded(what: &str, output: std::io::Result<Output>) -> Result<(), String> {
    let output = output.map_err(|e| format!("cannot run {what}: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}
