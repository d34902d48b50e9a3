//! Proxmox permissions: Latchkey keeps a Proxmox VE or Backup Server's `@realm` users, (PVE)
//! `<group>-<realm>` groups and their ACL entries equal to what a client's rules and today's
//! group memberships say, through the server's own API, and touches nothing outside the realm.
//!
//! - `target`: what a client's Proxmox target and rules are (parsed once, at the edge).
//! - `plan`: the desired state, and the ordered changes from the server's state to it (pure).
//! - `api`: the server's HTTP API: certificate trust, reading its state, applying a change.
//! - `sync`: one run: check the token's rights, read, plan, and apply (or only show, on a dry
//!   run).
//! - `queue`: runs with their status and audit events, the queue worker and the periodic
//!   repair.

pub mod api;
pub mod plan;
pub mod queue;
pub mod sync;
pub mod target;
