//! People.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{StoreResult, column};
use crate::clock::UnixTime;
use crate::names::Username;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct User {
    /// Opaque and stable: the `sub` claim. Never the username, which may change.
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub email: Option<String>,
    /// True when an administrator set the address; false when the user typed it.
    pub email_verified: bool,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub is_admin: bool,
    pub disabled: bool,
    pub created_at: UnixTime,
    pub updated_at: UnixTime,
}

const COLUMNS: &str = "id, username, display_name, email, email_verified, given_name, \
                       family_name, is_admin, disabled, created_at, updated_at";

fn from_row(row: &Row) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        username: row.get(1)?,
        display_name: row.get(2)?,
        email: row.get(3)?,
        email_verified: row.get(4)?,
        given_name: row.get(5)?,
        family_name: row.get(6)?,
        is_admin: row.get(7)?,
        disabled: row.get(8)?,
        created_at: row.get(9)?,
        updated_at: row.get(10)?,
    })
}

pub fn insert(conn: &Connection, user: &User) -> StoreResult<()> {
    conn.execute(
        &format!(
            "INSERT INTO users ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        ),
        params![
            user.id,
            user.username,
            user.display_name,
            user.email,
            user.email_verified,
            user.given_name,
            user.family_name,
            user.is_admin,
            user.disabled,
            user.created_at,
            user.updated_at
        ],
    )?;
    Ok(())
}

pub fn by_username(conn: &Connection, username: &str) -> StoreResult<Option<User>> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM users WHERE username = ?1"),
            [username],
            from_row,
        )
        .optional()?)
}

pub fn by_id(conn: &Connection, id: &str) -> StoreResult<Option<User>> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM users WHERE id = ?1"),
            [id],
            from_row,
        )
        .optional()?)
}

pub fn list(conn: &Connection) -> StoreResult<Vec<User>> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM users ORDER BY username"))?;
    let users = stmt.query_map([], from_row)?.collect::<Result<_, _>>()?;
    Ok(users)
}

pub fn set_disabled(conn: &Connection, id: &str, disabled: bool, now: UnixTime) -> StoreResult<()> {
    conn.prepare_cached("UPDATE users SET disabled = ?2, updated_at = ?3 WHERE id = ?1")?
        .execute(params![id, disabled, now])?;
    Ok(())
}

pub fn delete(conn: &Connection, id: &str) -> StoreResult<()> {
    conn.prepare_cached("DELETE FROM users WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

pub fn count_admins(conn: &Connection) -> StoreResult<i64> {
    Ok(conn.query_row(
        "SELECT COUNT(*) FROM users WHERE is_admin = 1 AND disabled = 0",
        [],
        |row| row.get(0),
    )?)
}

/// Names of the groups a user belongs to, sorted.
pub fn group_names(conn: &Connection, user_id: &str) -> StoreResult<Vec<String>> {
    column(
        conn,
        "SELECT g.name FROM groups g JOIN group_members m ON m.group_id = g.id \
         WHERE m.user_id = ?1 ORDER BY g.name",
        [user_id],
    )
}

/// Changes what a person may edit about themselves.
pub fn update_profile(conn: &Connection, user: &User, now: UnixTime) -> StoreResult<()> {
    conn.prepare_cached(
        "UPDATE users SET display_name = ?2, email = ?3, email_verified = ?4, given_name = ?5, \
         family_name = ?6, updated_at = ?7 WHERE id = ?1",
    )?
    .execute(params![
        user.id,
        user.display_name,
        user.email,
        user.email_verified,
        user.given_name,
        user.family_name,
        now
    ])?;
    Ok(())
}

/// People whose username, display name or e-mail address contains `query` (any case),
/// sorted by username.
pub fn search(conn: &Connection, query: &str) -> StoreResult<Vec<User>> {
    // LIKE wildcards in what the administrator typed are meant literally.
    let escaped = query
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    let pattern = format!("%{escaped}%");
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM users WHERE username LIKE ?1 ESCAPE '\\' \
         OR display_name LIKE ?1 ESCAPE '\\' OR email LIKE ?1 ESCAPE '\\' ORDER BY username"
    ))?;
    let users = stmt
        .query_map([pattern], from_row)?
        .collect::<Result<_, _>>()?;
    Ok(users)
}

pub fn set_username(
    conn: &Connection,
    id: &str,
    username: &Username,
    now: UnixTime,
) -> StoreResult<()> {
    conn.prepare_cached("UPDATE users SET username = ?2, updated_at = ?3 WHERE id = ?1")?
        .execute(params![id, username.as_str(), now])?;
    Ok(())
}

pub fn set_admin(conn: &Connection, id: &str, is_admin: bool, now: UnixTime) -> StoreResult<()> {
    conn.prepare_cached("UPDATE users SET is_admin = ?2, updated_at = ?3 WHERE id = ?1")?
        .execute(params![id, is_admin, now])?;
    Ok(())
}

/// Remembers that `user_id` gave up `username` (deleted or renamed).
pub fn retire_username(
    conn: &Connection,
    username: &str,
    user_id: &str,
    now: UnixTime,
) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO retired_usernames (username, user_id, retired_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (username) DO UPDATE SET user_id = excluded.user_id, \
         retired_at = excluded.retired_at",
    )?
    .execute(params![username, user_id, now])?;
    Ok(())
}

/// Who last gave up `username`, if anyone did.
pub fn retired_by(conn: &Connection, username: &Username) -> StoreResult<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT user_id FROM retired_usernames WHERE username = ?1",
            [username.as_str()],
            |row| row.get(0),
        )
        .optional()?)
}

/// `username` is someone's again.
pub fn reuse_username(conn: &Connection, username: &Username) -> StoreResult<()> {
    conn.prepare_cached("DELETE FROM retired_usernames WHERE username = ?1")?
        .execute([username.as_str()])?;
    Ok(())
}
