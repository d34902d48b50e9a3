//! Watching a running server: its log (format, level, one span per request with an id) and
//! its Prometheus metrics on a listener of their own.

pub mod logging;
pub mod metrics;
pub mod requests;
pub mod scrape;

use std::net::SocketAddr;

use crate::config::ConfigError;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per event, for log collectors.
    Json,
}

impl LogFormat {
    fn parse(text: &str) -> Result<LogFormat, ConfigError> {
        match text.trim() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(ConfigError::LogFormat(text.to_string())),
        }
    }
}

/// The log and metrics settings (`log_format`, `log_level`, `metrics_listen`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObserveSettings {
    pub log_format: LogFormat,
    /// A filter such as `info` or `latchkey=debug,warn`; `RUST_LOG` wins when set.
    pub log_level: String,
    /// Where `/metrics` is served; no metrics listener when absent.
    pub metrics_listen: Option<SocketAddr>,
}

pub const DEFAULT_LOG_LEVEL: &str = "info";

impl ObserveSettings {
    /// The settings from `LATCHKEY_LOG_FORMAT`, `LATCHKEY_LOG_LEVEL` and
    /// `LATCHKEY_METRICS_LISTEN`, else from the config file's values, else the defaults.
    pub fn resolve(
        log_format: Option<String>,
        log_level: Option<String>,
        metrics_listen: Option<String>,
    ) -> Result<ObserveSettings, ConfigError> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let log_format = env("LATCHKEY_LOG_FORMAT")
            .or(log_format)
            .map(|text| LogFormat::parse(&text))
            .transpose()?
            .unwrap_or_default();
        let log_level = env("LATCHKEY_LOG_LEVEL")
            .or(log_level)
            .unwrap_or_else(|| DEFAULT_LOG_LEVEL.to_string());
        logging::filter(&log_level).map_err(|_| ConfigError::LogLevel(log_level.clone()))?;
        let metrics_listen = env("LATCHKEY_METRICS_LISTEN")
            .or(metrics_listen)
            .map(|text| {
                text.trim()
                    .parse()
                    .map_err(|_| ConfigError::MetricsListen(text.clone()))
            })
            .transpose()?;
        Ok(ObserveSettings {
            log_format,
            log_level,
            metrics_listen,
        })
    }
}

/// Names the signed-in person on the log lines of the current request.
pub fn note_user(username: &str) {
    tracing::Span::current().record("user", username);
}

/// Names the client (application) on the log lines of the current request.
pub fn note_client(client_id: &str) {
    tracing::Span::current().record("client", client_id);
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
