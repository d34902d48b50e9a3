//! HTTP adapters for the protocol endpoints: parse, call the rule, shape the response.

mod authorize;
mod errors;
mod logout;
mod metadata;
mod tokens;

use actix_web::http::{Method, header};
use actix_web::{HttpRequest, HttpResponse, web};

use super::params::Params;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/.well-known/openid-configuration",
        web::get().to(metadata::discovery_document),
    )
    .route("/.well-known/jwks.json", web::get().to(metadata::jwks))
    .route("/authorize", web::get().to(authorize::authorize_get))
    .route("/authorize", web::post().to(authorize::authorize_post))
    .route(
        crate::web::parked::RESUME_ROUTE,
        web::get().to(authorize::authorize_resume),
    )
    .route("/authorize/consent", web::post().to(authorize::consent))
    .service(back_channel("/token").route(web::post().to(tokens::token_endpoint)))
    .service(
        back_channel("/userinfo")
            .route(web::get().to(tokens::userinfo_endpoint))
            .route(web::post().to(tokens::userinfo_endpoint)),
    )
    .service(back_channel("/revoke").route(web::post().to(tokens::revoke_endpoint)))
    .service(back_channel("/introspect").route(web::post().to(tokens::introspect_endpoint)))
    .route("/logout", web::get().to(logout::logout_get))
    .route("/logout", web::post().to(logout::logout_post));
    for path in CROSS_ORIGIN {
        cfg.route(path, web::method(Method::OPTIONS).to(preflight));
    }
}

/// The largest body the back channel reads: its forms hold a code, a token and a few
/// names, far below this.
const BACK_CHANNEL_BODY: usize = 16 * 1024;

/// A back-channel resource: small bodies only, and callable from browser-based clients.
fn back_channel(path: &str) -> actix_web::Resource {
    web::resource(path)
        .app_data(web::PayloadConfig::new(BACK_CHANNEL_BODY))
        .route(web::method(Method::OPTIONS).to(preflight))
}

/// The metadata browser-based clients read from their own origin (the back channel's
/// resources answer preflights themselves).
const CROSS_ORIGIN: &[&str] = &[
    "/.well-known/openid-configuration",
    "/.well-known/jwks.json",
];

/// CORS preflight for the cross-origin endpoints. They take no cookies (credentials are
/// not allowed), so any origin may call them with a bearer token or a client's credentials.
async fn preflight() -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, OPTIONS"))
        .insert_header((
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            "Authorization, Content-Type",
        ))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, "86400"))
        .finish()
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

/// The parameters of a form body, if the body is a form.
pub(super) fn form_params(req: &HttpRequest, body: &[u8]) -> Result<Params, String> {
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

pub(super) fn header_str(req: &HttpRequest, name: header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// `scheme://host[:port]` of a URL, for a CSP source.
fn origin_of(url: &str) -> String {
    url::Url::parse(url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default()
}

/// The page's Content-Security-Policy, letting its form lead to `target`'s origin: Chrome
/// applies form-action to the redirect that follows a form post.
fn csp_allowing_form_to(target: &str) -> Result<header::HeaderValue, header::InvalidHeaderValue> {
    let policy = crate::web::headers::CONTENT_SECURITY_POLICY.replace(
        "form-action 'self'",
        &format!("form-action 'self' {}", origin_of(target)),
    );
    header::HeaderValue::from_str(&policy)
}

/// Reads a request's parameters from its query string.
fn query_params(req: &HttpRequest) -> Result<Params, String> {
    Params::parse(req.query_string())
        .map_err(|name| format!("the parameter {name} was sent more than once"))
}
