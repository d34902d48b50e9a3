//! The process's log: text or JSON lines on stdout, filtered by `log_level` or `RUST_LOG`.

use std::io::IsTerminal;

use tracing_subscriber::filter::{FilterExt, LevelFilter, ParseError, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, fmt};

use super::{LogFormat, ObserveSettings};

/// Libraries whose detailed lines show secrets (WebAuthn's dump a ceremony's challenge): they
/// are capped whatever the filter says.
const CAPPED: [(&str, LevelFilter); 2] = [
    ("webauthn_rs", LevelFilter::INFO),
    ("webauthn_rs_core", LevelFilter::INFO),
];

/// The filter for `level`.
pub fn filter(level: &str) -> Result<EnvFilter, ParseError> {
    EnvFilter::try_new(level)
}

/// Starts logging as `settings` say; `RUST_LOG`, when set and valid, wins over `log_level`.
/// Colours only on a terminal: a log file gets no escape sequences.
pub fn init(settings: &ObserveSettings) {
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.is_empty())
        .and_then(|v| filter(&v).ok());
    let filter = from_env
        .or_else(|| filter(&settings.log_level).ok())
        .unwrap_or_else(|| EnvFilter::new(super::DEFAULT_LOG_LEVEL));
    let capped = Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_targets(CAPPED);
    let ansi = std::io::stdout().is_terminal();
    let lines = match settings.log_format {
        LogFormat::Text => fmt::layer().with_ansi(ansi).with_target(false).boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .with_ansi(ansi)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(lines.with_filter(filter.and(capped)))
        .try_init();
}
