//! Signed-in browser sessions. The cookie holds a random id; the row is keyed by its hash.

use super::db::Db;
use crate::args;

use super::{StoreResult, from_json, to_json};
use crate::clock::UnixTime;
use crate::names::UserId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id_hash: String,
    pub user_id: UserId,
    pub auth_time: UnixTime,
    /// Authentication methods (RFC 8176) of the sign-in that made the session.
    pub amr: Vec<String>,
    pub created_at: UnixTime,
    pub last_seen_at: UnixTime,
    pub expires_at: UnixTime,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

pub fn insert(conn: &Db, session: &Session) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO sessions (id_hash, user_id, auth_time, amr, created_at, last_seen_at, \
         expires_at, ip, user_agent) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        args![
            session.id_hash,
            session.user_id,
            session.auth_time,
            to_json(&session.amr),
            session.created_at,
            session.last_seen_at,
            session.expires_at,
            session.ip,
            session.user_agent
        ],
    )?;
    Ok(())
}

/// The session with this id hash if it has not expired at `now`.
pub fn live(conn: &Db, id_hash: &str, now: UnixTime) -> StoreResult<Option<Session>> {
    let row = conn.query_opt(
        "SELECT id_hash, user_id, auth_time, amr, created_at, last_seen_at, expires_at, ip, \
             user_agent FROM sessions WHERE id_hash = ?1 AND expires_at > ?2",
        args![id_hash, now],
        |row| {
            Ok((
                Session {
                    id_hash: row.get(0)?,
                    user_id: row.get(1)?,
                    auth_time: row.get(2)?,
                    amr: Vec::new(),
                    created_at: row.get(4)?,
                    last_seen_at: row.get(5)?,
                    expires_at: row.get(6)?,
                    ip: row.get(7)?,
                    user_agent: row.get(8)?,
                },
                row.get::<String>(3)?,
            ))
        },
    )?;
    row.map(|(mut session, amr)| {
        session.amr = from_json("sessions", &amr)?;
        Ok(session)
    })
    .transpose()
}

/// Records that the session was seen at `now` (its idle time starts over).
pub fn touch(conn: &Db, id_hash: &str, now: UnixTime) -> StoreResult<()> {
    conn.execute(
        "UPDATE sessions SET last_seen_at = ?2 WHERE id_hash = ?1",
        args![id_hash, now],
    )?;
    Ok(())
}

pub fn delete(conn: &Db, id_hash: &str) -> StoreResult<()> {
    conn.execute("DELETE FROM sessions WHERE id_hash = ?1", args![id_hash])?;
    Ok(())
}

pub fn delete_for_user(conn: &Db, user_id: &UserId) -> StoreResult<usize> {
    conn.execute("DELETE FROM sessions WHERE user_id = ?1", args![user_id])
}

/// A user's live sessions, most recently seen first.
pub fn for_user(conn: &Db, user_id: &UserId, now: UnixTime) -> StoreResult<Vec<Session>> {
    let hashes: Vec<String> = conn.column(
        "SELECT id_hash FROM sessions WHERE user_id = ?1 AND expires_at > ?2 \
         ORDER BY last_seen_at DESC",
        args![user_id, now],
    )?;
    let mut found = Vec::with_capacity(hashes.len());
    for hash in hashes {
        if let Some(session) = live(conn, &hash, now)? {
            found.push(session);
        }
    }
    Ok(found)
}

/// The short public handle of a session, safe to put in a page: a prefix of the id hash.
pub fn handle(session: &Session) -> &str {
    &session.id_hash[..16]
}

/// Ends the session of `user_id` with this handle; false when there is none.
pub fn delete_by_handle(conn: &Db, user_id: &UserId, handle: &str) -> StoreResult<bool> {
    if handle.len() != 16 {
        return Ok(false);
    }
    Ok(conn.execute(
        "DELETE FROM sessions WHERE user_id = ?1 AND substr(id_hash, 1, 16) = ?2",
        args![user_id, handle],
    )? > 0)
}

/// Ends every session of `user_id` but `keep`; returns how many.
pub fn delete_others(conn: &Db, user_id: &UserId, keep: &str) -> StoreResult<usize> {
    conn.execute(
        "DELETE FROM sessions WHERE user_id = ?1 AND id_hash <> ?2",
        args![user_id, keep],
    )
}
