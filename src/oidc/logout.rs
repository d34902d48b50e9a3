//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0).

use crate::store::Db;
use serde_json::Value;

use super::params::Params;
use super::redirect;
use crate::clock::UnixTime;
use crate::keys::{self, KeyError};
use crate::names::{ClientId, UserId};
use crate::store::StoreError;
use crate::store::clients::{self, Client};
use crate::store::signing_keys;

/// A checked logout request.
#[derive(Debug, Clone, Default)]
pub struct LogoutRequest {
    pub client: Option<Client>,
    /// Where to send the browser afterwards: a registered post-logout URI with `state`.
    pub return_to: Option<String>,
    /// The `sub` of a valid `id_token_hint`: whose session the relying party wants ended.
    /// One that is no user id names nobody.
    pub hinted_subject: Option<UserId>,
}

/// Why a logout request is refused.
#[derive(Debug, thiserror::Error)]
pub enum LogoutError {
    /// The ID token hint is not one of ours (or not a token at all).
    #[error("the ID token hint was not issued here: {0}")]
    ForeignHint(#[source] KeyError),
    #[error("client_id does not match the ID token's audience")]
    AudienceMismatch,
    #[error("no client \"{client_id}\" is registered")]
    UnknownClient { client_id: String },
    /// A post-logout redirect was asked for without naming a client.
    #[error("a post-logout redirect needs id_token_hint or client_id")]
    RedirectWithoutClient,
    #[error("\"{uri}\" is not a registered post-logout redirect URI of {client_name}")]
    RedirectNotRegistered { uri: String, client_name: String },
    /// The store failed: our fault, never the client's.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks the request. A post-logout redirect goes only to a URI registered for the client
/// named by the ID token hint or `client_id`; anything else is a page, never a redirect.
pub fn validate(
    conn: &Db,
    params: &Params,
    key_ttl: i64,
    now: UnixTime,
) -> Result<LogoutRequest, LogoutError> {
    let mut request = LogoutRequest::default();
    let mut client_id = params.get("client_id").map(str::to_string);
    if let Some(hint) = params.get("id_token_hint") {
        let keys = signing_keys::list(conn)?;
        let published = keys::published(&keys, now, key_ttl);
        let claims = keys::verify_ours(&published, hint).map_err(LogoutError::ForeignHint)?;
        let audience = match &claims["aud"] {
            Value::String(aud) => Some(aud.clone()),
            Value::Array(auds) => auds.first().and_then(Value::as_str).map(str::to_string),
            _ => None,
        };
        if client_id.is_some() && client_id != audience {
            return Err(LogoutError::AudienceMismatch);
        }
        client_id = audience;
        request.hinted_subject = claims["sub"]
            .as_str()
            .and_then(|sub| UserId::parse(sub).ok());
    }
    if let Some(id) = &client_id {
        let unknown = || LogoutError::UnknownClient {
            client_id: id.clone(),
        };
        // An id no client can have names none.
        let parsed = ClientId::parse(id).map_err(|_| unknown())?;
        request.client = Some(clients::by_id(conn, &parsed)?.ok_or_else(unknown)?);
    }
    if let Some(uri) = params.get("post_logout_redirect_uri") {
        let client = request
            .client
            .as_ref()
            .ok_or(LogoutError::RedirectWithoutClient)?;
        if !client.post_logout_redirect_uris.iter().any(|u| u == uri) {
            return Err(LogoutError::RedirectNotRegistered {
                uri: uri.to_string(),
                client_name: client.name.clone(),
            });
        }
        let mut response = Vec::new();
        if let Some(state) = params.get("state") {
            response.push(("state", state));
        }
        request.return_to = Some(redirect::with_params(uri, &response));
    }
    Ok(request)
}
