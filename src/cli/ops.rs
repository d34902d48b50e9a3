//! Commands for running Latchkey as a service: `healthcheck`, `completions`, `man`,
//! `setup-link`, `restore` and `migrate-store`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::CommandFactory;

use super::{Cli, CliError, CliResult, maintenance};
use crate::auth::setup;
use crate::clock;
use crate::config::Settings;
use crate::store::lock::DataDirLock;
use crate::store::{Database, PgTarget, Store, StoreError, copy, meta, restore as store_restore};

/// How long the health check waits to connect, and then for the answer.
const HEALTHCHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Exits 0 when the configured server answers `GET /healthz` with 200: over https when
/// `serve` speaks it itself (trusting exactly the configured certificate), else plain http.
pub fn healthcheck(settings: &Settings) -> CliResult {
    let address = probe_address(&settings.listen)?;
    let path = format!("{}/healthz", settings.issuer.path());
    let scheme = if settings.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let url = format!("{scheme}://{address}{path}");
    let status = match &settings.tls {
        Some(files) => {
            let tls = pinned_to(&files.cert, settings.issuer.host())?;
            https_get_status(address, &path, tls)
        }
        None => http_get_status(address, &path),
    }
    .map_err(CliError::io(format!("healthcheck: {url}")))?;
    if status != 200 {
        return Err(CliError::Usage(format!(
            "healthcheck: {url} answered {status}"
        )));
    }
    Ok(())
}

/// A TLS client for the local server: it trusts exactly the certificate `serve` is configured
/// with (the listen address is rarely a name the certificate covers).
fn pinned_to(
    cert: &std::path::Path,
    host: &str,
) -> CliResult<(
    std::sync::Arc<rustls::ClientConfig>,
    rustls::pki_types::ServerName<'static>,
)> {
    use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
    let unusable = |why: String| CliError::Usage(format!("healthcheck: {}: {why}", cert.display()));
    let leaf = CertificateDer::pem_file_iter(cert)
        .map_err(|e| unusable(e.to_string()))?
        .next()
        .ok_or_else(|| unusable("no certificate".into()))?
        .map_err(|e| unusable(e.to_string()))?;
    let trust =
        crate::proxmox::target::Trust::Fingerprint(crate::proxmox::api::fingerprint_of(&leaf));
    let config = crate::proxmox::api::tls_config(&trust).map_err(|e| unusable(e.to_string()))?;
    let name = ServerName::try_from(host.to_string()).map_err(|e| unusable(e.to_string()))?;
    Ok((std::sync::Arc::new(config), name))
}

/// An HTTP/1.0 GET over TLS; returns the status code.
fn https_get_status(
    address: SocketAddr,
    path: &str,
    (config, name): (
        std::sync::Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    ),
) -> std::io::Result<u16> {
    let tcp = connect(address)?;
    let conn = rustls::ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    get_status(rustls::StreamOwned::new(conn, tcp), address, path)
}

fn connect(address: SocketAddr) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&address, HEALTHCHECK_TIMEOUT)?;
    stream.set_read_timeout(Some(HEALTHCHECK_TIMEOUT))?;
    stream.set_write_timeout(Some(HEALTHCHECK_TIMEOUT))?;
    Ok(stream)
}

/// Where to reach a server listening on `listen`: an unspecified address (0.0.0.0, [::])
/// is reached on the loopback address of its family.
fn probe_address(listen: &str) -> CliResult<SocketAddr> {
    let mut address = listen
        .to_socket_addrs()
        .map_err(CliError::io(format!(
            "healthcheck: cannot resolve {listen}"
        )))?
        .next()
        .ok_or_else(|| CliError::Usage(format!("healthcheck: {listen} has no address")))?;
    if address.ip().is_unspecified() {
        address.set_ip(match address {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    Ok(address)
}

/// An HTTP/1.0 GET; returns the status code.
fn http_get_status(address: SocketAddr, path: &str) -> std::io::Result<u16> {
    get_status(connect(address)?, address, path)
}

/// Sends a GET on `stream` and reads the status line.
fn get_status(
    mut stream: impl Read + Write,
    address: SocketAddr,
    path: &str,
) -> std::io::Result<u16> {
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n")?;
    let mut head = [0u8; 64];
    let mut read = 0;
    while read < head.len() {
        match stream.read(&mut head[read..])? {
            0 => break,
            n => read += n,
        }
    }
    status_of(&head[..read])
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP answer"))
}

/// The status code of an HTTP response's first line.
fn status_of(head: &[u8]) -> Option<u16> {
    let line = std::str::from_utf8(head).ok()?.lines().next()?;
    let mut parts = line.split(' ');
    parts.next().filter(|v| v.starts_with("HTTP/"))?;
    parts.next()?.parse().ok()
}

/// Prints a completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> CliResult {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "latchkey", &mut script);
    print_bytes(&script, "the completion script")
}

/// Prints the manual page, in roff.
pub fn man() -> CliResult {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .map_err(CliError::io("cannot render the manual page"))?;
    print_bytes(&page, "the manual page")
}

/// Writes generated text to stdout; a closed pipe is one line, never a panic.
fn print_bytes(bytes: &[u8], what: &str) -> CliResult {
    std::io::stdout()
        .write_all(bytes)
        .map_err(CliError::io(format!("cannot print {what}")))
}

/// Prints a new one-time setup link while no administrator exists.
pub fn setup_link(store: &Store, settings: &Settings) -> CliResult {
    let now = clock::now();
    let (token, served) = store.write(|tx| {
        let token = setup::issue_if_needed(tx, now)?;
        Ok::<_, CliError>((token, meta::get(tx, meta::SERVED_ISSUER)?))
    })?;
    let token = token.ok_or_else(|| {
        CliError::Usage(
            "an administrator exists already; use `latchkey login-link NAME` to sign one in".into(),
        )
    })?;
    let issuer = maintenance::link_issuer(settings, served)?;
    println!(
        "No administrator yet. Open this one-time link to create one (works once, until {}):",
        clock::display(now + setup::LINK_TTL_SECS)
    );
    println!("{}{}{token}", issuer.as_str(), setup::ROUTE);
    Ok(())
}

/// Replaces the database by a checked backup, unless a server uses it.
pub fn restore(settings: &Settings, file: &Path) -> CliResult {
    let Database::Sqlite(data_dir) = &settings.database else {
        return Err(StoreError::SqliteOnly("latchkey restore").into());
    };
    let _lock = DataDirLock::try_acquire(data_dir)?;
    let restored = store_restore::restore(data_dir, file, clock::now())?;
    println!(
        "Restored {} (schema version {}).",
        file.display(),
        restored.version
    );
    if let Some(kept) = restored.kept {
        println!("The previous database is kept as {}.", kept.display());
    }
    Ok(())
}

/// Copies the database into the empty one `to` names, then says what to configure.
pub fn migrate_store(settings: &Settings, to: &str) -> CliResult {
    let target = migration_target(to)?;
    if let (Database::Sqlite(from), Database::Sqlite(into)) = (&settings.database, &target)
        && from == into
    {
        return Err(CliError::Usage(
            "migrate-store: --to names the data directory it would copy from".into(),
        ));
    }
    // No server may write the source meanwhile, nor use the new file.
    let _locks = [&settings.database, &target]
        .into_iter()
        .filter_map(|database| match database {
            Database::Sqlite(dir) => Some(DataDirLock::try_acquire(dir)),
            Database::Postgres(_) => None,
        })
        .collect::<Result<Vec<_>, _>>()?;
    let source = Store::connect(&settings.database)?;
    let copy = Store::connect(&target)?;
    let copied = copy::copy(&source, &copy)?;
    println!("Copied {} into {}:", source.describe(), copy.describe());
    for (table, rows) in copied.tables {
        println!("  {table}: {rows}");
    }
    let configure = match &target {
        Database::Postgres(_) => format!(
            "Set database_url = \"{}\" (or LATCHKEY_DATABASE_URL) for every instance and start \
             them",
            without_password(to)
        ),
        Database::Sqlite(dir) => format!(
            "Set data_dir = \"{}\" (or LATCHKEY_DATA_DIR) without database_url and start one \
             instance",
            dir.display()
        ),
    };
    println!("{configure}; {} is left as it was.", source.describe());
    Ok(())
}

/// `--to`: a PostgreSQL URL, or a directory for a new SQLite file.
fn migration_target(to: &str) -> CliResult<Database> {
    if PgTarget::is_url(to) {
        let target = PgTarget::parse(to, None)
            .map_err(|e| CliError::Usage(format!("migrate-store --to: {e}")))?;
        return Ok(Database::Postgres(Box::new(target)));
    }
    if to.is_empty() || to.contains("://") {
        return Err(CliError::Usage(
            "migrate-store --to takes postgres://USER:PASSWORD@HOST/DATABASE or a directory for \
             a new SQLite file"
                .into(),
        ));
    }
    Ok(Database::Sqlite(PathBuf::from(to)))
}

/// A database URL fit to print: its password left out.
fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        Err(_) => "the URL".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_urls_keep_no_password() {
        assert_eq!(
            without_password("postgres://latchkey:s3cret@db.example:5432/latchkey?sslmode=require"),
            "postgres://latchkey@db.example:5432/latchkey?sslmode=require"
        );
        assert_eq!(
            without_password("postgres://db.example/latchkey"),
            "postgres://db.example/latchkey"
        );
    }

    #[test]
    fn migration_targets() {
        assert!(matches!(
            migration_target("postgres://u@h/d"),
            Ok(Database::Postgres(_))
        ));
        assert!(matches!(
            migration_target("/var/lib/latchkey-new"),
            Ok(Database::Sqlite(_))
        ));
        assert!(migration_target("mysql://u@h/d").is_err());
        assert!(migration_target("").is_err());
    }

    #[test]
    fn status_lines() {
        assert_eq!(status_of(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(status_of(b"HTTP/1.0 503 Service"), Some(503));
        assert_eq!(status_of(b"SSH-2.0-OpenSSH"), None);
        assert_eq!(status_of(b""), None);
    }

    #[test]
    fn unspecified_listen_addresses_are_probed_on_loopback() {
        assert_eq!(
            probe_address("0.0.0.0:8080").unwrap(),
            "127.0.0.1:8080".parse().unwrap()
        );
        assert_eq!(
            probe_address("[::]:8080").unwrap(),
            "[::1]:8080".parse().unwrap()
        );
        assert_eq!(
            probe_address("192.0.2.1:80").unwrap(),
            "192.0.2.1:80".parse().unwrap()
        );
    }
}
