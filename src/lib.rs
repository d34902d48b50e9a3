//! Latchkey: a single-binary OpenID Connect provider for homelabs and small teams.
//!
//! The crate is laid out by layer: `store` owns SQLite, `directory` holds the rules for
//! people, groups and clients (shared by the CLI and the web), `oidc` speaks the protocol,
//! `auth` signs people in, `web` renders pages, and `server` wires the HTTP application.

pub mod admin;
pub mod auth;
pub mod backups;
pub mod cli;
pub mod clock;
pub mod config;
pub mod directory;
pub mod keys;
pub mod limits;
pub mod names;
pub mod notify;
pub mod observe;
pub mod oidc;
pub mod proxmox;
pub mod secrets;
pub mod server;
pub mod state;
pub mod store;
pub mod tls;
pub mod web;
