//! Browser sessions: a server-side row found by the hash of the secret its cookie carries
//! (see `web::cookies`).

use crate::store::Db;

use crate::clock::UnixTime;
use crate::config::SessionPolicy;
use crate::secrets;
use crate::store::StoreResult;
use crate::store::audit::{self, Event, EventKind, Origin};
use crate::store::sessions::{self, Session};
use crate::store::users::User;

/// How recent a sign-in must be to add a passkey to the account: a browser left signed in
/// must not be enough to plant a passkey in it.
pub const RECENT_SIGN_IN_SECS: i64 = 10 * 60;

/// `last_seen_at` is refreshed at most this often, to keep reads cheap.
const TOUCH_INTERVAL_SECS: i64 = 60;

/// A session just started: the secret its cookie carries (only its hash is stored), and how
/// long it lives.
#[derive(Debug)]
pub struct NewSession {
    pub secret: String,
    pub lifetime_secs: i64,
}

/// Starts a session for `user`; returns its secret, for the browser to keep.
pub fn start(
    conn: &Db,
    policy: &SessionPolicy,
    user: &User,
    amr: &[&str],
    origin: &Origin,
    now: UnixTime,
) -> StoreResult<NewSession> {
    let id = secrets::random_token();
    sessions::insert(
        conn,
        &Session {
            id_hash: secrets::token_hash(&id),
            user_id: user.id.clone(),
            auth_time: now,
            amr: amr.iter().map(|m| m.to_string()).collect(),
            created_at: now,
            last_seen_at: now,
            expires_at: now + policy.lifetime_secs,
            ip: origin.ip.clone(),
            user_agent: origin.user_agent.clone(),
        },
    )?;
    audit::record(
        conn,
        &Event::new(EventKind::Signin)
            .user(&user.id, &user.username)
            .detail(amr.join(",")),
        origin,
        now,
    )?;
    Ok(NewSession {
        secret: id,
        lifetime_secs: policy.lifetime_secs,
    })
}

/// The signed-in session and its (enabled) user for a cookie value, if any.
pub fn current(
    conn: &Db,
    cookie_value: &str,
    policy: &SessionPolicy,
    now: UnixTime,
) -> StoreResult<Option<(Session, User)>> {
    let found = sessions::live_with_user(conn, &secrets::token_hash(cookie_value), now)?;
    let Some((session, user)) = found else {
        return Ok(None);
    };
    // Touched at most once a minute, so allow that much slack on the idle limit.
    if now - session.last_seen_at > policy.idle_secs + TOUCH_INTERVAL_SECS {
        sessions::delete(conn, &session.id_hash)?;
        return Ok(None);
    }
    if user.disabled {
        return Ok(None);
    }
    if now - session.last_seen_at >= TOUCH_INTERVAL_SECS {
        sessions::touch(conn, &session.id_hash, now)?;
    }
    Ok(Some((session, user)))
}

/// Whether `session` signed in (with a passkey or a login link) recently enough to add a
/// passkey.
pub fn signed_in_recently(session: &Session, now: UnixTime) -> bool {
    now - session.auth_time <= RECENT_SIGN_IN_SECS
}

/// Ends a session.
pub fn end(
    conn: &Db,
    session: &Session,
    user: &User,
    origin: &Origin,
    now: UnixTime,
) -> StoreResult<()> {
    sessions::delete(conn, &session.id_hash)?;
    audit::record(
        conn,
        &Event::new(EventKind::Signout).user(&user.id, &user.username),
        origin,
        now,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed_in_at(auth_time: UnixTime) -> Session {
        Session {
            id_hash: String::new(),
            user_id: crate::names::UserId::generate(),
            auth_time,
            amr: vec!["otp".into()],
            created_at: auth_time,
            last_seen_at: auth_time,
            expires_at: auth_time + 3600,
            ip: None,
            user_agent: None,
        }
    }

    #[test]
    fn a_passkey_is_added_within_ten_minutes_of_signing_in() {
        let session = signed_in_at(1_000);
        assert!(signed_in_recently(&session, 1_000));
        assert!(signed_in_recently(&session, 1_000 + 10 * 60));
        assert!(!signed_in_recently(&session, 1_000 + 10 * 60 + 1));
        assert!(!signed_in_recently(&session, 1_000 + 11 * 60));
    }
}
