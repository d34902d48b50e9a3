//! The PostgreSQL backend: pooled `tokio-postgres` connections, driven by one runtime thread
//! of their own.
//!
//! The rules are synchronous and run on actix workers, the group-commit thread and the CLI
//! alike, so a call waits for its answer with a plain executor. The connections' socket work
//! runs on the store's own thread, never inside the caller's runtime, which would refuse to
//! be entered twice.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_executor::block_on;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, Statement};

use super::param::Param;
use super::{StoreError, StoreResult};

/// Where the PostgreSQL database is, and how to trust its certificate.
#[derive(Clone)]
pub struct PgTarget {
    config: tokio_postgres::Config,
    /// A PEM file of the CA that signed the server's certificate (`sslrootcert`); the system's
    /// roots when absent.
    root_cert: Option<PathBuf>,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config holds the password.
        f.debug_struct("PgTarget")
            .field("hosts", &self.config.get_hosts())
            .field("dbname", &self.config.get_dbname())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    #[error("the database URL is not a URL: {0}")]
    Malformed(#[source] url::ParseError),
    #[error("the database URL is not usable: {0}")]
    Parse(#[source] tokio_postgres::Error),
    #[error("sslmode {0:?} is not one of disable, prefer, require, verify-ca, verify-full")]
    SslMode(String),
}

impl PgTarget {
    /// Reads a `postgres://` URL. `sslmode` takes libpq's values: `verify-ca` and
    /// `verify-full` mean `require` here, because a TLS connection always checks the server's
    /// certificate and name; `sslrootcert` names the CA file to check it against.
    pub fn parse(url: &str, password: Option<String>) -> Result<PgTarget, UrlError> {
        let mut parsed = url::Url::parse(url).map_err(UrlError::Malformed)?;
        let mut root_cert = None;
        let mut kept = Vec::new();
        for (key, value) in parsed.query_pairs() {
            match key.as_ref() {
                "sslrootcert" => root_cert = Some(PathBuf::from(value.as_ref())),
                "sslmode" => kept.push(("sslmode".to_string(), ssl_mode(&value)?.to_string())),
                _ => kept.push((key.into_owned(), value.into_owned())),
            }
        }
        parsed.set_query(None);
        if !kept.is_empty() {
            parsed.query_pairs_mut().extend_pairs(kept);
        }
        let mut config: tokio_postgres::Config =
            parsed.as_str().parse().map_err(UrlError::Parse)?;
        if let Some(password) = password {
            config.password(password);
        }
        Ok(PgTarget { config, root_cert })
    }

    /// Whether `text` names a PostgreSQL database (`postgres://` or `postgresql://`).
    pub fn is_url(text: &str) -> bool {
        text.starts_with("postgres://") || text.starts_with("postgresql://")
    }

    /// The database and server, without the password: for the log and error messages.
    pub fn describe(&self) -> String {
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .zip(
                self.config
                    .get_ports()
                    .iter()
                    .chain(std::iter::repeat(&5432)),
            )
            .map(|(host, port)| match host {
                tokio_postgres::config::Host::Tcp(name) => format!("{name}:{port}"),
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        format!(
            "PostgreSQL database {} on {}",
            self.config.get_dbname().unwrap_or("(default)"),
            hosts.join(",")
        )
    }
}

fn ssl_mode(value: &str) -> Result<&'static str, UrlError> {
    Ok(match value {
        "disable" => "disable",
        "prefer" => "prefer",
        "require" | "verify-ca" | "verify-full" => "require",
        other => return Err(UrlError::SslMode(other.to_string())),
    })
}

/// `sql` with SQLite's `?N` placeholders spelled `$N`, as PostgreSQL wants them.
fn numbered_for_postgres(sql: &str) -> Cow<'_, str> {
    if !sql.contains('?') {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    for c in sql.chars() {
        if c == '\'' {
            quoted = !quoted;
        }
        out.push(if c == '?' && !quoted { '$' } else { c });
    }
    Cow::Owned(out)
}

/// One pooled connection and the statements prepared on it.
pub struct PgConnection {
    client: Client,
    statements: RefCell<HashMap<String, Statement>>,
}

/// The store's handle on one connection, inside a transaction when `write` gave it.
pub struct PgConn<'a> {
    connection: &'a PgConnection,
}

impl PgConn<'_> {
    fn statement(&self, sql: &str) -> StoreResult<Statement> {
        if let Some(statement) = self.connection.statements.borrow().get(sql) {
            return Ok(statement.clone());
        }
        let statement = block_on(self.connection.client.prepare(&numbered_for_postgres(sql)))
            .map_err(|source| failed(sql, source))?;
        self.connection
            .statements
            .borrow_mut()
            .insert(sql.to_string(), statement.clone());
        Ok(statement)
    }

    pub(super) fn execute(&self, sql: &str, params: &[&dyn Param]) -> StoreResult<u64> {
        let statement = self.statement(sql)?;
        let values = values(params);
        block_on(self.connection.client.execute(&statement, &refs(&values)))
            .map_err(|source| failed(sql, source))
    }

    pub(super) fn query(
        &self,
        sql: &str,
        params: &[&dyn Param],
    ) -> StoreResult<Vec<tokio_postgres::Row>> {
        let statement = self.statement(sql)?;
        let values = values(params);
        block_on(self.connection.client.query(&statement, &refs(&values)))
            .map_err(|source| failed(sql, source))
    }

    /// Runs statements without parameters, as one batch (migrations).
    pub(super) fn batch(&self, sql: &str) -> StoreResult<()> {
        Ok(block_on(self.connection.client.batch_execute(sql))?)
    }
}

/// What went wrong, with the server's own words when it answered with an error (the client
/// library alone says only "db error").
pub(super) fn message(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return format!("{}: {}", db.severity(), db.message());
    }
    // The library's own errors say what failed; their causes say why.
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(reason) = cause {
        text.push_str(&format!(": {reason}"));
        cause = reason.source();
    }
    text
}

/// A failed statement's error, naming the statement (never its values).
fn failed(sql: &str, source: tokio_postgres::Error) -> StoreError {
    StoreError::Statement {
        sql: sql.to_string(),
        source,
    }
}

fn values<'p>(params: &'p [&'p dyn Param]) -> Vec<Text<'p>> {
    params.iter().map(|p| Text(p.as_postgres())).collect()
}

fn refs<'v>(values: &'v [Text<'v>]) -> Vec<&'v (dyn ToSql + Sync)> {
    values
        .iter()
        .map(|value| value as &(dyn ToSql + Sync))
        .collect()
}

/// A parameter as PostgreSQL gets it. Its text type cannot hold NUL, which anyone may put in
/// a query string: such a character goes in as U+FFFD, so that a lookup finds nothing and a
/// record keeps the rest, as on SQLite, instead of the statement failing.
#[derive(Debug)]
struct Text<'a>(&'a (dyn ToSql + Sync));

impl ToSql for Text<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let start = out.len();
        let is_null = self.0.to_sql_checked(ty, out)?;
        if *ty == Type::TEXT && out[start..].contains(&0) {
            let replaced = String::from_utf8_lossy(&out[start..]).replace('\0', "\u{FFFD}");
            out.truncate(start);
            out.extend_from_slice(replaced.as_bytes());
        }
        Ok(is_null)
    }

    /// The parameter's own type checks run in `to_sql`.
    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

impl PgConnection {
    /// A handle outside any transaction: each statement commits on its own.
    pub(super) fn conn(&self) -> PgConn<'_> {
        PgConn { connection: self }
    }

    /// Runs `work` in a transaction, committed only when it returns `Ok`. Writers take one
    /// database-wide lock first (see `Writers`).
    pub(super) fn transaction<T, E>(
        &self,
        writers: Writers,
        waits: Option<&(dyn Fn(Duration) + Send + Sync)>,
        work: impl FnOnce(PgConn) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let client = &self.client;
        let asked = Instant::now();
        let open = Open { client };
        block_on(client.batch_execute(writers.begin())).map_err(StoreError::from)?;
        if let Some(observer) = waits {
            observer(asked.elapsed());
        }
        let value = work(self.conn())?;
        open.commit().map_err(StoreError::from)?;
        Ok(value)
    }
}

/// How a write transaction shares the database with the others, through one advisory lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Writers {
    /// Alone: writes are serialised across instances exactly as SQLite serialises them in
    /// one file, so every rule written for one writer stays correct.
    Alone,
    /// Beside the other sign-in and token writes, and never beside a write that goes alone.
    /// For rules whose every step is safe side by side: a code or a refresh token is spent
    /// by one `UPDATE … WHERE used_at IS NULL`, which a concurrent spender waits for and
    /// then finds spent, exactly as if it had come second.
    Together,
}

impl Writers {
    fn begin(self) -> &'static str {
        match self {
            Writers::Alone => "BEGIN; SELECT pg_advisory_xact_lock(7120324911274115072)",
            Writers::Together => "BEGIN; SELECT pg_advisory_xact_lock_shared(7120324911274115072)",
        }
    }
}

/// A transaction under way: rolled back when dropped without a commit (an error or a panic
/// in the work), so the connection goes back to the pool clean.
struct Open<'a> {
    client: &'a Client,
}

impl Open<'_> {
    fn commit(self) -> Result<(), tokio_postgres::Error> {
        let result = block_on(self.client.batch_execute("COMMIT"));
        std::mem::forget(self);
        result
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        // A failed rollback leaves a broken connection, which the pool then discards.
        let _ = block_on(self.client.batch_execute("ROLLBACK"));
    }
}

/// Opens connections on the store's runtime thread, which then drives them.
#[derive(Clone)]
pub(super) struct Manager {
    target: PgTarget,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    runtime: tokio::runtime::Handle,
    /// Ends the runtime thread when the last store handle is dropped.
    _running: Arc<std::sync::mpsc::SyncSender<()>>,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("target", &self.target)
            .finish()
    }
}

impl Manager {
    pub(super) fn start(target: PgTarget) -> StoreResult<Manager> {
        let tls = tls(target.root_cert.as_deref())?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(StoreError::WriterStart)?;
        let handle = runtime.handle().clone();
        let (running, ended) = std::sync::mpsc::sync_channel::<()>(0);
        std::thread::Builder::new()
            .name("latchkey-postgres".into())
            .spawn(move || {
                runtime.block_on(async move {
                    // Waits, without holding up the runtime, for every handle to be dropped.
                    let _ = tokio::task::spawn_blocking(move || ended.recv()).await;
                })
            })
            .map_err(StoreError::WriterStart)?;
        Ok(Manager {
            target,
            tls,
            runtime: handle,
            _running: Arc::new(running),
        })
    }
}

impl Manager {
    /// A new connection, with the server's reason when it cannot be made.
    pub(super) fn open(&self) -> Result<PgConnection, tokio_postgres::Error> {
        let config = self.target.config.clone();
        let tls = self.tls.clone();
        let connecting = self.runtime.spawn(async move {
            let (client, connection) = config.connect(tls).await?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            Ok(client)
        });
        let client = match block_on(connecting) {
            Ok(result) => result?,
            Err(_) => std::panic::resume_unwind(Box::new("the database runtime stopped")),
        };
        Ok(PgConnection {
            client,
            statements: RefCell::new(HashMap::new()),
        })
    }
}

/// Why the pool could not hand out a connection.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error(transparent)]
    Open(#[from] tokio_postgres::Error),
    #[error("the connection to the database has closed")]
    Closed,
}

impl r2d2::ManageConnection for Manager {
    type Connection = PgConnection;
    type Error = ConnectionError;

    fn connect(&self) -> Result<PgConnection, ConnectionError> {
        Ok(self.open()?)
    }

    /// Checked at every checkout without a round trip: a connection the database closed (a
    /// restart, a failover, an idle timeout) has seen its socket close, and is replaced. One
    /// cut off silently fails its next statement, which is then dropped as broken.
    fn is_valid(&self, conn: &mut PgConnection) -> Result<(), ConnectionError> {
        if conn.client.is_closed() {
            Err(ConnectionError::Closed)
        } else {
            Ok(())
        }
    }

    fn has_broken(&self, conn: &mut PgConnection) -> bool {
        conn.client.is_closed()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the database CA file {path}: {source}")]
    RootCert {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("the database CA file {0} holds no usable certificate")]
    NoRootCert(PathBuf),
    #[error("TLS setup failed: {0}")]
    Setup(#[source] rustls::Error),
}

fn tls(
    root_cert: Option<&std::path::Path>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, TlsError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match root_cert {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|source| TlsError::RootCert {
                    path: path.to_path_buf(),
                    source,
                })?;
            roots.add_parsable_certificates(certs);
            if roots.is_empty() {
                return Err(TlsError::NoRootCert(path.to_path_buf()));
            }
        }
        None => {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Setup)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

#[cfg(test)]
mod tests {
    use super::numbered_for_postgres;

    #[test]
    fn placeholders_outside_quotes_become_dollars() {
        assert_eq!(
            numbered_for_postgres("SELECT a FROM t WHERE b = ?1 AND c LIKE '?x' AND d = ?12"),
            "SELECT a FROM t WHERE b = $1 AND c LIKE '?x' AND d = $12"
        );
        assert_eq!(numbered_for_postgres("SELECT 1"), "SELECT 1");
    }
}
