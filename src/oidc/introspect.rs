//! Token introspection (RFC 7662), for a client's own tokens.

use crate::store::Db;
use serde_json::{Value, json};

use crate::clock::UnixTime;
use crate::config::Issuer;
use crate::names::Username;
use crate::oidc::error::OAuthError;
use crate::secrets;
use crate::store::clients::Client;
use crate::store::grants::{self, LiveToken};
use crate::store::users;

/// The introspection answer. Only confidential clients may ask (discovery lists no `none`
/// method for this endpoint), and only the calling client's live tokens are active: another
/// client learns nothing about them.
pub fn introspect(
    conn: &Db,
    issuer: &Issuer,
    client: &Client,
    token: &str,
    now: UnixTime,
) -> Result<Value, OAuthError> {
    if client.public {
        return Err(OAuthError::invalid_client(
            "public clients cannot use introspection: they have no secret to authenticate with",
        ));
    }
    let hash = secrets::token_hash(token);
    let found = match grants::live_access_token(conn, &hash, now)? {
        Some(live) => Some((live, "access_token")),
        None => grants::live_refresh_token(conn, &hash, now)?.map(|live| (live, "refresh_token")),
    };
    let Some((live, kind)) = found.filter(|(live, _)| live.grant.client_id == client.client_id)
    else {
        return Ok(inactive());
    };
    let Some(user) = users::by_id(conn, &live.grant.user_id)?.filter(|u| !u.disabled) else {
        return Ok(inactive());
    };
    Ok(active(issuer, &live, kind, &user.username))
}

fn inactive() -> Value {
    json!({ "active": false })
}

fn active(issuer: &Issuer, live: &LiveToken, kind: &str, username: &Username) -> Value {
    json!({
        "active": true,
        "scope": live.scope,
        "client_id": live.grant.client_id,
        "username": username,
        "token_type": if kind == "access_token" { "Bearer" } else { "refresh_token" },
        "exp": live.expires_at,
        "iat": live.issued_at,
        "sub": live.grant.user_id,
        "aud": live.grant.client_id,
        "iss": issuer.as_str(),
    })
}
