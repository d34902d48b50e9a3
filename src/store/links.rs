//! One-time links: login links for a user and the first-run setup link.

use super::db::Db;
use crate::args;

use super::StoreResult;
use crate::clock::UnixTime;
use crate::names::UserId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Login,
    Setup,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Login => "login",
            Purpose::Setup => "setup",
        }
    }
}

pub fn insert(
    conn: &Db,
    token_hash: &str,
    purpose: Purpose,
    user_id: Option<&UserId>,
    now: UnixTime,
    expires_at: UnixTime,
) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO login_links (token_hash, purpose, user_id, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        args![token_hash, purpose.as_str(), user_id, now, expires_at],
    )?;
    Ok(())
}

/// What redeeming a link found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redemption {
    /// The link was valid and is now spent; the user it signs in, if any.
    Redeemed {
        user_id: Option<UserId>,
    },
    Unknown,
    AlreadyUsed,
    Expired,
}

/// Spends a link in one statement, so two concurrent uses cannot both succeed.
pub fn redeem(
    conn: &Db,
    token_hash: &str,
    purpose: Purpose,
    now: UnixTime,
) -> StoreResult<Redemption> {
    let spent: Option<Option<UserId>> = conn.query_opt(
        "UPDATE login_links SET used_at = ?3 WHERE token_hash = ?1 AND purpose = ?2 \
             AND used_at IS NULL AND expires_at > ?3 RETURNING user_id",
        args![token_hash, purpose.as_str(), now],
        |row| row.get(0),
    )?;
    match spent {
        Some(user_id) => Ok(Redemption::Redeemed { user_id }),
        None => peek(conn, token_hash, purpose, now),
    }
}

/// What redeeming a link now would find, without spending it: `Redeemed` means it would
/// be.
pub fn peek(
    conn: &Db,
    token_hash: &str,
    purpose: Purpose,
    now: UnixTime,
) -> StoreResult<Redemption> {
    let state: Option<(Option<UserId>, Option<UnixTime>, UnixTime)> = conn.query_opt(
        "SELECT user_id, used_at, expires_at FROM login_links \
             WHERE token_hash = ?1 AND purpose = ?2",
        args![token_hash, purpose.as_str()],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
    )?;
    Ok(match state {
        None => Redemption::Unknown,
        Some((_, Some(_), _)) => Redemption::AlreadyUsed,
        Some((_, None, expires_at)) if expires_at <= now => Redemption::Expired,
        Some((user_id, None, _)) => Redemption::Redeemed { user_id },
    })
}

/// Spends every outstanding link of `purpose`; returns how many.
pub fn spend_all(conn: &Db, purpose: Purpose, now: UnixTime) -> StoreResult<usize> {
    conn.execute(
        "UPDATE login_links SET used_at = ?2 WHERE purpose = ?1 AND used_at IS NULL",
        args![purpose.as_str(), now],
    )
}
