//! Signing people in: browser sessions and one-time login links.

pub mod login_link;
pub mod routes;
pub mod session;
