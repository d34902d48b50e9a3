//! Signing people in: browser sessions and one-time login links.

pub mod aaguid;
pub mod login_link;
pub mod passkeys;
pub mod routes;
pub mod session;
pub mod setup;

use crate::config::Issuer;
use passkeys::Passkeys;

/// What only signing in needs, shared by all workers beside the application state.
pub struct AuthState {
    /// `None` when the issuer cannot be a WebAuthn relying party (an IP address).
    pub passkeys: Option<Passkeys>,
}

impl AuthState {
    pub fn new(issuer: &Issuer) -> AuthState {
        let passkeys = Passkeys::new(issuer)
            .inspect_err(|e| tracing::warn!("passkeys are off: {e}"))
            .ok();
        AuthState { passkeys }
    }
}
