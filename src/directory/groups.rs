//! Groups and membership. Group names reach relying parties in the `groups` claim.

use rusqlite::Connection;

use super::{DirectoryError, DirectoryResult, names, users as directory_users};
use crate::clock::UnixTime;
use crate::store::audit::{self, Event, Origin};
use crate::store::groups::{self, Group};

pub fn add(
    conn: &Connection,
    name: &str,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<String> {
    let name = names::group_name(name)?;
    if groups::id_by_name(conn, &name)?.is_some() {
        return Err(DirectoryError::GroupExists(name));
    }
    groups::insert(conn, &name, false, now)?;
    audit::record(
        conn,
        &Event::new("group.created").detail(name.clone()),
        origin,
        now,
    )?;
    Ok(name)
}

pub fn list(conn: &Connection) -> DirectoryResult<Vec<Group>> {
    Ok(groups::list(conn)?)
}

fn find(conn: &Connection, name: &str) -> DirectoryResult<i64> {
    groups::id_by_name(conn, name)?.ok_or_else(|| DirectoryError::NoSuchGroup(name.to_string()))
}

/// Removes a group. A group that restricts a client cannot go: the client would silently
/// open up to every user.
pub fn remove(
    conn: &Connection,
    name: &str,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<()> {
    let id = find(conn, name)?;
    let mut stmt = conn.prepare(
        "SELECT client_id FROM client_allowed_groups WHERE group_id = ?1 ORDER BY client_id",
    )?;
    let clients: Vec<String> = stmt
        .query_map([id], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    if !clients.is_empty() {
        return Err(DirectoryError::Conflict(format!(
            "group {name:?} is an allowed group of client(s) {}; remove it from them first",
            clients.join(", ")
        )));
    }
    groups::delete(conn, id)?;
    audit::record(
        conn,
        &Event::new("group.removed").detail(name.to_string()),
        origin,
        now,
    )?;
    Ok(())
}

/// Adds `username` to `group`; false when they already were a member.
pub fn add_member(
    conn: &Connection,
    group: &str,
    username: &str,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<bool> {
    change_membership(conn, Membership::Add, group, username, origin, now)
}

/// Removes `username` from `group`; false when they were not a member.
pub fn remove_member(
    conn: &Connection,
    group: &str,
    username: &str,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<bool> {
    change_membership(conn, Membership::Remove, group, username, origin, now)
}

enum Membership {
    Add,
    Remove,
}

/// Applies one membership change, audit-logged when it changed anything.
fn change_membership(
    conn: &Connection,
    change: Membership,
    group: &str,
    username: &str,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<bool> {
    let id = find(conn, group)?;
    let user = directory_users::find(conn, username)?;
    let (changed, event) = match change {
        Membership::Add => (
            groups::add_member(conn, id, &user.id)?,
            "group.member_added",
        ),
        Membership::Remove => (
            groups::remove_member(conn, id, &user.id)?,
            "group.member_removed",
        ),
    };
    if changed {
        audit::record(
            conn,
            &Event::new(event)
                .user(&user.id, &user.username)
                .detail(group.to_string()),
            origin,
            now,
        )?;
    }
    Ok(changed)
}
