//! Integration tests: the real server over real HTTP, the real CLI, real SQLite files.

mod abuse;
mod admin;
mod authorize_errors;
mod cli;
mod grant_ownership;
mod config_file;
mod consent;
mod helpers;
mod passkeys;
mod proxmox_flow;
mod redirect_uris;
mod sessions;
mod sweep;
mod token_errors;
mod tokens;
