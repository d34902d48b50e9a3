//! OIDC clients: registration, settings, secrets and removal. The CLI, the admin pages and the
//! config file all go through `ClientSettings`, so a client means the same wherever it comes
//! from.

use crate::store::Db;

use super::{DirectoryError, DirectoryResult, groups as directory_groups};
use crate::clock::UnixTime;
use crate::names::{self, ClientId, GroupName};
use crate::secrets;
use crate::store::audit::{self, Event, EventKind, Origin};
use crate::store::clients::{self, Client};

use crate::store::signing_keys::SigningAlg;

/// Bounds on per-client token lifetimes.
const ACCESS_TTL_RANGE: std::ops::RangeInclusive<i64> = 60..=86_400;
const REFRESH_TTL_RANGE: std::ops::RangeInclusive<i64> = 3_600..=365 * 86_400;

/// Everything about a client but its id and secret.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientSettings {
    /// Shown to people; the client id when absent.
    pub name: Option<String>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    /// Group names; empty: every user.
    pub allowed_groups: Vec<GroupName>,
    /// No secret; PKCE required.
    pub public: bool,
    /// PKCE required even with a secret.
    pub require_pkce: bool,
    /// Ask people to consent (else the client is trusted and skips it).
    pub ask_consent: bool,
    pub launch_url: Option<String>,
    pub access_token_ttl: Option<i64>,
    pub refresh_token_ttl: Option<i64>,
    /// What its ID tokens are signed with.
    pub id_token_signed_response_alg: SigningAlg,
}

impl From<&Client> for ClientSettings {
    /// The settings a client has now, to change some of them.
    fn from(client: &Client) -> ClientSettings {
        ClientSettings {
            name: Some(client.name.clone()),
            redirect_uris: client.redirect_uris.clone(),
            post_logout_redirect_uris: client.post_logout_redirect_uris.clone(),
            allowed_groups: client.allowed_groups.clone(),
            public: client.public,
            require_pkce: client.require_pkce,
            ask_consent: client.ask_consent,
            launch_url: client.launch_url.clone(),
            access_token_ttl: client.access_token_ttl,
            refresh_token_ttl: client.refresh_token_ttl,
            id_token_signed_response_alg: client.id_token_signed_response_alg,
        }
    }
}

/// An ID token algorithm as someone wrote it, if they did (absent: RS256): exactly the JOSE
/// name of one Latchkey signs with (names are case-sensitive).
pub fn id_token_alg(input: Option<&str>) -> DirectoryResult<SigningAlg> {
    let Some(name) = input else {
        return Ok(SigningAlg::default());
    };
    SigningAlg::from_name(name).ok_or_else(|| {
        DirectoryError::Invalid(format!(
            "invalid ID token algorithm {name:?}: use RS256, ES256 or EdDSA"
        ))
    })
}

#[derive(Debug, Clone)]
pub struct NewClient {
    pub client_id: ClientId,
    pub settings: ClientSettings,
}

/// A freshly generated client secret (256 bits) and its argon2id hash. Hashing is slow on
/// purpose, so callers do it before opening a write transaction.
#[derive(Clone)]
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

fn validated_ttl(
    what: &str,
    ttl: Option<i64>,
    range: std::ops::RangeInclusive<i64>,
) -> DirectoryResult<Option<i64>> {
    match ttl {
        Some(seconds) if !range.contains(&seconds) => Err(DirectoryError::Invalid(format!(
            "{what} must be between {} and {} seconds",
            range.start(),
            range.end()
        ))),
        other => Ok(other),
    }
}

/// Applies validated `settings` to `client`; returns the ids of its allowed groups.
fn apply(conn: &Db, client: &mut Client, settings: &ClientSettings) -> DirectoryResult<Vec<i64>> {
    client.redirect_uris = validated_uris(&settings.redirect_uris)?;
    if client.redirect_uris.is_empty() {
        return Err(DirectoryError::Invalid(format!(
            "client {:?} needs at least one redirect URI",
            client.client_id
        )));
    }
    client.post_logout_redirect_uris = validated_uris(&settings.post_logout_redirect_uris)?;
    client.name = settings
        .name
        .as_deref()
        .map(names::display_name)
        .transpose()?
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| client.client_id.to_string());
    client.launch_url = settings
        .launch_url
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| {
            names::redirect_uri(u).map_err(|_| {
                DirectoryError::Invalid(format!(
                    "invalid launch URL {u:?}: an absolute http(s) URL"
                ))
            })
        })
        .transpose()?;
    client.access_token_ttl = validated_ttl(
        "the access token lifetime",
        settings.access_token_ttl,
        ACCESS_TTL_RANGE,
    )?;
    client.refresh_token_ttl = validated_ttl(
        "the refresh token lifetime",
        settings.refresh_token_ttl,
        REFRESH_TTL_RANGE,
    )?;
    client.public = settings.public;
    client.require_pkce = settings.require_pkce || settings.public;
    client.ask_consent = settings.ask_consent;
    client.id_token_signed_response_alg = settings.id_token_signed_response_alg;
    let mut group_ids = Vec::with_capacity(settings.allowed_groups.len());
    for group in &settings.allowed_groups {
        let id = directory_groups::find(conn, group)?;
        if !group_ids.contains(&id) {
            group_ids.push(id);
        }
    }
    client.allowed_groups = settings.allowed_groups.clone();
    Ok(group_ids)
}

/// Registers a client. Confidential clients need `secret_hash` (from [`new_secret`]).
pub fn add(
    conn: &Db,
    new: &NewClient,
    secret_hash: Option<String>,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<Client> {
    let client = create(conn, new, secret_hash, false, now)?;
    audit::record(
        conn,
        &Event::new(EventKind::ClientCreated).client(client.client_id.as_str()),
        origin,
        now,
    )?;
    Ok(client)
}

/// Creates the row; `declared` marks clients that come from the config file.
pub(super) fn create(
    conn: &Db,
    new: &NewClient,
    secret_hash: Option<String>,
    declared: bool,
    now: UnixTime,
) -> DirectoryResult<Client> {
    if clients::by_id(conn, &new.client_id)?.is_some() {
        return Err(DirectoryError::ClientExists(new.client_id.to_string()));
    }
    let mut client = Client {
        client_id: new.client_id.clone(),
        name: String::new(),
        secret_hash: None,
        public: false,
        redirect_uris: Vec::new(),
        post_logout_redirect_uris: Vec::new(),
        allowed_groups: Vec::new(),
        require_pkce: false,
        ask_consent: false,
        launch_url: None,
        access_token_ttl: None,
        refresh_token_ttl: None,
        id_token_signed_response_alg: SigningAlg::default(),
        declared,
        created_at: now,
        updated_at: now,
    };
    let group_ids = apply(conn, &mut client, &new.settings)?;
    client.secret_hash = secret_for(&client, secret_hash)?;
    clients::insert(conn, &client, &group_ids)?;
    Ok(client)
}

/// Public clients have no secret; confidential ones must have one.
fn secret_for(client: &Client, secret_hash: Option<String>) -> DirectoryResult<Option<String>> {
    match (client.public, secret_hash) {
        (true, _) => Ok(None),
        (false, Some(hash)) => Ok(Some(hash)),
        (false, None) => Err(DirectoryError::Invalid(format!(
            "client {:?} is confidential and needs a secret",
            client.client_id
        ))),
    }
}

/// Changes a client's settings. A client that becomes confidential needs `new_secret_hash`;
/// one that stays confidential keeps its secret.
pub fn update(
    conn: &Db,
    client_id: &ClientId,
    settings: &ClientSettings,
    new_secret_hash: Option<String>,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<Client> {
    let client = find(conn, client_id)?;
    if client.declared {
        return Err(DirectoryError::Declared(client.client_id.to_string()));
    }
    let client = rewrite(conn, client, settings, new_secret_hash, now)?;
    audit::record(
        conn,
        &Event::new(EventKind::ClientUpdated).client(client.client_id.as_str()),
        origin,
        now,
    )?;
    Ok(client)
}

/// Gives `client` new settings (and a new secret, if given) and stores it.
pub(super) fn rewrite(
    conn: &Db,
    mut client: Client,
    settings: &ClientSettings,
    new_secret_hash: Option<String>,
    now: UnixTime,
) -> DirectoryResult<Client> {
    let kept = client.secret_hash.take();
    let group_ids = apply(conn, &mut client, settings)?;
    client.secret_hash = secret_for(&client, new_secret_hash.or(kept))?;
    client.updated_at = now;
    clients::update(conn, &client, &group_ids)?;
    Ok(client)
}

/// A client with allowed groups admits only their members; one without admits everyone.
pub fn admits(client: &Client, user_groups: &[GroupName]) -> bool {
    client.allowed_groups.is_empty()
        || client
            .allowed_groups
            .iter()
            .any(|allowed| user_groups.contains(allowed))
}

/// The client id someone typed or a request gave to name an existing client: one that breaks
/// the client-id rule names none.
pub fn named(input: &str) -> DirectoryResult<ClientId> {
    ClientId::parse(input).map_err(|_| DirectoryError::NoSuchClient(input.to_string()))
}

pub fn find(conn: &Db, client_id: &ClientId) -> DirectoryResult<Client> {
    clients::by_id(conn, client_id)?
        .ok_or_else(|| DirectoryError::NoSuchClient(client_id.to_string()))
}

pub fn remove(
    conn: &Db,
    client_id: &ClientId,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<()> {
    let client = find(conn, client_id)?;
    if client.declared {
        return Err(DirectoryError::Declared(client.client_id.to_string()));
    }
    clients::delete(conn, client_id)?;
    audit::record(
        conn,
        &Event::new(EventKind::ClientRemoved).client(client_id.as_str()),
        origin,
        now,
    )?;
    Ok(())
}

/// Replaces a confidential client's secret; the old one stops working at once. When Latchkey
/// manages the client's Proxmox realm, the next sync writes the new secret into it.
pub fn rotate_secret(
    conn: &Db,
    client_id: &ClientId,
    secret: &NewSecret,
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
        return Err(DirectoryError::Declared(client.client_id.to_string()));
    }
    clients::set_secret_hash(conn, client_id, &secret.hash, now)?;
    if crate::store::proxmox::target(conn, client_id)?.is_some_and(|t| t.target.manage_realm) {
        crate::store::proxmox::set_realm_secret(conn, client_id, &secret.secret)?;
    }
    audit::record(
        conn,
        &Event::new(EventKind::ClientSecretRotated).client(client_id.as_str()),
        origin,
        now,
    )?;
    Ok(())
}
