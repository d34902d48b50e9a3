//! People.

use super::db::{Db, Row};
use crate::args;

use super::StoreResult;
use super::groups::{group_names_of, joined_names};
use crate::clock::UnixTime;
use crate::names::{GroupName, UserId, Username};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct User {
    /// Opaque and stable: the `sub` claim. Never the username, which may change.
    pub id: UserId,
    pub username: Username,
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

/// Every column of a person, named with the table so that a join may read them too.
pub(super) const COLUMNS: &str = "users.id, users.username, users.display_name, users.email, \
                       users.email_verified, users.given_name, users.family_name, \
                       users.is_admin, users.disabled, users.created_at, users.updated_at";

/// The person in the row's columns from `first` on, in `COLUMNS` order.
pub(super) fn from_row_at(row: &Row, first: usize) -> StoreResult<User> {
    Ok(User {
        id: row.get(first)?,
        username: row.get(first + 1)?,
        display_name: row.get(first + 2)?,
        email: row.get(first + 3)?,
        email_verified: row.get(first + 4)?,
        given_name: row.get(first + 5)?,
        family_name: row.get(first + 6)?,
        is_admin: row.get(first + 7)?,
        disabled: row.get(first + 8)?,
        created_at: row.get(first + 9)?,
        updated_at: row.get(first + 10)?,
    })
}

fn from_row(row: &Row) -> StoreResult<User> {
    from_row_at(row, 0)
}

pub fn insert(conn: &Db, user: &User) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO users (id, username, display_name, email, email_verified, given_name, \
         family_name, is_admin, disabled, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        args![
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

pub fn by_username(conn: &Db, username: &Username) -> StoreResult<Option<User>> {
    conn.query_opt(
        &format!("SELECT {COLUMNS} FROM users WHERE username = ?1"),
        args![username],
        from_row,
    )
}

pub fn by_id(conn: &Db, id: &UserId) -> StoreResult<Option<User>> {
    conn.query_opt(
        &format!("SELECT {COLUMNS} FROM users WHERE id = ?1"),
        args![id],
        from_row,
    )
}

pub fn list(conn: &Db) -> StoreResult<Vec<User>> {
    let users = conn.query(
        &format!("SELECT {COLUMNS} FROM users ORDER BY username"),
        args![],
        from_row,
    )?;
    Ok(users)
}

pub fn set_disabled(conn: &Db, id: &UserId, disabled: bool, now: UnixTime) -> StoreResult<()> {
    conn.execute(
        "UPDATE users SET disabled = ?2, updated_at = ?3 WHERE id = ?1",
        args![id, disabled, now],
    )?;
    Ok(())
}

pub fn delete(conn: &Db, id: &UserId) -> StoreResult<()> {
    conn.execute("DELETE FROM users WHERE id = ?1", args![id])?;
    Ok(())
}

pub fn count_admins(conn: &Db) -> StoreResult<i64> {
    conn.query_one(
        "SELECT COUNT(*) FROM users WHERE is_admin AND NOT disabled",
        args![],
        |row| row.get(0),
    )
}

/// Every column of a person, then their groups' names (see `group_names_of!`), for `filter`.
fn with_groups_sql(filter: &str) -> String {
    format!(
        "SELECT {COLUMNS}, {} FROM users {filter}",
        group_names_of!("group_members", "user_id", "users.id")
    )
}

fn with_groups_row(row: &Row) -> StoreResult<(User, Vec<GroupName>)> {
    Ok((from_row(row)?, joined_names(row, 11)?))
}

/// The user with this id and the names of their groups, sorted, in one statement.
pub fn with_groups(conn: &Db, id: &UserId) -> StoreResult<Option<(User, Vec<GroupName>)>> {
    conn.query_opt(
        &with_groups_sql("WHERE id = ?1"),
        args![id],
        with_groups_row,
    )
}

/// Every person by username, each with the names of their groups, in one statement.
pub fn list_with_groups(conn: &Db) -> StoreResult<Vec<(User, Vec<GroupName>)>> {
    conn.query(
        &with_groups_sql("ORDER BY username"),
        args![],
        with_groups_row,
    )
}

/// Names of the groups a user belongs to, sorted.
pub fn group_names(conn: &Db, user_id: &UserId) -> StoreResult<Vec<GroupName>> {
    conn.column(
        "SELECT g.name FROM groups g JOIN group_members m ON m.group_id = g.id \
         WHERE m.user_id = ?1 ORDER BY g.name",
        args![user_id],
    )
}

/// Changes what a person may edit about themselves.
pub fn update_profile(conn: &Db, user: &User, now: UnixTime) -> StoreResult<()> {
    conn.execute(
        "UPDATE users SET display_name = ?2, email = ?3, email_verified = ?4, given_name = ?5, \
         family_name = ?6, updated_at = ?7 WHERE id = ?1",
        args![
            user.id,
            user.display_name,
            user.email,
            user.email_verified,
            user.given_name,
            user.family_name,
            now
        ],
    )?;
    Ok(())
}

/// People whose username, display name or e-mail address contains `query` (any case),
/// sorted by username.
pub fn search(conn: &Db, query: &str) -> StoreResult<Vec<User>> {
    // LIKE wildcards in what the administrator typed are meant literally. Both sides are
    // lowered: SQLite's LIKE ignores case, PostgreSQL's does not.
    let escaped = query
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    let pattern = format!("%{escaped}%");
    let users = conn.query(
        &format!(
            "SELECT {COLUMNS} FROM users WHERE lower(username) LIKE lower(?1) ESCAPE '\\' \
             OR lower(display_name) LIKE lower(?1) ESCAPE '\\' \
             OR lower(email) LIKE lower(?1) ESCAPE '\\' ORDER BY username"
        ),
        args![pattern],
        from_row,
    )?;
    Ok(users)
}

pub fn set_username(conn: &Db, id: &UserId, username: &Username, now: UnixTime) -> StoreResult<()> {
    conn.execute(
        "UPDATE users SET username = ?2, updated_at = ?3 WHERE id = ?1",
        args![id, username, now],
    )?;
    Ok(())
}

pub fn set_admin(conn: &Db, id: &UserId, is_admin: bool, now: UnixTime) -> StoreResult<()> {
    conn.execute(
        "UPDATE users SET is_admin = ?2, updated_at = ?3 WHERE id = ?1",
        args![id, is_admin, now],
    )?;
    Ok(())
}

/// Remembers that `user_id` gave up `username` (deleted or renamed).
pub fn retire_username(
    conn: &Db,
    username: &Username,
    user_id: &UserId,
    now: UnixTime,
) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO retired_usernames (username, user_id, retired_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (username) DO UPDATE SET user_id = excluded.user_id, \
         retired_at = excluded.retired_at",
        args![username, user_id, now],
    )?;
    Ok(())
}

/// Who last gave up `username`, if anyone did.
pub fn retired_by(conn: &Db, username: &Username) -> StoreResult<Option<UserId>> {
    conn.query_opt(
        "SELECT user_id FROM retired_usernames WHERE username = ?1",
        args![username],
        |row| row.get(0),
    )
}

/// `username` is someone's again.
pub fn reuse_username(conn: &Db, username: &Username) -> StoreResult<()> {
    conn.execute(
        "DELETE FROM retired_usernames WHERE username = ?1",
        args![username],
    )?;
    Ok(())
}
