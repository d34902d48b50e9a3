//! Forward-only schema migrations, embedded in the binary and tracked in `user_version`.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::{StoreError, StoreResult};

/// Every migration in order; the schema version is the number applied.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_initial.sql"),
    include_str!("../../migrations/0002_passkeys.sql"),
    include_str!("../../migrations/0003_clients_consent.sql"),
    include_str!("../../migrations/0004_audit_actor.sql"),
    include_str!("../../migrations/0005_retired_usernames.sql"),
    include_str!("../../migrations/0006_audit_repeats.sql"),
    include_str!("../../migrations/0007_proxmox.sql"),
    include_str!("../../migrations/0008_expiry_indexes.sql"),
    include_str!("../../migrations/0009_client_id_token_alg.sql"),
];

pub(super) fn version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
}

/// The newest schema version this binary knows.
pub(super) fn supported() -> i64 {
    MIGRATIONS.len() as i64
}

pub(super) fn apply(conn: &mut Connection, path: &Path) -> StoreResult<()> {
    let supported = supported();
    let too_new = |found| StoreError::TooNew {
        path: path.to_path_buf(),
        found,
        supported,
    };
    let found = version(conn)?;
    if found > supported {
        return Err(too_new(found));
    }
    if found == supported {
        return Ok(());
    }
    // Immediate: two processes starting at once serialise here, and the second sees the
    // version the first wrote.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current = version(&tx)?;
    if current > supported {
        return Err(too_new(current));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
    }
    tx.commit()?;
    Ok(())
}
