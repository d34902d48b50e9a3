//! What every request handler shares: the application state, and the way to run blocking
//! work (SQLite, argon2, RSA) without stalling the async workers.

use actix_web::{HttpRequest, web};

use crate::auth::passkeys::Passkeys;
use crate::auth::rate_limit::RateLimiter;
use crate::config::Settings;
use crate::keys::Signer;
use crate::oidc::client_auth::SecretCache;
use crate::oidc::discovery;
use crate::store::Store;
use crate::store::audit::Origin;

/// Everything a request handler may need, shared by all workers.
pub struct AppState {
    pub store: Store,
    pub settings: Settings,
    pub signer: Signer,
    pub secrets: SecretCache,
    /// `None` when the issuer cannot be a WebAuthn relying party (an IP address).
    pub passkeys: Option<Passkeys>,
    pub limits: Limits,
    discovery: String,
}

/// Per-address limits on the paths that sign people in.
pub struct Limits {
    /// Passkey ceremonies started or finished.
    pub ceremonies: RateLimiter,
    /// Login and setup links opened.
    pub links: RateLimiter,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            ceremonies: RateLimiter::new(60, 60),
            links: RateLimiter::new(20, 60),
        }
    }
}

pub type State = web::Data<AppState>;

impl AppState {
    pub fn new(store: Store, settings: Settings) -> AppState {
        let passkeys = Passkeys::new(&settings.issuer)
            .inspect_err(|e| tracing::warn!("passkeys are off: {e}"))
            .ok();
        AppState {
            discovery: discovery::rendered(&settings.issuer),
            store,
            settings,
            signer: Signer::default(),
            secrets: SecretCache::default(),
            passkeys,
            limits: Limits::default(),
        }
    }

    pub fn discovery(&self) -> &str {
        &self.discovery
    }

    /// The audit origin of a request.
    pub fn origin(&self, req: &HttpRequest) -> Origin {
        crate::web::origin::of(req, &self.settings.trusted_proxies)
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
    web::block(move || work(&state)).await?
}
