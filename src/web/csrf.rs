//! CSRF protection for forms: a random token in a `SameSite=Strict` cookie that the form
//! must echo (double submit), plus an `Origin` check when the browser sends one.

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;

use super::error::PageError;
use crate::config::Issuer;
use crate::secrets;

pub const FIELD: &str = "csrf_token";

fn cookie_name(issuer: &Issuer) -> &'static str {
    if issuer.is_https() {
        "__Host-latchkey_csrf"
    } else {
        "latchkey_csrf"
    }
}

/// The token to put in a form, and the cookie to set when the browser has none yet.
pub fn token(req: &HttpRequest, issuer: &Issuer) -> (String, Option<Cookie<'static>>) {
    if let Some(existing) = req.cookie(cookie_name(issuer))
        && existing.value().len() == 43
    {
        return (existing.value().to_string(), None);
    }
    let token = secrets::random_token();
    let cookie = Cookie::build(cookie_name(issuer), token.clone())
        .path("/")
        .http_only(true)
        .secure(issuer.is_https())
        .same_site(SameSite::Strict)
        .finish();
    (token, Some(cookie))
}

/// Refuses a form post whose token does not match the cookie, or that comes from elsewhere.
pub fn verify(
    req: &HttpRequest,
    issuer: &Issuer,
    submitted: Option<&str>,
) -> Result<(), PageError> {
    let refuse = || {
        PageError::forbidden(
            "Form expired",
            "This form could not be verified (it may have expired, or come from another \
             site). Go back, reload the page and try again.",
        )
    };
    if let Some(origin) = req.headers().get(header::ORIGIN)
        && origin.as_bytes() != issuer.origin().as_bytes()
    {
        return Err(refuse());
    }
    let cookie = req.cookie(cookie_name(issuer)).ok_or_else(refuse)?;
    match submitted {
        Some(token) if secrets::constant_time_eq(token, cookie.value()) => Ok(()),
        _ => Err(refuse()),
    }
}
