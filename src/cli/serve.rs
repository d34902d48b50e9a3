//! `latchkey serve`

use std::net::TcpListener;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::Poll;

use super::{CliError, CliResult};
use crate::auth::setup;
use crate::clock;
use crate::config::{Issuer, Settings, TlsOverrides};
use crate::notify;
use crate::server;
use crate::state::AppState;
use crate::store::{Database, Store};
use crate::tls::{self, Certificates};

/// Serving https directly.
#[derive(Debug, Clone, clap::Args)]
pub struct TlsArgs {
    /// PEM certificate chain: with --tls-key, serve https (reloaded on SIGHUP and on change).
    #[arg(long, env = "LATCHKEY_TLS_CERT", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of the certificate.
    #[arg(long, env = "LATCHKEY_TLS_KEY", value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Address where plain http is redirected to the https issuer, such as 0.0.0.0:80.
    #[arg(long, env = "LATCHKEY_HTTP_REDIRECT_LISTEN", value_name = "ADDR")]
    http_redirect_listen: Option<String>,
}

impl TlsArgs {
    /// The same settings from the environment alone, for commands other than `serve`.
    pub fn from_env() -> TlsOverrides {
        let var = |name| std::env::var_os(name).filter(|value| !value.is_empty());
        TlsOverrides {
            cert: var("LATCHKEY_TLS_CERT").map(PathBuf::from),
            key: var("LATCHKEY_TLS_KEY").map(PathBuf::from),
            http_redirect_listen: var("LATCHKEY_HTTP_REDIRECT_LISTEN")
                .map(|value| value.to_string_lossy().into_owned()),
        }
    }
}

impl From<TlsArgs> for TlsOverrides {
    fn from(args: TlsArgs) -> TlsOverrides {
        TlsOverrides {
            cert: args.tls_cert,
            key: args.tls_key,
            http_redirect_listen: args.http_redirect_listen,
        }
    }
}

use crate::store::lock::DataDirLock;

pub fn run(settings: Settings) -> CliResult {
    crate::observe::logging::init(&settings.observe);
    // Held until the process ends: `restore` refuses to replace a database in use. Instances
    // sharing a PostgreSQL database share no directory.
    let _lock = match &settings.database {
        Database::Sqlite(dir) => Some(DataDirLock::try_acquire(dir)?),
        Database::Postgres(_) => None,
    };
    let certificates = settings
        .tls
        .as_ref()
        .map(|files| Certificates::load(files, &settings.issuer))
        .transpose()?;
    let store = Store::connect(&settings.database)?;
    for warning in &settings.warnings {
        tracing::warn!("{warning}");
    }
    report_prepared(&server::prepare(&store, &settings)?);
    let (listener, address) = bind(&settings.listen)?;
    let redirect = settings
        .http_redirect_listen
        .as_deref()
        .map(bind)
        .transpose()?;
    // From here on SIGHUP reloads the certificate: before anyone is told the server runs.
    let system = actix_web::rt::System::new();
    let tls = system.block_on(async {
        match certificates {
            Some(certificates) => tls::start(certificates).map(Some),
            None => tls::ignore_hangups().map(|()| None),
        }
    })?;
    let setup_token = store.write(|tx| setup::issue_if_needed(tx, clock::now()))?;
    greet(
        &settings,
        &store,
        address,
        redirect.as_ref().map(|(_, bound)| *bound),
        setup_token.as_deref(),
    );
    let issuer = settings.issuer.clone();
    let stopping = store.clone();
    let state = AppState::new(store, settings);
    system.block_on(async move {
        if let Some((listener, _)) = redirect {
            redirect_plain_http(listener, &issuer)?;
        }
        let mut server = server::run_with_tls(listener, state, tls)
            .map_err(CliError::io("cannot start the server"))?;
        if let Some(stopped) = first_poll(&mut server).await {
            return stopped.map_err(CliError::io("the server stopped"));
        }
        notify::tell(notify::Status::Ready);
        server.await.map_err(CliError::io("the server stopped"))
    })?;
    notify::tell(notify::Status::Stopping);
    if let Err(error) = stopping.checkpoint() {
        tracing::warn!(%error, "the database's log was left for the next start to replay");
    }
    tracing::info!("stopped");
    Ok(())
}

/// What start-up did to the database: a new key, the config file's groups and clients.
fn report_prepared(prepared: &server::Prepared) {
    if prepared.new_signing_key {
        tracing::info!("created a new signing key");
    }
    let declared = &prepared.declared;
    if declared.groups + declared.clients > 0 || !declared.removed.is_empty() {
        tracing::info!(
            "config file: {} groups and {} clients applied{}",
            declared.groups,
            declared.clients,
            if declared.removed.is_empty() {
                String::new()
            } else {
                format!("; removed {}", declared.removed.join(", "))
            }
        );
    }
    for client in &declared.plain_secrets {
        tracing::warn!(
            "client {client}: its secret is plain text in the config file; store the output of \
             `latchkey hash-secret` instead"
        );
    }
    for client in &declared.unmanaged_realm_secrets {
        tracing::warn!(
            "client {client}: Latchkey manages its Proxmox realm, but the config file holds its \
             secret only as a hash, so the realm keeps the client secret it has"
        );
    }
}

/// The lines that tell the operator the server runs, and how to make the first administrator.
fn greet(
    settings: &Settings,
    store: &Store,
    address: std::net::SocketAddr,
    redirect: Option<std::net::SocketAddr>,
    setup_token: Option<&str>,
) {
    println!(
        "Latchkey serving {} on {address} (data in {})",
        settings.issuer,
        store.describe()
    );
    if let Some(address) = redirect {
        println!("Redirecting plain http on {address} to {}", settings.issuer);
    }
    if let Some(token) = setup_token {
        println!("No administrator yet. Open this one-time link to create one (valid 24 hours):");
        println!("  {}{}{token}", settings.issuer, setup::ROUTE);
        println!(
            "Or on the command line: latchkey user add NAME --admin && latchkey login-link NAME"
        );
    }
}

fn bind(address: &str) -> CliResult<(TcpListener, std::net::SocketAddr)> {
    let listener =
        TcpListener::bind(address).map_err(CliError::io(format!("cannot listen on {address}")))?;
    let bound = listener
        .local_addr()
        .map_err(CliError::io("cannot read the listening address"))?;
    Ok((listener, bound))
}

/// Runs the redirecting listener beside the server; it stops with it on SIGINT/SIGTERM.
fn redirect_plain_http(listener: TcpListener, issuer: &Issuer) -> CliResult {
    let server = tls::redirect_server(listener, issuer)
        .map_err(CliError::io("cannot serve the http redirect"))?;
    actix_web::rt::spawn(async move {
        if let Err(error) = server.await {
            tracing::error!("the http redirect stopped: {error}");
        }
    });
    Ok(())
}

/// Polls `server` once: an actix server binds its workers and installs its SIGTERM handler on
/// its first poll. Returns its result if it finished already.
async fn first_poll<F: Future + Unpin>(server: &mut F) -> Option<F::Output> {
    std::future::poll_fn(|cx| match Pin::new(&mut *server).poll(cx) {
        Poll::Ready(output) => Poll::Ready(Some(output)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}
