//! Authorization requests parked while the person signs in.

use super::db::Db;
use crate::args;

use super::StoreResult;
use crate::clock::UnixTime;

pub fn insert(
    conn: &Db,
    id_hash: &str,
    params_json: &str,
    now: UnixTime,
    expires_at: UnixTime,
) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO pending_authorizations (id_hash, params, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4)",
        args![id_hash, params_json, now, expires_at],
    )?;
    Ok(())
}

/// Takes a parked request (single use): its parameters and when it was parked.
pub fn take(conn: &Db, id_hash: &str, now: UnixTime) -> StoreResult<Option<(String, UnixTime)>> {
    conn.query_opt(
        "DELETE FROM pending_authorizations WHERE id_hash = ?1 AND expires_at > ?2 \
             RETURNING params, created_at",
        args![id_hash, now],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
}

/// Reads a parked request's parameters without taking it.
pub fn peek(conn: &Db, id_hash: &str, now: UnixTime) -> StoreResult<Option<String>> {
    conn.query_opt(
        "SELECT params FROM pending_authorizations WHERE id_hash = ?1 AND expires_at > ?2",
        args![id_hash, now],
        |row| row.get(0),
    )
}
