//! Proxmox targets, their permission rules, and the sync queue with each target's status.
//!
//! Changes that can alter what a Proxmox server should hold (memberships, people, group
//! names, rules, targets) ask for a sync through triggers (migration 0007), whatever wrote
//! them: the worker runs targets whose `due_at` has come.

use super::db::{Db, Row};
use crate::args;

use super::{StoreError, StoreResult};
use crate::clock::UnixTime;
use crate::names::{ClientId, GroupName};
use std::fmt;

/// Which Proxmox product a target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Product {
    /// Proxmox Backup Server: ACL entries on users; no groups.
    Pbs,
    /// Proxmox VE: `<group>-<realm>` groups holding the users, and ACL entries on the groups.
    Pve,
}

impl Product {
    pub fn from_name(name: &str) -> Option<Product> {
        match name {
            "pbs" => Some(Product::Pbs),
            "pve" => Some(Product::Pve),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Product::Pbs => "pbs",
            Product::Pve => "pve",
        }
    }
}

/// How the server's TLS certificate is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The SHA-256 fingerprint of the server's certificate, as Proxmox shows it:
    /// 32 upper-case hex bytes joined by `:`.
    Fingerprint(String),
    /// A CA certificate (PEM) that signed the server's certificate.
    CaPem(String),
    /// The system's CA certificates.
    SystemRoots,
}

/// What happens to `@realm` users no rule covers any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leavers {
    Disable,
    Delete,
}

impl Leavers {
    pub fn from_name(name: &str) -> Option<Leavers> {
        match name {
            "disable" => Some(Leavers::Disable),
            "delete" => Some(Leavers::Delete),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Leavers::Disable => "disable",
            Leavers::Delete => "delete",
        }
    }
}

/// A client's Proxmox target.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    pub client_id: ClientId,
    pub product: Product,
    /// `https://host:port`, without a trailing slash; the API is under `/api2/json`.
    pub api_url: String,
    /// `USER@REALM!TOKENID`.
    pub token_id: String,
    pub token_secret: String,
    pub trust: Trust,
    /// The realm people sign in through (default `latchkey`).
    pub realm: String,
    pub leavers: Leavers,
    /// Latchkey creates and updates the OpenID realm itself.
    pub manage_realm: bool,
}

impl fmt::Debug for Target {
    /// Never prints the token secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("client_id", &self.client_id)
            .field("product", &self.product)
            .field("api_url", &self.api_url)
            .field("token_id", &self.token_id)
            .field("token_secret", &"…")
            .field("trust", &self.trust)
            .field("realm", &self.realm)
            .field("leavers", &self.leavers)
            .field("manage_realm", &self.manage_realm)
            .finish()
    }
}

/// A permission rule: members of a Latchkey group get `role` at `path`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rule {
    pub group: GroupName,
    pub role: String,
    /// An ACL path such as `/` or `/datastore/main`.
    pub path: String,
    pub propagate: bool,
}

/// A target as stored, with whether the config file declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTarget {
    pub target: Target,
    pub declared: bool,
}

const TARGET_COLUMNS: &str = "client_id, product, api_url, token_id, token_secret, trust, \
                              trust_value, realm, leavers, manage_realm, declared";

fn corrupt(detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        table: "proxmox_targets",
        detail: detail.into(),
    }
}

/// The row's raw values; checked into a `Target` by `parse_target`.
struct TargetRow {
    client_id: ClientId,
    product: String,
    api_url: String,
    token_id: String,
    token_secret: String,
    trust: String,
    trust_value: Option<String>,
    realm: String,
    leavers: String,
    manage_realm: bool,
    declared: bool,
}

fn target_row(row: &Row) -> StoreResult<TargetRow> {
    Ok(TargetRow {
        client_id: row.get(0)?,
        product: row.get(1)?,
        api_url: row.get(2)?,
        token_id: row.get(3)?,
        token_secret: row.get(4)?,
        trust: row.get(5)?,
        trust_value: row.get(6)?,
        realm: row.get(7)?,
        leavers: row.get(8)?,
        manage_realm: row.get(9)?,
        declared: row.get(10)?,
    })
}

fn parse_target(row: TargetRow) -> StoreResult<StoredTarget> {
    let trust = match (row.trust.as_str(), row.trust_value) {
        ("fingerprint", Some(value)) => Trust::Fingerprint(value),
        ("ca", Some(value)) => Trust::CaPem(value),
        ("system", _) => Trust::SystemRoots,
        (other, _) => return Err(corrupt(format!("trust {other:?} without its value"))),
    };
    Ok(StoredTarget {
        target: Target {
            product: Product::from_name(&row.product)
                .ok_or_else(|| corrupt(format!("product {:?}", row.product)))?,
            leavers: Leavers::from_name(&row.leavers)
                .ok_or_else(|| corrupt(format!("leavers {:?}", row.leavers)))?,
            client_id: row.client_id,
            api_url: row.api_url,
            token_id: row.token_id,
            token_secret: row.token_secret,
            trust,
            realm: row.realm,
            manage_realm: row.manage_realm,
        },
        declared: row.declared,
    })
}

fn trust_columns(trust: &Trust) -> (&'static str, Option<&str>) {
    match trust {
        Trust::Fingerprint(value) => ("fingerprint", Some(value)),
        Trust::CaPem(pem) => ("ca", Some(pem)),
        Trust::SystemRoots => ("system", None),
    }
}

/// Creates or replaces a client's target (its rules and status stay).
pub fn put_target(conn: &Db, target: &Target, declared: bool, now: UnixTime) -> StoreResult<()> {
    let (trust, trust_value) = trust_columns(&target.trust);
    conn.execute(
        "INSERT INTO proxmox_targets (client_id, product, api_url, token_id, token_secret, \
         trust, trust_value, realm, leavers, manage_realm, declared, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12) \
         ON CONFLICT (client_id) DO UPDATE SET product = ?2, api_url = ?3, token_id = ?4, \
         token_secret = ?5, trust = ?6, trust_value = ?7, realm = ?8, leavers = ?9, \
         manage_realm = ?10, declared = ?11, updated_at = ?12",
        args![
            target.client_id,
            target.product.as_str(),
            target.api_url,
            target.token_id,
            target.token_secret,
            trust,
            trust_value,
            target.realm,
            target.leavers.as_str(),
            target.manage_realm,
            declared,
            now
        ],
    )?;
    Ok(())
}

pub fn target(conn: &Db, client_id: &ClientId) -> StoreResult<Option<StoredTarget>> {
    conn.query_opt(
        &format!("SELECT {TARGET_COLUMNS} FROM proxmox_targets WHERE client_id = ?1"),
        args![client_id],
        target_row,
    )?
    .map(parse_target)
    .transpose()
}

/// Every target, by client id.
pub fn targets(conn: &Db) -> StoreResult<Vec<StoredTarget>> {
    let rows = conn.query(
        &format!("SELECT {TARGET_COLUMNS} FROM proxmox_targets ORDER BY client_id"),
        args![],
        target_row,
    )?;
    rows.into_iter().map(parse_target).collect()
}

/// Removes a client's target, its rules and its status; false when it had none.
pub fn remove_target(conn: &Db, client_id: &ClientId) -> StoreResult<bool> {
    Ok(conn.execute(
        "DELETE FROM proxmox_targets WHERE client_id = ?1",
        args![client_id],
    )? > 0)
}

/// A target's rules, by group, path and role.
pub fn rules(conn: &Db, client_id: &ClientId) -> StoreResult<Vec<Rule>> {
    let rules = conn.query(
        "SELECT g.name, r.role, r.path, r.propagate FROM proxmox_rules r \
         JOIN groups g ON g.id = r.group_id WHERE r.client_id = ?1 \
         ORDER BY g.name, r.path, r.role",
        args![client_id],
        |row| {
            Ok(Rule {
                group: row.get(0)?,
                role: row.get(1)?,
                path: row.get(2)?,
                propagate: row.get(3)?,
            })
        },
    )?;
    Ok(rules)
}

/// Adds a rule, or changes its `propagate`; false when it was already so.
pub fn put_rule(conn: &Db, client_id: &ClientId, group_id: i64, rule: &Rule) -> StoreResult<bool> {
    let changed = conn.execute(
        "INSERT INTO proxmox_rules (client_id, group_id, role, path, propagate) \
         VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (client_id, group_id, role, path) DO UPDATE SET propagate = ?5 \
         WHERE proxmox_rules.propagate != ?5",
        args![client_id, group_id, rule.role, rule.path, rule.propagate],
    )?;
    Ok(changed > 0)
}

/// Removes a rule; false when there was none.
pub fn remove_rule(
    conn: &Db,
    client_id: &ClientId,
    group_id: i64,
    role: &str,
    path: &str,
) -> StoreResult<bool> {
    Ok(conn.execute(
        "DELETE FROM proxmox_rules WHERE client_id = ?1 AND group_id = ?2 AND role = ?3 \
         AND path = ?4",
        args![client_id, group_id, role, path],
    )? > 0)
}

/// Removes every rule of a target (before the config file declares them again).
pub fn clear_rules(conn: &Db, client_id: &ClientId) -> StoreResult<()> {
    conn.execute(
        "DELETE FROM proxmox_rules WHERE client_id = ?1",
        args![client_id],
    )?;
    Ok(())
}

/// The clients whose rules name a group.
pub fn clients_ruling_group(conn: &Db, group_id: i64) -> StoreResult<Vec<ClientId>> {
    conn.column(
        "SELECT DISTINCT client_id FROM proxmox_rules WHERE group_id = ?1 ORDER BY client_id",
        args![group_id],
    )
}

/// A target's sync status.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SyncStatus {
    /// When a sync is to run (0: as soon as possible); `None` when nothing is pending.
    pub due_at: Option<UnixTime>,
    #[serde(skip)]
    pub generation: i64,
    /// Failed runs since the last success.
    pub attempts: i64,
    /// A new client secret is waiting to be written into the managed realm.
    pub realm_secret_pending: bool,
    pub last_run_at: Option<UnixTime>,
    pub last_success_at: Option<UnixTime>,
    pub last_error: Option<String>,
    pub last_error_at: Option<UnixTime>,
    /// How many changes the last run applied.
    pub last_applied: Option<i64>,
}

pub fn status(conn: &Db, client_id: &ClientId) -> StoreResult<Option<SyncStatus>> {
    conn.query_opt(
        "SELECT due_at, generation, attempts, realm_secret IS NOT NULL, last_run_at, \
             last_success_at, last_error, last_error_at, last_applied \
             FROM proxmox_sync WHERE client_id = ?1",
        args![client_id],
        |row| {
            Ok(SyncStatus {
                due_at: row.get(0)?,
                generation: row.get(1)?,
                attempts: row.get(2)?,
                realm_secret_pending: row.get(3)?,
                last_run_at: row.get(4)?,
                last_success_at: row.get(5)?,
                last_error: row.get(6)?,
                last_error_at: row.get(7)?,
                last_applied: row.get(8)?,
            })
        },
    )
}

/// The targets whose sync is due at `now`.
pub fn due(conn: &Db, now: UnixTime) -> StoreResult<Vec<ClientId>> {
    conn.column(
        "SELECT client_id FROM proxmox_sync WHERE due_at IS NOT NULL AND due_at <= ?1 \
         ORDER BY due_at, client_id",
        args![now],
    )
}

/// Takes a due target for one run: it stops being due until `until`, so that no other
/// instance runs it meanwhile, and is due again then if this run never reports (its
/// instance died). False when it was no longer due (another instance took it).
pub fn claim(conn: &Db, client_id: &ClientId, now: UnixTime, until: UnixTime) -> StoreResult<bool> {
    Ok(conn.execute(
        "UPDATE proxmox_sync SET due_at = ?3 WHERE client_id = ?1 \
         AND due_at IS NOT NULL AND due_at <= ?2",
        args![client_id, now, until],
    )? == 1)
}

/// Asks for a sync of every target as soon as possible (the periodic repair of drift).
pub fn request_all(conn: &Db) -> StoreResult<()> {
    conn.execute(
        "UPDATE proxmox_sync SET due_at = 0, generation = generation + 1",
        args![],
    )?;
    Ok(())
}

/// Makes every pending sync due now, backoff or not: a server just started tries at once.
pub fn retry_pending_now(conn: &Db) -> StoreResult<()> {
    conn.execute(
        "UPDATE proxmox_sync SET due_at = 0 WHERE due_at IS NOT NULL",
        args![],
    )?;
    Ok(())
}

/// Keeps a new client secret until it is written into the managed realm, and asks for a sync.
pub fn set_realm_secret(conn: &Db, client_id: &ClientId, secret: &str) -> StoreResult<()> {
    conn.execute(
        "UPDATE proxmox_sync SET realm_secret = ?2, due_at = 0, generation = generation + 1 \
         WHERE client_id = ?1",
        args![client_id, secret],
    )?;
    Ok(())
}

/// The client secret waiting to be written into the managed realm, if any.
pub fn realm_secret(conn: &Db, client_id: &ClientId) -> StoreResult<Option<String>> {
    Ok(conn
        .query_opt(
            "SELECT realm_secret FROM proxmox_sync WHERE client_id = ?1",
            args![client_id],
            |row| row.get(0),
        )?
        .flatten())
}

/// What a finished run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished<'a> {
    /// The generation the run started from: a change asked for since then keeps it due.
    pub generation: i64,
    pub applied: i64,
    /// The run wrote this secret into the realm: it is dropped (unless replaced since).
    pub delivered_secret: Option<&'a str>,
    /// `None` on success; on failure, the error and when to try again.
    pub failure: Option<(&'a str, UnixTime)>,
}

/// Records a run's outcome: on success the target is no longer due (unless something changed
/// since it started); on failure it is due again at the retry time.
pub fn finish(
    conn: &Db,
    client_id: &ClientId,
    finished: &Finished,
    now: UnixTime,
) -> StoreResult<()> {
    if let Some(secret) = finished.delivered_secret {
        conn.execute(
            "UPDATE proxmox_sync SET realm_secret = NULL WHERE client_id = ?1 \
             AND realm_secret = ?2",
            args![client_id, secret],
        )?;
    }
    match finished.failure {
        None => conn.execute(
            "UPDATE proxmox_sync SET last_run_at = ?2, last_success_at = ?2, attempts = 0, \
             last_applied = ?3, due_at = CASE WHEN generation = ?4 THEN NULL ELSE due_at END \
             WHERE client_id = ?1",
            args![client_id, now, finished.applied, finished.generation],
        )?,
        Some((error, retry_at)) => conn.execute(
            "UPDATE proxmox_sync SET last_run_at = ?2, last_error = ?3, last_error_at = ?2, \
             attempts = attempts + 1, last_applied = ?4, \
             due_at = CASE WHEN generation = ?5 THEN ?6 ELSE due_at END WHERE client_id = ?1",
            args![
                client_id,
                now,
                error,
                finished.applied,
                finished.generation,
                retry_at
            ],
        )?,
    };
    Ok(())
}

/// Asks for a sync of one target as soon as possible (the admin page's "Sync now"); false
/// when the client has no target.
pub fn request(conn: &Db, client_id: &ClientId) -> StoreResult<bool> {
    Ok(conn.execute(
        "UPDATE proxmox_sync SET due_at = 0, generation = generation + 1 WHERE client_id = ?1",
        args![client_id],
    )? > 0)
}

#[cfg(test)]
mod tests {
    use super::{claim, due};
    use crate::args;
    use crate::names::ClientId;
    use crate::store::{Store, StoreError};

    /// A store with one Proxmox target, due since it was added.
    fn store_with_target() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .write(|db| {
                db.batch(
                    "INSERT INTO clients (client_id, name, public, redirect_uris, \
                     post_logout_redirect_uris, created_at, updated_at) \
                     VALUES ('pbs', 'PBS', FALSE, '[]', '[]', 0, 0); \
                     INSERT INTO proxmox_targets (client_id, product, api_url, token_id, \
                     token_secret, trust, realm, leavers, created_at, updated_at) \
                     VALUES ('pbs', 'pbs', 'https://pbs:8007', 't', 's', 'system', \
                     'latchkey', 'disable', 0, 0)",
                )?;
                Ok::<_, StoreError>(())
            })
            .unwrap();
        (dir, store)
    }

    #[test]
    fn a_due_target_is_taken_once_and_again_when_its_run_never_reports() {
        let (_dir, store) = store_with_target();
        let pbs = ClientId::parse("pbs").unwrap();
        let take = |now| store.write(|db| claim(db, &pbs, now, now + 900)).unwrap();
        assert!(take(1000), "due since it was added");
        assert!(!take(1001), "taken: another instance leaves it");
        let due_at: i64 = store
            .read(|db| db.value("SELECT due_at FROM proxmox_sync", args![]))
            .unwrap()
            .unwrap();
        assert_eq!(due_at, 1900);
        assert!(store.read(|db| due(db, 1899)).unwrap().is_empty());
        assert!(take(1900), "the run never reported: due again");
    }
}
