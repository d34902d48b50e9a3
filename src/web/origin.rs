//! Where a request came from, for the audit log: the peer's address (or, behind a trusted
//! reverse proxy, the client it forwarded for) and the user agent.

use std::net::IpAddr;

use actix_web::HttpRequest;
use actix_web::http::header;

use crate::store::audit::Origin;

/// Only proxies the operator listed are believed about `X-Forwarded-For`; the first address
/// from the right that is not one of them is the client.
pub fn of(req: &HttpRequest, trusted_proxies: &[IpAddr]) -> Origin {
    let peer = req.peer_addr().map(|a| a.ip());
    let ip = match peer {
        Some(peer) if trusted_proxies.contains(&peer) => req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|list| {
                list.rsplit(',')
                    .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
                    .find(|hop| !trusted_proxies.contains(hop))
            })
            .or(Some(peer)),
        other => other,
    };
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(256).collect());
    Origin {
        ip: ip.map(|ip| ip.to_string()),
        user_agent,
        actor: None,
    }
}
