//! The rules for a client's Proxmox target and permission rules, shared by the CLI, the admin
//! pages and the config file: what may be set, what it changes, and its audit events. Talking
//! to the server (checking the token and the roles, syncing) is `crate::proxmox`'s job; these
//! rules only decide and record.

use rusqlite::Connection;

use super::clients::{self as directory_clients, NewSecret};
use super::{DirectoryError, DirectoryResult, groups as directory_groups};
use crate::clock::UnixTime;
use crate::proxmox::target::{Rule, Target};
use crate::store::audit::{self, Event, Origin};
use crate::store::clients::Client;
use crate::store::proxmox::{self as stored, StoredTarget};

/// A target and its rules, as the CLI and the admin pages show them.
#[derive(Debug, Clone)]
pub struct Configured {
    pub target: StoredTarget,
    pub rules: Vec<Rule>,
}

/// The client, which must exist and be editable here (not declared in the config file).
fn editable_client(conn: &Connection, client_id: &str) -> DirectoryResult<Client> {
    let client = directory_clients::find(conn, client_id)?;
    if client.declared {
        return Err(DirectoryError::Declared(client.client_id));
    }
    Ok(client)
}

/// The client's target, which must exist.
pub fn find(conn: &Connection, client_id: &str) -> DirectoryResult<Configured> {
    directory_clients::find(conn, client_id)?;
    let target = stored::target(conn, client_id)?.ok_or_else(|| {
        DirectoryError::Invalid(format!(
            "client {client_id:?} has no Proxmox target (see `latchkey proxmox set`)"
        ))
    })?;
    Ok(Configured {
        rules: stored::rules(conn, client_id)?,
        target,
    })
}

/// Every target with its rules.
pub fn list(conn: &Connection) -> DirectoryResult<Vec<Configured>> {
    stored::targets(conn)?
        .into_iter()
        .map(|target| {
            Ok(Configured {
                rules: stored::rules(conn, &target.target.client_id)?,
                target,
            })
        })
        .collect()
}

/// What setting a target did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetOutcome {
    pub created: bool,
    /// A new client secret was minted for the realm Latchkey now manages: shown nowhere,
    /// written into the realm by the next sync.
    pub realm_secret_minted: bool,
}

/// Sets (creates or replaces) a client's Proxmox target. Taking over the realm
/// (`manage_realm`) of a confidential client mints a new client secret, which the next sync
/// writes into the realm: the old secret stops working at once. `minted` is made by the
/// caller before the transaction (argon2 is slow).
pub fn set(
    conn: &Connection,
    target: &Target,
    minted: Option<&NewSecret>,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<SetOutcome> {
    let client = editable_client(conn, &target.client_id)?;
    let created = stored::target(conn, &target.client_id)?.is_none();
    let takes_over_realm = needs_new_secret(conn, target)?;
    if takes_over_realm && minted.is_none() {
        return Err(DirectoryError::Invalid(
            "taking over the realm needs a new client secret".into(),
        ));
    }
    stored::put_target(conn, target, false, now)?;
    let realm_secret_minted = match minted {
        Some(secret) if takes_over_realm => {
            // The target manages the realm now: rotating hands the secret to the next sync.
            directory_clients::rotate_secret(conn, &client.client_id, secret, origin, now)?;
            true
        }
        _ => false,
    };
    audit::record(
        conn,
        &Event::new("proxmox.target_set")
            .client(&client.client_id)
            .detail(describe(target)),
        origin,
        now,
    )?;
    Ok(SetOutcome {
        created,
        realm_secret_minted,
    })
}

/// Whether setting `target` would take over its realm and so needs a new secret.
pub fn needs_new_secret(conn: &Connection, target: &Target) -> DirectoryResult<bool> {
    let client = directory_clients::find(conn, &target.client_id)?;
    let managed_before = stored::target(conn, &target.client_id)?
        .is_some_and(|previous| previous.target.manage_realm);
    Ok(target.manage_realm && !managed_before && !client.public)
}

/// One line for the audit log; never the token secret.
fn describe(target: &Target) -> String {
    format!(
        "{} {} realm {} as {}{}",
        target.product.as_str(),
        target.api_url,
        target.realm,
        target.token_id,
        if target.manage_realm {
            ", realm managed"
        } else {
            ""
        }
    )
}

/// Removes a client's target and rules. The server keeps what it has: Latchkey just stops
/// managing it.
pub fn unset(
    conn: &Connection,
    client_id: &str,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<()> {
    editable_client(conn, client_id)?;
    if !stored::remove_target(conn, client_id)? {
        return Err(DirectoryError::Invalid(format!(
            "client {client_id:?} has no Proxmox target"
        )));
    }
    audit::record(
        conn,
        &Event::new("proxmox.target_unset").client(client_id),
        origin,
        now,
    )?;
    Ok(())
}

/// Adds a rule (or changes its `propagate`); false when it was already there as it is.
pub fn allow(
    conn: &Connection,
    client_id: &str,
    rule: &Rule,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<bool> {
    editable_client(conn, client_id)?;
    find(conn, client_id)?;
    let group = directory_groups::get(conn, &rule.group)?;
    let changed = stored::put_rule(conn, client_id, group.id, rule)?;
    if changed {
        audit::record(
            conn,
            &Event::new("proxmox.rule_added")
                .client(client_id)
                .detail(describe_rule(rule)),
            origin,
            now,
        )?;
    }
    Ok(changed)
}

/// Removes a rule; false when there was none.
pub fn deny(
    conn: &Connection,
    client_id: &str,
    rule: &Rule,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<bool> {
    editable_client(conn, client_id)?;
    find(conn, client_id)?;
    let group = directory_groups::get(conn, &rule.group)?;
    let removed = stored::remove_rule(conn, client_id, group.id, &rule.role, &rule.path)?;
    if removed {
        audit::record(
            conn,
            &Event::new("proxmox.rule_removed")
                .client(client_id)
                .detail(describe_rule(rule)),
            origin,
            now,
        )?;
    }
    Ok(removed)
}

pub fn describe_rule(rule: &Rule) -> String {
    format!(
        "{} → {} on {}{}",
        rule.group,
        rule.role,
        rule.path,
        if rule.propagate {
            ""
        } else {
            " (no propagate)"
        }
    )
}

/// The clients whose Proxmox rules name a group: it cannot be removed while they do.
pub fn clients_ruling_group(conn: &Connection, group_id: i64) -> DirectoryResult<Vec<String>> {
    Ok(stored::clients_ruling_group(conn, group_id)?)
}
