//! Adding, listing, disabling and removing people.

use rusqlite::Connection;

use super::{DirectoryError, DirectoryResult, names};
use crate::clock::UnixTime;
use crate::store::audit::{self, Event, Origin};
use crate::store::sessions;
use crate::store::users::{self, User};

#[derive(Debug, Clone, Default)]
pub struct NewUser {
    /// The id to use (first-run setup picks it before the passkey exists); new if `None`.
    pub id: Option<String>,
    pub username: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub is_admin: bool,
}

pub fn add(
    conn: &Connection,
    new: &NewUser,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<User> {
    let username = names::username(&new.username)?;
    let email = new.email.as_deref().map(names::email).transpose()?;
    let display_name = new
        .display_name
        .as_deref()
        .map(names::display_name)
        .transpose()?
        .unwrap_or_default();
    if users::by_username(conn, &username)?.is_some() {
        return Err(DirectoryError::UserExists(username));
    }
    let (given_name, family_name) = split_name(&display_name);
    let user = User {
        id: new
            .id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        username,
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
    let detail = if user.is_admin { "administrator" } else { "" };
    audit::record(
        conn,
        &Event::new("user.created")
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
    conn: &Connection,
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
        &Event::new("user.profile_changed").user(&user.id, &user.username),
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

pub fn find(conn: &Connection, username: &str) -> DirectoryResult<User> {
    let name = username.trim().to_lowercase();
    users::by_username(conn, &name)?.ok_or(DirectoryError::NoSuchUser(name))
}

/// Disables a user, ends their sessions and revokes every token they hold.
pub fn disable(
    conn: &Connection,
    username: &str,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<User> {
    let user = find(conn, username)?;
    users::set_disabled(conn, &user.id, true, now)?;
    sessions::delete_for_user(conn, &user.id)?;
    conn.execute(
        "UPDATE grants SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL",
        rusqlite::params![user.id, now],
    )?;
    audit::record(
        conn,
        &Event::new("user.disabled").user(&user.id, &user.username),
        origin,
        now,
    )?;
    Ok(user)
}

pub fn remove(
    conn: &Connection,
    username: &str,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<User> {
    let user = find(conn, username)?;
    users::delete(conn, &user.id)?;
    audit::record(
        conn,
        &Event::new("user.removed").user(&user.id, &user.username),
        origin,
        now,
    )?;
    Ok(user)
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
