//! The real `latchkey` binary as a separate process: `serve` to be killed and restarted on
//! the same data dir, and commands run under a chosen umask.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a start may take before the test gives up.
const START_LIMIT: Duration = Duration::from_secs(20);

/// `latchkey ARGS` run by a shell that first sets `umask`, as an operator's login shell would.
pub fn latchkey_under_umask(umask: &str) -> Command {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("umask {umask}; exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_latchkey"))
        .env_remove("LATCHKEY_CONFIG")
        .env_remove("LATCHKEY_ISSUER")
        .env_remove("LATCHKEY_DATA_DIR")
        .env_remove("LATCHKEY_LISTEN");
    command
}

/// A free port on 127.0.0.1 (free when asked; the server binds it right after).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().unwrap().port()
}

/// A running `latchkey serve` process on `127.0.0.1:port`, issuer `http://127.0.0.1:port`
/// unless it was started behind a balancer.
pub struct Served {
    child: Child,
    pub port: u16,
}

impl Served {
    /// Starts `serve` on `data_dir` under `umask` and waits until `/healthz` answers 200.
    pub fn start(data_dir: &Path, port: u16, umask: &str) -> Served {
        let data_dir = crate::helpers::path_text(data_dir);
        Served::start_with(&["--data-dir", &data_dir], port, umask)
    }

    /// `latchkey serve` on `app`'s database (PostgreSQL in the PostgreSQL run).
    pub fn start_for(app: &crate::helpers::TestApp, port: u16, umask: &str) -> Served {
        let args = app.database_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Served::start_with(&args, port, umask)
    }

    /// `latchkey serve` with `database` as the flags naming its database.
    pub fn start_with(database: &[&str], port: u16, umask: &str) -> Served {
        Served::start_behind(database, &format!("http://127.0.0.1:{port}"), port, umask)
    }

    /// `latchkey ARGS serve` on `127.0.0.1:port` with `issuer` as its public URL (a load
    /// balancer's, say).
    pub fn start_behind(args: &[&str], issuer: &str, port: u16, umask: &str) -> Served {
        let address = format!("127.0.0.1:{port}");
        let child = latchkey_under_umask(umask)
            .args(args)
            .args(["serve", "--listen", &address, "--issuer", issuer])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start latchkey serve");
        let mut served = Served { child, port };
        served.wait_healthy();
        served
    }

    /// Bounded polling of `/healthz`; panics if the server exits or never answers.
    fn wait_healthy(&mut self) {
        let deadline = Instant::now() + START_LIMIT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("poll serve") {
                panic!("latchkey serve exited at start: {status}");
            }
            if healthz(self.port) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("latchkey serve did not answer /healthz within {START_LIMIT:?}");
    }

    /// SIGKILL: no shutdown code runs, as when the machine loses the process.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL serve");
        self.child.wait().expect("reap serve");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// True when `GET /healthz` answers 200.
pub fn healthz(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /healthz HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    let mut answer = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut answer).is_ok()
        && (answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"))
}

/// The database file of a data dir.
pub fn database(data_dir: &Path) -> PathBuf {
    data_dir.join(latchkey::store::DATABASE_FILE)
}
