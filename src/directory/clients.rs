//! OIDC clients: registration, secrets and removal.

use rusqlite::Connection;

use super::{DirectoryError, DirectoryResult, names};
use crate::clock::UnixTime;
use crate::secrets;
use crate::store::audit::{self, Event, Origin};
use crate::store::clients::{self, Client};
use crate::store::groups;

#[derive(Debug, Clone, Default)]
pub struct NewClient {
    pub client_id: String,
    pub name: Option<String>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub allowed_groups: Vec<String>,
    pub public: bool,
}

/// A freshly generated client secret (256 bits) and its argon2id hash. Hashing is slow on
/// purpose, so callers do it before opening a write transaction.
pub struct NewSecret {
    pub secret: String,
    pub hash: String,
}

pub fn new_secret() -> DirectoryResult<NewSecret> {
    let secret = secrets::random_token();
    let hash = secrets::hash_secret(&secret).map_err(|e| DirectoryError::Invalid(e.to_string()))?;
    Ok(NewSecret { secret, hash })
}

fn validated_uris(uris: &[String]) -> DirectoryResult<Vec<String>> {
    let mut out: Vec<String> = Vec::with_capacity(uris.len());
    for uri in uris {
        let uri = names::redirect_uri(uri)?;
        if !out.contains(&uri) {
            out.push(uri);
        }
    }
    Ok(out)
}

/// Registers a client. Confidential clients need `secret_hash` (from [`new_secret`]).
pub fn add(
    conn: &Connection,
    new: &NewClient,
    secret_hash: Option<String>,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<Client> {
    let client_id = names::client_id(&new.client_id)?;
    let redirect_uris = validated_uris(&new.redirect_uris)?;
    if redirect_uris.is_empty() {
        return Err(DirectoryError::Invalid(
            "a client needs at least one redirect URI (--redirect-uri)".into(),
        ));
    }
    let post_logout_redirect_uris = validated_uris(&new.post_logout_redirect_uris)?;
    let name = new
        .name
        .as_deref()
        .map(names::display_name)
        .transpose()?
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| client_id.clone());
    let mut group_ids = Vec::with_capacity(new.allowed_groups.len());
    for group in &new.allowed_groups {
        let id = groups::id_by_name(conn, group)?
            .ok_or_else(|| DirectoryError::NoSuchGroup(group.clone()))?;
        if !group_ids.contains(&id) {
            group_ids.push(id);
        }
    }
    if clients::by_id(conn, &client_id)?.is_some() {
        return Err(DirectoryError::ClientExists(client_id));
    }
    let secret_hash = if new.public { None } else { secret_hash };
    if !new.public && secret_hash.is_none() {
        return Err(DirectoryError::Invalid(
            "a confidential client needs a secret".into(),
        ));
    }
    let mut client = Client {
        client_id,
        name,
        secret_hash,
        public: new.public,
        redirect_uris,
        post_logout_redirect_uris,
        allowed_groups: Vec::new(),
        declared: false,
        created_at: now,
        updated_at: now,
    };
    clients::insert(conn, &client, &group_ids)?;
    client.allowed_groups = new.allowed_groups.clone();
    audit::record(
        conn,
        &Event::new("client.created").client(&client.client_id),
        origin,
        now,
    )?;
    Ok(client)
}

pub fn find(conn: &Connection, client_id: &str) -> DirectoryResult<Client> {
    clients::by_id(conn, client_id)?
        .ok_or_else(|| DirectoryError::NoSuchClient(client_id.to_string()))
}

pub fn remove(
    conn: &Connection,
    client_id: &str,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<()> {
    let client = find(conn, client_id)?;
    if client.declared {
        return Err(DirectoryError::Declared(client.client_id));
    }
    clients::delete(conn, client_id)?;
    audit::record(
        conn,
        &Event::new("client.removed").client(client_id),
        origin,
        now,
    )?;
    Ok(())
}

/// Replaces a confidential client's secret; the old one stops working at once.
pub fn rotate_secret(
    conn: &Connection,
    client_id: &str,
    secret_hash: &str,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<()> {
    let client = find(conn, client_id)?;
    if client.public {
        return Err(DirectoryError::Invalid(format!(
            "client {client_id:?} is public: it has no secret"
        )));
    }
    if client.declared {
        return Err(DirectoryError::Declared(client.client_id));
    }
    clients::set_secret_hash(conn, client_id, secret_hash, now)?;
    audit::record(
        conn,
        &Event::new("client.secret_rotated").client(client_id),
        origin,
        now,
    )?;
    Ok(())
}
