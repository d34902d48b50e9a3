//! Grants and what they produce: authorization codes, access tokens and refresh tokens.
//!
//! Every code and token belongs to a grant; revoking the grant (on code reuse or refresh-token
//! reuse) revokes the whole family at once.

use super::db::{Db, Row};
use crate::args;

use super::{StoreResult, from_json, to_json};
use crate::clock::UnixTime;
use crate::names::{ClientId, UserId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub id: String,
    pub client_id: ClientId,
    pub user_id: UserId,
    pub scope: String,
    pub auth_time: UnixTime,
    pub amr: Vec<String>,
    pub created_at: UnixTime,
    pub revoked_at: Option<UnixTime>,
}

const GRANT_COLUMNS: &str =
    "g.id, g.client_id, g.user_id, g.scope, g.auth_time, g.amr, g.created_at, g.revoked_at";

/// Reads a grant from the first eight columns of `row` (as `GRANT_COLUMNS` lists them).
fn grant_from_row(row: &Row) -> StoreResult<(Grant, String)> {
    Ok((
        Grant {
            id: row.get(0)?,
            client_id: row.get(1)?,
            user_id: row.get(2)?,
            scope: row.get(3)?,
            auth_time: row.get(4)?,
            amr: Vec::new(),
            created_at: row.get(6)?,
            revoked_at: row.get(7)?,
        },
        row.get(5)?,
    ))
}

fn finish_grant((mut grant, amr): (Grant, String)) -> StoreResult<Grant> {
    grant.amr = from_json("grants", &amr)?;
    Ok(grant)
}

pub fn insert_grant(conn: &Db, grant: &Grant) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO grants (id, client_id, user_id, scope, auth_time, amr, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        args![
            grant.id,
            grant.client_id,
            grant.user_id,
            grant.scope,
            grant.auth_time,
            to_json(&grant.amr),
            grant.created_at
        ],
    )?;
    Ok(())
}

pub fn grant_by_id(conn: &Db, id: &str) -> StoreResult<Option<Grant>> {
    conn.query_opt(
        &format!("SELECT {GRANT_COLUMNS} FROM grants g WHERE g.id = ?1"),
        args![id],
        grant_from_row,
    )?
    .map(finish_grant)
    .transpose()
}

/// Revokes a grant and so every token descended from it.
pub fn revoke_grant(conn: &Db, id: &str, now: UnixTime) -> StoreResult<()> {
    conn.execute(
        "UPDATE grants SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        args![id, now],
    )?;
    Ok(())
}

/// Revokes every live grant of `user_id` (only those for `client_id` when given), and so
/// their tokens; returns how many.
pub fn revoke_grants_of(
    conn: &Db,
    user_id: &UserId,
    client_id: Option<&ClientId>,
    now: UnixTime,
) -> StoreResult<usize> {
    conn.execute(
        "UPDATE grants SET revoked_at = ?3 WHERE user_id = ?1 \
         AND (CAST(?2 AS TEXT) IS NULL OR client_id = ?2) AND revoked_at IS NULL",
        args![user_id, client_id, now],
    )
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Code {
    pub code_hash: String,
    pub grant_id: String,
    pub redirect_uri: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub session_hash: Option<String>,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
}

pub fn insert_code(conn: &Db, code: &Code) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO authorization_codes (code_hash, grant_id, redirect_uri, nonce, \
         code_challenge, session_hash, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        args![
            code.code_hash,
            code.grant_id,
            code.redirect_uri,
            code.nonce,
            code.code_challenge,
            code.session_hash,
            code.created_at,
            code.expires_at
        ],
    )?;
    Ok(())
}

/// What spending a code found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeUse {
    /// First use by its own client: the code is now spent.
    Fresh(Code),
    /// Spent before, and presented by its own client: the caller must revoke the grant it
    /// belongs to.
    Replayed {
        grant_id: String,
    },
    /// Issued to another client: nothing was changed.
    OtherClient,
    Unknown,
}

/// Spends a code in one statement, only when `client_id` is the client it was issued to, so
/// that two concurrent exchanges cannot both win and another client's attempt changes
/// nothing; when nothing was spent, says why.
pub fn spend_code(
    conn: &Db,
    code_hash: &str,
    client_id: &ClientId,
    now: UnixTime,
) -> StoreResult<CodeUse> {
    let fresh = conn.query_opt(
        "UPDATE authorization_codes SET used_at = ?2 WHERE code_hash = ?1 AND used_at IS NULL \
             AND EXISTS (SELECT 1 FROM grants g \
                         WHERE g.id = authorization_codes.grant_id AND g.client_id = ?3) \
             RETURNING code_hash, grant_id, redirect_uri, nonce, code_challenge, session_hash, \
             created_at, expires_at",
        args![code_hash, now, client_id],
        |row| {
            Ok(Code {
                code_hash: row.get(0)?,
                grant_id: row.get(1)?,
                redirect_uri: row.get(2)?,
                nonce: row.get(3)?,
                code_challenge: row.get(4)?,
                session_hash: row.get(5)?,
                created_at: row.get(6)?,
                expires_at: row.get(7)?,
            })
        },
    )?;
    if let Some(code) = fresh {
        return Ok(CodeUse::Fresh(code));
    }
    let found: Option<(String, ClientId)> = conn.query_opt(
        "SELECT c.grant_id, g.client_id FROM authorization_codes c \
             JOIN grants g ON g.id = c.grant_id WHERE c.code_hash = ?1",
        args![code_hash],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    Ok(match found {
        Some((_, owner)) if &owner != client_id => CodeUse::OtherClient,
        Some((grant_id, _)) => CodeUse::Replayed { grant_id },
        None => CodeUse::Unknown,
    })
}

/// The two kinds of bearer token a grant issues, each in a table of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

impl TokenKind {
    fn table(self) -> &'static str {
        match self {
            TokenKind::Access => "access_tokens",
            TokenKind::Refresh => "refresh_tokens",
        }
    }
}

pub fn insert_token(
    conn: &Db,
    kind: TokenKind,
    token_hash: &str,
    grant_id: &str,
    scope: &str,
    now: UnixTime,
    expires_at: UnixTime,
) -> StoreResult<()> {
    conn.execute(
        &format!(
            "INSERT INTO {} (token_hash, grant_id, scope, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
            kind.table()
        ),
        args![token_hash, grant_id, scope, now, expires_at],
    )?;
    Ok(())
}

/// A live access token: not expired, and its grant not revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveToken {
    pub grant: Grant,
    pub scope: String,
    pub issued_at: UnixTime,
    pub expires_at: UnixTime,
}

fn live_token(
    conn: &Db,
    kind: TokenKind,
    token_hash: &str,
    now: UnixTime,
) -> StoreResult<Option<LiveToken>> {
    let table = kind.table();
    let extra = match kind {
        TokenKind::Refresh => " AND t.used_at IS NULL",
        TokenKind::Access => "",
    };
    conn.query_opt(
        &format!(
            "SELECT {GRANT_COLUMNS}, t.scope, t.created_at, t.expires_at FROM {table} t \
         JOIN grants g ON g.id = t.grant_id \
         WHERE t.token_hash = ?1 AND t.expires_at > ?2 AND g.revoked_at IS NULL{extra}"
        ),
        args![token_hash, now],
        |row| Ok((grant_from_row(row)?, row.get(8)?, row.get(9)?, row.get(10)?)),
    )?
    .map(|(grant, scope, issued_at, expires_at)| {
        Ok(LiveToken {
            grant: finish_grant(grant)?,
            scope,
            issued_at,
            expires_at,
        })
    })
    .transpose()
}

pub fn live_access_token(
    conn: &Db,
    token_hash: &str,
    now: UnixTime,
) -> StoreResult<Option<LiveToken>> {
    live_token(conn, TokenKind::Access, token_hash, now)
}

pub fn live_refresh_token(
    conn: &Db,
    token_hash: &str,
    now: UnixTime,
) -> StoreResult<Option<LiveToken>> {
    live_token(conn, TokenKind::Refresh, token_hash, now)
}

pub fn delete_access_token(conn: &Db, token_hash: &str) -> StoreResult<()> {
    conn.execute(
        "DELETE FROM access_tokens WHERE token_hash = ?1",
        args![token_hash],
    )?;
    Ok(())
}

/// What spending a refresh token found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshUse {
    Fresh(LiveToken),
    /// Spent before (or its family was revoked): the caller must revoke the family.
    Replayed {
        grant_id: String,
    },
    Unknown,
}

/// Spends a refresh token (rotation): usable once, then only a sign of theft. The spending
/// is one statement, so that of two concurrent requests with the same token one wins and the
/// other finds it spent (it waits for the first's commit), as if it had come second.
pub fn spend_refresh_token(conn: &Db, token_hash: &str, now: UnixTime) -> StoreResult<RefreshUse> {
    if let Some(live) = live_refresh_token(conn, token_hash, now)? {
        let spent = conn.execute(
            "UPDATE refresh_tokens SET used_at = ?2 WHERE token_hash = ?1 AND used_at IS NULL",
            args![token_hash, now],
        )?;
        if spent == 1 {
            return Ok(RefreshUse::Fresh(live));
        }
    }
    let known: Option<(String, Option<UnixTime>)> = conn.query_opt(
        "SELECT grant_id, used_at FROM refresh_tokens WHERE token_hash = ?1",
        args![token_hash],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    Ok(match known {
        Some((grant_id, Some(_))) => RefreshUse::Replayed { grant_id },
        _ => RefreshUse::Unknown,
    })
}

/// The grant a token belongs to, whatever its state (for revocation).
pub fn token_grant(conn: &Db, kind: TokenKind, token_hash: &str) -> StoreResult<Option<Grant>> {
    conn.query_opt(
        &format!(
            "SELECT {GRANT_COLUMNS} FROM {} t JOIN grants g ON g.id = t.grant_id \
         WHERE t.token_hash = ?1",
            kind.table()
        ),
        args![token_hash],
        grant_from_row,
    )?
    .map(finish_grant)
    .transpose()
}

/// Drops what can no longer be used: expired codes, tokens and parked requests.
pub fn purge_expired(conn: &Db, now: UnixTime) -> StoreResult<usize> {
    let mut purged = 0;
    // Used codes and links stay a while after they expire, to recognise a replay.
    for (sql, kept) in [
        (
            "DELETE FROM authorization_codes WHERE expires_at <= ?1",
            3600,
        ),
        ("DELETE FROM access_tokens WHERE expires_at <= ?1", 0),
        ("DELETE FROM refresh_tokens WHERE expires_at <= ?1", 0),
        (
            "DELETE FROM pending_authorizations WHERE expires_at <= ?1",
            0,
        ),
        ("DELETE FROM login_links WHERE expires_at <= ?1", 86_400),
        ("DELETE FROM sessions WHERE expires_at <= ?1", 0),
    ] {
        purged += conn.execute(sql, args![now - kept])?;
    }
    Ok(purged)
}
