//! `/login`, login links, and signing in with a passkey.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use webauthn_rs::prelude::PublicKeyCredential;

use super::{
    ceremony_allowed, ceremony_started, see_other, signed_in, signed_in_json, with_passkeys,
    within_limit,
};
use crate::auth::{AuthState, login_link, session};
use crate::clock;
use crate::names::Username;
use crate::observe::metrics::{Ceremony, SignInMethod};
use crate::observe::note_user;
use crate::secrets;
use crate::state::{AppState, State, blocking};
use crate::store::sessions;
use crate::web::cookies;
use crate::web::csrf;
use crate::web::error::{ApiError, PageError};
use crate::web::pages::{self, Base, LoginPage};
use crate::web::parked::{self, after_sign_in};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/login", web::get().to(login_page))
        .route("/login/link/{token}", web::get().to(login_link_page))
        .route("/login/link/{token}", web::post().to(open_login_link))
        .route("/login/passkey/start", web::post().to(start))
        .route("/login/passkey/finish", web::post().to(finish));
}

async fn login_page(
    req: HttpRequest,
    state: State,
    auth: web::Data<AuthState>,
) -> Result<HttpResponse, PageError> {
    let current = signed_in(&req, &state).await?;
    let page = LoginPage {
        base: Base::of(&state.settings.issuer),
        signed_in_as: current.map(|(_, user)| user.username),
        pending: parked::is_waiting(&req, &state.settings.issuer),
        passkeys: auth.passkeys.is_some(),
    };
    pages::render(&page, [])
}

/// Replaces whatever session this browser had with a new one for `user`.
fn replace_session(
    tx: &crate::store::Db,
    state: &AppState,
    previous: Option<String>,
    user: &crate::store::users::User,
    amr: &[&str],
    origin: &crate::store::audit::Origin,
    now: clock::UnixTime,
) -> Result<session::NewSession, crate::store::StoreError> {
    if let Some(previous) = previous {
        sessions::delete(tx, &secrets::token_hash(&previous))?;
    }
    session::start(tx, &state.settings.sessions, user, amr, origin, now)
}

/// A login link's page: who it signs in, the app it continues to, and who it signs out.
/// Opening it spends nothing, so link previews and mail scanners are harmless; its button
/// does the sign-in.
#[derive(Template)]
#[template(path = "login_link.html")]
struct LoginLinkPage {
    base: Base,
    token: String,
    username: Username,
    continue_to: Option<String>,
    signed_in_as: Option<Username>,
    csrf_token: String,
}

fn link_not_valid(failure: login_link::LinkError) -> PageError {
    PageError::new(
        StatusCode::GONE,
        "Login link not valid",
        failure.to_string(),
    )
}

fn links_within_limit(req: &HttpRequest, state: &State) -> Result<(), PageError> {
    within_limit(req, state, &state.limits.links).map_err(PageError::too_many)
}

async fn login_link_page(
    req: HttpRequest,
    state: State,
    token: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    links_within_limit(&req, &state)?;
    let token = token.into_inner();
    let checked = token.clone();
    let user = blocking(&state, move |state| {
        state
            .store
            .read(|conn| login_link::check(conn, &checked, clock::now()))
            .map_err(PageError::from)
    })
    .await?
    .map_err(link_not_valid)?;
    let current = signed_in(&req, &state).await?;
    let (csrf_token, csrf_cookie) = csrf::token(&req, &state.settings.issuer);
    let page = LoginLinkPage {
        base: Base::of(&state.settings.issuer),
        token,
        username: user.username,
        continue_to: waiting_client(&req, &state).await?,
        signed_in_as: current.map(|(_, user)| user.username),
        csrf_token,
    };
    pages::render(&page, csrf_cookie)
}

#[derive(Deserialize)]
struct LinkForm {
    #[serde(default)]
    csrf_token: String,
}

/// The login link page's button: spends the link and replaces this browser's session.
async fn open_login_link(
    req: HttpRequest,
    state: State,
    token: web::Path<String>,
    form: web::Form<LinkForm>,
) -> Result<HttpResponse, PageError> {
    links_within_limit(&req, &state)?;
    csrf::verify(&req, &state.settings.issuer, Some(&form.csrf_token))?;
    let origin = state.origin(&req);
    let previous = AppState::cookie(&req, cookies::session_name(&state.settings.issuer));
    let token = token.into_inner();
    let started = blocking(&state, move |state| {
        let now = clock::now();
        state.store.write(|tx| {
            let user = match login_link::redeem(tx, &state.failures, &token, &origin, now)? {
                Ok(user) => user,
                Err(failure) => return Ok(Err(failure)),
            };
            note_user(&user.username);
            let started = replace_session(tx, state, previous, &user, &["otp"], &origin, now)?;
            Ok::<_, PageError>(Ok(started))
        })
    })
    .await?;
    state.metrics.sign_in(SignInMethod::Link, started.is_ok());
    let started = started.map_err(link_not_valid)?;
    let mut response = see_other(after_sign_in(&req, &state.settings.issuer));
    response
        .add_cookie(&cookies::session(&state.settings.issuer, started))
        .map_err(|e| PageError::internal(&e))?;
    Ok(response)
}

#[derive(Deserialize)]
struct StartRequest {
    /// For authenticators without discoverable credentials; absent for usernameless sign-in.
    #[serde(default)]
    username: Option<String>,
}

async fn start(
    req: HttpRequest,
    state: State,
    auth: web::Data<AuthState>,
    body: web::Json<StartRequest>,
) -> Result<HttpResponse, ApiError> {
    ceremony_allowed(&req, &state)?;
    let username = body
        .into_inner()
        .username
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty());
    let (ceremony, options) = with_passkeys(&state, auth, move |_, passkeys, tx| {
        passkeys
            .start_authentication(tx, username.as_deref(), clock::now())
            .map_err(ApiError::from)
    })
    .await?;
    state.metrics.ceremony_started(Ceremony::SignIn);
    Ok(ceremony_started(&ceremony, &options.public_key))
}

#[derive(Deserialize)]
pub(super) struct FinishRequest<T> {
    pub ceremony: String,
    pub credential: T,
}

async fn finish(
    req: HttpRequest,
    state: State,
    auth: web::Data<AuthState>,
    body: web::Json<FinishRequest<PublicKeyCredential>>,
) -> Result<HttpResponse, ApiError> {
    ceremony_allowed(&req, &state)?;
    let origin = state.origin(&req);
    let previous = AppState::cookie(&req, cookies::session_name(&state.settings.issuer));
    let FinishRequest {
        ceremony,
        credential,
    } = body.into_inner();
    let started = with_passkeys(&state, auth, move |state, passkeys, tx| {
        let now = clock::now();
        // The failure's audit event must be kept even though the sign-in is refused.
        match passkeys.finish_authentication(
            tx,
            &state.failures,
            &ceremony,
            &credential,
            &origin,
            now,
        ) {
            Ok((user, amr)) => {
                note_user(&user.username);
                Ok(Ok(replace_session(
                    tx, state, previous, &user, &amr, &origin, now,
                )?))
            }
            Err(error) => Ok(Err(ApiError::from(error))),
        }
    })
    .await
    .and_then(|finished| finished);
    state
        .metrics
        .ceremony_ended(Ceremony::SignIn, started.is_ok());
    state
        .metrics
        .sign_in(SignInMethod::Passkey, started.is_ok());
    Ok(signed_in_json(
        cookies::session(&state.settings.issuer, started?),
        after_sign_in(&req, &state.settings.issuer),
    ))
}

/// The name of the app waiting for this browser's sign-in, if any.
async fn waiting_client(req: &HttpRequest, state: &State) -> Result<Option<String>, PageError> {
    let Some(parked_id) = parked::id(req, &state.settings.issuer) else {
        return Ok(None);
    };
    blocking(state, move |state| {
        state
            .store
            .read(|conn| parked::client_name(conn, &parked_id, clock::now()))
            .map_err(PageError::from)
    })
    .await
}
