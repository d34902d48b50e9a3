//! Groups and membership. Group names reach relying parties in the `groups` claim.

use rusqlite::Connection;

use super::names::{self, Username};
use super::{DirectoryError, DirectoryResult, users as directory_users};
use crate::clock::UnixTime;
use crate::store::audit::{self, Event, EventKind, Origin};
use crate::store::groups::{self, Group};
use crate::store::users::User;

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
        &Event::new(EventKind::GroupCreated).detail(name.clone()),
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
/// open up to every user. Nor can one the config file declares.
pub fn remove(
    conn: &Connection,
    name: &str,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<()> {
    let id = ensure_editable(conn, name)?.id;
    let clients = groups::clients_allowing(conn, id)?;
    if !clients.is_empty() {
        return Err(DirectoryError::Conflict(format!(
            "group {name:?} is an allowed group of client(s) {}; remove it from them first",
            clients.join(", ")
        )));
    }
    let ruling = crate::store::proxmox::clients_ruling_group(conn, id)?;
    if !ruling.is_empty() {
        return Err(DirectoryError::Conflict(format!(
            "group {name:?} is named in the Proxmox rules of client(s) {}; remove those rules \
             first (latchkey proxmox deny)",
            ruling.join(", ")
        )));
    }
    groups::delete(conn, id)?;
    audit::record(
        conn,
        &Event::new(EventKind::GroupRemoved).detail(name.to_string()),
        origin,
        now,
    )?;
    Ok(())
}

/// Adds `username` to `group`; false when they already were a member.
pub fn add_member(
    conn: &Connection,
    group: &str,
    username: &Username,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<bool> {
    let id = find(conn, group)?;
    let user = directory_users::find(conn, username)?;
    change_membership(conn, Membership::Add, (id, group), &user, origin, now)
}

/// Removes `username` from `group`; false when they were not a member.
pub fn remove_member(
    conn: &Connection,
    group: &str,
    username: &Username,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<bool> {
    let id = find(conn, group)?;
    let user = directory_users::find(conn, username)?;
    change_membership(conn, Membership::Remove, (id, group), &user, origin, now)
}

enum Membership {
    Add,
    Remove,
}

/// Applies one membership change to the group with this id and name, audit-logged when it
/// changed anything.
fn change_membership(
    conn: &Connection,
    change: Membership,
    (id, group): (i64, &str),
    user: &User,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<bool> {
    let (changed, event) = match change {
        Membership::Add => (
            groups::add_member(conn, id, &user.id)?,
            EventKind::GroupMemberAdded,
        ),
        Membership::Remove => (
            groups::remove_member(conn, id, &user.id)?,
            EventKind::GroupMemberRemoved,
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

/// One group and its members.
pub fn get(conn: &Connection, name: &str) -> DirectoryResult<Group> {
    groups::by_name(conn, name)?.ok_or_else(|| DirectoryError::NoSuchGroup(name.to_string()))
}

/// The group, if it may be renamed or removed here: a group declared in the config file is
/// changed there, or the next start would bring it back.
pub fn ensure_editable(conn: &Connection, name: &str) -> DirectoryResult<Group> {
    let group = get(conn, name)?;
    if group.declared {
        return Err(DirectoryError::Declared(group.name));
    }
    Ok(group)
}

/// Renames a group; returns the new name. Clients that allow it keep allowing it (they hold
/// its id), but apps see the new name in the `groups` claim at the next sign-in.
pub fn rename(
    conn: &Connection,
    name: &str,
    new_name: &str,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<String> {
    let group = ensure_editable(conn, name)?;
    let new_name = names::group_name(new_name)?;
    if new_name == group.name {
        return Ok(new_name);
    }
    if groups::id_by_name(conn, &new_name)?.is_some() {
        return Err(DirectoryError::GroupExists(new_name));
    }
    groups::rename(conn, group.id, &new_name)?;
    audit::record(
        conn,
        &Event::new(EventKind::GroupRenamed).detail(format!("{} to {new_name}", group.name)),
        origin,
        now,
    )?;
    Ok(new_name)
}

/// Makes `username` a member of exactly the groups named in `wanted`, adding and removing
/// (each change audit-logged) only what differs.
pub fn set_memberships(
    conn: &Connection,
    username: &Username,
    wanted: &[String],
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<()> {
    let all = groups::list(conn)?;
    if let Some(unknown) = wanted.iter().find(|w| !all.iter().any(|g| &g.name == *w)) {
        return Err(DirectoryError::NoSuchGroup(unknown.clone()));
    }
    let user = directory_users::find(conn, username)?;
    for group in &all {
        let member = group.members.contains(&user.username);
        let change = match (member, wanted.contains(&group.name)) {
            (false, true) => Membership::Add,
            (true, false) => Membership::Remove,
            _ => continue,
        };
        change_membership(conn, change, (group.id, &group.name), &user, origin, now)?;
    }
    Ok(())
}
