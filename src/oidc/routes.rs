//! HTTP adapters for the protocol endpoints: parse, call the rule, shape the response.

use actix_web::http::header::{self, ContentType};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::Value;

use super::authorize::{self, Outcome};
use super::error::{AuthorizeError, OAuthError};
use super::params::Params;
use super::token::{self, TokenContext};
use super::{client_auth, introspect, logout, revoke, userinfo};
use crate::auth::session;
use crate::clock;
use crate::keys;
use crate::secrets;
use crate::server::{AppState, State, blocking};
use crate::store::{pending, signing_keys};
use crate::web::csrf;
use crate::web::error::PageError;
use crate::web::pages::{self, LogoutPage, SignedOutPage};

/// The cookie that remembers which parked authorization request this browser is signing
/// in for.
const PENDING_COOKIE: &str = "latchkey_authorization";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/.well-known/openid-configuration",
        web::get().to(discovery_document),
    )
    .route("/.well-known/jwks.json", web::get().to(jwks))
    .route("/authorize", web::get().to(authorize_get))
    .route("/authorize", web::post().to(authorize_post))
    .route("/authorize/resume", web::get().to(authorize_resume))
    .route("/token", web::post().to(token_endpoint))
    .route("/userinfo", web::get().to(userinfo_endpoint))
    .route("/userinfo", web::post().to(userinfo_endpoint))
    .route("/revoke", web::post().to(revoke_endpoint))
    .route("/introspect", web::post().to(introspect_endpoint))
    .route("/logout", web::get().to(logout_get))
    .route("/logout", web::post().to(logout_post));
}

/// A JSON answer that must not be cached (RFC 6749 §5.1). Readable from any origin, for
/// browser-based clients: these endpoints take no cookies, so nothing ambient leaks.
fn no_store_json(body: &impl serde::Serialize) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(body)
}

/// Public metadata that browser-based clients may read from any origin.
fn public_json(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(body)
}

async fn discovery_document(state: State) -> HttpResponse {
    public_json(state.discovery().to_string())
}

async fn jwks(state: State) -> Result<HttpResponse, OAuthError> {
    let document: Value = blocking(&state, |state| {
        let keys = state.store.read(signing_keys::list)?;
        let published = keys::published(
            &keys,
            clock::now(),
            super::KEY_PUBLISH_AFTER_RETIREMENT_SECS,
        );
        Ok::<_, OAuthError>(keys::jwks(&published)?)
    })
    .await?;
    Ok(public_json(document.to_string()))
}

/// The parameters of a form body, if the body is a form.
fn form_params(req: &HttpRequest, body: &[u8]) -> Result<Params, String> {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err("the body must be application/x-www-form-urlencoded".into());
    }
    let text = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8".to_string())?;
    Params::parse(text).map_err(|name| format!("the parameter {name} was sent more than once"))
}

async fn authorize_get(req: HttpRequest, state: State) -> Result<HttpResponse, AuthorizeError> {
    let params = Params::parse(req.query_string())
        .map_err(|name| format!("the parameter {name} was sent more than once"));
    authorize(req, state, params).await
}

async fn authorize_post(
    req: HttpRequest,
    state: State,
    body: web::Bytes,
) -> Result<HttpResponse, AuthorizeError> {
    let params = form_params(&req, &body);
    authorize(req, state, params).await
}

async fn authorize(
    req: HttpRequest,
    state: State,
    params: Result<Params, String>,
) -> Result<HttpResponse, AuthorizeError> {
    let params = params.map_err(|why| PageError::bad_request("Sign-in request not valid", why))?;
    decide(req, state, params, None).await
}

/// Validates and decides a request; parks it and sends the person to sign in if needed.
async fn decide(
    req: HttpRequest,
    state: State,
    params: Params,
    parked_at: Option<clock::UnixTime>,
) -> Result<HttpResponse, AuthorizeError> {
    let origin = state.origin(&req);
    let session_cookie = AppState::cookie(&req, session::cookie_name(&state.settings.issuer));
    let outcome = blocking(&state, move |state| {
        let now = clock::now();
        let issuer = &state.settings.issuer;
        state.store.write(|tx| {
            let request = authorize::validate(tx, issuer, &params)?;
            let signed_in = match &session_cookie {
                Some(cookie) => session::current(tx, cookie, &state.settings.sessions, now)?,
                None => None,
            };
            match authorize::decide(
                tx,
                issuer,
                &request,
                signed_in.as_ref(),
                parked_at,
                &origin,
                now,
            )? {
                Outcome::SignIn => {
                    let id = secrets::random_token();
                    let parked_json =
                        serde_json::to_string(&params).map_err(|e| PageError::internal(&e))?;
                    pending::insert(
                        tx,
                        &secrets::token_hash(&id),
                        &parked_json,
                        parked_at.unwrap_or(now),
                        now + super::PENDING_TTL_SECS,
                    )?;
                    Ok::<_, AuthorizeError>(Err(id))
                }
                Outcome::Redirect(url) => Ok(Ok(url)),
            }
        })
    })
    .await?;
    let issuer = &state.settings.issuer;
    Ok(match outcome {
        Ok(url) => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, url))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .cookie(session::removal(issuer, PENDING_COOKIE))
            .finish(),
        Err(parked_id) => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, format!("{}/login", issuer.path())))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .cookie(session::strict_cookie(
                issuer,
                PENDING_COOKIE,
                parked_id,
                super::PENDING_TTL_SECS,
            ))
            .finish(),
    })
}

/// Continues a parked request after sign-in.
async fn authorize_resume(req: HttpRequest, state: State) -> Result<HttpResponse, AuthorizeError> {
    let expired = || {
        PageError::bad_request(
            "Sign-in request expired",
            "This sign-in request has expired or was already completed. Go back to the \
             application and sign in again.",
        )
    };
    let parked_id = AppState::cookie(&req, PENDING_COOKIE).ok_or_else(expired)?;
    let parked = blocking(&state, move |state| {
        state
            .store
            .write(|tx| pending::take(tx, &secrets::token_hash(&parked_id), clock::now()))
            .map_err(PageError::from)
    })
    .await?
    .ok_or_else(expired)?;
    let (params_json, parked_at) = parked;
    let params: Params = serde_json::from_str(&params_json).map_err(|e| PageError::internal(&e))?;
    decide(req, state, params, Some(parked_at)).await
}

/// Whether this browser has an authorization request waiting for a sign-in.
pub fn has_pending(req: &HttpRequest) -> bool {
    req.cookie(PENDING_COOKIE).is_some()
}

/// Where to go after a sign-in: the waiting authorization request, or the account page.
pub fn after_sign_in(req: &HttpRequest, mount: &str) -> String {
    if has_pending(req) {
        format!("{mount}/authorize/resume")
    } else {
        format!("{mount}/account")
    }
}

fn header_str(req: &HttpRequest, name: header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn token_endpoint(
    req: HttpRequest,
    state: State,
    body: web::Bytes,
) -> Result<HttpResponse, OAuthError> {
    let params = form_params(&req, &body).map_err(OAuthError::invalid_request)?;
    let authorization = header_str(&req, header::AUTHORIZATION).map(str::to_string);
    let origin = state.origin(&req);
    let response = blocking(&state, move |state| {
        let context = TokenContext {
            store: &state.store,
            issuer: &state.settings.issuer,
            signer: &state.signer,
            secrets: &state.secrets,
        };
        token::exchange(
            &context,
            &params,
            authorization.as_deref(),
            &origin,
            clock::now(),
        )
    })
    .await?;
    Ok(no_store_json(&response))
}

/// The bearer token of a userinfo request: from the `Authorization` header, or from a form
/// body (RFC 6750 §2.2), but not both.
fn bearer_token(req: &HttpRequest, body: &[u8]) -> Result<String, OAuthError> {
    let from_header = header_str(req, header::AUTHORIZATION)
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_string());
    let from_body = if body.is_empty() {
        None
    } else {
        form_params(req, body)
            .ok()
            .and_then(|p| p.get("access_token").map(str::to_string))
    };
    match (from_header, from_body) {
        (Some(_), Some(_)) => Err(OAuthError::invalid_request(
            "send the access token in one place only",
        )),
        (Some(token), None) | (None, Some(token)) => Ok(token),
        (None, None) => Err(OAuthError::invalid_token("an access token is required")),
    }
}

async fn userinfo_endpoint(
    req: HttpRequest,
    state: State,
    body: web::Bytes,
) -> Result<HttpResponse, OAuthError> {
    let token = bearer_token(&req, &body)?;
    let claims = blocking(&state, move |state| {
        state
            .store
            .read(|conn| userinfo::claims_for(conn, &token, clock::now()))
    })
    .await?;
    Ok(no_store_json(&claims))
}

/// Authenticates the client of a revocation or introspection request and reads `token`.
async fn client_request<T: Send + 'static>(
    req: &HttpRequest,
    state: &State,
    body: &[u8],
    work: impl FnOnce(
        &AppState,
        &rusqlite::Connection,
        &crate::store::clients::Client,
        &str,
    ) -> Result<T, OAuthError>
    + Send
    + 'static,
) -> Result<T, OAuthError> {
    let params = form_params(req, body).map_err(OAuthError::invalid_request)?;
    let authorization = header_str(req, header::AUTHORIZATION).map(str::to_string);
    let origin = state.origin(req);
    blocking(state, move |state| {
        let token = params
            .get("token")
            .ok_or_else(|| OAuthError::invalid_request("token is required"))?
            .to_string();
        let now = clock::now();
        let client = state.store.read(|conn| {
            client_auth::authenticate(
                conn,
                &state.secrets,
                authorization.as_deref(),
                &params,
                &origin,
                now,
            )
        })?;
        state.store.write(|tx| work(state, tx, &client, &token))
    })
    .await
}

async fn revoke_endpoint(
    req: HttpRequest,
    state: State,
    body: web::Bytes,
) -> Result<HttpResponse, OAuthError> {
    let origin = state.origin(&req);
    client_request(&req, &state, &body, move |_, tx, client, token| {
        Ok(revoke::revoke(tx, client, token, &origin, clock::now())?)
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

async fn introspect_endpoint(
    req: HttpRequest,
    state: State,
    body: web::Bytes,
) -> Result<HttpResponse, OAuthError> {
    let answer = client_request(&req, &state, &body, |state, tx, client, token| {
        Ok(introspect::introspect(
            tx,
            &state.settings.issuer,
            client,
            token,
            clock::now(),
        )?)
    })
    .await?;
    Ok(no_store_json(&answer))
}

async fn logout_get(req: HttpRequest, state: State) -> Result<HttpResponse, PageError> {
    let params = Params::parse(req.query_string()).map_err(|name| {
        PageError::bad_request(
            "Sign-out request not valid",
            format!("{name} was sent twice"),
        )
    })?;
    logout_flow(req, state, params).await
}

async fn logout_post(
    req: HttpRequest,
    state: State,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let params = form_params(&req, &body)
        .map_err(|why| PageError::bad_request("Sign-out request not valid", why))?;
    if params.get("confirm").is_some() {
        csrf::verify(&req, &state.settings.issuer, params.get(csrf::FIELD))?;
    }
    logout_flow(req, state, params).await
}

/// Ends the session when the person confirmed, or when the relying party proved with an ID
/// token hint that it signed this person in; otherwise asks first.
async fn logout_flow(
    req: HttpRequest,
    state: State,
    params: Params,
) -> Result<HttpResponse, PageError> {
    let confirmed = params.get("confirm").is_some();
    let origin = state.origin(&req);
    let issuer = state.settings.issuer.clone();
    let session_cookie = AppState::cookie(&req, session::cookie_name(&issuer));
    let carried = params.clone();
    let (request, signed_in_as) = blocking(&state, move |state| {
        let now = clock::now();
        state.store.write(|tx| {
            let request =
                logout::validate(tx, &params, super::KEY_PUBLISH_AFTER_RETIREMENT_SECS, now)?;
            let signed_in = match &session_cookie {
                Some(cookie) => session::current(tx, cookie, &state.settings.sessions, now)?,
                None => None,
            };
            let Some((session, user)) = signed_in else {
                return Ok::<_, PageError>((request, None));
            };
            let hinted = request.hinted_subject.as_deref() == Some(user.id.as_str());
            if confirmed || hinted {
                session::end(tx, &session, &user, &origin, now)?;
                return Ok((request, None));
            }
            Ok((request, Some(user.username)))
        })
    })
    .await?;
    if let Some(username) = signed_in_as {
        let (csrf_token, csrf_cookie) = csrf::token(&req, &issuer);
        let fields = [
            "id_token_hint",
            "client_id",
            "post_logout_redirect_uri",
            "state",
        ]
        .iter()
        .filter_map(|name| carried.get(name).map(|v| (name.to_string(), v.to_string())))
        .collect();
        let page = LogoutPage {
            username,
            client_name: request.client.map(|c| c.name),
            fields,
            csrf_token,
        };
        let mut response = pages::render(&page, csrf_cookie)?;
        if let Some(target) = &request.return_to {
            // Chrome applies form-action to the redirect after the form is sent.
            let policy = crate::web::headers::CONTENT_SECURITY_POLICY.replace(
                "form-action 'self'",
                &format!("form-action 'self' {}", origin_of(target)),
            );
            response.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                header::HeaderValue::from_str(&policy).map_err(|e| PageError::internal(&e))?,
            );
        }
        return Ok(response);
    }
    let removal = session::removal(&issuer, session::cookie_name(&issuer));
    match request.return_to {
        Some(target) => Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, target))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .cookie(removal)
            .finish()),
        None => pages::render(&SignedOutPage, [removal]),
    }
}

/// `scheme://host[:port]` of a URL, for a CSP source.
fn origin_of(url: &str) -> String {
    url::Url::parse(url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default()
}
