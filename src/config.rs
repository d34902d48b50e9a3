//! Settings: command-line flags, `LATCHKEY_*` environment variables (both through clap),
//! an optional TOML file, and defaults, in that order of precedence.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::store::{Database, PgTarget};

pub mod sources;

pub const DEFAULT_DATA_DIR: &str = "data";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_ISSUER: &str = "http://localhost:8080";
pub const DEFAULT_AUDIT_RETENTION_SECS: i64 = 365 * 86_400;
pub const DEFAULT_PROXMOX_SYNC_EVERY_SECS: i64 = 600;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid issuer {0:?}: {1}")]
    Issuer(String, &'static str),
    #[error("invalid listen address {0:?}: expected HOST:PORT such as 127.0.0.1:8080")]
    Listen(String),
    #[error("invalid trusted proxy {0:?}: expected an IP address")]
    TrustedProxy(String),
    #[error("invalid {0} {1:?}: use a number with s, m, h or d, such as 14d")]
    Duration(&'static str, String),
    #[error("invalid limits.{0} = {1}: use a number of attempts a minute from 1 to 100000")]
    Limit(&'static str, u32),
    // tls (issue 9)
    #[error("{0} is set without {1}: https needs both the certificate chain and its key")]
    TlsHalf(&'static str, &'static str),
    #[error("invalid http_redirect_listen {0:?}: expected HOST:PORT such as 0.0.0.0:80")]
    RedirectListen(String),
    #[error("http_redirect_listen redirects to the issuer, so the issuer must be https, not {0}")]
    RedirectToHttp(String),
    // cmds (issue 9): settings from files, scheduled backups.
    #[error("cannot read {setting} {path}: {source}")]
    SecretFile {
        setting: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: give one of them, not both")]
    TwoSources(String),
    #[error("invalid backup_keep {0:?}: use a number of backups from 1 to 10000")]
    BackupKeep(String),
    #[error("{0} needs backup_dir")]
    BackupWithoutDir(&'static str),
    #[error("invalid database_url: {0}")]
    DatabaseUrl(#[source] crate::store::postgres::UrlError),
    #[error(
        "invalid database_url: use postgres://USER@HOST:PORT/DATABASE, or leave it out for SQLite in the data directory"
    )]
    DatabaseScheme,
    #[error("database_password is set without database_url")]
    PasswordWithoutUrl,
    #[error(
        "backup_dir copies the SQLite file; with PostgreSQL, back up with its own tools (pg_dump)"
    )]
    BackupsOnPostgres,
    // Logs and metrics (issue 9, obs).
    #[error("invalid log_format {0:?}: use text or json")]
    LogFormat(String),
    #[error(
        "invalid log_level {0:?}: use a level such as info or debug, or directives such as latchkey=debug,warn"
    )]
    LogLevel(String),
    #[error("invalid metrics_listen {0:?}: expected IP:PORT such as 127.0.0.1:9464")]
    MetricsListen(String),
}

/// "90s", "15m", "2h", "1d" or plain seconds.
pub fn parse_duration(text: &str) -> Option<i64> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let number: i64 = number.parse().ok()?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return None,
    };
    number.checked_mul(seconds).filter(|s| *s > 0)
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per event, for log collectors.
    Json,
}

impl LogFormat {
    fn parse(text: &str) -> Result<LogFormat, ConfigError> {
        match text.trim() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(ConfigError::LogFormat(text.to_string())),
        }
    }
}

/// The log and metrics settings (`log_format`, `log_level`, `metrics_listen`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObserveSettings {
    pub log_format: LogFormat,
    /// A filter such as `info` or `latchkey=debug,warn`; `RUST_LOG` wins when set.
    pub log_level: String,
    /// Where `/metrics` is served; no metrics listener when absent.
    pub metrics_listen: Option<SocketAddr>,
}

pub const DEFAULT_LOG_LEVEL: &str = "info";

impl ObserveSettings {
    /// The settings from `LATCHKEY_LOG_FORMAT`, `LATCHKEY_LOG_LEVEL` and
    /// `LATCHKEY_METRICS_LISTEN`, else from the config file's values, else the defaults.
    pub fn resolve(
        log_format: Option<String>,
        log_level: Option<String>,
        metrics_listen: Option<String>,
    ) -> Result<ObserveSettings, ConfigError> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let log_format = env("LATCHKEY_LOG_FORMAT")
            .or(log_format)
            .map(|text| LogFormat::parse(&text))
            .transpose()?
            .unwrap_or_default();
        let log_level = env("LATCHKEY_LOG_LEVEL")
            .or(log_level)
            .unwrap_or_else(|| DEFAULT_LOG_LEVEL.to_string());
        tracing_subscriber::EnvFilter::try_new(&log_level)
            .map_err(|_| ConfigError::LogLevel(log_level.clone()))?;
        let metrics_listen = env("LATCHKEY_METRICS_LISTEN")
            .or(metrics_listen)
            .map(|text| {
                text.trim()
                    .parse()
                    .map_err(|_| ConfigError::MetricsListen(text.clone()))
            })
            .transpose()?;
        Ok(ObserveSettings {
            log_format,
            log_level,
            metrics_listen,
        })
    }
}

/// How long sign-ins last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// From sign-in to the end, whatever happens.
    pub lifetime_secs: i64,
    /// Without any request in between.
    pub idle_secs: i64,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        SessionPolicy {
            lifetime_secs: 14 * 86400,
            idle_secs: 3 * 86400,
        }
    }
}

/// Per-address limits, each a number of attempts a minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// Passkey sign-in or registration steps, started or finished.
    pub passkey_ceremonies: u32,
    /// Login and setup links opened.
    pub login_links: u32,
    /// Client secrets checked with argon2, per address and client (verified secrets are
    /// remembered and not counted).
    pub client_secret_checks: u32,
    /// Authorization requests kept while someone signs in.
    pub authorization_requests: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            passkey_ceremonies: 60,
            login_links: 20,
            client_secret_checks: 20,
            authorization_requests: 30,
        }
    }
}

impl LimitSettings {
    fn validated(self) -> Result<LimitSettings, ConfigError> {
        for (name, value) in [
            ("passkey_ceremonies", self.passkey_ceremonies),
            ("login_links", self.login_links),
            ("client_secret_checks", self.client_secret_checks),
            ("authorization_requests", self.authorization_requests),
        ] {
            if !(1..=100_000).contains(&value) {
                return Err(ConfigError::Limit(name, value));
            }
        }
        Ok(self)
    }
}

/// The public URL of this provider. Discovery's `issuer`, every token's `iss`, every endpoint
/// and the WebAuthn relying party derive from it, so it is kept exactly as the operator wrote
/// it, less any trailing slash: relying parties such as Proxmox compare it byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer {
    url: String,
    origin: String,
    host: String,
    path: String,
    https: bool,
}

impl Issuer {
    pub fn parse(input: &str) -> Result<Issuer, ConfigError> {
        let fail = |why| ConfigError::Issuer(input.to_string(), why);
        // The URL parser drops spaces, tabs and newlines that the published string would keep.
        if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(fail("an issuer has no spaces or control characters"));
        }
        let trimmed = input.trim_end_matches('/');
        let parsed = url::Url::parse(trimmed).map_err(|_| fail("not an absolute URL"))?;
        let https = match parsed.scheme() {
            "https" => true,
            "http" => false,
            _ => return Err(fail("the scheme must be http or https")),
        };
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(fail("an issuer has no query or fragment"));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(fail("an issuer has no user name or password"));
        }
        let host = parsed
            .host_str()
            .ok_or_else(|| fail("the URL has no host"))?
            .to_string();
        let origin = parsed.origin().ascii_serialization();
        let path = parsed.path().trim_end_matches('/').to_string();
        Ok(Issuer {
            url: trimmed.to_string(),
            origin,
            host,
            path,
            https,
        })
    }

    /// The issuer exactly as published.
    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// `scheme://host[:port]`, what browsers send as `Origin`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// The path routes are mounted under: empty, or `/something` without a trailing slash.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn is_https(&self) -> bool {
        self.https
    }

    /// An absolute URL for a route of ours: `endpoint("/token")`.
    pub fn endpoint(&self, route: &str) -> String {
        format!("{}{}", self.url, route)
    }
}

impl std::fmt::Display for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

/// The TOML file, as its contract in the design describes it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub issuer: Option<String>,
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    /// `postgres://…`: the data lives in PostgreSQL instead of the data directory's SQLite file.
    pub database_url: Option<String>,
    pub database_url_file: Option<PathBuf>,
    /// The PostgreSQL password, when the URL leaves it out.
    pub database_password: Option<String>,
    pub database_password_file: Option<PathBuf>,
    /// Peers whose `X-Forwarded-For` header is believed (reverse proxies).
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// How long a sign-in lasts at most, such as "14d".
    pub session_lifetime: Option<String>,
    /// How long a sign-in lasts without use, such as "3d".
    pub session_idle_timeout: Option<String>,
    /// How long audit events are kept, such as "365d".
    pub audit_retention: Option<String>,
    /// How often every Proxmox target is synced to repair drift, such as "10m".
    pub proxmox_sync_every: Option<String>,
    /// Per-address limits (`[limits]`).
    #[serde(default)]
    pub limits: LimitSettings,
    #[serde(default)]
    pub groups: Vec<toml::Spanned<DeclaredGroup>>,
    #[serde(default)]
    pub clients: Vec<toml::Spanned<DeclaredClient>>,
    // tls (issue 9)
    /// PEM certificate chain: with `tls_key`, `serve` speaks https itself.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Where plain http is answered with a redirect to the https issuer, such as "0.0.0.0:80".
    pub http_redirect_listen: Option<String>,
    // cmds (issue 9): scheduled backups.
    /// Where scheduled backups are written; none without it.
    pub backup_dir: Option<PathBuf>,
    /// How often, such as "1d".
    pub backup_every: Option<String>,
    /// How many backups are kept.
    pub backup_keep: Option<u32>,
    // Logs and metrics (issue 9, obs).
    /// `text` or `json`.
    pub log_format: Option<String>,
    /// Such as "info", or "latchkey=debug,warn"; `RUST_LOG` wins.
    pub log_level: Option<String>,
    /// Where Prometheus scrapes `/metrics`, such as "127.0.0.1:9464"; off when absent.
    pub metrics_listen: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredGroup {
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredClient {
    pub client_id: String,
    pub name: Option<String>,
    /// After `Settings::resolve`, also the content of `secret_file` when that is given.
    pub secret: Option<String>,
    /// A file holding the secret (plain or an argon2 PHC string).
    pub secret_file: Option<PathBuf>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    pub allowed_groups: Vec<String>,
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub require_pkce: bool,
    /// Ask people to consent; without it the client is trusted.
    #[serde(default)]
    pub ask_consent: bool,
    pub launch_url: Option<String>,
    /// Such as "1h".
    pub access_token_lifetime: Option<String>,
    /// Such as "30d".
    pub refresh_token_lifetime: Option<String>,
    /// RS256 (the default), ES256 or EdDSA.
    pub id_token_signed_response_alg: Option<String>,
    /// The client's Proxmox server, whose users and ACLs Latchkey keeps in step.
    pub proxmox: Option<DeclaredProxmox>,
}

/// `[clients.proxmox]`: a client's Proxmox target and its rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredProxmox {
    pub product: String,
    pub api_url: String,
    pub token_id: String,
    /// After `Settings::resolve`, also the content of `token_secret_file` when that is given.
    pub token_secret: Option<String>,
    pub token_secret_file: Option<PathBuf>,
    /// SHA-256, as Proxmox shows it; else `ca_file`; else the system's CA certificates.
    pub fingerprint: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub realm: Option<String>,
    pub leavers: Option<String>,
    #[serde(default)]
    pub manage_realm: bool,
    #[serde(default)]
    pub permissions: Vec<DeclaredPermission>,
}

/// `[[clients.proxmox.permissions]]`: a group's members get a role at a path.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredPermission {
    pub group: String,
    pub role: String,
    pub path: Option<String>,
    pub propagate: Option<bool>,
}

/// Something declared in the config file, with the line it starts on.
#[derive(Debug, Clone)]
pub struct Declared<T> {
    pub line: usize,
    pub item: T,
}

impl FileConfig {
    /// Reads the file; also returns its text, to turn spans into line numbers.
    pub fn load(path: &Path) -> Result<(FileConfig, String), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let parsed = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        Ok((parsed, text))
    }
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn declared<T>(text: &str, items: Vec<toml::Spanned<T>>) -> Vec<Declared<T>> {
    items
        .into_iter()
        .map(|spanned| Declared {
            line: line_of(text, spanned.span().start),
            item: spanned.into_inner(),
        })
        .collect()
}

/// What flags and environment variables said (clap merges those two).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub config: Option<PathBuf>,
    pub listen: Option<String>,
    pub issuer: Option<String>,
    // tls (issue 9)
    pub tls: TlsOverrides,
}

/// The TLS settings flags and environment variables gave (or the file, below them).
#[derive(Debug, Default, Clone)]
pub struct TlsOverrides {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub http_redirect_listen: Option<String>,
}

/// The PEM files `serve` speaks https with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, the server's own certificate first.
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Both files or neither; a redirect listener only towards an https issuer.
fn tls_settings(
    overrides: TlsOverrides,
    file: TlsOverrides,
    issuer: &Issuer,
) -> Result<(Option<TlsFiles>, Option<String>), ConfigError> {
    let tls = match (overrides.cert.or(file.cert), overrides.key.or(file.key)) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        (None, None) => None,
        (Some(_), None) => return Err(ConfigError::TlsHalf("tls_cert", "tls_key")),
        (None, Some(_)) => return Err(ConfigError::TlsHalf("tls_key", "tls_cert")),
    };
    let redirect = overrides.http_redirect_listen.or(file.http_redirect_listen);
    if let Some(address) = &redirect {
        if !is_listen_address(address) {
            return Err(ConfigError::RedirectListen(address.clone()));
        }
        if !issuer.is_https() {
            return Err(ConfigError::RedirectToHttp(issuer.to_string()));
        }
    }
    Ok((tls, redirect))
}

/// An IP address and port, or a host name and port.
fn is_listen_address(text: &str) -> bool {
    text.parse::<std::net::SocketAddr>().is_ok() || text.contains(':')
}

/// Settings after every source has been merged and validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    /// Where the data lives: the SQLite file in `data_dir`, or PostgreSQL.
    pub database: Database,
    pub listen: String,
    pub issuer: Issuer,
    /// True when the issuer came from a flag, the environment or the file, not the default.
    pub issuer_explicit: bool,
    pub trusted_proxies: Vec<IpAddr>,
    pub sessions: SessionPolicy,
    /// Audit events older than this many seconds are deleted.
    pub audit_retention_secs: i64,
    /// Every Proxmox target is synced this often, to repair drift made on the servers.
    pub proxmox_sync_every_secs: i64,
    pub limits: LimitSettings,
    /// The config file, when there is one (for messages about what it declares).
    pub config_path: Option<PathBuf>,
    pub groups: Vec<Declared<DeclaredGroup>>,
    pub clients: Vec<Declared<DeclaredClient>>,
    // tls (issue 9)
    /// The certificate and key `serve` speaks https with; none: plain http, as behind a proxy.
    pub tls: Option<TlsFiles>,
    /// Where plain http is answered with a redirect to the (https) issuer.
    pub http_redirect_listen: Option<String>,
    // cmds (issue 9): scheduled backups; warnings about secret files.
    /// Scheduled backups, when `backup_dir` is set.
    pub backups: Option<BackupSettings>,
    /// Said once at start: secret files readable by other users.
    pub warnings: Vec<String>,
    // Logs and metrics (issue 9, obs).
    pub observe: ObserveSettings,
}

impl Settings {
    pub fn resolve(overrides: Overrides) -> Result<Settings, ConfigError> {
        let (file, text) = match &overrides.config {
            Some(path) => FileConfig::load(path)?,
            None => (FileConfig::default(), String::new()),
        };
        let data_dir = overrides
            .data_dir
            .or(file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let mut warnings = Vec::new();
        let database = database(
            &data_dir,
            overrides.database_url,
            &file,
            &sources::process_env,
            &mut warnings,
        )?;
        let listen = listen_address(overrides.listen.or(file.listen))?;
        let explicit_issuer = overrides.issuer.or(file.issuer);
        let issuer_explicit = explicit_issuer.is_some();
        let issuer = Issuer::parse(explicit_issuer.as_deref().unwrap_or(DEFAULT_ISSUER))?;
        let (tls, http_redirect_listen) = tls_settings(
            overrides.tls,
            TlsOverrides {
                cert: file.tls_cert,
                key: file.tls_key,
                http_redirect_listen: file.http_redirect_listen,
            },
            &issuer,
        )?;
        let trusted_proxies = trusted_proxies(&file.trusted_proxies)?;
        let times = Durations::resolve([
            file.session_lifetime,
            file.session_idle_timeout,
            file.audit_retention,
            file.proxmox_sync_every,
        ])?;
        let clients = secrets_from_files(file.clients, &mut warnings)?;
        let backups = BackupSettings::resolve(
            (file.backup_dir, file.backup_every, file.backup_keep),
            &sources::process_env,
            &mut warnings,
        )?;
        if backups.is_some() && matches!(database, Database::Postgres(_)) {
            return Err(ConfigError::BackupsOnPostgres);
        }
        Ok(Settings {
            data_dir,
            database,
            listen,
            issuer,
            issuer_explicit,
            trusted_proxies,
            sessions: times.sessions,
            audit_retention_secs: times.audit_retention_secs,
            proxmox_sync_every_secs: times.proxmox_sync_every_secs,
            limits: file.limits.validated()?,
            config_path: overrides.config,
            groups: declared(&text, file.groups),
            tls,
            http_redirect_listen,
            clients: declared(&text, clients),
            backups,
            warnings,
            observe: ObserveSettings::resolve(
                file.log_format,
                file.log_level,
                file.metrics_listen,
            )?,
        })
    }
}

/// The address to listen on: given, or the default.
fn listen_address(given: Option<String>) -> Result<String, ConfigError> {
    let listen = given.unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    if is_listen_address(&listen) {
        Ok(listen)
    } else {
        Err(ConfigError::Listen(listen))
    }
}

/// The proxies whose forwarded addresses are believed.
fn trusted_proxies(given: &[String]) -> Result<Vec<IpAddr>, ConfigError> {
    given
        .iter()
        .map(|p| p.parse().map_err(|_| ConfigError::TrustedProxy(p.clone())))
        .collect()
}

/// The lengths of time the config file may set, each parsed or its default.
struct Durations {
    sessions: SessionPolicy,
    audit_retention_secs: i64,
    proxmox_sync_every_secs: i64,
}

impl Durations {
    /// From `session_lifetime`, `session_idle_timeout`, `audit_retention` and
    /// `proxmox_sync_every`, in that order.
    fn resolve(given: [Option<String>; 4]) -> Result<Durations, ConfigError> {
        let [lifetime, idle, retention, sync] = given;
        let duration = |name, value: Option<String>, default| match value {
            None => Ok(default),
            Some(text) => parse_duration(&text).ok_or(ConfigError::Duration(name, text)),
        };
        let defaults = SessionPolicy::default();
        Ok(Durations {
            sessions: SessionPolicy {
                lifetime_secs: duration("session_lifetime", lifetime, defaults.lifetime_secs)?,
                idle_secs: duration("session_idle_timeout", idle, defaults.idle_secs)?,
            },
            audit_retention_secs: duration(
                "audit_retention",
                retention,
                DEFAULT_AUDIT_RETENTION_SECS,
            )?,
            proxmox_sync_every_secs: duration(
                "proxmox_sync_every",
                sync,
                DEFAULT_PROXMOX_SYNC_EVERY_SECS,
            )?,
        })
    }
}

/// The database: PostgreSQL when a URL is given (flag, `LATCHKEY_DATABASE_URL`, its `_FILE`
/// form, or the file's `database_url`/`database_url_file`), else SQLite in the data dir. The
/// password may come apart from the URL, the same ways.
fn database(
    data_dir: &Path,
    flag: Option<String>,
    file: &FileConfig,
    lookup: &impl Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> Result<Database, ConfigError> {
    let from_file = |inline: &Option<String>, path: &Option<PathBuf>, names, warnings: &mut _| {
        sources::inline_or_file(names, inline.clone(), path.as_deref(), warnings)
    };
    let url = match flag {
        Some(url) => Some(url),
        None => sources::from_env("database_url", lookup, warnings)?,
    };
    let url = match url {
        Some(url) => Some(url),
        None => from_file(
            &file.database_url,
            &file.database_url_file,
            sources::Names {
                inline: "database_url",
                file: "database_url_file",
            },
            warnings,
        )?,
    };
    let password = match sources::from_env("database_password", lookup, warnings)? {
        Some(password) => Some(password),
        None => from_file(
            &file.database_password,
            &file.database_password_file,
            sources::Names {
                inline: "database_password",
                file: "database_password_file",
            },
            warnings,
        )?,
    };
    match url {
        None if password.is_some() => Err(ConfigError::PasswordWithoutUrl),
        None => Ok(Database::Sqlite(data_dir.to_path_buf())),
        Some(url) if PgTarget::is_url(&url) => {
            let target = PgTarget::parse(&url, password).map_err(ConfigError::DatabaseUrl)?;
            Ok(Database::Postgres(Box::new(target)))
        }
        Some(_) => Err(ConfigError::DatabaseScheme),
    }
}

// cmds (issue 9): secrets from files, scheduled backups.

pub const DEFAULT_BACKUP_EVERY_SECS: i64 = 86_400;
pub const DEFAULT_BACKUP_KEEP: usize = 7;

/// Scheduled backups: a copy into `dir` every `every_secs`, the newest `keep` kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSettings {
    pub dir: PathBuf,
    pub every_secs: i64,
    pub keep: usize,
}

impl BackupSettings {
    /// From `LATCHKEY_BACKUP_*` (or their `_FILE` forms), else the file's keys.
    fn resolve(
        (dir, every, keep): (Option<PathBuf>, Option<String>, Option<u32>),
        lookup: &impl Fn(&str) -> Option<String>,
        warnings: &mut Vec<String>,
    ) -> Result<Option<BackupSettings>, ConfigError> {
        let mut env = |key| sources::from_env(key, lookup, warnings);
        let dir = env("backup_dir")?.map(PathBuf::from).or(dir);
        let every = env("backup_every")?.or(every);
        let keep = env("backup_keep")?.or(keep.map(|k| k.to_string()));
        let Some(dir) = dir else {
            return match (every, keep) {
                (None, None) => Ok(None),
                (Some(_), _) => Err(ConfigError::BackupWithoutDir("backup_every")),
                (None, Some(_)) => Err(ConfigError::BackupWithoutDir("backup_keep")),
            };
        };
        let every_secs = match every {
            None => DEFAULT_BACKUP_EVERY_SECS,
            Some(text) => {
                parse_duration(&text).ok_or(ConfigError::Duration("backup_every", text))?
            }
        };
        let keep = match keep {
            None => DEFAULT_BACKUP_KEEP,
            Some(text) => text
                .trim()
                .parse()
                .ok()
                .filter(|k| (1..=10_000).contains(k))
                .ok_or(ConfigError::BackupKeep(text))?,
        };
        Ok(Some(BackupSettings {
            dir,
            every_secs,
            keep,
        }))
    }
}

/// Reads every `secret_file` and `token_secret_file` the clients name into `secret` and
/// `token_secret`; each client gives a secret at most one way.
fn secrets_from_files(
    mut clients: Vec<toml::Spanned<DeclaredClient>>,
    warnings: &mut Vec<String>,
) -> Result<Vec<toml::Spanned<DeclaredClient>>, ConfigError> {
    for spanned in &mut clients {
        let client = spanned.get_mut();
        let owner = |key| format!("client {:?} {key}", client.client_id);
        let (secret, secret_file) = (owner("secret"), owner("secret_file"));
        let (token, token_file) = (owner("token_secret"), owner("token_secret_file"));
        client.secret = sources::inline_or_file(
            sources::Names {
                inline: &secret,
                file: &secret_file,
            },
            client.secret.take(),
            client.secret_file.as_deref(),
            warnings,
        )?;
        if let Some(proxmox) = &mut client.proxmox {
            proxmox.token_secret = sources::inline_or_file(
                sources::Names {
                    inline: &token,
                    file: &token_file,
                },
                proxmox.token_secret.take(),
                proxmox.token_secret_file.as_deref(),
                warnings,
            )?;
        }
    }
    Ok(clients)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_loses_trailing_slash_only() {
        let issuer = Issuer::parse("https://id.example.com/").unwrap();
        assert_eq!(issuer.as_str(), "https://id.example.com");
        assert_eq!(issuer.endpoint("/token"), "https://id.example.com/token");
        assert_eq!(issuer.path(), "");
        let issuer = Issuer::parse("https://example.com:8443/auth/").unwrap();
        assert_eq!(issuer.as_str(), "https://example.com:8443/auth");
        assert_eq!(issuer.origin(), "https://example.com:8443");
        assert_eq!(issuer.host(), "example.com");
        assert_eq!(issuer.path(), "/auth");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15m"), Some(900));
        assert_eq!(parse_duration("2h"), Some(7200));
        assert_eq!(parse_duration("1d"), Some(86400));
        assert_eq!(parse_duration("45"), Some(45));
        assert_eq!(parse_duration("0s"), None);
        assert_eq!(parse_duration("5y"), None);
        assert_eq!(parse_duration("m"), None);
    }

    fn database_from(
        url: Option<&str>,
        file: &FileConfig,
        env: &[(&str, &str)],
    ) -> Result<Database, ConfigError> {
        let lookup = |name: &str| {
            env.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        };
        database(
            Path::new("data"),
            url.map(str::to_string),
            file,
            &lookup,
            &mut Vec::new(),
        )
    }

    #[test]
    fn sqlite_unless_a_postgres_url_is_given() {
        let none = FileConfig::default();
        assert!(matches!(
            database_from(None, &none, &[]),
            Ok(Database::Sqlite(dir)) if dir == Path::new("data")
        ));
        let url = "postgres://latchkey@db.example.com/latchkey?sslmode=verify-full";
        let Ok(Database::Postgres(target)) = database_from(Some(url), &none, &[]) else {
            panic!("a PostgreSQL URL");
        };
        assert_eq!(
            target.describe(),
            "PostgreSQL database latchkey on db.example.com:5432"
        );
        assert!(matches!(
            database_from(Some("mysql://x/y"), &none, &[]),
            Err(ConfigError::DatabaseScheme)
        ));
        assert!(matches!(
            database_from(Some("postgres://h/d?sslmode=sometimes"), &none, &[]),
            Err(ConfigError::DatabaseUrl(_))
        ));
        assert!(matches!(
            database_from(None, &none, &[("LATCHKEY_DATABASE_PASSWORD", "pw")]),
            Err(ConfigError::PasswordWithoutUrl)
        ));
        let from_env = [("LATCHKEY_DATABASE_URL", "postgres://h/d")];
        assert!(matches!(
            database_from(None, &none, &from_env),
            Ok(Database::Postgres(_))
        ));
    }

    #[test]
    fn issuer_rejects_nonsense() {
        for bad in [
            "id.example.com",
            "ftp://x",
            "https://x/?a=1",
            "https://u:p@x",
        ] {
            assert!(Issuer::parse(bad).is_err(), "{bad}");
        }
    }
}
