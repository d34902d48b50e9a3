//! Redirect-URI rules: exact string matching, with RFC 3986's empty path and RFC 8252's
//! loopback exceptions, and adding response parameters to a registered URI.

use std::borrow::Cow;

use crate::names::has_forbidden_chars;

/// The registered URI that `requested` matches, if any.
///
/// Matching is by string comparison with one normalisation: for http(s), an empty path is
/// the path `/` (RFC 3986 §6.2.3), so `https://pve:8006` and `https://pve:8006/` match.
/// Everything else must be equal byte for byte: `/cb` and `/cb/` differ, and so do case and
/// ports. The other exception is RFC 8252 §7.3: for `http://127.0.0.1` and `http://[::1]`
/// any port matches, since native apps listen on whatever port the system gives them.
/// A URI with whitespace or control characters matches nothing: it could not go into a
/// `Location` header as it is.
pub fn find_registered<'a>(registered: &'a [String], requested: &str) -> Option<&'a str> {
    if has_forbidden_chars(requested) {
        return None;
    }
    registered
        .iter()
        .find(|uri| same_uri(uri, requested) || loopback_match(uri, requested))
        .map(String::as_str)
}

/// Whether two redirect URIs are the same: equal, or equal once an empty http(s) path is
/// written as `/`. The token endpoint compares with this what the client sent at
/// authorization and at the exchange (openid-client 6 adds the `/` at the exchange).
pub fn same_uri(a: &str, b: &str) -> bool {
    with_root_path(a) == with_root_path(b)
}

/// An http(s) URI with an empty path, given the path `/`; anything else as it is.
fn with_root_path(uri: &str) -> Cow<'_, str> {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return Cow::Borrowed(uri);
    };
    if !matches!(scheme, "http" | "https") {
        return Cow::Borrowed(uri);
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, after) = rest.split_at(authority_end);
    if after.starts_with('/') {
        Cow::Borrowed(uri)
    } else {
        Cow::Owned(format!("{scheme}://{authority}/{after}"))
    }
}

/// Plain http to a host other than this machine: codes and tokens would cross the network
/// unencrypted. Allowed (homelab apps often run on plain http), but worth a warning.
pub fn is_plain_http(uri: &str) -> bool {
    url::Url::parse(uri).is_ok_and(|u| {
        u.scheme() == "http"
            && !matches!(
                u.host_str(),
                Some("localhost" | "127.0.0.1" | "[::1]") | None
            )
    })
}

fn loopback_match(registered: &str, requested: &str) -> bool {
    let (Ok(registered), Ok(requested)) = (url::Url::parse(registered), url::Url::parse(requested))
    else {
        return false;
    };
    let is_loopback = |u: &url::Url| {
        u.scheme() == "http" && matches!(u.host_str(), Some("127.0.0.1") | Some("[::1]"))
    };
    is_loopback(&registered)
        && is_loopback(&requested)
        && registered.host_str() == requested.host_str()
        && registered.path() == requested.path()
        && registered.query() == requested.query()
        && requested.fragment().is_none()
        && requested.username().is_empty()
        && requested.password().is_none()
}

/// `uri` with `params` appended to its query, leaving the rest of it byte for byte.
pub fn with_params(uri: &str, params: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        query.append_pair(name, value);
    }
    let query = query.finish();
    if !uri.contains('?') {
        format!("{uri}?{query}")
    } else if uri.ends_with('?') || uri.ends_with('&') {
        format!("{uri}{query}")
    } else {
        format!("{uri}&{query}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registered(uris: &[&str]) -> Vec<String> {
        uris.iter().map(|u| u.to_string()).collect()
    }

    #[test]
    fn matching_is_exact_but_an_empty_path_is_the_root() {
        let uris = registered(&["https://pve.example.com:8006", "https://app/cb"]);
        assert!(find_registered(&uris, "https://pve.example.com:8006").is_some());
        assert!(find_registered(&uris, "https://pve.example.com:8006/").is_some());
        assert!(find_registered(&uris, "https://pve.example.com:8006//").is_none());
        assert!(find_registered(&uris, "https://PVE.example.com:8006").is_none());
        assert!(find_registered(&uris, "https://pve.example.com:8006?x=1").is_none());
        assert!(find_registered(&uris, "https://pve.example.com:8007/").is_none());
        assert!(find_registered(&uris, "https://app/cb").is_some());
        assert!(find_registered(&uris, "https://app/cb/").is_none());
        assert!(find_registered(&uris, "https://app/CB").is_none());
        assert!(same_uri("https://a?x=1", "https://a/?x=1"));
        assert!(!same_uri("https://a", "https://a/x"));
        assert!(!same_uri("urn:a", "urn:a/"));
    }

    #[test]
    fn whitespace_and_control_characters_never_match() {
        let uris = registered(&["http://127.0.0.1/cb", "https://app/cb"]);
        for bad in [
            "http://127.0.0.1:5555/cb\n",
            "http://127.0.0.1:5555/c\tb",
            "https://app/cb\r\n",
            "https://app/cb ",
            "https://app/cb\u{0}",
            "https://app/cb\u{85}",
        ] {
            assert!(find_registered(&uris, bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn plain_http_beyond_this_machine_is_flagged() {
        assert!(is_plain_http("http://nas.lan:8080/cb"));
        assert!(!is_plain_http("http://localhost:8080/cb"));
        assert!(!is_plain_http("http://127.0.0.1/cb"));
        assert!(!is_plain_http("https://nas.lan/cb"));
    }

    #[test]
    fn loopback_ports_may_differ() {
        let uris = registered(&["http://127.0.0.1/callback", "http://[::1]:80/cb"]);
        assert!(find_registered(&uris, "http://127.0.0.1:51234/callback").is_some());
        assert!(find_registered(&uris, "http://[::1]:4000/cb").is_some());
        assert!(find_registered(&uris, "http://127.0.0.1:51234/other").is_none());
        assert!(find_registered(&uris, "http://localhost:51234/callback").is_none());
        assert!(find_registered(&uris, "https://127.0.0.1:51234/callback").is_none());
    }

    #[test]
    fn params_are_appended() {
        assert_eq!(
            with_params(
                "https://pve:8006",
                &[("code", "a b"), ("state", "{\"x\":1}")]
            ),
            "https://pve:8006?code=a+b&state=%7B%22x%22%3A1%7D"
        );
        assert_eq!(
            with_params("https://a/cb?x=1", &[("code", "c")]),
            "https://a/cb?x=1&code=c"
        );
        assert_eq!(
            with_params("https://a/cb?", &[("code", "c")]),
            "https://a/cb?code=c"
        );
    }
}
