//! The SQLite store: one file, WAL mode, foreign keys on, a busy timeout so that the CLI and
//! `serve` can write to the same file at once. Each submodule owns one family of tables.

pub mod audit;
pub mod ceremonies;
mod checkpoint;
pub mod clients;
pub mod consents;
pub mod copy;
pub mod db;
pub mod grants;
pub mod groups;
pub mod links;
pub mod lock;
pub mod meta;
mod migrations;
mod param;
pub mod passkeys;
pub mod pending;
pub mod postgres;
pub mod proxmox;
pub mod restore;
pub mod sessions;
pub mod signing_keys;
pub mod stats;
mod typed_names;
pub mod users;
mod writer;

use std::fs::OpenOptions;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rusqlite::{Connection, TransactionBehavior};

pub use db::{Db, Row};
pub use postgres::PgTarget;
use postgres::Writers;
use writer::Writer;

pub const DATABASE_FILE: &str = "latchkey.db";
/// Connections each process keeps open to its database at most.
pub const POOL_SIZE: u32 = 8;
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Prepared statements kept per connection: more than one sign-in uses.
const STATEMENT_CACHE: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database error: {}", postgres::message(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("database error: {} in {sql}", postgres::message(.source))]
    Statement {
        sql: String,
        source: tokio_postgres::Error,
    },
    #[error("cannot connect to the {target}: {}", postgres::message(.source))]
    Connect {
        target: String,
        source: tokio_postgres::Error,
    },
    #[error("database TLS: {0}")]
    PostgresTls(#[from] postgres::TlsError),
    #[error("the database returned no row where one was expected")]
    NoRow,
    #[error("{0} works on the SQLite file only, not on PostgreSQL")]
    SqliteOnly(&'static str),
    #[error("database connection pool: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("cannot use data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create the backup {path}: {source}")]
    Backup {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the database {path} has schema version {found}, but this binary knows only up to \
         version {supported}: run a newer latchkey"
    )]
    TooNew {
        path: String,
        found: i64,
        supported: i64,
    },
    #[error("database commit failed: {0}")]
    Commit(#[source] Arc<rusqlite::Error>),
    #[error("the database writer did not complete this write")]
    WriteLost,
    #[error("the database read did not complete")]
    ReadLost,
    #[error("cannot start the database writer: {0}")]
    WriterStart(#[source] std::io::Error),
    #[error("damaged record in {table}: {detail}")]
    Corrupt { table: &'static str, detail: String },
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Opens connections configured the same way every time.
#[derive(Debug)]
struct ConnectionManager {
    path: PathBuf,
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // WAL lets readers and one writer work at once. FULL syncs the WAL at every commit, so
    // a write that was answered survives a killed process and a power cut alike; group
    // commit (see `writer`) shares that sync among the writes waiting together.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Plans do not depend on bound values: otherwise SQLite 3.54 prepares a statement again
    // each time a value it looked at is bound (`x = ?` filters), which cost a tenth of the
    // server's CPU per sign-in.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // The writer's checkpoints run beside it (see `checkpoint`); other connections write too
    // rarely to take one over.
    conn.pragma_update(None, "wal_autocheckpoint", checkpoint::CATCH_UP_PAGES)?;
    Ok(())
}

impl ConnectionManager {
    fn connect_configured(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open(&self.path)?;
        configure(&conn)?;
        Ok(conn)
    }
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = Connection;
    type Error = rusqlite::Error;

    fn connect(&self) -> Result<Connection, rusqlite::Error> {
        self.connect_configured()
    }

    fn is_valid(&self, conn: &mut Connection) -> Result<(), rusqlite::Error> {
        conn.execute_batch("")
    }

    fn has_broken(&self, _conn: &mut Connection) -> bool {
        false
    }
}

/// Where the data lives.
#[derive(Debug, Clone)]
pub enum Database {
    /// `latchkey.db` in this directory: the default.
    Sqlite(PathBuf),
    Postgres(Box<PgTarget>),
}

/// A handle on the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Sqlite(SqliteFile),
    Postgres {
        pool: r2d2::Pool<postgres::Manager>,
        target: Box<PgTarget>,
        /// Told how long each writer waited for the database-wide writers' lock.
        waits: Option<WaitObserver>,
        /// The health check's own connection, made again when it breaks.
        health: Arc<Health>,
    },
}

#[derive(Clone)]
struct SqliteFile {
    pool: r2d2::Pool<ConnectionManager>,
    path: PathBuf,
    /// Writers of this process take turns here. SQLite admits one writer at a time anyway;
    /// queueing in-process avoids its busy handler, which sleeps in steps of up to 100 ms.
    /// Other processes (the CLI) still meet the busy timeout.
    turn: Arc<Mutex<()>>,
    /// The group-commit thread, started by the first `write_async`.
    queue: Arc<OnceLock<Writer>>,
    /// Told how long each writer waited for its turn (for the metrics).
    waits: Option<WaitObserver>,
}

/// Receives how long a writer of this process waited for its turn.
pub type WaitObserver = Arc<dyn Fn(Duration) + Send + Sync>;

impl Store {
    /// Opens (creating if needed) `DIR/latchkey.db` and brings its schema up to date.
    pub fn open(data_dir: &Path) -> StoreResult<Store> {
        let dir_error = |source| StoreError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)
            .map_err(dir_error)?;
        let path = data_dir.join(DATABASE_FILE);
        // Created owner-only: the file holds signing keys. SQLite gives its -wal and -shm
        // files the same permissions.
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(dir_error)?;
        let pool = pool_builder().build(ConnectionManager { path: path.clone() })?;
        let file = SqliteFile {
            pool,
            path,
            turn: Arc::new(Mutex::new(())),
            queue: Arc::new(OnceLock::new()),
            waits: None,
        };
        migrations::apply_sqlite(&mut *file.pool.get()?, &file.path)?;
        Ok(Store {
            backend: Backend::Sqlite(file),
        })
    }

    /// Opens `database` and brings its schema up to date.
    pub fn connect(database: &Database) -> StoreResult<Store> {
        match database {
            Database::Sqlite(dir) => Store::open(dir),
            Database::Postgres(target) => Store::open_postgres(target),
        }
    }

    fn open_postgres(target: &PgTarget) -> StoreResult<Store> {
        let manager = postgres::Manager::start(target.clone())?;
        // One connection first, so that a wrong password or certificate is said at once in
        // the server's words, not after the pool's wait; the health check keeps it.
        let first =
            r2d2::ManageConnection::connect(&manager).map_err(|source| StoreError::Connect {
                target: target.describe(),
                source,
            })?;
        let health = Arc::new(Health {
            manager: manager.clone(),
            connection: Mutex::new(Some(first)),
        });
        let pool = pool_builder().build(manager)?;
        let store = Store {
            backend: Backend::Postgres {
                pool,
                target: Box::new(target.clone()),
                waits: None,
                health,
            },
        };
        migrations::apply_postgres(&store, target)?;
        Ok(store)
    }

    /// This store, telling `observer` how long each write waits for the writer's turn.
    pub fn observe_waits(mut self, observer: impl Fn(Duration) + Send + Sync + 'static) -> Store {
        let observer: WaitObserver = Arc::new(observer);
        match &mut self.backend {
            Backend::Sqlite(file) => {
                file.waits = Some(observer);
                // The writer thread, once started, tells the observer it was started with.
                file.queue = Arc::new(OnceLock::new());
            }
            Backend::Postgres { waits, .. } => *waits = Some(observer),
        }
        self
    }

    /// Where the data lives, for the log: the file, or the PostgreSQL server.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Sqlite(file) => file.path.display().to_string(),
            Backend::Postgres { target, .. } => target.describe(),
        }
    }

    /// Whether the database answers. On PostgreSQL this goes through a connection of its
    /// own, so that a health check never queues behind a busy pool: a balancer would take
    /// every instance out at once under load.
    pub fn ping(&self) -> StoreResult<()> {
        match &self.backend {
            Backend::Sqlite(_) => self.read(meta::ping),
            Backend::Postgres { health, .. } => health.ping(),
        }
    }

    /// Runs `work` on a pooled connection, outside any explicit transaction.
    pub fn read<T, E>(&self, work: impl FnOnce(&Db) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        match &self.backend {
            Backend::Sqlite(file) => {
                let conn = file.pool.get().map_err(StoreError::from)?;
                work(&Db::Sqlite(&conn))
            }
            Backend::Postgres { pool, .. } => {
                let conn = pool.get().map_err(StoreError::from)?;
                work(&Db::Postgres(conn.conn()))
            }
        }
    }

    /// Runs `work` as `read` does, from async code: in place on SQLite, whose reads are
    /// quick local ones, and on the blocking pool on PostgreSQL, whose reads wait for the
    /// network and must not hold up the caller's event loop meanwhile.
    pub async fn read_async<T, E>(
        &self,
        work: impl FnOnce(&Db) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        match &self.backend {
            Backend::Sqlite(_) => self.read(work),
            Backend::Postgres { .. } => {
                let store = self.clone();
                on_blocking_pool(move || store.read(work), StoreError::ReadLost).await
            }
        }
    }

    /// Runs `work` in a transaction on this thread, committed only when it returns `Ok`, so
    /// that no half-written record survives an error. Writers go one at a time.
    pub fn write<T, E>(&self, work: impl FnOnce(&Db) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        match &self.backend {
            Backend::Sqlite(file) => file.write(work),
            Backend::Postgres { pool, waits, .. } => {
                postgres_write(pool, waits, Writers::Alone, work)
            }
        }
    }

    /// Runs `work` off the caller's thread and answers once its commit is durable. On SQLite
    /// the writer thread commits it together with the other writes waiting at the same time
    /// (one fsync for all); on PostgreSQL it runs beside the other writes made this way
    /// (see `postgres::Writers::Together`): only the sign-in and token rules, every step of
    /// which is safe side by side, write through here. As with `write`, what `work` wrote is
    /// kept only when it returns `Ok`.
    pub async fn write_async<T, E>(
        &self,
        work: impl FnOnce(&Db) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        match &self.backend {
            Backend::Sqlite(file) => file.writer()?.write(work).await,
            Backend::Postgres { pool, waits, .. } => {
                let (pool, waits) = (pool.clone(), waits.clone());
                let write = move || postgres_write(&pool, &waits, Writers::Together, work);
                on_blocking_pool(write, StoreError::WriteLost).await
            }
        }
    }

    /// Copies the whole log into the database and empties it, so that the next start has
    /// nothing to replay. For a server that has stopped: it waits for writes under way.
    /// Nothing to do on PostgreSQL.
    pub fn checkpoint(&self) -> StoreResult<()> {
        if let Backend::Sqlite(file) = &self.backend {
            file.pool
                .get()?
                .wal_checkpoint_v2(None::<&str>, rusqlite::wal::CheckpointMode::TRUNCATE)?;
        }
        Ok(())
    }

    /// Writes a consistent copy of the live database to `dest` (which must not exist).
    pub fn backup(&self, dest: &Path) -> StoreResult<()> {
        let Backend::Sqlite(file) = &self.backend else {
            return Err(StoreError::SqliteOnly("latchkey backup"));
        };
        let conn = file.pool.get()?;
        // SQLite would create the copy with the process umask; it holds the signing keys, so
        // it is created owner-only first (VACUUM INTO accepts an empty file).
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dest)
            .map_err(|source| StoreError::Backup {
                path: dest.to_path_buf(),
                source,
            })?;
        conn.execute("VACUUM INTO ?1", [dest.to_string_lossy()])
            .map_err(|error| {
                // No half-written copy is left behind to be mistaken for a backup.
                let _ = std::fs::remove_file(dest);
                StoreError::from(error)
            })?;
        Ok(())
    }
}

/// The pool settings of both backends: at most `POOL_SIZE` connections, one kept open, and a
/// caller waits up to 30 s for one.
fn pool_builder<M: r2d2::ManageConnection>() -> r2d2::Builder<M> {
    r2d2::Pool::builder()
        .max_size(POOL_SIZE)
        .min_idle(Some(1))
        .connection_timeout(Duration::from_secs(30))
}

/// Runs `work` on the runtime's blocking pool, off the caller's event loop; `lost` when it
/// panicked.
async fn on_blocking_pool<T, E>(
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
    lost: StoreError,
) -> Result<T, E>
where
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|_| Err(E::from(lost)))
}

/// The health check's PostgreSQL connection.
struct Health {
    manager: postgres::Manager,
    connection: Mutex<Option<postgres::PgConnection>>,
}

impl Health {
    fn ping(&self) -> StoreResult<()> {
        use r2d2::ManageConnection;
        let mut slot = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(connection) = slot.as_mut()
            && self.manager.has_broken(connection)
        {
            *slot = None;
        }
        let connection = match slot.take() {
            Some(connection) => connection,
            None => self.manager.connect()?,
        };
        let answered = meta::ping(&Db::Postgres(connection.conn()));
        *slot = Some(connection);
        answered
    }
}

/// Runs `work` in a transaction on a pooled PostgreSQL connection.
fn postgres_write<T, E>(
    pool: &r2d2::Pool<postgres::Manager>,
    waits: &Option<WaitObserver>,
    writers: Writers,
    work: impl FnOnce(&Db) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<StoreError>,
{
    let conn = pool.get().map_err(StoreError::from)?;
    conn.transaction(writers, waits.as_deref(), |pg| work(&Db::Postgres(pg)))
}

impl SqliteFile {
    fn write<T, E>(&self, work: impl FnOnce(&Db) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let mut conn = self.pool.get().map_err(StoreError::from)?;
        let asked = Instant::now();
        let _turn = self.turn.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(observer) = &self.waits {
            observer(asked.elapsed());
        }
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let value = work(&Db::Sqlite(&tx))?;
        tx.commit().map_err(StoreError::from)?;
        Ok(value)
    }

    fn writer(&self) -> StoreResult<&Writer> {
        if let Some(writer) = self.queue.get() {
            return Ok(writer);
        }
        let manager = ConnectionManager {
            path: self.path.clone(),
        };
        let mut conn = manager.connect_configured()?;
        checkpoint::beside(&mut conn, manager.connect_configured()?, self.turn.clone())
            .map_err(StoreError::WriterStart)?;
        let writer = Writer::start(conn, self.turn.clone(), self.waits.clone())
            .map_err(StoreError::WriterStart)?;
        // Two first writes at once may both start one; the spare thread ends with its handle.
        Ok(self.queue.get_or_init(|| writer))
    }
}

/// Reads a JSON column into `T`, reporting damage instead of panicking.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    table: &'static str,
    text: &str,
) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        table,
        detail: e.to_string(),
    })
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_string())
}
