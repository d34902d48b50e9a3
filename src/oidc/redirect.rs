//! Redirect-URI rules: exact string matching, with RFC 8252's loopback exception, and
//! adding response parameters to a registered URI.

/// The registered URI that `requested` matches, if any.
///
/// Matching is by exact string comparison, with no normalisation at all:
/// `https://pve:8006` and `https://pve:8006/` are different URIs. The one exception is
/// RFC 8252 §7.3: for `http://127.0.0.1` and `http://[::1]` any port matches, since native
/// apps listen on whatever port the system gives them.
pub fn find_registered<'a>(registered: &'a [String], requested: &str) -> Option<&'a str> {
    registered
        .iter()
        .find(|uri| uri.as_str() == requested || loopback_match(uri, requested))
        .map(String::as_str)
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
    fn matching_is_exact() {
        let uris = registered(&["https://pve.example.com:8006"]);
        assert!(find_registered(&uris, "https://pve.example.com:8006").is_some());
        assert!(find_registered(&uris, "https://pve.example.com:8006/").is_none());
        assert!(find_registered(&uris, "https://PVE.example.com:8006").is_none());
        assert!(find_registered(&uris, "https://pve.example.com:8006?x=1").is_none());
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
