//! Forward-only schema migrations, embedded in the binary. SQLite tracks the version in
//! `user_version`; PostgreSQL in the one-row table `latchkey_schema`.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::{PgTarget, Store, StoreError, StoreResult};

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

/// PostgreSQL's schema at a version, in order: each brings an empty or older database to its
/// version. The first is the whole schema at the version SQLite had reached when PostgreSQL
/// arrived; later ones follow SQLite's one for one.
const POSTGRES_MIGRATIONS: &[(i64, &str)] =
    &[(9, include_str!("../../migrations/postgres/0009_schema.sql"))];

pub(super) fn version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
}

/// The newest schema version this binary knows.
pub(super) fn supported() -> i64 {
    MIGRATIONS.len() as i64
}

pub(super) fn apply_sqlite(conn: &mut Connection, path: &Path) -> StoreResult<()> {
    let supported = supported();
    let too_new = |found| StoreError::TooNew {
        path: path.display().to_string(),
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

/// Brings a PostgreSQL database up to date. Instances starting together queue on the writers'
/// lock (see `postgres`), and each sees the version the one before it wrote.
pub(super) fn apply_postgres(store: &Store, target: &PgTarget) -> StoreResult<()> {
    let supported = supported();
    store.write(|db| {
        db.batch(
            // Quietly: PostgreSQL would notice that the table exists at every start.
            "SET LOCAL client_min_messages = warning; \
             CREATE TABLE IF NOT EXISTS latchkey_schema (version BIGINT NOT NULL); \
             INSERT INTO latchkey_schema SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM latchkey_schema)",
        )?;
        let found: i64 = db
            .value("SELECT version FROM latchkey_schema", crate::args![])?
            .ok_or(StoreError::NoRow)?;
        if found > supported {
            return Err(StoreError::TooNew {
                path: target.describe(),
                found,
                supported,
            });
        }
        for (version, sql) in POSTGRES_MIGRATIONS.iter().filter(|(v, _)| *v > found) {
            db.batch(sql)?;
            db.execute(
                "UPDATE latchkey_schema SET version = ?1",
                crate::args![*version],
            )?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn postgres_reaches_the_same_version_as_sqlite() {
        let last = super::POSTGRES_MIGRATIONS
            .last()
            .map(|(version, _)| *version);
        assert_eq!(last, Some(super::supported()));
    }
}
