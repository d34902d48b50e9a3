//! Proxmox permissions: Latchkey keeps a Proxmox VE or Backup Server's `@realm` users, (PVE)
//! `<group>-<realm>` groups and their ACL entries equal to what a client's rules and today's
//! group memberships say, through the server's own API, and touches nothing outside the realm.
//!
//! - `target`: what a client's Proxmox target and rules are (parsed once, at the edge).

pub mod plan;
pub mod queue;
pub mod sync;
pub mod target;
