//! Integration tests: the real server over real HTTP, the real CLI, real SQLite files.

mod admin;
mod authorize_errors;
mod cli;
mod config_file;
mod consent;
mod helpers;
mod passkeys;
mod proxmox_flow;
mod retired_usernames;
mod sessions;
mod token_errors;
mod tokens;
