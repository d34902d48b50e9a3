//! Signing people in: browser sessions and one-time login links.

pub mod aaguid;
pub mod login_link;
pub mod passkeys;
pub mod routes;
pub mod session;
pub mod setup;
