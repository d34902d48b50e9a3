//! Groups and membership. Group names reach relying parties in the `groups` claim.

use crate::store::Db;

use super::{DirectoryError, DirectoryResult, users as directory_users};
use crate::clock::UnixTime;
use crate::names::{GroupName, Username};
use crate::store::audit::{self, Event, EventKind, Origin};
use crate::store::groups::{self, Group};
use crate::store::users::User;

pub fn add(conn: &Db, name: &GroupName, origin: &Origin, now: UnixTime) -> DirectoryResult<()> {
    if groups::id_by_name(conn, name)?.is_some() {
        return Err(DirectoryError::GroupExists(name.to_string()));
    }
    groups::insert(conn, name, false, now)?;
    audit::record(
        conn,
        &Event::new(EventKind::GroupCreated).detail(name.to_string()),
        origin,
        now,
    )?;
    Ok(())
}

pub fn list(conn: &Db) -> DirectoryResult<Vec<Group>> {
    Ok(groups::list(conn)?)
}

/// The group name someone typed to name an existing group: one that breaks the group-name
/// rule names none.
pub fn named(input: &str) -> DirectoryResult<GroupName> {
    GroupName::parse(input).map_err(|_| DirectoryError::NoSuchGroup(input.to_string()))
}

/// The id of the group with this name.
pub fn find(conn: &Db, name: &GroupName) -> DirectoryResult<i64> {
    groups::id_by_name(conn, name)?.ok_or_else(|| DirectoryError::NoSuchGroup(name.to_string()))
}

/// Removes a group. A group that restricts a client cannot go: the client would silently
/// open up to every user. Nor can one the config file declares.
pub fn remove(conn: &Db, name: &GroupName, origin: &Origin, now: UnixTime) -> DirectoryResult<()> {
    let group = ensure_editable(conn, name)?;
    remove_group(conn, &group, origin, now)
}

/// Removes this group, unless a client still depends on it, whether or not the config file
/// declares it: applying the file removes what it no longer declares.
pub fn remove_group(
    conn: &Db,
    group: &Group,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<()> {
    let (id, name) = (group.id, &group.name);
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
    conn: &Db,
    group: &GroupName,
    username: &Username,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<bool> {
    change_membership(conn, Membership::Add, group, username, origin, now)
}

/// Removes `username` from `group`; false when they were not a member.
pub fn remove_member(
    conn: &Db,
    group: &GroupName,
    username: &Username,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<bool> {
    change_membership(conn, Membership::Remove, group, username, origin, now)
}

enum Membership {
    Add,
    Remove,
}

/// Applies one membership change, by names.
fn change_membership(
    conn: &Db,
    change: Membership,
    group: &GroupName,
    username: &Username,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<bool> {
    let id = find(conn, group)?;
    let user = directory_users::find(conn, username)?;
    apply_membership(conn, change, (id, group), &user, origin, now)
}

/// Applies one membership change to the group with this id and name, audit-logged when it
/// changed anything.
fn apply_membership(
    conn: &Db,
    change: Membership,
    (id, group): (i64, &GroupName),
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
pub fn get(conn: &Db, name: &GroupName) -> DirectoryResult<Group> {
    groups::by_name(conn, name)?.ok_or_else(|| DirectoryError::NoSuchGroup(name.to_string()))
}

/// The group, if it may be renamed or removed here: a group declared in the config file is
/// changed there, or the next start would bring it back.
pub fn ensure_editable(conn: &Db, name: &GroupName) -> DirectoryResult<Group> {
    let group = get(conn, name)?;
    if group.declared {
        return Err(DirectoryError::Declared(group.name.to_string()));
    }
    Ok(group)
}

/// Renames a group. Clients that allow it keep allowing it (they hold its id), but apps see
/// the new name in the `groups` claim at the next sign-in.
pub fn rename(
    conn: &Db,
    name: &GroupName,
    new_name: &GroupName,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<()> {
    let group = ensure_editable(conn, name)?;
    if *new_name == group.name {
        return Ok(());
    }
    if groups::id_by_name(conn, new_name)?.is_some() {
        return Err(DirectoryError::GroupExists(new_name.to_string()));
    }
    groups::rename(conn, group.id, new_name)?;
    audit::record(
        conn,
        &Event::new(EventKind::GroupRenamed).detail(format!("{} to {new_name}", group.name)),
        origin,
        now,
    )?;
    Ok(())
}

/// Makes `username` a member of exactly the groups named in `wanted`, adding and removing
/// (each change audit-logged) only what differs.
pub fn set_memberships(
    conn: &Db,
    username: &Username,
    wanted: &[GroupName],
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<()> {
    let all = groups::list(conn)?;
    let wants = |group: &Group| wanted.contains(&group.name);
    if let Some(unknown) = wanted.iter().find(|w| !all.iter().any(|g| g.name == **w)) {
        return Err(DirectoryError::NoSuchGroup(unknown.to_string()));
    }
    let user = directory_users::find(conn, username)?;
    for group in &all {
        let member = group.members.contains(&user.username);
        let change = match (member, wants(group)) {
            (false, true) => Membership::Add,
            (true, false) => Membership::Remove,
            _ => continue,
        };
        apply_membership(conn, change, (group.id, &group.name), &user, origin, now)?;
    }
    Ok(())
}
