//! Adding, listing, disabling and removing people.

use crate::store::Db;

use super::{DirectoryError, DirectoryResult};
use crate::clock::UnixTime;
use crate::names::{self, UserId, Username};
use crate::store::StoreResult;
use crate::store::audit::{self, Event, EventKind, Origin};
use crate::store::grants;
use crate::store::links::{self, Purpose};
use crate::store::passkeys::{self as stored_passkeys, StoredPasskey};
use crate::store::sessions;
use crate::store::users::{self, User};

#[derive(Debug, Clone)]
pub struct NewUser {
    /// The id to use (first-run setup picks it before the passkey exists); new if `None`.
    pub id: Option<UserId>,
    pub username: Username,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub is_admin: bool,
    /// Give this new person a username someone else gave up, on purpose (see
    /// `claim_username`).
    pub reuse_username: bool,
}

/// Takes `username` for `holder`: refused when someone else gave it up (deleted or
/// renamed), unless `reuse`, since apps that key their accounts on usernames (Proxmox)
/// would hand the newcomer the old person's account.
fn claim_username(
    conn: &Db,
    username: &Username,
    holder: Option<&UserId>,
    reuse: bool,
) -> DirectoryResult<()> {
    match users::retired_by(conn, username)? {
        None => Ok(()),
        Some(previous) if reuse || holder == Some(&previous) => {
            Ok(users::reuse_username(conn, username)?)
        }
        Some(_) => Err(DirectoryError::Conflict(format!(
            "the username {username:?} belonged to someone who was deleted or renamed, and apps \
             such as Proxmox would give the newcomer their account. Pick another username, or \
             reuse it on purpose (`--reuse-username` on the command line, or the box on the \
             admin form)"
        ))),
    }
}

pub fn add(conn: &Db, new: &NewUser, origin: &Origin, now: UnixTime) -> DirectoryResult<User> {
    let email = new.email.as_deref().map(names::email).transpose()?;
    let display_name = new
        .display_name
        .as_deref()
        .map(names::display_name)
        .transpose()?
        .unwrap_or_default();
    if users::by_username(conn, &new.username)?.is_some() {
        return Err(DirectoryError::UserExists(new.username.to_string()));
    }
    claim_username(conn, &new.username, new.id.as_ref(), new.reuse_username)?;
    let (given_name, family_name) = split_name(&display_name);
    let user = User {
        id: new.id.clone().unwrap_or_else(UserId::generate),
        username: new.username.clone(),
        display_name,
        email_verified: email.is_some(),
        email,
        given_name,
        family_name,
        is_admin: new.is_admin,
        disabled: false,
        created_at: now,
        updated_at: now,
    };
    users::insert(conn, &user)?;
    if user.is_admin {
        an_administrator_exists(conn, now)?;
    }
    let detail = [
        (user.is_admin, "administrator"),
        (new.reuse_username, "reuses a retired username"),
    ]
    .iter()
    .filter_map(|(applies, words)| applies.then_some(*words))
    .collect::<Vec<_>>()
    .join("; ");
    audit::record(
        conn,
        &Event::new(EventKind::UserCreated)
            .user(&user.id, &user.username)
            .detail(detail),
        origin,
        now,
    )?;
    Ok(user)
}

/// A person changes their own display name or e-mail address. An address they type is not
/// verified by anyone, so `email_verified` becomes false when it changes.
pub fn update_own_profile(
    conn: &Db,
    user: &User,
    display_name: &str,
    email: &str,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<User> {
    let display_name = names::display_name(display_name)?;
    let email = email.trim();
    let email = (!email.is_empty())
        .then(|| names::email(email))
        .transpose()?;
    let mut updated = user.clone();
    if updated.email != email {
        updated.email_verified = false;
    }
    updated.email = email;
    (updated.given_name, updated.family_name) = split_name(&display_name);
    updated.display_name = display_name;
    users::update_profile(conn, &updated, now)?;
    audit::record(
        conn,
        &Event::new(EventKind::UserProfileChanged).user(&user.id, &user.username),
        origin,
        now,
    )?;
    Ok(updated)
}

/// "Ada Lovelace" → given name "Ada", family name "Lovelace"; a single word is a given name.
/// Proxmox copies both into the users it creates.
fn split_name(display_name: &str) -> (Option<String>, Option<String>) {
    let mut words = display_name.split_whitespace();
    let given = words.next().map(str::to_string);
    let family: Vec<&str> = words.collect();
    let family = (!family.is_empty()).then(|| family.join(" "));
    (given, family)
}

pub fn find(conn: &Db, username: &Username) -> DirectoryResult<User> {
    users::by_username(conn, username)?
        .ok_or_else(|| DirectoryError::NoSuchUser(username.to_string()))
}

/// The username someone typed to name an existing person: one that breaks the username rule
/// names nobody.
pub fn named(input: &str) -> DirectoryResult<Username> {
    Username::parse(input).map_err(|_| DirectoryError::NoSuchUser(input.trim().to_lowercase()))
}

/// Disables a user, ends their sessions and revokes every token they hold.
pub fn disable(
    conn: &Db,
    username: &Username,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<User> {
    let user = find(conn, username)?;
    users::set_disabled(conn, &user.id, true, now)?;
    sessions::delete_for_user(conn, &user.id)?;
    grants::revoke_grants_of(conn, &user.id, None, now)?;
    audit::record(
        conn,
        &Event::new(EventKind::UserDisabled).user(&user.id, &user.username),
        origin,
        now,
    )?;
    Ok(user)
}

pub fn remove(
    conn: &Db,
    username: &Username,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<User> {
    let user = find(conn, username)?;
    users::delete(conn, &user.id)?;
    users::retire_username(conn, &user.username, &user.id, now)?;
    audit::record(
        conn,
        &Event::new(EventKind::UserRemoved).user(&user.id, &user.username),
        origin,
        now,
    )?;
    Ok(user)
}

// Changes an administrator makes to other people's accounts.

/// People matching what an administrator typed in a search box (everyone when it is blank).
pub fn search(conn: &Db, query: &str) -> DirectoryResult<Vec<User>> {
    let query = query.trim();
    if query.is_empty() {
        return Ok(users::list(conn)?);
    }
    if query.chars().count() > 254 || query.chars().any(char::is_control) {
        return Err(DirectoryError::Invalid(
            "A search has at most 254 characters and no control characters.".into(),
        ));
    }
    Ok(users::search(conn, query)?)
}

/// What the administrator's edit form sets on an account.
#[derive(Debug, Clone)]
pub struct AccountEdit {
    pub username: Username,
    pub display_name: String,
    pub email: String,
    pub is_admin: bool,
}

/// Applies an administrator's edit of `username`, each part audit-logged when it changes.
/// The caller's transaction makes it all or nothing: a refused part leaves everything as it
/// was.
pub fn edit(
    conn: &Db,
    actor: &User,
    username: &Username,
    edit: &AccountEdit,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<User> {
    set_admin(conn, actor, username, edit.is_admin, origin, now)?;
    set_profile(conn, username, &edit.display_name, &edit.email, origin, now)?;
    rename(conn, username, &edit.username, origin, now)
}

/// Gives `username` a new username. Their id (the `sub` claim) stays, so apps that key on
/// it keep the account; apps that key on `preferred_username` (Proxmox) see a new person.
pub fn rename(
    conn: &Db,
    username: &Username,
    new_username: &Username,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<User> {
    let mut user = find(conn, username)?;
    if *new_username == user.username {
        return Ok(user);
    }
    if users::by_username(conn, new_username)?.is_some() {
        return Err(DirectoryError::UserExists(new_username.to_string()));
    }
    claim_username(conn, new_username, Some(&user.id), false)?;
    users::set_username(conn, &user.id, new_username, now)?;
    users::retire_username(conn, &user.username, &user.id, now)?;
    let old = std::mem::replace(&mut user.username, new_username.clone());
    audit::record(
        conn,
        &Event::new(EventKind::UserRenamed)
            .user(&user.id, &user.username)
            .detail(format!("was {old}")),
        origin,
        now,
    )?;
    Ok(user)
}

/// An administrator sets someone's display name and e-mail address. An address the
/// administrator changes counts as verified; one they leave as it was keeps its state, since
/// saving the form does not vouch for what the person typed themselves.
pub fn set_profile(
    conn: &Db,
    username: &Username,
    display_name: &str,
    email: &str,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<User> {
    let user = find(conn, username)?;
    let display_name = names::display_name(display_name)?;
    let email = email.trim();
    let email = (!email.is_empty())
        .then(|| names::email(email))
        .transpose()?;
    if display_name == user.display_name && email == user.email {
        return Ok(user);
    }
    let mut updated = user.clone();
    if updated.email != email {
        updated.email_verified = email.is_some();
    }
    updated.email = email;
    (updated.given_name, updated.family_name) = split_name(&display_name);
    updated.display_name = display_name;
    users::update_profile(conn, &updated, now)?;
    audit::record(
        conn,
        &Event::new(EventKind::UserUpdated)
            .user(&user.id, &user.username)
            .detail("display name or email"),
        origin,
        now,
    )?;
    Ok(updated)
}

/// Grants or revokes administrator rights.
pub fn set_admin(
    conn: &Db,
    actor: &User,
    username: &Username,
    is_admin: bool,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<User> {
    let mut user = find(conn, username)?;
    if user.is_admin == is_admin {
        return Ok(user);
    }
    if !is_admin {
        keeps_an_administrator(conn, actor, &user, AdminLoss::Demote)?;
    }
    users::set_admin(conn, &user.id, is_admin, now)?;
    if is_admin && !user.disabled {
        an_administrator_exists(conn, now)?;
    }
    user.is_admin = is_admin;
    let event = if is_admin {
        EventKind::UserAdminGranted
    } else {
        EventKind::UserAdminRevoked
    };
    audit::record(
        conn,
        &Event::new(event).user(&user.id, &user.username),
        origin,
        now,
    )?;
    Ok(user)
}

/// Lets a disabled person sign in again (with a passkey they kept, or a new login link).
pub fn enable(
    conn: &Db,
    username: &Username,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<User> {
    let mut user = find(conn, username)?;
    if !user.disabled {
        return Ok(user);
    }
    users::set_disabled(conn, &user.id, false, now)?;
    if user.is_admin {
        an_administrator_exists(conn, now)?;
    }
    user.disabled = false;
    audit::record(
        conn,
        &Event::new(EventKind::UserEnabled).user(&user.id, &user.username),
        origin,
        now,
    )?;
    Ok(user)
}

/// `disable`, asked for by the administrator `actor`, who may not lock themselves or everyone
/// out.
pub fn disable_by(
    conn: &Db,
    actor: &User,
    username: &Username,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<User> {
    let user = find(conn, username)?;
    if user.disabled {
        return Ok(user);
    }
    keeps_an_administrator(conn, actor, &user, AdminLoss::Disable)?;
    disable(conn, username, origin, now)
}

/// `remove`, asked for by the administrator `actor`, who may not remove themselves or the
/// last administrator.
pub fn remove_by(
    conn: &Db,
    actor: &User,
    username: &Username,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<User> {
    let user = find(conn, username)?;
    keeps_an_administrator(conn, actor, &user, AdminLoss::Remove)?;
    remove(conn, username, origin, now)
}

/// Changes that can take administrator rights away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AdminLoss {
    Demote,
    Disable,
    Remove,
}

/// Refuses a change that would leave `actor` without their own rights, or Latchkey without
/// any enabled administrator: nobody could then manage it from the browser.
fn keeps_an_administrator(
    conn: &Db,
    actor: &User,
    target: &User,
    change: AdminLoss,
) -> DirectoryResult<()> {
    if target.id == actor.id {
        return Err(DirectoryError::Conflict(
            match change {
                AdminLoss::Demote => {
                    "You cannot remove your own administrator rights. Ask \
                                      another administrator to do it."
                }
                AdminLoss::Disable => "You cannot disable your own account.",
                AdminLoss::Remove => "You cannot delete your own account.",
            }
            .to_string(),
        ));
    }
    not_the_last_administrator(conn, target)
}

/// Refuses to take away the last enabled administrator: nobody could then manage Latchkey
/// from the browser. The command line may override it (`--force`).
pub fn not_the_last_administrator(conn: &Db, target: &User) -> DirectoryResult<()> {
    if target.is_admin && !target.disabled && users::count_admins(conn)? <= 1 {
        return Err(DirectoryError::Conflict(format!(
            "Latchkey needs an enabled administrator, and {} is the last one. Make someone \
             else an administrator first.",
            target.username
        )));
    }
    Ok(())
}

/// An enabled administrator exists from now on: every outstanding first-run setup link is
/// spent, so that none works again even if no administrator is left later.
fn an_administrator_exists(conn: &Db, now: UnixTime) -> StoreResult<()> {
    links::spend_all(conn, Purpose::Setup, now)?;
    Ok(())
}

/// Ends one of `username`'s sessions, by its public handle; false when there is none.
pub fn end_session(
    conn: &Db,
    username: &Username,
    handle: &str,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<bool> {
    let user = find(conn, username)?;
    Ok(end_session_of(conn, &user, handle, origin, now)?)
}

/// Ends one of `user`'s sessions, by its public handle; false when there is none. The
/// audit event's actor tells whether the person or an administrator did it.
pub fn end_session_of(
    conn: &Db,
    user: &User,
    handle: &str,
    origin: &Origin,
    now: UnixTime,
) -> StoreResult<bool> {
    let ended = sessions::delete_by_handle(conn, &user.id, handle)?;
    if ended {
        audit::record(
            conn,
            &Event::new(EventKind::SessionRevoked).user(&user.id, &user.username),
            origin,
            now,
        )?;
    }
    Ok(ended)
}

/// Signs `username` out everywhere; returns how many sessions ended.
pub fn end_all_sessions(
    conn: &Db,
    username: &Username,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<usize> {
    let user = find(conn, username)?;
    let ended = sessions::delete_for_user(conn, &user.id)?;
    audit::record(
        conn,
        &Event::new(EventKind::SessionRevoked)
            .user(&user.id, &user.username)
            .detail(format!("all {ended} sessions")),
        origin,
        now,
    )?;
    Ok(ended)
}

/// Deletes one of `username`'s passkeys (a lost device, say); the person can register a new
/// one with a login link.
pub fn remove_passkey(
    conn: &Db,
    username: &Username,
    passkey_id: i64,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<StoredPasskey> {
    let user = find(conn, username)?;
    remove_passkey_of(conn, &user, passkey_id, origin, now)?.ok_or_else(|| {
        DirectoryError::Conflict(
            "That passkey no longer exists (it may have been deleted already).".into(),
        )
    })
}

/// Deletes one of `user`'s passkeys, returning it; `None` when they have no such passkey.
pub fn remove_passkey_of(
    conn: &Db,
    user: &User,
    passkey_id: i64,
    origin: &Origin,
    now: UnixTime,
) -> StoreResult<Option<StoredPasskey>> {
    let Some(removed) = stored_passkeys::delete(conn, &user.id, passkey_id)? else {
        return Ok(None);
    };
    audit::record(
        conn,
        &Event::new(EventKind::PasskeyRemoved)
            .user(&user.id, &user.username)
            .detail(removed.name.clone()),
        origin,
        now,
    )?;
    Ok(Some(removed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_for_proxmox() {
        assert_eq!(
            split_name("Ada King Lovelace"),
            (Some("Ada".into()), Some("King Lovelace".into()))
        );
        assert_eq!(split_name("Ada"), (Some("Ada".into()), None));
        assert_eq!(split_name(""), (None, None));
    }
}

#[cfg(test)]
mod admin_rules_tests {
    use super::*;
    use crate::store::Store;

    fn person(conn: &Db, username: &str, is_admin: bool) -> User {
        let new = NewUser {
            id: None,
            username: name(username),
            display_name: None,
            email: None,
            is_admin,
            reuse_username: false,
        };
        add(conn, &new, &Origin::cli(), 0).unwrap()
    }

    fn name(username: &str) -> Username {
        Username::parse(username).unwrap()
    }

    /// Through the pages the acting administrator is always an enabled one, so the last
    /// administrator can only be protected from someone else: the rule must hold on its own.
    #[test]
    fn the_last_enabled_administrator_stays() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .write(|tx| {
                let ada = person(tx, "ada", true);
                let ops = person(tx, "ops", false);
                let origin = Origin::cli();
                for refused in [
                    set_admin(tx, &ops, &name("ada"), false, &origin, 1).map(|_| ()),
                    disable_by(tx, &ops, &name("ada"), &origin, 1).map(|_| ()),
                    remove_by(tx, &ops, &name("ada"), &origin, 1).map(|_| ()),
                ] {
                    let message = refused.unwrap_err().to_string();
                    assert!(message.contains("ada is the last one"), "{message}");
                }
                // With a second administrator, the first may go.
                set_admin(tx, &ada, &name("ops"), true, &origin, 2)?;
                assert!(!set_admin(tx, &ops, &name("ada"), false, &origin, 3)?.is_admin);
                assert!(
                    disable_by(tx, &ada, &name("ada"), &origin, 4).is_err(),
                    "not oneself"
                );
                Ok::<_, DirectoryError>(())
            })
            .unwrap();
    }

    #[test]
    fn renaming_keeps_the_id_and_refuses_taken_names() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .write(|tx| {
                let ada = person(tx, "ada", true);
                person(tx, "bob", false);
                let origin = Origin::cli();
                let renamed = rename(tx, &name("ada"), &name("Countess"), &origin, 1)?;
                assert_eq!(
                    (renamed.id, renamed.username.as_str()),
                    (ada.id, "countess")
                );
                assert!(matches!(
                    rename(tx, &name("countess"), &name("bob"), &origin, 1),
                    Err(DirectoryError::UserExists(_))
                ));
                assert!(Username::parse("no spaces").is_err());
                Ok::<_, DirectoryError>(())
            })
            .unwrap();
    }
}
