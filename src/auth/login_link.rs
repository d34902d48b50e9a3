//! One-time login links: an administrator hands one to a person, who opens it once to sign
//! in (and, with passkeys, to register one). They are the recovery path for a lost passkey.

use crate::store::Db;

use crate::clock::UnixTime;
use crate::directory::{DirectoryError, DirectoryResult, users as directory_users};
use crate::names::Username;
use crate::secrets;
use crate::store::audit::{self, Event, EventKind, Origin, Repeats};
use crate::store::links::{self, Purpose, Redemption};
use crate::store::users::{self, User};

pub const DEFAULT_TTL_SECS: i64 = 15 * 60;
pub const MAX_TTL_SECS: i64 = 7 * 24 * 3600;

/// The route a link token is appended to.
pub const ROUTE: &str = "/login/link/";

/// Creates a login link for `username`; returns the user and the token (shown once).
pub fn issue(
    conn: &Db,
    username: &Username,
    ttl_secs: i64,
    origin: &Origin,
    now: UnixTime,
) -> DirectoryResult<(User, String)> {
    if !(1..=MAX_TTL_SECS).contains(&ttl_secs) {
        return Err(DirectoryError::Invalid(format!(
            "a login link lives between 1 second and 7 days, not {ttl_secs} s"
        )));
    }
    let user = directory_users::find(conn, username)?;
    if user.disabled {
        return Err(DirectoryError::Conflict(format!(
            "user {:?} is disabled",
            user.username
        )));
    }
    let token = secrets::random_token();
    links::insert(
        conn,
        &secrets::token_hash(&token),
        Purpose::Login,
        Some(&user.id),
        now,
        now + ttl_secs,
    )?;
    audit::record(
        conn,
        &Event::new(EventKind::LoginLinkIssued)
            .user(&user.id, &user.username)
            .detail(format!("valid for {ttl_secs} s")),
        origin,
        now,
    )?;
    Ok((user, token))
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LinkError {
    #[error("This link is not valid. Check that you copied all of it, or ask for a new one.")]
    Unknown,
    #[error("This link has already been used. Each link works once: ask for a new one.")]
    AlreadyUsed,
    #[error("This link has expired. Ask your administrator for a new one.")]
    Expired,
    #[error("This account is disabled. Ask your administrator.")]
    Disabled,
}

/// The person a login link would sign in, without spending it.
pub fn check(
    conn: &Db,
    token: &str,
    now: UnixTime,
) -> Result<Result<User, LinkError>, crate::store::StoreError> {
    let found = links::peek(conn, &secrets::token_hash(token), Purpose::Login, now)?;
    person(conn, found)
}

/// Spends a login link, returning the person it signs in. A failure is audit-logged once per
/// address and reason a minute (`failures` counts the repeats).
pub fn redeem(
    conn: &Db,
    failures: &Repeats,
    token: &str,
    origin: &Origin,
    now: UnixTime,
) -> Result<Result<User, LinkError>, crate::store::StoreError> {
    let outcome = links::redeem(conn, &secrets::token_hash(token), Purpose::Login, now)?;
    let failure = match person(conn, outcome)? {
        Ok(user) => return Ok(Ok(user)),
        Err(failure) => failure,
    };
    audit::record_failure(
        conn,
        failures,
        &Event::new(EventKind::SigninFailed).detail(format!("login link: {failure:?}")),
        origin,
        now,
    )?;
    Ok(Err(failure))
}

/// Who a link's state lets in, or why not.
fn person(
    conn: &Db,
    found: Redemption,
) -> Result<Result<User, LinkError>, crate::store::StoreError> {
    let failure = match found {
        Redemption::Redeemed { user_id } => {
            let user = match user_id {
                Some(id) => users::by_id(conn, &id)?,
                None => None,
            };
            match user {
                Some(user) if !user.disabled => return Ok(Ok(user)),
                Some(_) => LinkError::Disabled,
                None => LinkError::Unknown,
            }
        }
        Redemption::Unknown => LinkError::Unknown,
        Redemption::AlreadyUsed => LinkError::AlreadyUsed,
        Redemption::Expired => LinkError::Expired,
    };
    Ok(Err(failure))
}
