//! The rules for a client's Proxmox target and permission rules, shared by the CLI, the admin
//! pages and the config file: what may be set, what it changes, and its audit events. Talking
//! to the server (checking the token and the roles, syncing) is `crate::proxmox`'s job; these
//! rules only decide and record.

use crate::store::Db;

use super::clients::{self as directory_clients, NewSecret};
use super::{DirectoryError, DirectoryResult, groups as directory_groups};
use crate::clock::UnixTime;
use crate::config::{DeclaredClient, DeclaredPermission, DeclaredProxmox};
use crate::names::ClientId;
use crate::proxmox::target::{self, Rule, Target, Trust};
use crate::store::audit::{self, Event, EventKind, Origin};
use crate::store::clients::Client;
use crate::store::proxmox::{self as stored, StoredTarget};

/// A target and its rules, as the CLI and the admin pages show them.
#[derive(Debug, Clone)]
pub struct Configured {
    pub target: StoredTarget,
    pub rules: Vec<Rule>,
}

/// The client, which must exist and be editable here (not declared in the config file).
fn editable_client(conn: &Db, client_id: &ClientId) -> DirectoryResult<Client> {
    let client = directory_clients::find(conn, client_id)?;
    if client.declared {
        return Err(DirectoryError::Declared(client.client_id.to_string()));
    }
    Ok(client)
}

/// The client's target, which must exist.
pub fn find(conn: &Db, client_id: &ClientId) -> DirectoryResult<Configured> {
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
pub fn list(conn: &Db) -> DirectoryResult<Vec<Configured>> {
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
    conn: &Db,
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
        &Event::new(EventKind::ProxmoxTargetSet)
            .client(client.client_id.as_str())
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
pub fn needs_new_secret(conn: &Db, target: &Target) -> DirectoryResult<bool> {
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
    conn: &Db,
    client_id: &ClientId,
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
        &Event::new(EventKind::ProxmoxTargetUnset).client(client_id.as_str()),
        origin,
        now,
    )?;
    Ok(())
}

/// Asks for the client's server to be synced as soon as possible; false when the client has
/// no target.
pub fn request_sync(
    conn: &Db,
    client_id: &ClientId,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<bool> {
    // Declared clients too: asking for a sync changes nothing the config file says.
    directory_clients::find(conn, client_id)?;
    if !stored::request(conn, client_id)? {
        return Ok(false);
    }
    audit::record(
        conn,
        &Event::new(EventKind::ProxmoxSyncRequested).client(client_id.as_str()),
        origin,
        now,
    )?;
    Ok(true)
}

/// Adds a rule (or changes its `propagate`); false when it was already there as it is.
pub fn allow(
    conn: &Db,
    client_id: &ClientId,
    rule: &Rule,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<bool> {
    change_rule(conn, client_id, rule, RuleChange::Add, origin, now)
}

/// Removes a rule; false when there was none.
pub fn deny(
    conn: &Db,
    client_id: &ClientId,
    rule: &Rule,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<bool> {
    change_rule(conn, client_id, rule, RuleChange::Remove, origin, now)
}

#[derive(Clone, Copy)]
enum RuleChange {
    Add,
    Remove,
}

/// Adds or removes a rule of an editable client's target; audit-logged when it changed.
fn change_rule(
    conn: &Db,
    client_id: &ClientId,
    rule: &Rule,
    change: RuleChange,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<bool> {
    editable_client(conn, client_id)?;
    find(conn, client_id)?;
    let group = directory_groups::get(conn, &rule.group)?;
    let (changed, kind) = match change {
        RuleChange::Add => (
            stored::put_rule(conn, client_id, group.id, rule)?,
            EventKind::ProxmoxRuleAdded,
        ),
        RuleChange::Remove => (
            stored::remove_rule(conn, client_id, group.id, &rule.role, &rule.path)?,
            EventKind::ProxmoxRuleRemoved,
        ),
    };
    if changed {
        audit::record(
            conn,
            &Event::new(kind)
                .client(client_id.as_str())
                .detail(describe_rule(rule)),
            origin,
            now,
        )?;
    }
    Ok(changed)
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

/// Applies a declared client's `[clients.proxmox]`: its target and rules come from the file,
/// and a target the file no longer declares goes. Returns the client's id when its realm is
/// managed but the file holds its secret only as a hash (nothing to write into the realm).
pub fn declare(
    conn: &Db,
    client_id: &ClientId,
    client: &DeclaredClient,
    plain_secret: bool,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<Option<ClientId>> {
    let Some(declared) = &client.proxmox else {
        if stored::target(conn, client_id)?.is_some_and(|t| t.declared) {
            stored::remove_target(conn, client_id)?;
            audit::record(
                conn,
                &Event::new(EventKind::ProxmoxTargetUndeclared).client(client_id.as_str()),
                origin,
                now,
            )?;
        }
        return Ok(None);
    };
    let target = declared_target(client_id, declared)?;
    stored::put_target(conn, &target, true, now)?;
    stored::clear_rules(conn, &target.client_id)?;
    for permission in &declared.permissions {
        let rule = declared_rule(permission)?;
        let group = directory_groups::get(conn, &rule.group)?;
        stored::put_rule(conn, &target.client_id, group.id, &rule)?;
    }
    match (&client.secret, target.manage_realm) {
        (Some(secret), true) if plain_secret => {
            stored::set_realm_secret(conn, &target.client_id, secret)?;
            Ok(None)
        }
        (Some(_), true) => Ok(Some(target.client_id)),
        _ => Ok(None),
    }
}

fn invalid(error: crate::proxmox::target::TargetError) -> DirectoryError {
    DirectoryError::Invalid(error.0)
}

/// The CA certificate a `ca_file` holds.
fn ca_file(path: &std::path::Path) -> DirectoryResult<String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        DirectoryError::Invalid(format!("cannot read the ca_file {}: {e}", path.display()))
    })?;
    target::ca_pem(&text)
        .map_err(|e| DirectoryError::Invalid(format!("ca_file {}: {e}", path.display())))
}

fn declared_target(client_id: &ClientId, declared: &DeclaredProxmox) -> DirectoryResult<Target> {
    // The settings have read `token_secret_file` into `token_secret` (and refused both).
    let token_secret = match &declared.token_secret {
        Some(secret) => target::token_secret(secret).map_err(invalid)?,
        None => {
            return Err(DirectoryError::Invalid(
                "[clients.proxmox] needs token_secret or token_secret_file".into(),
            ));
        }
    };
    let trust = match (&declared.fingerprint, &declared.ca_file) {
        (Some(fingerprint), None) => {
            Trust::Fingerprint(target::fingerprint(fingerprint).map_err(invalid)?)
        }
        (None, Some(file)) => Trust::CaPem(ca_file(file)?),
        (None, None) => Trust::SystemRoots,
        (Some(_), Some(_)) => {
            return Err(DirectoryError::Invalid(
                "[clients.proxmox] takes fingerprint or ca_file, not both".into(),
            ));
        }
    };
    Ok(Target {
        client_id: client_id.clone(),
        product: target::product(&declared.product).map_err(invalid)?,
        api_url: target::api_url(&declared.api_url).map_err(invalid)?,
        token_id: target::token_id(&declared.token_id).map_err(invalid)?,
        token_secret,
        trust,
        realm: target::realm(declared.realm.as_deref().unwrap_or(DEFAULT_REALM))
            .map_err(invalid)?,
        leavers: target::leavers(declared.leavers.as_deref().unwrap_or("disable"))
            .map_err(invalid)?,
        manage_realm: declared.manage_realm,
    })
}

fn declared_rule(permission: &DeclaredPermission) -> DirectoryResult<Rule> {
    Ok(Rule {
        role: target::role(&permission.role).map_err(invalid)?,
        path: target::acl_path(permission.path.as_deref().unwrap_or("/")).map_err(invalid)?,
        group: directory_groups::named(&permission.group)?,
        propagate: permission.propagate.unwrap_or(true),
    })
}

/// The realm people sign in through when none is given.
pub const DEFAULT_REALM: &str = "latchkey";
