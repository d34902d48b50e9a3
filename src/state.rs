//! What every request handler shares: the application state, and the way to run blocking
//! work (SQLite, argon2, RSA) without stalling the async workers. What only one area needs
//! (passkeys for signing in, client secrets for the protocol) is that area's own state.

use actix_web::{HttpRequest, web};

use crate::config::{LimitSettings, Settings};
use crate::keys::Signer;
use crate::limits::RateLimiter;
use crate::observe::metrics::Metrics;
use crate::store::Store;
use crate::store::audit::{Origin, Repeats};

/// Everything a request handler may need, shared by all workers.
pub struct AppState {
    pub store: Store,
    pub settings: Settings,
    pub signer: Signer,
    pub limits: Limits,
    pub metrics: Metrics,
    /// Failures anyone can cause, counted rather than written again (see `audit::Repeats`).
    pub failures: Repeats,
    /// Set once a request carried `X-Forwarded-For` from a peer that is not a trusted proxy.
    warned_untrusted_proxy: std::sync::atomic::AtomicBool,
}

/// Per-address limits on what anonymous requests may start.
pub struct Limits {
    /// Passkey ceremonies started or finished.
    pub ceremonies: RateLimiter,
    /// Login and setup links opened.
    pub links: RateLimiter,
    /// Authorization requests parked while someone signs in.
    pub parked: RateLimiter,
}

impl Limits {
    fn new(settings: &LimitSettings) -> Limits {
        Limits {
            ceremonies: RateLimiter::new(settings.passkey_ceremonies, 60),
            links: RateLimiter::new(settings.login_links, 60),
            parked: RateLimiter::new(settings.authorization_requests, 60),
        }
    }
}

pub type State = web::Data<AppState>;

impl AppState {
    pub fn new(store: Store, settings: Settings) -> AppState {
        let metrics = Metrics::new();
        let store = store.observe_waits(metrics.write_waits());
        AppState {
            signer: Signer::default(),
            limits: Limits::new(&settings.limits),
            metrics,
            failures: Repeats::default(),
            warned_untrusted_proxy: Default::default(),
            store,
            settings,
        }
    }

    /// The audit origin of a request. Warns once when a peer that is not a trusted proxy
    /// sends `X-Forwarded-For`: behind an unlisted proxy, every person shares the proxy's
    /// address, and so its rate limits.
    pub fn origin(&self, req: &HttpRequest) -> Origin {
        let origin = crate::web::origin::of(req, &self.settings.trusted_proxies);
        if origin.forwarded_by_untrusted
            && !self
                .warned_untrusted_proxy
                .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!(
                "a request from {} carried X-Forwarded-For, but that address is not in \
                 trusted_proxies: rate limits and the audit log see the proxy, not the person; \
                 list the proxy in trusted_proxies",
                origin.origin.ip.as_deref().unwrap_or("an unknown address")
            );
        }
        origin.origin
    }

    /// The value of a cookie of ours, if the browser sent it.
    pub fn cookie(req: &HttpRequest, name: &str) -> Option<String> {
        req.cookie(name).map(|c| c.value().to_string())
    }
}

/// Runs blocking work (SQLite, argon2, RSA) on actix's blocking pool, so that the async
/// workers never stall.
pub async fn blocking<T, E>(
    state: &State,
    work: impl FnOnce(&AppState) -> Result<T, E> + Send + 'static,
) -> Result<T, E>
where
    T: Send + 'static,
    E: From<actix_web::error::BlockingError> + Send + 'static,
{
    let state = state.clone();
    // The work's log lines belong to the request's span.
    let span = tracing::Span::current();
    web::block(move || span.in_scope(|| work(&state))).await?
}
