//! OIDC clients (relying parties) and the groups allowed to use them.
use super::db::{Db, Row};
use crate::args;

use super::groups::{group_names_of, joined_names};
use super::signing_keys::SigningAlg;
use super::{StoreResult, from_json, to_json};
use crate::clock::UnixTime;
use crate::names::{ClientId, GroupName};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Client {
    pub client_id: ClientId,
    pub name: String,
    /// argon2id PHC string; `None` for public clients.
    #[serde(skip)]
    pub secret_hash: Option<String>,
    pub public: bool,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    /// Group names; empty means every user may sign in.
    pub allowed_groups: Vec<GroupName>,
    /// PKCE even for a confidential client.
    pub require_pkce: bool,
    /// Ask people to consent before sharing their details (else the client is trusted).
    pub ask_consent: bool,
    /// Where the landing page sends people to open the app.
    pub launch_url: Option<String>,
    /// Access token lifetime in seconds; `None`: the default.
    pub access_token_ttl: Option<i64>,
    /// Refresh token lifetime in seconds; `None`: the default.
    pub refresh_token_ttl: Option<i64>,
    /// What its ID tokens are signed with.
    pub id_token_signed_response_alg: SigningAlg,
    pub declared: bool,
    pub created_at: UnixTime,
    pub updated_at: UnixTime,
}

/// Every column of a client, its allowed groups' names last (see `group_names_of!`).
const COLUMNS: &str = concat!(
    "client_id, name, secret_hash, public, redirect_uris, post_logout_redirect_uris, \
     declared, created_at, updated_at, require_pkce, ask_consent, launch_url, \
     access_token_ttl, refresh_token_ttl, id_token_signed_response_alg, ",
    group_names_of!("client_allowed_groups", "client_id", "clients.client_id")
);

fn from_row(row: &Row) -> StoreResult<Client> {
    Ok(Client {
        client_id: row.get(0)?,
        name: row.get(1)?,
        secret_hash: row.get(2)?,
        public: row.get(3)?,
        redirect_uris: from_json("clients", &row.get::<String>(4)?)?,
        post_logout_redirect_uris: from_json("clients", &row.get::<String>(5)?)?,
        declared: row.get(6)?,
        created_at: row.get(7)?,
        updated_at: row.get(8)?,
        require_pkce: row.get(9)?,
        ask_consent: row.get(10)?,
        launch_url: row.get(11)?,
        access_token_ttl: row.get(12)?,
        refresh_token_ttl: row.get(13)?,
        id_token_signed_response_alg: row.get(14)?,
        allowed_groups: joined_names(row, 15)?,
    })
}

pub fn by_id(conn: &Db, client_id: &ClientId) -> StoreResult<Option<Client>> {
    conn.query_opt(
        &format!("SELECT {COLUMNS} FROM clients WHERE client_id = ?1"),
        args![client_id],
        from_row,
    )
}

/// Every client, by id; each with its allowed groups, in the same statement.
pub fn list(conn: &Db) -> StoreResult<Vec<Client>> {
    conn.query(
        &format!("SELECT {COLUMNS} FROM clients ORDER BY client_id"),
        args![],
        from_row,
    )
}

/// Inserts a client; its allowed groups must already exist (ids given).
pub fn insert(conn: &Db, client: &Client, allowed_group_ids: &[i64]) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO clients (client_id, name, secret_hash, public, redirect_uris, \
         post_logout_redirect_uris, declared, created_at, updated_at) \
         VALUES (?1, '', NULL, FALSE, '[]', '[]', ?2, ?3, ?3)",
        args![client.client_id, client.declared, client.created_at],
    )?;
    update(conn, client, allowed_group_ids)
}

/// Writes every setting of an existing client (not its id, creation time or `declared`),
/// and replaces its allowed groups.
pub fn update(conn: &Db, client: &Client, allowed_group_ids: &[i64]) -> StoreResult<()> {
    conn.execute(
        "UPDATE clients SET name = ?2, secret_hash = ?3, public = ?4, redirect_uris = ?5, \
         post_logout_redirect_uris = ?6, updated_at = ?7, require_pkce = ?8, ask_consent = ?9, \
         launch_url = ?10, access_token_ttl = ?11, refresh_token_ttl = ?12, declared = ?13, \
         id_token_signed_response_alg = ?14 WHERE client_id = ?1",
        args![
            client.client_id,
            client.name,
            client.secret_hash,
            client.public,
            to_json(&client.redirect_uris),
            to_json(&client.post_logout_redirect_uris),
            client.updated_at,
            client.require_pkce,
            client.ask_consent,
            client.launch_url,
            client.access_token_ttl,
            client.refresh_token_ttl,
            client.declared,
            client.id_token_signed_response_alg
        ],
    )?;
    conn.execute(
        "DELETE FROM client_allowed_groups WHERE client_id = ?1",
        args![&client.client_id],
    )?;
    for group_id in allowed_group_ids {
        conn.execute(
            "INSERT INTO client_allowed_groups (client_id, group_id) VALUES (?1, ?2) \
             ON CONFLICT DO NOTHING",
            args![client.client_id, group_id],
        )?;
    }
    Ok(())
}

pub fn set_secret_hash(
    conn: &Db,
    client_id: &ClientId,
    secret_hash: &str,
    now: UnixTime,
) -> StoreResult<()> {
    conn.execute(
        "UPDATE clients SET secret_hash = ?2, updated_at = ?3 WHERE client_id = ?1",
        args![client_id, secret_hash, now],
    )?;
    Ok(())
}

pub fn delete(conn: &Db, client_id: &ClientId) -> StoreResult<()> {
    conn.execute("DELETE FROM clients WHERE client_id = ?1", args![client_id])?;
    Ok(())
}
