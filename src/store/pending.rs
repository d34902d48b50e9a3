//! Authorization requests parked while the person signs in.

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreResult;
use crate::clock::UnixTime;

pub fn insert(
    conn: &Connection,
    id_hash: &str,
    params_json: &str,
    now: UnixTime,
    expires_at: UnixTime,
) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO pending_authorizations (id_hash, params, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![id_hash, params_json, now, expires_at])?;
    Ok(())
}

/// Takes a parked request (single use): its parameters and when it was parked.
pub fn take(
    conn: &Connection,
    id_hash: &str,
    now: UnixTime,
) -> StoreResult<Option<(String, UnixTime)>> {
    Ok(conn
        .query_row(
            "DELETE FROM pending_authorizations WHERE id_hash = ?1 AND expires_at > ?2 \
             RETURNING params, created_at",
            params![id_hash, now],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?)
}

/// Reads a parked request's parameters without taking it.
pub fn peek(conn: &Connection, id_hash: &str, now: UnixTime) -> StoreResult<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT params FROM pending_authorizations WHERE id_hash = ?1 AND expires_at > ?2",
            params![id_hash, now],
            |row| row.get(0),
        )
        .optional()?)
}
