//! Watching a running server: its log (format, level, the person and client on a request's
//! lines) and its Prometheus metrics. The HTTP side (a span per request, the `/metrics`
//! listener) is the server's: `server::requests` and `server::scrape`.

pub mod logging;
pub mod metrics;

pub use crate::config::{DEFAULT_LOG_LEVEL, LogFormat, ObserveSettings};

/// Names the signed-in person on the log lines of the current request.
pub fn note_user(username: &crate::names::Username) {
    tracing::Span::current().record("user", username.as_str());
}

/// Names the client (application) on the log lines of the current request.
pub fn note_client(client_id: &crate::names::ClientId) {
    tracing::Span::current().record("client", client_id.as_str());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked() {
        let parsed = ObserveSettings::resolve(
            Some("json".into()),
            Some("latchkey=debug,warn".into()),
            Some("127.0.0.1:9464".into()),
        )
        .unwrap();
        assert_eq!(parsed.log_format, LogFormat::Json);
        assert_eq!(
            parsed.metrics_listen,
            Some("127.0.0.1:9464".parse().unwrap())
        );
        for (format, level, listen) in [
            ("xml", "info", "127.0.0.1:9464"),
            ("text", "info=[", "127.0.0.1:9464"),
            ("text", "info", "localhost"),
        ] {
            assert!(
                ObserveSettings::resolve(
                    Some(format.into()),
                    Some(level.into()),
                    Some(listen.into())
                )
                .is_err(),
                "{format} {level} {listen}"
            );
        }
    }
}
