//! Configuration as code: the groups and clients declared in the config file are applied at
//! start, in one transaction. What the file no longer declares is removed; what it declares
//! is read-only everywhere else (the CLI and the admin pages refuse to change it).

use crate::store::Db;

use super::clients::{self, ClientSettings, NewClient};
use super::{DirectoryError, groups as directory_groups, proxmox};
use crate::clock::UnixTime;
use crate::config::{Declared, DeclaredClient, DeclaredGroup, Settings, parse_duration};
use crate::names::{ClientId, GroupName};
use crate::secrets;
use crate::store::audit::{self, Event, EventKind, Origin};
use crate::store::clients as stored_clients;
use crate::store::groups;

/// A declaration the file got wrong, with where.
#[derive(Debug, thiserror::Error)]
#[error("{file}, line {line}: {reason}")]
pub struct DeclarationError {
    pub file: String,
    pub line: usize,
    pub reason: String,
}

/// What applying the file did, for the start-up log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub groups: usize,
    pub clients: usize,
    pub removed: Vec<String>,
    /// Clients whose secret is written in plain text in the file.
    pub plain_secrets: Vec<ClientId>,
    /// Clients whose Proxmox realm Latchkey manages, but whose secret the file gives only as
    /// a hash: the realm keeps the client secret it has.
    pub unmanaged_realm_secrets: Vec<ClientId>,
}

/// Applies the file's declarations. The caller's transaction makes it all or nothing.
pub fn apply(conn: &Db, settings: &Settings, now: UnixTime) -> Result<Applied, DeclarationError> {
    let file = settings
        .config_path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "config file".into());
    let fail = |line: usize, error: &dyn std::fmt::Display| DeclarationError {
        file: file.clone(),
        line,
        reason: error.to_string(),
    };
    let origin = Origin::config_file();
    let mut applied = Applied::default();
    for declared in &settings.groups {
        declare_group(conn, &declared.item, &origin, now).map_err(|e| fail(declared.line, &e))?;
        applied.groups += 1;
    }
    for declared in &settings.clients {
        let client = &declared.item;
        let (client_id, plain) =
            declare_client(conn, declared, &origin, now).map_err(|e| fail(declared.line, &e))?;
        let proxmox = proxmox::declare(conn, &client_id, client, plain, &origin, now)
            .map_err(|e| fail(declared.line, &e))?;
        if plain && client.secret_file.is_none() {
            applied.plain_secrets.push(client_id);
        }
        applied.unmanaged_realm_secrets.extend(proxmox);
        applied.clients += 1;
    }
    // Removals have no line of their own: report them at the top of the file.
    applied.removed = remove_undeclared(conn, settings, &origin, now).map_err(|e| fail(1, &e))?;
    Ok(applied)
}

fn declare_group(
    conn: &Db,
    group: &DeclaredGroup,
    origin: &Origin,
    now: UnixTime,
) -> Result<(), DirectoryError> {
    let name = GroupName::parse(&group.name)?;
    match groups::id_by_name(conn, &name)? {
        Some(id) => {
            groups::set_declared(conn, id, true)?;
        }
        None => {
            groups::insert(conn, &name, true, now)?;
            audit::record(
                conn,
                &Event::new(EventKind::GroupDeclared).detail(name.to_string()),
                origin,
                now,
            )?;
        }
    }
    Ok(())
}

/// Creates or updates one declared client; its id, and true when its secret is plain text in
/// the file.
fn declare_client(
    conn: &Db,
    declared: &Declared<DeclaredClient>,
    origin: &Origin,
    now: UnixTime,
) -> Result<(ClientId, bool), DirectoryError> {
    let client = &declared.item;
    let lifetime = |what: &str, text: &Option<String>| {
        text.as_deref()
            .map(|t| {
                parse_duration(t).ok_or_else(|| {
                    DirectoryError::Invalid(format!("invalid {what} {t:?}: use s, m, h or d"))
                })
            })
            .transpose()
    };
    let settings = ClientSettings {
        name: client.name.clone(),
        redirect_uris: client.redirect_uris.clone(),
        post_logout_redirect_uris: client.post_logout_redirect_uris.clone(),
        allowed_groups: client
            .allowed_groups
            .iter()
            .map(|group| directory_groups::named(group))
            .collect::<Result<_, _>>()?,
        public: client.public,
        require_pkce: client.require_pkce,
        ask_consent: client.ask_consent,
        launch_url: client.launch_url.clone(),
        access_token_ttl: lifetime("access_token_lifetime", &client.access_token_lifetime)?,
        refresh_token_ttl: lifetime("refresh_token_lifetime", &client.refresh_token_lifetime)?,
        id_token_signed_response_alg: clients::id_token_alg(
            client.id_token_signed_response_alg.as_deref(),
        )?,
    };
    let client_id = ClientId::parse(&client.client_id)?;
    let (secret_hash, plain) = match (&client.secret, client.public) {
        (Some(_), true) => {
            return Err(DirectoryError::Invalid(format!(
                "client {:?} is public and must not have a secret",
                client.client_id
            )));
        }
        (None, true) => (None, false),
        (None, false) => {
            return Err(DirectoryError::Invalid(format!(
                "client {:?} needs a secret or secret_file (plain, or from `latchkey \
                 hash-secret`), or public = true",
                client.client_id
            )));
        }
        (Some(secret), false) if secret.starts_with("$argon2") => {
            if !secrets::is_phc(secret) {
                return Err(DirectoryError::Invalid(format!(
                    "client {:?}: the secret is not a valid argon2 PHC string",
                    client.client_id
                )));
            }
            (Some(secret.clone()), false)
        }
        (Some(secret), false) => (Some(plain_secret_hash(conn, &client_id, secret)?), true),
    };
    match stored_clients::by_id(conn, &client_id)? {
        None => {
            let new = NewClient {
                client_id: client_id.clone(),
                settings,
            };
            clients::create(conn, &new, secret_hash, true, now)?;
            audit::record(
                conn,
                &Event::new(EventKind::ClientDeclared).client(client_id.as_str()),
                origin,
                now,
            )?;
        }
        Some(mut existing) => {
            // The file is the source of truth for this client from now on, even for one
            // first made on the command line.
            existing.declared = true;
            clients::rewrite(conn, existing, &settings, secret_hash, now)?;
        }
    }
    Ok((client_id, plain))
}

/// The hash of a plain-text secret from the file. Hashing again at every start would change
/// the stored hash each time, so an unchanged secret keeps the hash it has.
fn plain_secret_hash(
    conn: &Db,
    client_id: &ClientId,
    secret: &str,
) -> Result<String, DirectoryError> {
    if let Some(existing) = stored_clients::by_id(conn, client_id)?.and_then(|c| c.secret_hash)
        && secrets::verify_secret(secret, &existing).unwrap_or(false)
    {
        return Ok(existing);
    }
    secrets::hash_secret(secret).map_err(|e| DirectoryError::Invalid(e.to_string()))
}

/// Removes declared clients and groups the file no longer declares; returns their names.
fn remove_undeclared(
    conn: &Db,
    settings: &Settings,
    origin: &Origin,
    now: UnixTime,
) -> Result<Vec<String>, DirectoryError> {
    let mut removed = Vec::new();
    let still_clients: Vec<&str> = settings
        .clients
        .iter()
        .map(|d| d.item.client_id.as_str())
        .collect();
    for client in stored_clients::list(conn)? {
        if client.declared && !still_clients.contains(&client.client_id.as_str()) {
            stored_clients::delete(conn, &client.client_id)?;
            audit::record(
                conn,
                &Event::new(EventKind::ClientUndeclared).client(client.client_id.as_str()),
                origin,
                now,
            )?;
            removed.push(format!("client {}", client.client_id));
        }
    }
    let still_groups: Vec<&str> = settings
        .groups
        .iter()
        .map(|d| d.item.name.as_str())
        .collect();
    for group in groups::list(conn)? {
        if group.declared && !still_groups.contains(&group.name.as_str()) {
            super::groups::remove_group(conn, &group, origin, now)?;
            removed.push(format!("group {}", group.name));
        }
    }
    Ok(removed)
}
