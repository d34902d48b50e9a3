//! `latchkey serve`

use std::net::TcpListener;
use std::pin::Pin;
use std::task::Poll;

use super::{CliError, CliResult};
use crate::auth::setup;
use crate::clock;
use crate::config::Settings;
use crate::notify;
use crate::server;
use crate::state::AppState;
use crate::store::Store;

pub fn run(settings: Settings) -> CliResult {
    init_logging();
    let store = Store::open(&settings.data_dir)?;
    let prepared = server::prepare(&store, &settings)?;
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
    let listener = TcpListener::bind(&settings.listen).map_err(CliError::io(format!(
        "cannot listen on {}",
        settings.listen
    )))?;
    let address = listener
        .local_addr()
        .map_err(CliError::io("cannot read the listening address"))?;
    let setup_token = store.write(|tx| setup::issue_if_needed(tx, clock::now()))?;
    println!(
        "Latchkey serving {} on {address} (data in {})",
        settings.issuer,
        store.path().display()
    );
    if let Some(token) = setup_token {
        println!("No administrator yet. Open this one-time link to create one (valid 24 hours):");
        println!("  {}{}{token}", settings.issuer, setup::ROUTE);
        println!(
            "Or on the command line: latchkey user add NAME --admin && latchkey login-link NAME"
        );
    }
    let state = AppState::new(store, settings);
    actix_web::rt::System::new()
        .block_on(async move {
            let mut server = server::run(listener, state)?;
            if let Some(stopped) = first_poll(&mut server).await {
                return stopped;
            }
            notify::tell(notify::Status::Ready);
            server.await
        })
        .map_err(CliError::io("the server stopped"))?;
    notify::tell(notify::Status::Stopping);
    tracing::info!("stopped");
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

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}
