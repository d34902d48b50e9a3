//! Groups and their members.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};

use super::{StoreResult, column};
use crate::clock::UnixTime;
use crate::names::GroupName;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Group {
    #[serde(skip)]
    pub id: i64,
    pub name: String,
    pub declared: bool,
    pub members: Vec<String>,
}

pub fn insert(conn: &Connection, name: &str, declared: bool, now: UnixTime) -> StoreResult<i64> {
    conn.prepare_cached("INSERT INTO groups (name, declared, created_at) VALUES (?1, ?2, ?3)")?
        .execute(params![name, declared, now])?;
    Ok(conn.last_insert_rowid())
}

pub fn id_by_name(conn: &Connection, name: &GroupName) -> StoreResult<Option<i64>> {
    Ok(conn
        .query_row(
            "SELECT id FROM groups WHERE name = ?1",
            [name.as_str()],
            |row| row.get(0),
        )
        .optional()?)
}

/// Every group with its members' usernames, sorted by name.
pub fn list(conn: &Connection) -> StoreResult<Vec<Group>> {
    let mut stmt = conn.prepare("SELECT id, name, declared FROM groups ORDER BY name")?;
    let mut groups: Vec<Group> = stmt
        .query_map([], |row| {
            Ok(Group {
                id: row.get(0)?,
                name: row.get(1)?,
                declared: row.get(2)?,
                members: Vec::new(),
            })
        })?
        .collect::<Result<_, _>>()?;
    // Every membership in one query, not one query per group.
    let mut members = conn.prepare(
        "SELECT m.group_id, u.username FROM users u JOIN group_members m ON m.user_id = u.id \
         ORDER BY u.username",
    )?;
    let mut by_group: HashMap<i64, Vec<String>> = HashMap::new();
    for member in members.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))? {
        let (group_id, username) = member?;
        by_group.entry(group_id).or_default().push(username);
    }
    for group in &mut groups {
        group.members = by_group.remove(&group.id).unwrap_or_default();
    }
    Ok(groups)
}

/// Marks a group as declared in the config file (or no longer).
pub fn set_declared(conn: &Connection, id: i64, declared: bool) -> StoreResult<()> {
    conn.prepare_cached("UPDATE groups SET declared = ?2 WHERE id = ?1")?
        .execute(params![id, declared])?;
    Ok(())
}

/// The clients that admit only some groups and name this one among them, sorted.
pub fn clients_allowing(conn: &Connection, id: i64) -> StoreResult<Vec<String>> {
    column(
        conn,
        "SELECT client_id FROM client_allowed_groups WHERE group_id = ?1 ORDER BY client_id",
        [id],
    )
}

pub fn delete(conn: &Connection, id: i64) -> StoreResult<()> {
    conn.prepare_cached("DELETE FROM groups WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

/// Adds a member; false when they already were one.
pub fn add_member(conn: &Connection, group_id: i64, user_id: &str) -> StoreResult<bool> {
    let added = conn
        .prepare_cached("INSERT OR IGNORE INTO group_members (group_id, user_id) VALUES (?1, ?2)")?
        .execute(params![group_id, user_id])?;
    Ok(added == 1)
}

/// Removes a member; false when they were not one.
pub fn remove_member(conn: &Connection, group_id: i64, user_id: &str) -> StoreResult<bool> {
    let removed = conn
        .prepare_cached("DELETE FROM group_members WHERE group_id = ?1 AND user_id = ?2")?
        .execute(params![group_id, user_id])?;
    Ok(removed == 1)
}

/// One group with its members' usernames, sorted.
pub fn by_name(conn: &Connection, name: &GroupName) -> StoreResult<Option<Group>> {
    let Some((id, declared)) = conn
        .query_row(
            "SELECT id, declared FROM groups WHERE name = ?1",
            [name.as_str()],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?
    else {
        return Ok(None);
    };
    let members = column(
        conn,
        "SELECT u.username FROM users u JOIN group_members m ON m.user_id = u.id \
         WHERE m.group_id = ?1 ORDER BY u.username",
        [id],
    )?;
    Ok(Some(Group {
        id,
        name: name.to_string(),
        declared,
        members,
    }))
}

pub fn rename(conn: &Connection, id: i64, name: &GroupName) -> StoreResult<()> {
    conn.prepare_cached("UPDATE groups SET name = ?2 WHERE id = ?1")?
        .execute(params![id, name.as_str()])?;
    Ok(())
}
