//! The back channel: token, userinfo, revocation and introspection.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::{form_params, header_str, no_store_json};
use crate::clock;
use crate::oidc::OidcState;
use crate::oidc::client_auth::Identified;
use crate::oidc::error::OAuthError;
use crate::oidc::params::Params;
use crate::oidc::token;
use crate::oidc::{client_auth, introspect, revoke, userinfo};
use crate::state::{AppState, State, blocking};

pub(super) async fn token_endpoint(
    req: HttpRequest,
    state: State,
    oidc: web::Data<OidcState>,
    body: web::Bytes,
) -> Result<HttpResponse, OAuthError> {
    let params = form_params(&req, &body).map_err(OAuthError::invalid_request)?;
    let grant_type = params.get("grant_type").map(str::to_string);
    let response = exchange(&req, &state, oidc, params).await;
    let result = match &response {
        Ok(_) => "issued",
        Err(error) => error.code.as_str(),
    };
    state.metrics.token(grant_type.as_deref(), result);
    Ok(no_store_json(&response?))
}

/// Authenticates the client, redeems the grant on the writer, and signs the ID token once
/// the tokens are committed. On SQLite, only a secret never verified before leaves this
/// worker (argon2 runs on the blocking pool); PostgreSQL's reads wait there too.
async fn exchange(
    req: &HttpRequest,
    state: &State,
    oidc: web::Data<OidcState>,
    params: Params,
) -> Result<token::TokenResponse, OAuthError> {
    let grant_type = token::GrantType::of(&params)?;
    let origin = state.origin(req);
    let authorization = header_str(req, header::AUTHORIZATION).map(str::to_string);
    let (shared, caller, checked) = (state.clone(), oidc.clone(), origin.clone());
    let (identified, params) = state
        .store
        .beside_async(move || {
            let identified = client_auth::identify(
                &caller.client_auth(&shared),
                authorization.as_deref(),
                &params,
                &checked,
                clock::now(),
            )?;
            Ok::<_, OAuthError>((identified, params))
        })
        .await?;
    let client = match identified {
        Identified::Client(client) => client,
        Identified::Unverified(unverified) => {
            blocking(state, move |state| {
                unverified.verify(&oidc.client_auth(state), clock::now())
            })
            .await?
        }
    };
    let shared = state.clone();
    let issued = state
        .store
        .write_async(move |tx| {
            let issuer = &shared.settings.issuer;
            token::redeem(
                tx,
                issuer,
                &client,
                grant_type,
                &params,
                &origin,
                clock::now(),
            )
        })
        .await?
        .issued()?;
    let signing = state.clone();
    state
        .store
        .read_async(move |conn| {
            issued.signed(|alg, claims| signing.signer.sign_jwt(conn, alg, claims))
        })
        .await
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

pub(super) async fn userinfo_endpoint(
    req: HttpRequest,
    state: State,
    body: web::Bytes,
) -> Result<HttpResponse, OAuthError> {
    let token = bearer_token(&req, &body)?;
    let claims = state
        .store
        .read_async(move |conn| userinfo::claims_for(conn, &token, clock::now()))
        .await?;
    Ok(no_store_json(&claims))
}

/// Authenticates the client of a revocation or introspection request and reads `token`.
async fn client_request<T: Send + 'static>(
    req: &HttpRequest,
    state: &State,
    oidc: web::Data<OidcState>,
    body: &[u8],
    work: impl FnOnce(
        &AppState,
        &crate::store::Db,
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
        let client = client_auth::authenticate(
            &oidc.client_auth(state),
            authorization.as_deref(),
            &params,
            &origin,
            clock::now(),
        )?;
        state.store.write(|tx| work(state, tx, &client, &token))
    })
    .await
}

pub(super) async fn revoke_endpoint(
    req: HttpRequest,
    state: State,
    oidc: web::Data<OidcState>,
    body: web::Bytes,
) -> Result<HttpResponse, OAuthError> {
    let origin = state.origin(&req);
    client_request(&req, &state, oidc, &body, move |_, tx, client, token| {
        Ok(revoke::revoke(tx, client, token, &origin, clock::now())?)
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

pub(super) async fn introspect_endpoint(
    req: HttpRequest,
    state: State,
    oidc: web::Data<OidcState>,
    body: web::Bytes,
) -> Result<HttpResponse, OAuthError> {
    let answer = client_request(&req, &state, oidc, &body, |state, tx, client, token| {
        introspect::introspect(tx, &state.settings.issuer, client, token, clock::now())
    })
    .await?;
    Ok(no_store_json(&answer))
}
