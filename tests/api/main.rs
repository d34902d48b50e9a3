//! Integration tests: the real server over real HTTP, the real CLI, real SQLite files.

mod abuse;
mod access_log;
mod admin;
mod admin_proxmox;
mod authorize_errors;
mod cli;
mod clock_rules;
mod config_file;
mod consent;
mod crash;
mod files;
mod grant_ownership;
mod helpers;
mod passkeys;
mod process;
mod properties;
mod proxmox_flow;
mod redirect_uris;
mod retired_usernames;
mod sessions;
mod sweep;
mod token_errors;
mod tokens;
