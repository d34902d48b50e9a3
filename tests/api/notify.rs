//! `serve` under systemd's `Type=notify`: `READY=1` once it listens, `STOPPING=1` when it
//! shuts down, on the socket `NOTIFY_SOCKET` names (a path, or `@name` in the abstract
//! namespace).

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::process::{free_port, healthz, latchkey_under_umask};

/// How long a message may take before the test gives up.
const MESSAGE_LIMIT: Duration = Duration::from_secs(20);

/// A `serve` process, killed if the test fails before it stops.
struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Serving {
    fn terminate(&self) {
        // SAFETY: kill only sends a signal to our own child process.
        let sent = unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(sent, 0, "SIGTERM to serve");
    }

    fn exited_cleanly(&mut self) -> bool {
        self.0.wait().expect("reap serve").success()
    }
}

fn serve_notifying(data_dir: &std::path::Path, port: u16, notify_socket: &str) -> Serving {
    let address = format!("127.0.0.1:{port}");
    let child = latchkey_under_umask("077")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["serve", "--listen", &address, "--issuer"])
        .arg(format!("http://{address}"))
        .env("NOTIFY_SOCKET", notify_socket)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start latchkey serve");
    Serving(child)
}

fn receive(socket: &UnixDatagram) -> String {
    let mut buffer = [0u8; 512];
    let length = socket.recv(&mut buffer).expect("a notification in time");
    String::from_utf8_lossy(&buffer[..length]).into_owned()
}

#[test]
fn serve_tells_systemd_when_it_is_ready_and_when_it_stops() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(MESSAGE_LIMIT)).unwrap();
    let port = free_port();
    let mut serving = serve_notifying(
        &dir.path().join("data"),
        port,
        socket_path.to_str().unwrap(),
    );

    assert_eq!(receive(&socket), "READY=1");
    assert!(healthz(port), "ready means listening");

    serving.terminate();
    assert_eq!(receive(&socket), "STOPPING=1");
    assert!(serving.exited_cleanly());
}

#[test]
fn serve_reaches_an_abstract_notify_socket() {
    let dir = tempfile::tempdir().unwrap();
    let name = format!("latchkey-test-notify-{}", std::process::id());
    let address = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let socket = UnixDatagram::bind_addr(&address).unwrap();
    socket.set_read_timeout(Some(MESSAGE_LIMIT)).unwrap();
    let mut serving = serve_notifying(&dir.path().join("data"), free_port(), &format!("@{name}"));

    assert_eq!(receive(&socket), "READY=1");

    serving.terminate();
    assert_eq!(receive(&socket), "STOPPING=1");
    assert!(serving.exited_cleanly());
}
