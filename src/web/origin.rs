//! Where a request came from, for the audit log: the peer's address (or, behind a trusted
//! reverse proxy, the client it forwarded for) and the user agent.

use std::net::IpAddr;

use actix_web::HttpRequest;
use actix_web::http::header;

use crate::store::audit::Origin;

/// A request's origin, and whether an untrusted peer claimed to forward for someone.
pub struct Seen {
    pub origin: Origin,
    pub forwarded_by_untrusted: bool,
}

/// Only proxies the operator listed are believed about `X-Forwarded-For`; the first address
/// from the right that is not one of them is the client.
pub fn of(req: &HttpRequest, trusted_proxies: &[IpAddr]) -> Seen {
    let peer = req.peer_addr().map(|a| a.ip());
    let forwarded = req.headers().contains_key("x-forwarded-for");
    let forwarded_by_untrusted =
        forwarded && peer.is_some_and(|peer| !trusted_proxies.contains(&peer));
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
    Seen {
        origin: Origin {
            ip: ip.map(|ip| ip.to_string()),
            user_agent,
            actor: None,
        },
        forwarded_by_untrusted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn request(peer: &str, forwarded: Option<&str>) -> HttpRequest {
        let mut request = TestRequest::default().peer_addr(peer.parse().unwrap());
        if let Some(forwarded) = forwarded {
            request = request.insert_header(("x-forwarded-for", forwarded));
        }
        request.to_http_request()
    }

    #[test]
    fn only_trusted_proxies_are_believed() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let seen = of(
            &request("10.0.0.1:5000", Some("203.0.113.9, 10.0.0.1")),
            &[proxy],
        );
        assert_eq!(seen.origin.ip.as_deref(), Some("203.0.113.9"));
        assert!(!seen.forwarded_by_untrusted);

        let seen = of(&request("10.0.0.2:5000", Some("203.0.113.9")), &[proxy]);
        assert_eq!(seen.origin.ip.as_deref(), Some("10.0.0.2"));
        assert!(seen.forwarded_by_untrusted, "worth a warning");

        let seen = of(&request("10.0.0.2:5000", None), &[proxy]);
        assert!(!seen.forwarded_by_untrusted);
    }
}
