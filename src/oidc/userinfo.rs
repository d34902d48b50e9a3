//! The userinfo endpoint's rules (OIDC Core §5.3, RFC 6750).

use crate::store::Db;
use serde_json::{Map, Value};

use super::claims;
use super::error::{ErrorCode, OAuthError};
use super::scope::{self, Scopes};
use crate::clock::UnixTime;
use crate::secrets;
use crate::store::{grants, users};

/// The claims for a bearer access token.
pub fn claims_for(
    conn: &Db,
    access_token: &str,
    now: UnixTime,
) -> Result<Map<String, Value>, OAuthError> {
    let live = grants::live_access_token(conn, &secrets::token_hash(access_token), now)?
        .ok_or_else(|| OAuthError::invalid_token("the access token is invalid or expired"))?;
    let scopes = Scopes::from_request(&live.scope);
    if !scopes.contains(scope::OPENID) {
        return Err(OAuthError::new(
            ErrorCode::InsufficientScope,
            "the access token was not granted the openid scope",
        ));
    }
    let (user, groups) = users::with_groups(conn, &live.grant.user_id)?
        .filter(|(user, _)| !user.disabled)
        .ok_or_else(|| OAuthError::invalid_token("the user is disabled"))?;
    Ok(claims::user_claims(&user, &groups, &scopes))
}
