//! The OpenID Connect provider: discovery, authorization, tokens, userinfo, revocation,
//! introspection and logout. Each endpoint's rules are plain functions over the store;
//! `routes` adapts them to HTTP.

pub mod authorize;
pub mod claims;
pub mod client_auth;
pub mod discovery;
pub mod error;
pub mod introspect;
pub mod logout;
pub mod params;
pub mod redirect;
pub mod revoke;
pub mod routes;
pub mod scope;
pub mod token;
pub mod userinfo;

use crate::config::Settings;
use crate::state::AppState;
use client_auth::{ClientAuth, SecretCache};

/// An authorization code is good for this long (OIDC Core allows at most ten minutes; a
/// minute is plenty for a relying party's back channel).
pub const CODE_TTL_SECS: i64 = 60;
pub const ACCESS_TOKEN_TTL_SECS: i64 = 3600;
pub const ID_TOKEN_TTL_SECS: i64 = 3600;
pub const REFRESH_TOKEN_TTL_SECS: i64 = 30 * 24 * 3600;
/// A request parked while the person signs in.
pub const PENDING_TTL_SECS: i64 = 30 * 60;
/// A retired signing key stays in the JWKS this long: every ID token it signed has expired.
pub const KEY_PUBLISH_AFTER_RETIREMENT_SECS: i64 = ID_TOKEN_TTL_SECS + 300;

/// What only the protocol needs, shared by all workers beside the application state.
pub struct OidcState {
    pub secrets: SecretCache,
    discovery: String,
}

impl OidcState {
    pub fn new(settings: &Settings) -> OidcState {
        OidcState {
            secrets: SecretCache::new(settings.limits.client_secret_checks),
            discovery: discovery::rendered(&settings.issuer),
        }
    }

    pub fn discovery(&self) -> &str {
        &self.discovery
    }

    /// What the back-channel endpoints need to authenticate clients.
    pub fn client_auth<'a>(&'a self, state: &'a AppState) -> ClientAuth<'a> {
        ClientAuth {
            store: &state.store,
            secrets: &self.secrets,
            failures: &state.failures,
        }
    }
}
