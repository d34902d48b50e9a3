//! Our cookies: `HttpOnly`, `SameSite=Lax`, `Path=/`, and `Secure` with a `__Host-` prefixed
//! session cookie when the issuer is https.

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};

use crate::auth::session::NewSession;
use crate::config::Issuer;

/// The session cookie's name: `__Host-` prefixed on https, where the browser then enforces
/// `Secure`, `Path=/` and no `Domain`.
pub fn session_name(issuer: &Issuer) -> &'static str {
    if issuer.is_https() {
        "__Host-latchkey_session"
    } else {
        "latchkey_session"
    }
}

/// The cookie that carries a session just started.
pub fn session(issuer: &Issuer, started: NewSession) -> Cookie<'static> {
    strict(
        issuer,
        session_name(issuer),
        started.secret,
        started.lifetime_secs,
    )
}

/// A cookie of ours with the strict attributes every one of them shares.
pub fn strict(
    issuer: &Issuer,
    name: &'static str,
    value: String,
    max_age_secs: i64,
) -> Cookie<'static> {
    Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .secure(issuer.is_https())
        .same_site(SameSite::Lax)
        .max_age(CookieDuration::seconds(max_age_secs))
        .finish()
}

/// A cookie that makes the browser forget one of ours.
pub fn removal(issuer: &Issuer, name: &'static str) -> Cookie<'static> {
    let mut cookie = strict(issuer, name, String::new(), 0);
    cookie.make_removal();
    cookie
}
