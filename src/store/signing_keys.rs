//! Signing keys, as JWK JSON text.

use rusqlite::{Connection, params};

use super::StoreResult;
use crate::clock::UnixTime;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub kid: String,
    pub alg: String,
    pub private_jwk: String,
    pub public_jwk: String,
    pub created_at: UnixTime,
    pub retired_at: Option<UnixTime>,
}

pub fn insert(conn: &Connection, key: &StoredKey) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO signing_keys (kid, alg, private_jwk, public_jwk, created_at, retired_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        key.kid,
        key.alg,
        key.private_jwk,
        key.public_jwk,
        key.created_at,
        key.retired_at
    ])?;
    Ok(())
}

/// Every key, newest first.
pub fn list(conn: &Connection) -> StoreResult<Vec<StoredKey>> {
    let mut stmt = conn.prepare_cached(
        "SELECT kid, alg, private_jwk, public_jwk, created_at, retired_at FROM signing_keys \
         ORDER BY created_at DESC, rowid DESC",
    )?;
    let keys = stmt
        .query_map([], |row| {
            Ok(StoredKey {
                kid: row.get(0)?,
                alg: row.get(1)?,
                private_jwk: row.get(2)?,
                public_jwk: row.get(3)?,
                created_at: row.get(4)?,
                retired_at: row.get(5)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(keys)
}

/// Retires every key still signing; the caller inserts the new one in the same transaction.
pub fn retire_active(conn: &Connection, now: UnixTime) -> StoreResult<()> {
    conn.prepare_cached("UPDATE signing_keys SET retired_at = ?1 WHERE retired_at IS NULL")?
        .execute([now])?;
    Ok(())
}

/// Drops retired keys whose every token has expired.
pub fn delete_retired_before(conn: &Connection, cutoff: UnixTime) -> StoreResult<()> {
    conn.prepare_cached(
        "DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at <= ?1",
    )?
    .execute([cutoff])?;
    Ok(())
}
