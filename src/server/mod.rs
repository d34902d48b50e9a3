//! The HTTP application: start-up, middleware and routes.

mod requests;
mod scrape;

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::http::{StatusCode, header};
use actix_web::{App, HttpResponse, HttpServer, middleware, web};

use crate::auth::AuthState;
use crate::clock;
use crate::config::Settings;
use crate::directory::declared::{self, Applied, DeclarationError};
use crate::keys;
use crate::oidc::{self, OidcState};
use crate::state::{AppState, State, blocking};
use crate::store::{Store, StoreError, meta};
use crate::web::error::{ApiError, PageError};
use crate::web::{self as pages_web, headers};

#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Keys(#[from] keys::KeyError),
    #[error(transparent)]
    Declared(#[from] DeclarationError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What preparing the database did, for the operator.
#[derive(Debug)]
pub struct Prepared {
    pub new_signing_key: bool,
    pub declared: Applied,
}

/// Prepares the database for serving, all or nothing: a signing key, the groups and clients
/// the config file declares, and the issuer the CLI should use in the links it prints.
pub fn prepare(store: &Store, settings: &Settings) -> Result<Prepared, PrepareError> {
    let now = clock::now();
    store.write(|tx| {
        let new_signing_key = keys::ensure_active(tx, now)?;
        let declared = declared::apply(tx, settings, now)?;
        meta::set(tx, meta::SERVED_ISSUER, settings.issuer.as_str())?;
        purge_if_due(tx, settings, now)?;
        Ok(Prepared {
            new_signing_key,
            declared,
        })
    })
}

/// Purges (see `purge`) unless an instance sharing the database did within the hour.
fn purge_if_due(
    conn: &crate::store::Db,
    settings: &Settings,
    now: clock::UnixTime,
) -> Result<(), StoreError> {
    if meta::take_turn(conn, meta::PURGED_AT, now, PURGE_EVERY_SECS)? {
        purge(conn, settings, now)?;
    }
    Ok(())
}

/// Drops what nobody can use any more, and audit events past their retention.
fn purge(
    conn: &crate::store::Db,
    settings: &Settings,
    now: clock::UnixTime,
) -> Result<(), StoreError> {
    crate::store::grants::purge_expired(conn, now)?;
    crate::store::audit::purge_before(conn, now - settings.audit_retention_secs)?;
    Ok(())
}

/// How often the database is purged (see `purge`), by one of the instances sharing it.
const PURGE_EVERY_SECS: i64 = 3600;

/// How often each instance asks whether the purge is due.
const PURGE_CHECK: std::time::Duration = std::time::Duration::from_secs(60);

/// Purges every `PURGE_EVERY_SECS` while the server runs: whichever instance finds it due
/// first takes the turn.
async fn purge_periodically(state: State) {
    let mut ticks = actix_web::rt::time::interval(PURGE_CHECK);
    ticks.tick().await; // the first tick is immediate; `prepare` has just purged
    loop {
        ticks.tick().await;
        let done = blocking(&state, |state| {
            state
                .store
                .write(|tx| purge_if_due(tx, &state.settings, clock::now()))
                .map_err(PageError::from)
        })
        .await;
        if let Err(e) = done {
            tracing::warn!("periodic purge failed: {e}");
        }
    }
}

async fn healthz(state: State) -> Result<HttpResponse, PageError> {
    blocking(&state, |state| state.store.ping().map_err(PageError::from))
        .await
        .map_err(|e: PageError| {
            PageError::new(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", e.message)
        })?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body("ok"))
}

/// The routes, mounted under the issuer's path.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/static/{path:.*}", web::get().to(pages_web::assets::serve))
        .configure(oidc::routes::configure)
        .configure(crate::auth::routes::configure)
        .configure(crate::admin::routes::configure);
}

/// The largest body a page's form or script sends; the back channel allows less (see
/// `oidc::routes`).
const MAX_BODY: usize = 64 * 1024;

/// Starts serving plain http on `listener` (see `run_with_tls`).
pub fn run(listener: TcpListener, state: AppState) -> std::io::Result<Server> {
    run_with_tls(listener, state, None)
}

/// Starts serving on `listener`, https when given a TLS configuration. The returned server
/// stops gracefully on SIGINT/SIGTERM.
pub fn run_with_tls(
    listener: TcpListener,
    state: AppState,
    tls: Option<rustls::ServerConfig>,
) -> std::io::Result<Server> {
    let https = state.settings.issuer.is_https();
    let mount = state.settings.issuer.path().to_string();
    let auth = web::Data::new(AuthState::new(&state.settings.issuer));
    let oidc = web::Data::new(OidcState::new(&state.settings));
    let state = web::Data::new(state);
    scrape::spawn(&state, &oidc)?;
    actix_web::rt::spawn(purge_periodically(state.clone()));
    actix_web::rt::spawn(crate::backups::schedule(
        state.store.clone(),
        state.settings.backups.clone(),
    ));
    actix_web::rt::spawn(crate::proxmox::queue::work(
        state.store.clone(),
        state.settings.issuer.as_str().to_string(),
        std::time::Duration::from_secs(state.settings.proxmox_sync_every_secs.unsigned_abs()),
    ));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(auth.clone())
            .app_data(oidc.clone())
            .app_data(web::PayloadConfig::new(MAX_BODY))
            .app_data(
                web::JsonConfig::default()
                    .limit(MAX_BODY)
                    .error_handler(|error, _| {
                        tracing::debug!("refused JSON body: {error}");
                        ApiError::new(
                            StatusCode::BAD_REQUEST,
                            "the request body is not the JSON this endpoint expects",
                        )
                        .into()
                    }),
            )
            .app_data(
                web::FormConfig::default()
                    .limit(MAX_BODY)
                    .error_handler(|error, _| {
                        tracing::debug!("refused form: {error}");
                        PageError::bad_request(
                            "Form not understood",
                            "The form arrived incomplete. Go back, reload the page and try again.",
                        )
                        .into()
                    }),
            )
            .app_data(
                web::PathConfig::default().error_handler(|_, _| PageError::not_found().into()),
            )
            .wrap(middleware::from_fn(pages_web::error::show_pages))
            .wrap(headers::security_headers(https))
            .wrap(middleware::from_fn(requests::observe))
            .service(web::scope(&mount).configure(routes))
            .default_service(web::to(not_found))
    });
    let server = match tls {
        Some(config) => server.listen_rustls_0_23(listener, config)?,
        None => server.listen(listener)?,
    };
    Ok(server.shutdown_timeout(10).run())
}

async fn not_found() -> Result<HttpResponse, PageError> {
    Err(PageError::not_found())
}
