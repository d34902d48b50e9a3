//! The command line: clap definitions and one function per command.

mod clients;
mod groups;
mod keys;
mod maintenance;
mod ops;
mod proxmox;
mod serve;
mod users;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{ConfigError, Overrides, Settings};
use crate::directory::DirectoryError;
use crate::keys::KeyError;
use crate::store::{Store, StoreError};

#[derive(Debug, Parser)]
#[command(
    name = "latchkey",
    version,
    about = "A single-binary OpenID Connect provider with passkeys"
)]
pub struct Cli {
    /// Where the database lives.
    #[arg(long, env = "LATCHKEY_DATA_DIR", global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL instead of the SQLite file in the data directory: postgres://USER@HOST/DB.
    #[arg(
        long,
        env = "LATCHKEY_DATABASE_URL",
        global = true,
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// A TOML configuration file.
    #[arg(long, env = "LATCHKEY_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the OpenID Connect provider.
    Serve {
        /// Address to listen on, such as 127.0.0.1:8080.
        #[arg(long, env = "LATCHKEY_LISTEN", value_name = "ADDR")]
        listen: Option<String>,
        /// The public URL clients reach this server at.
        #[arg(long, env = "LATCHKEY_ISSUER", value_name = "URL")]
        issuer: Option<String>,
        #[command(flatten)]
        tls: serve::TlsArgs,
    },
    /// Manage people.
    #[command(subcommand)]
    User(users::UserCommand),
    /// Manage groups.
    #[command(subcommand)]
    Group(groups::GroupCommand),
    /// Manage OIDC clients (applications).
    #[command(subcommand)]
    Client(clients::ClientCommand),
    /// Print a one-time login link for a user.
    LoginLink {
        user: String,
        /// How long the link works: 90s, 15m, 2h, 1d.
        #[arg(long, default_value = "15m")]
        ttl: String,
    },
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Keep a Proxmox server's users, groups and ACLs in step with a client's rules.
    #[command(subcommand)]
    Proxmox(proxmox::ProxmoxCommand),
    /// Write a consistent copy of the database, safe while `serve` runs.
    Backup { file: PathBuf },
    /// Read a secret on stdin and print its argon2id PHC string.
    HashSecret,
    /// Exit 0 when the configured server answers /healthz (for Docker and systemd).
    Healthcheck {
        /// The address `serve` listens on, such as 127.0.0.1:8080.
        #[arg(long, env = "LATCHKEY_LISTEN", value_name = "ADDR")]
        listen: Option<String>,
        /// The public URL `serve` publishes (its path prefixes /healthz).
        #[arg(long, env = "LATCHKEY_ISSUER", value_name = "URL")]
        issuer: Option<String>,
    },
    /// Print a shell completion script.
    Completions { shell: clap_complete::Shell },
    /// Print the manual page (roff), generated from these definitions.
    Man,
    /// Print a new one-time setup link while no administrator exists.
    SetupLink,
    /// Replace the database by a backup file; refused while `serve` runs.
    Restore { file: PathBuf },
    /// Copy the database into an empty PostgreSQL one (or a new SQLite file), checked first.
    ///
    /// The target must hold no rows. Everything is copied in one transaction, and committed
    /// only when the row counts and a sample of every table match the source. Refused while
    /// `serve` runs on the SQLite side; stop instances on PostgreSQL by hand first.
    MigrateStore {
        /// postgres://USER:PASSWORD@HOST/DATABASE, or a directory for a new SQLite file.
        #[arg(long, value_name = "URL|DIR")]
        to: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Prepare(#[from] crate::server::PrepareError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Lock(#[from] crate::store::lock::LockError),
    #[error(transparent)]
    Restore(#[from] crate::store::restore::RestoreError),
    #[error(transparent)]
    Copy(#[from] crate::store::copy::CopyError),
    #[error("{0}")]
    Usage(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl From<crate::names::Invalid> for CliError {
    fn from(error: crate::names::Invalid) -> Self {
        CliError::Directory(error.into())
    }
}

impl CliError {
    fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> CliError {
        let context = context.into();
        move |source| CliError::Io { context, source }
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;

/// Runs a parsed command line.
pub fn run(cli: Cli) -> CliResult {
    let (listen, issuer, tls) = match &cli.command {
        Command::Serve {
            listen,
            issuer,
            tls,
            ..
        } => (listen.clone(), issuer.clone(), tls.clone().into()),
        Command::Healthcheck { listen, issuer } => {
            (listen.clone(), issuer.clone(), serve::TlsArgs::from_env())
        }
        Command::Completions { shell } => return ops::completions(*shell),
        Command::Man => return ops::man(),
        _ => (
            None,
            std::env::var("LATCHKEY_ISSUER").ok(),
            serve::TlsArgs::from_env(),
        ),
    };
    let settings = Settings::resolve(Overrides {
        data_dir: cli.data_dir,
        database_url: cli.database_url,
        config: cli.config,
        listen,
        issuer,
        tls,
    })?;
    match cli.command {
        Command::Serve { .. } => serve::run(settings),
        Command::HashSecret => maintenance::hash_secret(),
        Command::Healthcheck { .. } => ops::healthcheck(&settings),
        Command::Restore { file } => ops::restore(&settings, &file),
        Command::MigrateStore { to } => ops::migrate_store(&settings, &to),
        command => {
            let store = Store::connect(&settings.database)?;
            match command {
                Command::User(command) => users::run(&store, command),
                Command::Group(command) => groups::run(&store, command),
                Command::Client(command) => clients::run(&store, command),
                Command::LoginLink { user, ttl } => {
                    maintenance::login_link(&store, &settings, &user, &ttl)
                }
                Command::Keys(command) => keys::run(&store, command),
                Command::Proxmox(command) => proxmox::run(&store, &settings, command),
                Command::Backup { file } => maintenance::backup(&store, &file),
                Command::SetupLink => ops::setup_link(&store, &settings),
                Command::Serve { .. }
                | Command::HashSecret
                | Command::Healthcheck { .. }
                | Command::Completions { .. }
                | Command::Man
                | Command::Restore { .. }
                | Command::MigrateStore { .. } => Ok(()),
            }
        }
    }
}

/// Prints `value` as one line of JSON.
fn print_json(value: &impl serde::Serialize) -> CliResult {
    let text = serde_json::to_string(value)
        .map_err(|e| CliError::Usage(format!("cannot print JSON: {e}")))?;
    println!("{text}");
    Ok(())
}
