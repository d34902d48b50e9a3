//! Signed-in browser sessions. The cookie holds a random id; the row is keyed by its hash.

use super::db::{Db, Row};
use super::users::{self, User};
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

/// Every column of a session, named with the table so that a join may read them too.
const COLUMNS: &str = "sessions.id_hash, sessions.user_id, sessions.auth_time, sessions.amr, \
                       sessions.created_at, sessions.last_seen_at, sessions.expires_at, \
                       sessions.ip, sessions.user_agent";

fn from_row(row: &Row) -> StoreResult<Session> {
    Ok(Session {
        id_hash: row.get(0)?,
        user_id: row.get(1)?,
        auth_time: row.get(2)?,
        amr: from_json("sessions", &row.get::<String>(3)?)?,
        created_at: row.get(4)?,
        last_seen_at: row.get(5)?,
        expires_at: row.get(6)?,
        ip: row.get(7)?,
        user_agent: row.get(8)?,
    })
}

/// The session with this id hash if it has not expired at `now`, and its person, in one
/// statement.
pub fn live_with_user(
    conn: &Db,
    id_hash: &str,
    now: UnixTime,
) -> StoreResult<Option<(Session, User)>> {
    conn.query_opt(
        &format!(
            "SELECT {COLUMNS}, {} FROM sessions JOIN users ON users.id = sessions.user_id \
             WHERE sessions.id_hash = ?1 AND sessions.expires_at > ?2",
            users::COLUMNS
        ),
        args![id_hash, now],
        |row| Ok((from_row(row)?, users::from_row_at(row, 9)?)),
    )
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
    conn.query(
        &format!(
            "SELECT {COLUMNS} FROM sessions WHERE user_id = ?1 AND expires_at > ?2 \
             ORDER BY last_seen_at DESC"
        ),
        args![user_id, now],
        from_row,
    )
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
