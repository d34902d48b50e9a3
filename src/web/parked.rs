//! The authorization request a browser is signing in for. The request itself waits in the
//! store; a cookie names it. The sign-in pages read only this: whether an app is waiting,
//! which one, and where to continue, so that signing in knows nothing of the protocol.

use crate::store::Db;
use actix_web::HttpRequest;

use crate::clock::UnixTime;
use crate::config::Issuer;
use crate::names::ClientId;
use crate::secrets;
use crate::store::{StoreResult, clients, pending};

/// Where a parked request continues after the sign-in.
pub const RESUME_ROUTE: &str = "/authorize/resume";

/// The cookie's name: `__Host-` prefixed on https, like the session cookie, so that no other
/// host can plant one.
pub fn cookie_name(issuer: &Issuer) -> &'static str {
    if issuer.is_https() {
        "__Host-latchkey_authorization"
    } else {
        "latchkey_authorization"
    }
}

/// The parked request this browser names, if any.
pub fn id(req: &HttpRequest, issuer: &Issuer) -> Option<String> {
    req.cookie(cookie_name(issuer))
        .map(|c| c.value().to_string())
}

/// Whether an app is waiting for this browser's sign-in.
pub fn is_waiting(req: &HttpRequest, issuer: &Issuer) -> bool {
    id(req, issuer).is_some()
}

/// Where to go after a sign-in: the waiting app's request, or the account page.
pub fn after_sign_in(req: &HttpRequest, issuer: &Issuer) -> String {
    let mount = issuer.path();
    if is_waiting(req, issuer) {
        format!("{mount}{RESUME_ROUTE}")
    } else {
        format!("{mount}/account")
    }
}

/// The name of the app a parked request is for, read without taking the request (a page may
/// show it before the person decides anything).
pub fn client_name(conn: &Db, parked_id: &str, now: UnixTime) -> StoreResult<Option<String>> {
    let Some(json) = pending::peek(conn, &secrets::token_hash(parked_id), now)? else {
        return Ok(None);
    };
    let params: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
    let Some(client_id) = params
        .get("client_id")
        .and_then(|v| v.as_str())
        .and_then(|id| ClientId::parse(id).ok())
    else {
        return Ok(None);
    };
    Ok(clients::by_id(conn, &client_id)?.map(|c| c.name))
}
