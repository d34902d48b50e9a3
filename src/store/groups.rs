//! Groups and their members.

use std::collections::HashMap;

use super::db::{Db, Row};
use crate::args;

use super::{StoreError, StoreResult};
use crate::clock::UnixTime;
use crate::names::{ClientId, GroupName, UserId, Username};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Group {
    #[serde(skip)]
    pub id: i64,
    pub name: GroupName,
    pub declared: bool,
    pub members: Vec<Username>,
}

/// The names of the groups whose ids `link` pairs with the outer row's `key`, as one column:
/// sorted and joined by commas, which no group name holds (NULL when there are none). Both
/// SQLite and PostgreSQL spell the aggregate this way. Read it back with `joined_names`.
macro_rules! group_names_of {
    ($link:literal, $column:literal, $key:literal) => {
        concat!(
            "(SELECT string_agg(g.name, ',' ORDER BY g.name) FROM ",
            $link,
            " l JOIN groups g ON g.id = l.group_id WHERE l.",
            $column,
            " = ",
            $key,
            ")"
        )
    };
}
pub(super) use group_names_of;

/// The group names a `group_names_of!` column holds.
pub(super) fn joined_names(row: &Row, column: usize) -> StoreResult<Vec<GroupName>> {
    let Some(joined) = row.get::<Option<String>>(column)? else {
        return Ok(Vec::new());
    };
    joined
        .split(',')
        .map(|name| {
            GroupName::parse(name).map_err(|source| StoreError::Malformed { column, source })
        })
        .collect()
}

pub fn insert(conn: &Db, name: &GroupName, declared: bool, now: UnixTime) -> StoreResult<i64> {
    conn.query_one(
        "INSERT INTO groups (name, declared, created_at) VALUES (?1, ?2, ?3) RETURNING id",
        args![name, declared, now],
        |row| row.get(0),
    )
}

pub fn id_by_name(conn: &Db, name: &GroupName) -> StoreResult<Option<i64>> {
    conn.query_opt(
        "SELECT id FROM groups WHERE name = ?1",
        args![name],
        |row| row.get(0),
    )
}

/// Every group with its members' usernames, sorted by name.
pub fn list(conn: &Db) -> StoreResult<Vec<Group>> {
    let mut groups = conn.query(
        "SELECT id, name, declared FROM groups ORDER BY name",
        args![],
        |row| {
            Ok(Group {
                id: row.get(0)?,
                name: row.get(1)?,
                declared: row.get(2)?,
                members: Vec::new(),
            })
        },
    )?;
    // Every membership in one query, not one query per group.
    let members: Vec<(i64, Username)> = conn.query(
        "SELECT m.group_id, u.username FROM users u JOIN group_members m ON m.user_id = u.id \
         ORDER BY u.username",
        args![],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    let mut by_group: HashMap<i64, Vec<Username>> = HashMap::new();
    for (group_id, username) in members {
        by_group.entry(group_id).or_default().push(username);
    }
    for group in &mut groups {
        group.members = by_group.remove(&group.id).unwrap_or_default();
    }
    Ok(groups)
}

/// Marks a group as declared in the config file (or no longer).
pub fn set_declared(conn: &Db, id: i64, declared: bool) -> StoreResult<()> {
    conn.execute(
        "UPDATE groups SET declared = ?2 WHERE id = ?1",
        args![id, declared],
    )?;
    Ok(())
}

/// The clients that admit only some groups and name this one among them, sorted.
pub fn clients_allowing(conn: &Db, id: i64) -> StoreResult<Vec<ClientId>> {
    conn.column(
        "SELECT client_id FROM client_allowed_groups WHERE group_id = ?1 ORDER BY client_id",
        args![id],
    )
}

pub fn delete(conn: &Db, id: i64) -> StoreResult<()> {
    conn.execute("DELETE FROM groups WHERE id = ?1", args![id])?;
    Ok(())
}

/// Adds a member; false when they already were one.
pub fn add_member(conn: &Db, group_id: i64, user_id: &UserId) -> StoreResult<bool> {
    let added = conn.execute(
        "INSERT INTO group_members (group_id, user_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        args![group_id, user_id],
    )?;
    Ok(added == 1)
}

/// Removes a member; false when they were not one.
pub fn remove_member(conn: &Db, group_id: i64, user_id: &UserId) -> StoreResult<bool> {
    let removed = conn.execute(
        "DELETE FROM group_members WHERE group_id = ?1 AND user_id = ?2",
        args![group_id, user_id],
    )?;
    Ok(removed == 1)
}

/// One group with its members' usernames, sorted.
pub fn by_name(conn: &Db, name: &GroupName) -> StoreResult<Option<Group>> {
    let Some((id, declared)) = conn.query_opt(
        "SELECT id, declared FROM groups WHERE name = ?1",
        args![name],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?
    else {
        return Ok(None);
    };
    let members = conn.column(
        "SELECT u.username FROM users u JOIN group_members m ON m.user_id = u.id \
         WHERE m.group_id = ?1 ORDER BY u.username",
        args![id],
    )?;
    Ok(Some(Group {
        id,
        name: name.clone(),
        declared,
        members,
    }))
}

pub fn rename(conn: &Db, id: i64, name: &GroupName) -> StoreResult<()> {
    conn.execute("UPDATE groups SET name = ?2 WHERE id = ?1", args![id, name])?;
    Ok(())
}
