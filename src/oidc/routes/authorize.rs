//! The front channel: `/authorize`, its continuation after sign-in, and the consent page.

use actix_web::cookie::Cookie;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::Deserialize;

use super::{csp_allowing_form_to, form_params, query_params};
use crate::auth::session;
use crate::clock::{self, UnixTime};
use crate::config::Issuer;
use crate::limits::Address;
use crate::oidc::authorize::{self, AuthRequest, ConsentAnswer, Outcome, Progress};
use crate::oidc::error::{AuthorizeError, UntrustedRequest};
use crate::oidc::params::Params;
use crate::oidc::scope;
use crate::secrets;
use crate::state::{AppState, State, blocking};
use crate::store::audit::Origin;
use crate::store::{Db, StoreError, pending};
use crate::web::cookies;
use crate::web::error::PageError;
use crate::web::pages::{self, Base, ConsentPage, NotAllowedPage};
use crate::web::{csrf, parked};

/// The title of pages refusing a sign-in request that cannot go back to its client.
const NOT_VALID: &str = "Sign-in request not valid";

/// What the endpoint answers when a request does not go on: a page for the person, or the
/// rules' refusal going back to the client.
#[derive(Debug, thiserror::Error)]
pub(super) enum Failure {
    #[error(transparent)]
    Page(#[from] PageError),
    /// A `Redirect` or `NotAllowed` refusal (see `From<AuthorizeError>`).
    #[error(transparent)]
    ToClient(AuthorizeError),
}

/// Where the rules' errors become answers: a request that cannot be trusted is a 400 page,
/// a failure on our side a 500 page; a refusal goes back to the client.
impl From<AuthorizeError> for Failure {
    fn from(e: AuthorizeError) -> Self {
        match e {
            AuthorizeError::Untrusted(why) => Failure::Page(untrusted_page(why)),
            AuthorizeError::Store(store) => store.into(),
            AuthorizeError::Unkeepable(cause) => Failure::Page(PageError::internal(&cause)),
            refusal @ (AuthorizeError::Redirect { .. } | AuthorizeError::NotAllowed { .. }) => {
                Failure::ToClient(refusal)
            }
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Page(e.into())
    }
}

/// What people read when a request cannot go back to its client.
fn untrusted_page(why: UntrustedRequest) -> PageError {
    let (title, message) = match why {
        UntrustedRequest::NoClientId => (
            NOT_VALID,
            "The application did not say who it is (no client_id). Go back to it and try again."
                .to_string(),
        ),
        UntrustedRequest::UnknownClient { client_id } => (
            "Unknown application",
            format!(
                "No application with client id \"{client_id}\" is registered here. \
                 Ask your administrator to add it."
            ),
        ),
        UntrustedRequest::NoRedirectUri { client_name } => (
            NOT_VALID,
            format!("{client_name} did not say where to return after sign-in (no redirect_uri)."),
        ),
        UntrustedRequest::RedirectNotRegistered {
            client_name,
            redirect_uri,
        } => (
            "Redirect URI not registered",
            format!(
                "{client_name} asked to return to \"{redirect_uri}\", which is not one of its \
                 registered redirect URIs. Redirect URIs must match exactly, including \
                 any trailing slash."
            ),
        ),
    };
    PageError::bad_request(title, message)
}

impl ResponseError for Failure {
    fn status_code(&self) -> StatusCode {
        match self {
            Failure::Page(page) => page.status_code(),
            Failure::ToClient(_) => StatusCode::SEE_OTHER,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Failure::Page(page) => page.error_response(),
            Failure::ToClient(refusal) => match refusal.redirect_url() {
                Some(url) => HttpResponse::SeeOther()
                    .insert_header((header::LOCATION, url))
                    .insert_header((header::CACHE_CONTROL, "no-store"))
                    .finish(),
                None => {
                    PageError::internal(&"an authorization error without a target").error_response()
                }
            },
        }
    }
}

pub(super) async fn authorize_get(req: HttpRequest, state: State) -> Result<HttpResponse, Failure> {
    let params = query_params(&req);
    authorize(req, state, params).await
}

pub(super) async fn authorize_post(
    req: HttpRequest,
    state: State,
    body: web::Bytes,
) -> Result<HttpResponse, Failure> {
    let params = form_params(&req, &body);
    authorize(req, state, params).await
}

async fn authorize(
    req: HttpRequest,
    state: State,
    params: Result<Params, String>,
) -> Result<HttpResponse, Failure> {
    let params = params.map_err(|why| PageError::bad_request(NOT_VALID, why))?;
    decide(req, state, params, Progress::NEW).await
}

/// A person in a browser who may not use the app reads why before going back to it: the page
/// links to the app's `access_denied` redirect and follows it by itself after a moment.
/// Anything else (or `prompt=none`) gets the redirect at once.
fn explain_refusal(
    req: &HttpRequest,
    state: &AppState,
    failure: Failure,
) -> Result<HttpResponse, Failure> {
    let navigating = req
        .headers()
        .get("sec-fetch-dest")
        .is_some_and(|dest| dest.as_bytes() == b"document");
    let Failure::ToClient(refusal) = &failure else {
        return Err(failure);
    };
    match (refusal, refusal.redirect_url()) {
        (
            AuthorizeError::NotAllowed {
                client_name,
                username,
                ..
            },
            Some(return_url),
        ) if navigating => {
            let page = NotAllowedPage {
                base: Base::of(&state.settings.issuer),
                client_name: client_name.clone(),
                username: username.clone(),
                return_url,
            };
            let mut response = pages::render(&page, [])?;
            *response.status_mut() = StatusCode::FORBIDDEN;
            Ok(response)
        }
        _ => Err(failure),
    }
}

/// Where a decided request goes next.
enum Next {
    Redirect(String),
    SignIn { parked: String },
    Consent { parked: String, page: ConsentPage },
}

/// What people are told each scope shares.
fn scope_description(name: &str) -> &'static str {
    match name {
        scope::OPENID => "Who you are (a stable identifier)",
        scope::PROFILE => "Your name and username",
        scope::EMAIL => "Your email address",
        scope::GROUPS => "The groups you belong to",
        scope::OFFLINE_ACCESS => "Stay connected while you are away (a refresh token)",
        _ => "Other details",
    }
}

/// Validates and decides a request; parks it when the person must sign in or consent first.
async fn decide(
    req: HttpRequest,
    state: State,
    params: Params,
    progress: Progress,
) -> Result<HttpResponse, Failure> {
    let (csrf_token, csrf_cookie) = csrf::token(&req, &state.settings.issuer);
    let asked = Asked {
        origin: state.origin(&req),
        session_cookie: AppState::cookie(&req, cookies::session_name(&state.settings.issuer)),
        csrf_token,
        params,
        progress,
    };
    let client_id = asked.params.get("client_id").map(str::to_string);
    let shared = state.clone();
    let decided = state
        .store
        .write_async(move |tx| next_step(tx, &shared, asked, clock::now()))
        .await;
    count(&state, client_id.as_deref(), &decided);
    match decided {
        Ok(next) => respond(&state.settings.issuer, next, csrf_cookie),
        Err(error) => explain_refusal(&req, &state, error),
    }
}

/// What a request to decide brings besides its parameters.
struct Asked {
    origin: Origin,
    session_cookie: Option<String>,
    csrf_token: String,
    params: Params,
    progress: Progress,
}

/// Decides `asked` on the writer: a redirect, or the request parked until the person signs
/// in or consents.
fn next_step(tx: &Db, state: &AppState, asked: Asked, now: UnixTime) -> Result<Next, Failure> {
    let issuer = &state.settings.issuer;
    let request = authorize::validate(tx, issuer, &asked.params)?;
    crate::observe::note_client(&request.client.client_id);
    let signed_in = match &asked.session_cookie {
        Some(cookie) => session::current(tx, cookie, &state.settings.sessions, now)?,
        None => None,
    };
    let outcome = authorize::decide(
        tx,
        issuer,
        &request,
        signed_in.as_ref(),
        asked.progress,
        &asked.origin,
        now,
    )?;
    if let Outcome::Redirect(url) = outcome {
        return Ok(Next::Redirect(url));
    }
    let parked = park(tx, state, &request, &asked, now)?;
    Ok(match (outcome, signed_in) {
        (Outcome::Consent, Some((_, user))) => Next::Consent {
            parked,
            page: ConsentPage {
                base: Base::of(issuer),
                client_name: request.client.name.clone(),
                username: user.username,
                shares: request.scopes.names().map(scope_description).collect(),
                redirect_origin: super::origin_of(&request.redirect_uri),
                csrf_token: asked.csrf_token,
            },
        },
        _ => Next::SignIn { parked },
    })
}

/// Parks a request until the person signs in or consents; returns the parked id. Parked
/// requests are limited per address, and keep only what the rules read.
fn park(
    tx: &Db,
    state: &AppState,
    request: &AuthRequest,
    asked: &Asked,
    now: UnixTime,
) -> Result<String, Failure> {
    let address = Address::of(asked.origin.ip.as_deref());
    state
        .limits
        .parked
        .check(&address, now)
        .map_err(PageError::too_many)?;
    let parked = secrets::random_token();
    let parked_json = authorize::parked(&state.settings.issuer, request, &asked.params)?;
    pending::insert(
        tx,
        &secrets::token_hash(&parked),
        &parked_json,
        asked.progress.parked_at.unwrap_or(now),
        now + crate::oidc::PENDING_TTL_SECS,
    )?;
    Ok(parked)
}

/// The response to a decided request, with the parked request's cookie when it waits.
fn respond(
    issuer: &Issuer,
    next: Next,
    csrf_cookie: Option<Cookie<'static>>,
) -> Result<HttpResponse, Failure> {
    let pending_cookie = |parked| {
        cookies::strict(
            issuer,
            parked::cookie_name(issuer),
            parked,
            crate::oidc::PENDING_TTL_SECS,
        )
    };
    Ok(match next {
        Next::Redirect(url) => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, url))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .cookie(cookies::removal(issuer, parked::cookie_name(issuer)))
            .finish(),
        Next::SignIn { parked } => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, format!("{}/login", issuer.path())))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .cookie(pending_cookie(parked))
            .finish(),
        Next::Consent { parked, page } => {
            let policy =
                csp_allowing_form_to(&page.redirect_origin).map_err(|e| PageError::internal(&e))?;
            let mut response = pages::render(
                &page,
                csrf_cookie.into_iter().chain([pending_cookie(parked)]),
            )?;
            response
                .headers_mut()
                .insert(header::CONTENT_SECURITY_POLICY, policy);
            response
        }
    })
}

/// Counts a decided request: by client once the client is known to be registered (the
/// request was validated, or its error goes back to the client's registered redirect URI).
fn count(state: &AppState, client_id: Option<&str>, decided: &Result<Next, Failure>) {
    let (known, result) = match decided {
        Ok(Next::Redirect(_)) => (true, "code"),
        Ok(Next::SignIn { .. }) => (true, "sign_in"),
        Ok(Next::Consent { .. }) => (true, "consent"),
        Err(Failure::ToClient(AuthorizeError::NotAllowed { .. })) => (true, "not_allowed"),
        Err(Failure::ToClient(AuthorizeError::Redirect { error, .. })) => {
            (true, error.code.as_str())
        }
        Err(_) => (false, "refused"),
    };
    let client = client_id
        .filter(|_| known)
        .unwrap_or(crate::observe::metrics::UNKNOWN_CLIENT);
    state.metrics.authorization(client, result);
}

/// Takes this browser's parked request: its parameters and when it was parked.
async fn take_parked(req: &HttpRequest, state: &State) -> Result<(Params, UnixTime), PageError> {
    let expired = || {
        PageError::bad_request(
            "Sign-in request expired",
            "This sign-in request has expired or was already completed. Go back to the \
             application and sign in again.",
        )
    };
    let parked_id = parked::id(req, &state.settings.issuer).ok_or_else(expired)?;
    let (params_json, parked_at) = blocking(state, move |state| {
        state
            .store
            .write(|tx| pending::take(tx, &secrets::token_hash(&parked_id), clock::now()))
            .map_err(PageError::from)
    })
    .await?
    .ok_or_else(expired)?;
    let params = serde_json::from_str(&params_json).map_err(|e| PageError::internal(&e))?;
    Ok((params, parked_at))
}

/// Continues a parked request after sign-in.
pub(super) async fn authorize_resume(
    req: HttpRequest,
    state: State,
) -> Result<HttpResponse, Failure> {
    let (params, parked_at) = take_parked(&req, &state).await?;
    let progress = Progress {
        parked_at: Some(parked_at),
        answer: ConsentAnswer::NotAsked,
    };
    decide(req, state, params, progress).await
}

#[derive(Deserialize)]
pub(super) struct ConsentForm {
    csrf_token: String,
    decision: String,
}

/// The answer of the consent page.
pub(super) async fn consent(
    req: HttpRequest,
    state: State,
    form: web::Form<ConsentForm>,
) -> Result<HttpResponse, Failure> {
    csrf::verify(&req, &state.settings.issuer, Some(&form.csrf_token))?;
    let answer = match form.decision.as_str() {
        "allow" => ConsentAnswer::Allowed,
        "deny" => ConsentAnswer::Denied,
        _ => {
            return Err(
                PageError::bad_request("Answer not understood", "Choose Allow or Deny.").into(),
            );
        }
    };
    let (params, parked_at) = take_parked(&req, &state).await?;
    let progress = Progress {
        parked_at: Some(parked_at),
        answer,
    };
    decide(req, state, params, progress).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page_of(error: AuthorizeError) -> PageError {
        match Failure::from(error) {
            Failure::Page(page) => page,
            Failure::ToClient(refusal) => panic!("not a page: {refusal}"),
        }
    }

    #[test]
    fn a_store_failure_is_our_fault_not_the_clients() {
        let store = StoreError::Sqlite(rusqlite::Error::QueryReturnedNoRows);
        let page = page_of(AuthorizeError::Store(store));
        assert_eq!(page.status, StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn an_untrusted_request_is_a_page_about_it() {
        let unknown = UntrustedRequest::UnknownClient {
            client_id: "nobody".into(),
        };
        let page = page_of(unknown.into());
        assert_eq!(page.status, StatusCode::BAD_REQUEST);
        assert_eq!(page.title, "Unknown application");
        assert!(page.message.contains("\"nobody\""), "{}", page.message);
    }
}
