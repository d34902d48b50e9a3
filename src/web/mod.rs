//! What people see: pages, their errors, static assets, and the protections every page
//! shares (security headers, CSRF tokens, the client's address), and the authorization
//! request a browser is signing in for.

pub mod assets;
pub mod cookies;
pub mod csrf;
pub mod error;
pub mod headers;
pub mod origin;
pub mod pages;
pub mod parked;
