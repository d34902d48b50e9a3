//! systemd's readiness protocol (`sd_notify`): under `Type=notify`, systemd calls the service
//! started only when it sends `READY=1`, and `STOPPING=1` says that it is shutting down. Each
//! message is one datagram to the unix socket named by `NOTIFY_SOCKET`; a name starting with
//! `@` is in the abstract namespace. Without `NOTIFY_SOCKET` (not under systemd, or another
//! `Type=`) nothing is sent.

use std::ffi::OsStr;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;

/// The variable systemd sets for `Type=notify` services.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// What the service tells systemd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Listening: start-up is complete.
    Ready,
    /// Shutting down.
    Stopping,
}

impl Status {
    fn message(self) -> &'static [u8] {
        match self {
            Status::Ready => b"READY=1",
            Status::Stopping => b"STOPPING=1",
        }
    }
}

/// Sends `status` to systemd when `NOTIFY_SOCKET` is set. Returns whether it was sent.
pub fn notify(status: Status) -> std::io::Result<bool> {
    let Some(value) = std::env::var_os(NOTIFY_SOCKET) else {
        return Ok(false);
    };
    let address = socket_address(&value)?;
    UnixDatagram::unbound()?.send_to_addr(status.message(), &address)?;
    Ok(true)
}

/// `notify`, logging a failure: it only means that systemd will time the start out.
pub fn tell(status: Status) {
    if let Err(e) = notify(status) {
        tracing::warn!("cannot notify systemd ({status:?}): {e}");
    }
}

/// `NOTIFY_SOCKET`'s value as a socket address: a path, or `@name` for the abstract `\0name`.
fn socket_address(value: &OsStr) -> std::io::Result<SocketAddr> {
    match value.as_bytes() {
        [] => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "NOTIFY_SOCKET is empty",
        )),
        [b'@', name @ ..] => SocketAddr::from_abstract_name(name),
        _ => SocketAddr::from_pathname(Path::new(value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_names_a_socket_file() {
        let address = socket_address(OsStr::new("/run/systemd/notify")).unwrap();
        assert_eq!(
            address.as_pathname(),
            Some(Path::new("/run/systemd/notify"))
        );
    }

    #[test]
    fn an_at_sign_names_an_abstract_socket() {
        let address = socket_address(OsStr::new("@/org/freedesktop/systemd1/notify/1")).unwrap();
        assert_eq!(
            address.as_abstract_name(),
            Some(&b"/org/freedesktop/systemd1/notify/1"[..])
        );
        assert_eq!(address.as_pathname(), None);
    }

    #[test]
    fn an_empty_value_is_refused() {
        assert!(socket_address(OsStr::new("")).is_err());
    }
}
