//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0).

use rusqlite::Connection;
use serde_json::Value;

use super::params::Params;
use super::redirect;
use crate::clock::UnixTime;
use crate::keys;
use crate::store::clients::{self, Client};
use crate::store::signing_keys;
use crate::web::error::PageError;

/// A checked logout request.
#[derive(Debug, Clone, Default)]
pub struct LogoutRequest {
    pub client: Option<Client>,
    /// Where to send the browser afterwards: a registered post-logout URI with `state`.
    pub return_to: Option<String>,
    /// The `sub` of a valid `id_token_hint`: whose session the relying party wants ended.
    pub hinted_subject: Option<String>,
}

fn refuse(message: String) -> PageError {
    PageError::bad_request("Sign-out request not valid", message)
}

/// Checks the request. A post-logout redirect goes only to a URI registered for the client
/// named by the ID token hint or `client_id`; anything else is a page, never a redirect.
pub fn validate(
    conn: &Connection,
    params: &Params,
    key_ttl: i64,
    now: UnixTime,
) -> Result<LogoutRequest, PageError> {
    let mut request = LogoutRequest::default();
    let mut client_id = params.get("client_id").map(str::to_string);
    if let Some(hint) = params.get("id_token_hint") {
        let keys = signing_keys::list(conn)?;
        let published = keys::published(&keys, now, key_ttl);
        let claims = keys::verify_ours(&published, hint).map_err(|_| {
            refuse("The application sent an ID token that was not issued here.".into())
        })?;
        let audience = match &claims["aud"] {
            Value::String(aud) => Some(aud.clone()),
            Value::Array(auds) => auds.first().and_then(Value::as_str).map(str::to_string),
            _ => None,
        };
        if client_id.is_some() && client_id != audience {
            return Err(refuse(
                "client_id does not match the ID token's audience.".into(),
            ));
        }
        client_id = audience;
        request.hinted_subject = claims["sub"].as_str().map(str::to_string);
    }
    if let Some(id) = &client_id {
        request.client = Some(
            clients::by_id(conn, id)?
                .ok_or_else(|| refuse(format!("No application with client id \"{id}\".")))?,
        );
    }
    if let Some(uri) = params.get("post_logout_redirect_uri") {
        let client = request.client.as_ref().ok_or_else(|| {
            refuse("A post-logout redirect needs id_token_hint or client_id.".into())
        })?;
        if !client.post_logout_redirect_uris.iter().any(|u| u == uri) {
            return Err(refuse(format!(
                "\"{uri}\" is not a registered post-logout redirect URI of {}.",
                client.name
            )));
        }
        let mut response = Vec::new();
        if let Some(state) = params.get("state") {
            response.push(("state", state));
        }
        request.return_to = Some(redirect::with_params(uri, &response));
    }
    Ok(request)
}
