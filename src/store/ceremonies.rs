//! WebAuthn ceremony state, kept server-side: single use and short-lived.

use super::db::Db;
use crate::args;

use super::StoreResult;
use crate::clock::UnixTime;
use crate::names::UserId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Register,
    Authenticate,
    Setup,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Register => "register",
            Kind::Authenticate => "authenticate",
            Kind::Setup => "setup",
        }
    }
}

pub fn insert(
    conn: &Db,
    id_hash: &str,
    kind: Kind,
    user_id: Option<&UserId>,
    state: &str,
    now: UnixTime,
    expires_at: UnixTime,
) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO webauthn_ceremonies (id_hash, kind, user_id, state, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        args![id_hash, kind.as_str(), user_id, state, now, expires_at],
    )?;
    Ok(())
}

/// Takes a live ceremony of `kind`: its user and state. A second take finds nothing.
pub fn take(
    conn: &Db,
    id_hash: &str,
    kind: Kind,
    now: UnixTime,
) -> StoreResult<Option<(Option<UserId>, String)>> {
    conn.execute(
        "DELETE FROM webauthn_ceremonies WHERE expires_at <= ?1",
        args![now],
    )?;
    conn.query_opt(
        "DELETE FROM webauthn_ceremonies WHERE id_hash = ?1 AND kind = ?2 \
             RETURNING user_id, state",
        args![id_hash, kind.as_str()],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
}
