//! First-run setup: while no administrator exists, `serve` prints a one-time setup link; the
//! person who opens it picks a username, registers a passkey and becomes the administrator.

use crate::store::Db;
use webauthn_rs::prelude::{Passkey, RegisterPublicKeyCredential};

use super::passkeys::{self, PasskeyError, SetupState};
use crate::clock::UnixTime;
use crate::directory::users::{self as directory_users, NewUser};
use crate::directory::{DirectoryError, names};
use crate::names::Username;
use crate::secrets;
use crate::store::audit::{self, Event, EventKind, Origin};
use crate::store::links::{self, Purpose, Redemption};
use crate::store::users::{self, User};
use crate::store::{StoreError, StoreResult};

pub const ROUTE: &str = "/setup/";
pub const LINK_TTL_SECS: i64 = 24 * 3600;

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(
        "This setup link is not valid any more: it was used, it expired, or an administrator \
         already exists. Restart `latchkey serve` for a new one while there is no administrator."
    )]
    LinkNotValid,
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error(transparent)]
    Passkey(#[from] PasskeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A setup link token while there is no administrator; `None` once there is one, and then
/// any setup link still outstanding (from a database older than this rule) is spent.
pub fn issue_if_needed(conn: &Db, now: UnixTime) -> StoreResult<Option<String>> {
    if users::count_admins(conn)? > 0 {
        links::spend_all(conn, Purpose::Setup, now)?;
        return Ok(None);
    }
    let token = secrets::random_token();
    links::insert(
        conn,
        &secrets::token_hash(&token),
        Purpose::Setup,
        None,
        now,
        now + LINK_TTL_SECS,
    )?;
    Ok(Some(token))
}

/// Checks a setup link without spending it; returns its hash.
pub fn check(conn: &Db, token: &str, now: UnixTime) -> Result<String, SetupError> {
    let hash = secrets::token_hash(token);
    let live = matches!(
        links::peek(conn, &hash, Purpose::Setup, now)?,
        Redemption::Redeemed { .. }
    );
    if users::count_admins(conn)? > 0 || !live {
        return Err(SetupError::LinkNotValid);
    }
    Ok(hash)
}

/// Validates what the person typed on the setup page.
pub fn profile(
    username: &str,
    display_name: &str,
    email: &str,
) -> Result<passkeys::SetupProfile, SetupError> {
    let email = email.trim();
    let profile = || {
        Ok::<_, names::Invalid>(passkeys::SetupProfile {
            username: Username::parse(username)?,
            display_name: names::display_name(display_name)?,
            email: (!email.is_empty())
                .then(|| names::email(email))
                .transpose()?,
        })
    };
    Ok(profile().map_err(DirectoryError::from)?)
}

/// Completes setup: spends the link, creates the administrator and saves the passkey, all in
/// the caller's transaction.
pub fn complete(
    conn: &Db,
    setup: &SetupState,
    passkey: &Passkey,
    credential: &RegisterPublicKeyCredential,
    origin: &Origin,
    now: UnixTime,
) -> Result<User, SetupError> {
    let redeemed = links::redeem(conn, &setup.link_hash, Purpose::Setup, now)?;
    if !matches!(redeemed, Redemption::Redeemed { .. }) || users::count_admins(conn)? > 0 {
        return Err(SetupError::LinkNotValid);
    }
    let user = directory_users::add(
        conn,
        &NewUser {
            id: Some(setup.user_id.clone()),
            username: setup.profile.username.clone(),
            display_name: Some(setup.profile.display_name.clone()),
            email: setup.profile.email.clone(),
            is_admin: true,
            reuse_username: false,
        },
        origin,
        now,
    )?;
    passkeys::save_new(conn, &user, passkey, credential, origin, now)?;
    audit::record(
        conn,
        &Event::new(EventKind::SetupCompleted).user(&user.id, &user.username),
        origin,
        now,
    )?;
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::UserId;
    use crate::store::Store;

    /// A database from before setup links were spent with the first administrator still
    /// holds one: the next start spends it.
    #[test]
    fn a_start_with_an_administrator_spends_old_setup_links() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .write(|tx| {
                let token = issue_if_needed(tx, 1)?.expect("no administrator yet");
                let admin = User {
                    id: UserId::parse("00000000-0000-4000-8000-000000000001").unwrap(),
                    username: Username::parse("root").unwrap(),
                    display_name: String::new(),
                    email: None,
                    email_verified: false,
                    given_name: None,
                    family_name: None,
                    is_admin: true,
                    disabled: false,
                    created_at: 2,
                    updated_at: 2,
                };
                users::insert(tx, &admin)?;
                assert_eq!(issue_if_needed(tx, 3)?, None);
                users::set_disabled(tx, &admin.id, true, 4)?;
                assert!(matches!(
                    check(tx, &token, 5),
                    Err(SetupError::LinkNotValid)
                ));
                Ok::<_, SetupError>(())
            })
            .unwrap();
    }
}
