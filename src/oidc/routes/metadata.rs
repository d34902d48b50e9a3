//! Discovery and the JWKS.

use actix_web::http::header::{self, ContentType};
use actix_web::{HttpResponse, web};
use serde_json::Value;

use crate::clock;
use crate::keys;
use crate::oidc::OidcState;
use crate::oidc::error::OAuthError;
use crate::state::{State, blocking};
use crate::store::signing_keys;

/// Public metadata that browser-based clients may read from any origin.
fn public_json(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(body)
}

pub(super) async fn discovery_document(oidc: web::Data<OidcState>) -> HttpResponse {
    public_json(oidc.discovery().to_string())
}

pub(super) async fn jwks(state: State) -> Result<HttpResponse, OAuthError> {
    let document: Value = blocking(&state, |state| {
        let keys = state.store.read(signing_keys::list)?;
        let published = keys::published(
            &keys,
            clock::now(),
            crate::oidc::KEY_PUBLISH_AFTER_RETIREMENT_SECS,
        );
        Ok::<_, OAuthError>(keys::jwks(&published)?)
    })
    .await?;
    Ok(public_json(document.to_string()))
}
