//! HAProxy in front of the instances, in the foreground (`haproxy -db`), as the README's
//! "More than one instance" section configures it: round robin without stickiness, a health
//! check on `/healthz`, retries to another instance when one refuses connections, and an
//! `X-Served-By` header naming the instance on every answer (HAProxy's own error answers
//! included).
//!
//! HAProxy logs every request as soon as the instance's answer arrives, before it passes the
//! answer on, so the log lists sequential requests in order; `record` reads the requests a
//! piece of work made from it. Its admin socket tells how HAProxy sees each instance.

use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::process::healthz;

/// How long HAProxy may take to start, to see an instance change state, or to log a request.
const LIMIT: Duration = Duration::from_secs(20);
/// The backend's name in the configuration and on the admin socket.
const BACKEND: &str = "instances";

/// One request as the balancer logged it.
#[derive(Debug, Clone)]
pub struct Hop {
    /// The instance that answered (`<NOSRV>` when none did).
    pub server: String,
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The answer's status; none when no answer came.
    pub status: Option<u16>,
}

impl Hop {
    /// A line of the log format below: `SERVER METHOD PATH STATUS`.
    fn parse(line: &str) -> Option<Hop> {
        let mut fields = line.split(' ');
        let hop = Hop {
            server: fields.next()?.to_string(),
            method: fields.next()?.to_string(),
            path: fields.next()?.to_string(),
            status: match fields.next()? {
                "-1" => None,
                status => Some(status.parse().ok()?),
            },
        };
        fields.next().is_none().then_some(hop)
    }
}

/// The requests HAProxy logged so far, filled by a thread that reads its standard output.
#[derive(Default)]
struct Log {
    hops: Mutex<Vec<Hop>>,
    grew: Condvar,
}

impl Log {
    fn read_from(self: Arc<Self>, output: impl Read + Send + 'static) {
        std::thread::spawn(move || {
            for line in BufReader::new(output).lines() {
                let Ok(line) = line else { return };
                if let Some(hop) = Hop::parse(&line) {
                    self.hops.lock().unwrap().push(hop);
                    self.grew.notify_all();
                }
            }
        });
    }

    /// The index of the first logged request for `path`, waiting for it (bounded).
    fn wait_for(&self, path: &str) -> usize {
        let deadline = Instant::now() + LIMIT;
        let mut hops = self.hops.lock().unwrap();
        loop {
            if let Some(index) = hops.iter().position(|hop| hop.path == path) {
                return index;
            }
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("HAProxy did not log {path} within {LIMIT:?}"));
            hops = self.grew.wait_timeout(hops, left).unwrap().0;
        }
    }
}

/// A running HAProxy on `127.0.0.1:port`; stopped (SIGKILL) and its files removed when
/// dropped.
pub struct Balancer {
    child: Child,
    pub port: u16,
    dir: TempDir,
    log: Arc<Log>,
    marks: AtomicUsize,
}

/// The configuration: `servers` are the instances' names and ports on 127.0.0.1.
fn config(port: u16, servers: &[(&str, u16)], socket: &str) -> String {
    let servers: String = servers
        .iter()
        .map(|(name, port)| format!("    server {name} 127.0.0.1:{port}\n"))
        .collect();
    format!(
        "global
    log stdout format raw local0
    stats socket {socket} mode 600 level admin

defaults
    mode http
    log global
    log-format \"%s %HM %HPO %ST\"
    option logasap
    option http-server-close
    timeout connect 1s
    timeout check 5s
    timeout client 30s
    timeout server 30s
    retries 2
    option redispatch

frontend latchkey
    bind 127.0.0.1:{port}
    http-after-response set-header X-Served-By %s
    default_backend {BACKEND}

backend {BACKEND}
    balance roundrobin
    option httpchk GET /healthz
    default-server check inter 500ms fall 2 rise 2
{servers}"
    )
}

impl Balancer {
    /// Starts HAProxy in front of `servers` and waits until it sees all of them up and
    /// answers `/healthz` itself.
    pub fn start(port: u16, servers: &[(&str, u16)]) -> Balancer {
        let dir = tempfile::Builder::new()
            .prefix("latchkey-haproxy-")
            .tempdir()
            .expect("a directory for HAProxy");
        let socket = dir.path().join("admin.sock");
        let file = dir.path().join("haproxy.cfg");
        let socket_text = socket.to_str().expect("a UTF-8 temporary path");
        std::fs::write(&file, config(port, servers, socket_text)).expect("write haproxy.cfg");
        let mut child = match Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
        {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                panic!("the cluster tests need HAProxy: apt-get install haproxy")
            }
            Err(e) => panic!("cannot start haproxy: {e}"),
        };
        let log = Arc::new(Log::default());
        log.clone()
            .read_from(child.stdout.take().expect("HAProxy's piped output"));
        let mut balancer = Balancer {
            child,
            port,
            dir,
            log,
            marks: AtomicUsize::new(0),
        };
        for (name, _) in servers {
            balancer.wait_until(name, "UP");
        }
        balancer.within("to answer /healthz", |_| healthz(port));
        balancer
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("admin.sock")
    }

    /// How HAProxy sees instance `name` now: `UP`, `DOWN`, or a state in between such as
    /// `UP 1/2` (its admin socket's `show stat`). Empty while the socket is not open yet.
    pub fn status(&self, name: &str) -> String {
        let Ok(mut stream) = UnixStream::connect(self.socket()) else {
            return String::new();
        };
        let mut stats = String::new();
        stream.write_all(b"show stat\n").expect("ask HAProxy");
        stream.read_to_string(&mut stats).expect("HAProxy's stats");
        let mut lines = stats.lines();
        let header: Vec<&str> = lines
            .next()
            .and_then(|line| line.strip_prefix("# "))
            .expect("show stat's header")
            .split(',')
            .collect();
        let column = |wanted: &str| header.iter().position(|name| *name == wanted).unwrap();
        let (proxy, server, status) = (column("pxname"), column("svname"), column("status"));
        lines
            .map(|line| line.split(',').collect::<Vec<_>>())
            .find(|row| row.get(proxy) == Some(&BACKEND) && row.get(server) == Some(&name))
            .map(|row| row[status].to_string())
            .unwrap_or_else(|| panic!("HAProxy does not know the instance {name}"))
    }

    /// Waits (bounded) until HAProxy sees instance `name` as exactly `status`.
    pub fn wait_until(&mut self, name: &str, status: &str) {
        self.within(&format!("to see {name} {status}"), |balancer| {
            balancer.status(name) == status
        });
    }

    /// Polls `done` until it holds; panics if HAProxy exits or the limit passes.
    fn within(&mut self, what: &str, mut done: impl FnMut(&Balancer) -> bool) {
        let deadline = Instant::now() + LIMIT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("poll haproxy") {
                panic!("haproxy exited ({status}) while waiting {what}");
            }
            if done(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("HAProxy took longer than {LIMIT:?} {what}");
    }

    /// Sends a request of its own through the balancer and waits until it is logged: every
    /// request answered before it was logged before it. Returns its place in the log.
    async fn mark(&self) -> usize {
        let path = format!(
            "/cluster-test-mark-{}",
            self.marks.fetch_add(1, Ordering::Relaxed)
        );
        reqwest::get(format!("http://127.0.0.1:{}{path}", self.port))
            .await
            .expect("a request through HAProxy");
        let log = self.log.clone();
        tokio::task::spawn_blocking(move || log.wait_for(&path))
            .await
            .expect("wait for HAProxy's log")
    }

    /// Runs `work` and returns what it returned with the requests it sent through the
    /// balancer, in order. Nothing else may use the balancer meanwhile.
    pub async fn record<T>(&self, work: impl Future<Output = T>) -> (T, Vec<Hop>) {
        let from = self.mark().await;
        let output = work.await;
        let to = self.mark().await;
        (output, self.log.hops.lock().unwrap()[from + 1..to].to_vec())
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asserts that there were requests, that each was answered without an error, and that no
/// two consecutive ones were answered by the same instance.
pub fn assert_alternates(hops: &[Hop]) {
    assert!(hops.len() >= 2, "requests through the balancer: {hops:#?}");
    assert!(
        hops.iter()
            .all(|hop| hop.status.is_some_and(|status| status < 400)),
        "a request failed: {hops:#?}"
    );
    for pair in hops.windows(2) {
        assert_ne!(
            pair[0].server, pair[1].server,
            "consecutive requests on one instance: {hops:#?}"
        );
    }
}
