//! `/setup/{token}`: the first administrator picks a username and registers a passkey.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use webauthn_rs::prelude::RegisterPublicKeyCredential;

use super::sign_in::FinishRequest;
use super::{ceremony_allowed, ceremony_started, signed_in_json, with_passkeys, within_limit};
use crate::auth::{AuthState, session, setup};
use crate::clock;
use crate::observe::metrics::{Ceremony, SignInMethod};
use crate::state::{State, blocking};
use crate::web::cookies;
use crate::web::error::{ApiError, PageError};
use crate::web::pages::{self, Base, SetupPage};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/setup/{token}", web::get().to(setup_page))
        .route("/setup/{token}/start", web::post().to(start))
        .route("/setup/finish", web::post().to(finish));
}

async fn setup_page(
    req: HttpRequest,
    state: State,
    auth: web::Data<AuthState>,
    token: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    within_limit(&req, &state, &state.limits.links).map_err(PageError::too_many)?;
    let token = token.into_inner();
    let checked = token.clone();
    blocking(&state, move |state| {
        state
            .store
            .read(|conn| setup::check(conn, &checked, clock::now()))
            .map_err(|e| PageError::new(StatusCode::GONE, "Setup link not valid", e.to_string()))
    })
    .await?;
    pages::render(
        &SetupPage {
            base: Base::of(&state.settings.issuer),
            token,
            passkeys: auth.passkeys.is_some(),
        },
        [],
    )
}

#[derive(Deserialize)]
struct Profile {
    username: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    email: String,
}

async fn start(
    req: HttpRequest,
    state: State,
    auth: web::Data<AuthState>,
    token: web::Path<String>,
    body: web::Json<Profile>,
) -> Result<HttpResponse, ApiError> {
    ceremony_allowed(&req, &state)?;
    let token = token.into_inner();
    let profile = body.into_inner();
    let (ceremony, options) = with_passkeys(&state, auth, move |_, passkeys, tx| {
        let profile = setup::profile(&profile.username, &profile.display_name, &profile.email)?;
        let now = clock::now();
        let link_hash = setup::check(tx, &token, now)?;
        Ok(passkeys.start_setup(tx, profile, link_hash, now)?)
    })
    .await?;
    state.metrics.ceremony_started(Ceremony::Setup);
    Ok(ceremony_started(&ceremony, &options["publicKey"]))
}

async fn finish(
    req: HttpRequest,
    state: State,
    auth: web::Data<AuthState>,
    body: web::Json<FinishRequest<RegisterPublicKeyCredential>>,
) -> Result<HttpResponse, ApiError> {
    ceremony_allowed(&req, &state)?;
    let origin = state.origin(&req);
    let FinishRequest {
        ceremony,
        credential,
    } = body.into_inner();
    // The ceremony is spent even when the attempt fails.
    let started = with_passkeys(&state, auth, move |state, passkeys, tx| {
        let now = clock::now();
        let (setup_state, passkey) = match passkeys.finish_setup(tx, &ceremony, &credential, now) {
            Ok(done) => done,
            Err(error) => return Ok(Err(ApiError::from(error))),
        };
        let user = setup::complete(tx, &setup_state, &passkey, &credential, &origin, now)?;
        crate::observe::note_user(&user.username);
        Ok(Ok(session::start(
            tx,
            &state.settings.sessions,
            &user,
            &["hwk", "user", "mfa"],
            &origin,
            now,
        )?))
    })
    .await
    .and_then(|finished| finished);
    state
        .metrics
        .ceremony_ended(Ceremony::Setup, started.is_ok());
    state.metrics.sign_in(SignInMethod::Setup, started.is_ok());
    let started = started?;
    Ok(signed_in_json(
        cookies::session(&state.settings.issuer, started),
        format!("{}/account", state.settings.issuer.path()),
    ))
}
