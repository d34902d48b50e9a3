//! One span per request: an id (the trusted proxy's `X-Request-Id`, else a new one) returned
//! in the response and carried by every log line of the request, with the user and client
//! once known; the access line, short and without one-time link tokens; the duration metric.

use std::time::Instant;

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument;
use tracing::field::Empty;

use crate::state::State;
use crate::store::audit::cut;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id taken from a proxy.
const MAX_REQUEST_ID: usize = 64;

/// The longest value a log line repeats from a request: whatever is sent, a line stays short.
const MAX_LOGGED_CHARS: usize = 512;

/// The middleware (see `actix_web::middleware::from_fn`).
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let state = req.app_data::<State>().cloned();
    let trusted = state
        .as_ref()
        .map(|state| state.settings.trusted_proxies.as_slice())
        .unwrap_or_default();
    let id = request_id(&req, trusted);
    let access = Access::of(&req, trusted);
    let method = req.method().clone();
    let span = tracing::info_span!("request", id = %id, user = Empty, client = Empty);
    let result = next.call(req).instrument(span.clone()).await;
    let took = started.elapsed();
    let _entered = span.enter();
    let mut response = match result {
        Ok(response) => response,
        Err(error) => {
            access.log(error.as_response_error().status_code().as_u16(), 0, took);
            return Err(error);
        }
    };
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_string());
    if let Some(state) = &state {
        state.metrics.request(&route, &method, took);
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let bytes = match response.response().body().size() {
        BodySize::Sized(bytes) => bytes,
        BodySize::None | BodySize::Stream => 0,
    };
    access.log(response.status().as_u16(), bytes, took);
    Ok(response)
}

/// The request's id: a trusted proxy's, when it looks like one; else a new one.
fn request_id(req: &ServiceRequest, trusted_proxies: &[std::net::IpAddr]) -> String {
    let from_proxy = req
        .peer_addr()
        .is_some_and(|peer| trusted_proxies.contains(&peer.ip()));
    req.headers()
        .get(REQUEST_ID)
        .filter(|_| from_proxy)
        .and_then(|value| value.to_str().ok())
        .filter(|value| is_sane_id(value))
        .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_string)
}

/// Short, and only visible ASCII: nothing that could forge or break a log line.
fn is_sane_id(value: &str) -> bool {
    (1..=MAX_REQUEST_ID).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_graphic())
}

/// What the access line repeats from the request, cut and redacted.
struct Access {
    address: String,
    request: String,
    agent: String,
}

impl Access {
    fn of(req: &ServiceRequest, trusted_proxies: &[std::net::IpAddr]) -> Access {
        // `X-Forwarded-For` is believed only from trusted proxies, as in the audit log.
        let address = crate::web::origin::of(req.request(), trusted_proxies)
            .origin
            .ip
            .unwrap_or_else(|| "-".to_string());
        let line = format!(
            "{} {}",
            req.method(),
            redacted(req.path(), &req.uri().to_string())
        );
        let agent = req
            .headers()
            .get(header::USER_AGENT)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        Access {
            address,
            request: cut(&line, MAX_LOGGED_CHARS),
            agent: cut(&agent, MAX_LOGGED_CHARS),
        }
    }

    fn log(&self, status: u16, bytes: u64, took: std::time::Duration) {
        tracing::info!(
            address = self.address.as_str(),
            request = self.request.as_str(),
            status,
            bytes,
            ms = took.as_secs_f64() * 1000.0,
            agent = self.agent.as_str(),
            "access"
        );
    }
}

/// Query parameters whose values are credentials (or a client's CSRF state): the log shows
/// that they were sent, not what they were.
const SECRET_PARAMETERS: &[&str] = &[
    "code",
    "code_verifier",
    "access_token",
    "refresh_token",
    "id_token",
    "id_token_hint",
    "token",
    "client_secret",
    "csrf_token",
    "state",
];

/// `uri` as the log shows it: cut after the route of a one-time link (login and setup
/// links), so that a link that failed to open is not usable by whoever reads the log; and
/// without the values of credentials in the query.
fn redacted(path: &str, uri: &str) -> String {
    let link = [crate::auth::login_link::ROUTE, crate::auth::setup::ROUTE]
        .iter()
        .find_map(|route| {
            path.find(route)
                .map(|at| format!("{}…", &path[..at + route.len()]))
        });
    if let Some(link) = link {
        return link;
    }
    match uri.split_once('?') {
        None => uri.to_string(),
        Some((before, query)) => {
            let pairs: Vec<String> = query.split('&').map(redacted_pair).collect();
            format!("{before}?{}", pairs.join("&"))
        }
    }
}

fn redacted_pair(pair: &str) -> String {
    match pair.split_once('=') {
        Some((name, _)) if SECRET_PARAMETERS.contains(&name) => format!("{name}=…"),
        _ => pair.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_tokens_never_reach_the_log() {
        assert_eq!(
            redacted("/login/link/SECRET", "/login/link/SECRET"),
            "/login/link/…"
        );
        assert_eq!(
            redacted("/id/setup/SECRET", "/id/setup/SECRET?x"),
            "/id/setup/…"
        );
        assert_eq!(redacted("/token", "/token?a=1"), "/token?a=1");
        assert_eq!(
            redacted(
                "/logout",
                "/logout?id_token_hint=eyJ.x.y&client_id=pve&state="
            ),
            "/logout?id_token_hint=…&client_id=pve&state=…"
        );
    }

    #[test]
    fn logged_values_are_cut() {
        assert_eq!(cut("abc", 5), "abc");
        assert_eq!(cut(&"é".repeat(600), 512).chars().count(), 513);
    }

    #[test]
    fn request_ids_from_proxies_must_look_like_ids() {
        assert!(is_sane_id("3f2a-9c"));
        assert!(is_sane_id(&"a".repeat(64)));
        for bad in ["", "a b", "a\u{7f}", "é", &"a".repeat(65)] {
            assert!(!is_sane_id(bad), "{bad:?}");
        }
    }
}
