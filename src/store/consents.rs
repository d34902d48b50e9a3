//! What people agreed to share with which client.

use super::db::Db;
use crate::args;

use super::StoreResult;
use crate::clock::UnixTime;
use crate::names::{ClientId, UserId};

/// The scopes `user_id` consented to for `client_id`, if any.
pub fn granted(conn: &Db, user_id: &UserId, client_id: &ClientId) -> StoreResult<Option<String>> {
    conn.query_opt(
        "SELECT scope FROM consents WHERE user_id = ?1 AND client_id = ?2",
        args![user_id, client_id],
        |row| row.get(0),
    )
}

pub fn grant(
    conn: &Db,
    user_id: &UserId,
    client_id: &ClientId,
    scope: &str,
    now: UnixTime,
) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO consents (user_id, client_id, scope, granted_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (user_id, client_id) DO UPDATE SET scope = excluded.scope, \
         granted_at = excluded.granted_at",
        args![user_id, client_id, scope, now],
    )?;
    Ok(())
}

/// A person's consents: client id, client name, scopes, when.
pub fn for_user(
    conn: &Db,
    user_id: &UserId,
) -> StoreResult<Vec<(ClientId, String, String, UnixTime)>> {
    let rows = conn.query(
        "SELECT c.client_id, cl.name, c.scope, c.granted_at FROM consents c \
         JOIN clients cl ON cl.client_id = c.client_id WHERE c.user_id = ?1 ORDER BY cl.name",
        args![user_id],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
    )?;
    Ok(rows)
}

/// Forgets a consent; false when there was none.
pub fn revoke(conn: &Db, user_id: &UserId, client_id: &ClientId) -> StoreResult<bool> {
    Ok(conn.execute(
        "DELETE FROM consents WHERE user_id = ?1 AND client_id = ?2",
        args![user_id, client_id],
    )? == 1)
}
