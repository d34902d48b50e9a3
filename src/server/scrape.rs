//! The metrics listener: `GET /metrics` on an address of its own (`metrics_listen`), so that
//! metrics are never served on the public address by accident.

use std::net::TcpListener;

use actix_web::http::header;
use actix_web::{App, HttpResponse, HttpServer, web};

use crate::clock;
use crate::observe::metrics::{CONTENT_TYPE, Live};
use crate::oidc::OidcState;
use crate::state::{AppState, State, blocking};
use crate::store::stats;
use crate::web::error::PageError;

/// Starts serving `/metrics` when `metrics_listen` is set.
pub fn spawn(state: &State, oidc: &web::Data<OidcState>) -> std::io::Result<()> {
    let Some(address) = state.settings.observe.metrics_listen else {
        return Ok(());
    };
    let listener = TcpListener::bind(address).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen for metrics on {address}: {e}"),
        )
    })?;
    let state = state.clone();
    let oidc = oidc.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(oidc.clone())
            .route("/metrics", web::get().to(metrics))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    actix_web::rt::spawn(server);
    tracing::info!("metrics at http://{address}/metrics");
    Ok(())
}

async fn metrics(state: State, oidc: web::Data<OidcState>) -> Result<HttpResponse, PageError> {
    let text = blocking(&state, move |state| {
        let live = live(state, &oidc)?;
        state
            .metrics
            .render(&live)
            .map_err(|e| PageError::internal(&e))
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, CONTENT_TYPE))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(text))
}

/// What the store and the limiters know now.
fn live(state: &AppState, oidc: &OidcState) -> Result<Live, PageError> {
    let counts = state
        .store
        .read(|conn| stats::counts(conn, state.settings.sessions.idle_secs, clock::now()))
        .map_err(PageError::from)?;
    let limits = &state.limits;
    Ok(Live {
        users: counts.users,
        clients: counts.clients,
        sessions: counts.sessions,
        rate_limited: vec![
            ("passkey_ceremonies", limits.ceremonies.refused()),
            ("login_links", limits.links.refused()),
            ("authorization_requests", limits.parked.refused()),
            ("client_secret_checks", oidc.secrets.refused()),
        ],
    })
}
