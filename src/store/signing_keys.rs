//! Signing keys, as JWK JSON text, and the algorithms they sign with.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{Connection, OptionalExtension, params};

use super::StoreResult;
use crate::clock::UnixTime;

/// An algorithm ID tokens are signed with (`id_token_signed_response_alg`, OIDC Dynamic
/// Client Registration §2); each has its own active key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum SigningAlg {
    /// RSA-2048 with SHA-256: every relying party accepts it, so it is the default.
    #[default]
    #[serde(rename = "RS256")]
    Rs256,
    /// ECDSA on P-256 with SHA-256.
    #[serde(rename = "ES256")]
    Es256,
    /// Ed25519.
    #[serde(rename = "EdDSA")]
    EdDsa,
}

impl SigningAlg {
    /// Every algorithm, RS256 first: the order discovery and the JWKS list them in.
    pub const ALL: [SigningAlg; 3] = [SigningAlg::Rs256, SigningAlg::Es256, SigningAlg::EdDsa];

    /// The JOSE name, exactly (names are case-sensitive).
    pub fn from_name(name: &str) -> Option<SigningAlg> {
        SigningAlg::ALL.into_iter().find(|alg| alg.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::Rs256 => "RS256",
            SigningAlg::Es256 => "ES256",
            SigningAlg::EdDsa => "EdDSA",
        }
    }
}

impl std::fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ToSql for SigningAlg {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl FromSql for SigningAlg {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let name = value.as_str()?;
        SigningAlg::from_name(name).ok_or_else(|| {
            FromSqlError::Other(format!("unknown signing algorithm {name:?}").into())
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub kid: String,
    pub alg: SigningAlg,
    pub private_jwk: String,
    pub public_jwk: String,
    pub created_at: UnixTime,
    pub retired_at: Option<UnixTime>,
}

pub fn insert(conn: &Connection, key: &StoredKey) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO signing_keys (kid, alg, private_jwk, public_jwk, created_at, retired_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        key.kid,
        key.alg,
        key.private_jwk,
        key.public_jwk,
        key.created_at,
        key.retired_at
    ])?;
    Ok(())
}

/// Every key, newest first.
pub fn list(conn: &Connection) -> StoreResult<Vec<StoredKey>> {
    let mut stmt = conn.prepare_cached(
        "SELECT kid, alg, private_jwk, public_jwk, created_at, retired_at FROM signing_keys \
         ORDER BY created_at DESC, rowid DESC",
    )?;
    let keys = stmt
        .query_map([], |row| {
            Ok(StoredKey {
                kid: row.get(0)?,
                alg: row.get(1)?,
                private_jwk: row.get(2)?,
                public_jwk: row.get(3)?,
                created_at: row.get(4)?,
                retired_at: row.get(5)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(keys)
}

/// The key that signs with `alg` now, as `(kid, private JWK)`: the newest not retired.
pub fn active(conn: &Connection, alg: SigningAlg) -> StoreResult<Option<(String, String)>> {
    Ok(conn
        .prepare_cached(
            "SELECT kid, private_jwk FROM signing_keys WHERE retired_at IS NULL AND alg = ?1 \
             ORDER BY created_at DESC, rowid DESC LIMIT 1",
        )?
        .query_row([alg], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?)
}

/// Retires every key still signing; the caller inserts the new ones in the same transaction.
pub fn retire_active(conn: &Connection, now: UnixTime) -> StoreResult<()> {
    conn.prepare_cached("UPDATE signing_keys SET retired_at = ?1 WHERE retired_at IS NULL")?
        .execute([now])?;
    Ok(())
}

/// Drops retired keys whose every token has expired.
pub fn delete_retired_before(conn: &Connection, cutoff: UnixTime) -> StoreResult<()> {
    conn.prepare_cached(
        "DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at <= ?1",
    )?
    .execute([cutoff])?;
    Ok(())
}
