//! Pages and JSON endpoints for signing in, first-run setup and the account.

mod account;
mod apps;
mod setup;
mod sign_in;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};

use super::AuthState;
use super::passkeys::{PasskeyError, Passkeys};
use super::session;
use super::setup::SetupError;
use crate::clock;
use crate::limits::{Address, RateLimiter, Retry};
use crate::state::{AppState, State, blocking};
use crate::store::Db;
use crate::store::sessions::Session;
use crate::store::users::User;
use crate::web::cookies;
use crate::web::error::{ApiError, PageError};

pub fn configure(cfg: &mut web::ServiceConfig) {
    apps::configure(cfg);
    sign_in::configure(cfg);
    setup::configure(cfg);
    account::configure(cfg);
}

fn see_other(location: String) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// The signed-in session and user of this browser, if any.
pub(crate) async fn signed_in(
    req: &HttpRequest,
    state: &State,
) -> Result<Option<(Session, User)>, PageError> {
    let Some(cookie) = AppState::cookie(req, cookies::session_name(&state.settings.issuer)) else {
        return Ok(None);
    };
    let current = blocking(state, move |state| {
        state
            .store
            .read(|conn| session::current(conn, &cookie, &state.settings.sessions, clock::now()))
            .map_err(PageError::from)
    })
    .await?;
    if let Some((_, user)) = &current {
        crate::observe::note_user(&user.username);
    }
    Ok(current)
}

/// JSON endpoints answer only our own pages: the browser's `Origin` must be the issuer's.
fn same_origin(req: &HttpRequest, state: &State) -> Result<(), ApiError> {
    let origin = req.headers().get(header::ORIGIN).map(|v| v.as_bytes());
    if origin == Some(state.settings.issuer.origin().as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "this request must come from Latchkey's own pages",
        ))
    }
}

/// Counts an attempt against a per-address limit.
fn within_limit(req: &HttpRequest, state: &State, limiter: &RateLimiter) -> Result<(), Retry> {
    let address = Address::of(state.origin(req).ip.as_deref());
    limiter.check(&address, clock::now())
}

/// The checks every passkey ceremony request passes: our own page sent it, and its address
/// is within the ceremony limit.
fn ceremony_allowed(req: &HttpRequest, state: &State) -> Result<(), ApiError> {
    same_origin(req, state)?;
    within_limit(req, state, &state.limits.ceremonies).map_err(ApiError::too_many)
}

/// The answer to a ceremony's start: its id and the options for the browser's WebAuthn call.
fn ceremony_started(ceremony: &str, public_key: &impl serde::Serialize) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "ceremony": ceremony, "publicKey": public_key }))
}

/// The relying party, or a clear error when the issuer cannot have passkeys.
fn passkeys(auth: &AuthState) -> Result<&Passkeys, ApiError> {
    auth.passkeys.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Passkeys need Latchkey's issuer to be a domain name (such as localhost or \
             id.example.com), not an IP address. Sign in with a login link instead.",
        )
    })
}

/// Runs `work` with the passkey rules in one write transaction, off the event loop; what it
/// wrote is kept when it returns `Ok`. A ceremony spent even when the attempt fails returns
/// the failure inside: `Ok(Err(…))`.
async fn with_passkeys<T: Send + 'static>(
    state: &State,
    auth: web::Data<AuthState>,
    work: impl FnOnce(&AppState, &Passkeys, &Db) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    blocking(state, move |state| {
        let passkeys = passkeys(&auth)?;
        state.store.write(|tx| work(state, passkeys, tx))
    })
    .await
}

/// A JSON answer telling the page where to go, setting the new session cookie.
fn signed_in_json(cookie: actix_web::cookie::Cookie<'static>, redirect: String) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .cookie(cookie)
        .json(serde_json::json!({ "redirect": redirect }))
}

// How the sign-in layer's errors reach the pages' scripts.

impl From<PasskeyError> for ApiError {
    fn from(e: PasskeyError) -> Self {
        let status = match &e {
            PasskeyError::CeremonyExpired | PasskeyError::Rejected(_) => StatusCode::BAD_REQUEST,
            PasskeyError::UnknownCredential | PasskeyError::CounterRegression => {
                StatusCode::UNAUTHORIZED
            }
            PasskeyError::Disabled => StatusCode::FORBIDDEN,
            PasskeyError::AlreadyRegistered => StatusCode::CONFLICT,
            PasskeyError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            PasskeyError::Store(store) => return PageError::internal(store).into(),
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<SetupError> for ApiError {
    fn from(e: SetupError) -> Self {
        match e {
            SetupError::LinkNotValid => ApiError::new(StatusCode::GONE, e.to_string()),
            SetupError::Directory(e) => e.into(),
            SetupError::Passkey(e) => e.into(),
            SetupError::Store(e) => e.into(),
        }
    }
}
