//! What people agreed to share with which client.

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreResult;
use crate::clock::UnixTime;

/// The scopes `user_id` consented to for `client_id`, if any.
pub fn granted(conn: &Connection, user_id: &str, client_id: &str) -> StoreResult<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT scope FROM consents WHERE user_id = ?1 AND client_id = ?2",
            params![user_id, client_id],
            |row| row.get(0),
        )
        .optional()?)
}

pub fn grant(
    conn: &Connection,
    user_id: &str,
    client_id: &str,
    scope: &str,
    now: UnixTime,
) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO consents (user_id, client_id, scope, granted_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (user_id, client_id) DO UPDATE SET scope = excluded.scope, \
         granted_at = excluded.granted_at",
    )?
    .execute(params![user_id, client_id, scope, now])?;
    Ok(())
}

/// A person's consents: client id, client name, scopes, when.
pub fn for_user(
    conn: &Connection,
    user_id: &str,
) -> StoreResult<Vec<(String, String, String, UnixTime)>> {
    let mut stmt = conn.prepare(
        "SELECT c.client_id, cl.name, c.scope, c.granted_at FROM consents c \
         JOIN clients cl ON cl.client_id = c.client_id WHERE c.user_id = ?1 ORDER BY cl.name",
    )?;
    let rows = stmt
        .query_map([user_id], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Forgets a consent; false when there was none.
pub fn revoke(conn: &Connection, user_id: &str, client_id: &str) -> StoreResult<bool> {
    Ok(conn
        .prepare_cached("DELETE FROM consents WHERE user_id = ?1 AND client_id = ?2")?
        .execute(params![user_id, client_id])?
        == 1)
}
