//! Signing keys, as JWK JSON text, and the algorithms they sign with.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use tokio_postgres::types::{IsNull, Type, to_sql_checked};

use super::StoreResult;
use super::db::Db;
use crate::args;
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

type PgResult<T> = Result<T, Box<dyn std::error::Error + Sync + Send>>;

impl tokio_postgres::types::ToSql for SigningAlg {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> PgResult<IsNull> {
        tokio_postgres::types::ToSql::to_sql(&self.as_str(), ty, out)
    }

    fn accepts(ty: &Type) -> bool {
        <&str as tokio_postgres::types::ToSql>::accepts(ty)
    }

    to_sql_checked!();
}

impl<'a> tokio_postgres::types::FromSql<'a> for SigningAlg {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> PgResult<SigningAlg> {
        let name = <&str>::from_sql(ty, raw)?;
        SigningAlg::from_name(name).ok_or_else(|| unknown(name).into())
    }

    fn accepts(ty: &Type) -> bool {
        <&str as tokio_postgres::types::FromSql>::accepts(ty)
    }
}

fn unknown(name: &str) -> String {
    format!("unknown signing algorithm {name:?}")
}

impl FromSql for SigningAlg {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let name = value.as_str()?;
        SigningAlg::from_name(name).ok_or_else(|| FromSqlError::Other(unknown(name).into()))
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

pub fn insert(conn: &Db, key: &StoredKey) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO signing_keys (kid, alg, private_jwk, public_jwk, created_at, retired_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        args![
            key.kid,
            key.alg,
            key.private_jwk,
            key.public_jwk,
            key.created_at,
            key.retired_at
        ],
    )?;
    Ok(())
}

/// Every key, newest first.
pub fn list(conn: &Db) -> StoreResult<Vec<StoredKey>> {
    conn.query(
        "SELECT kid, alg, private_jwk, public_jwk, created_at, retired_at FROM signing_keys \
         ORDER BY created_at DESC, rowid DESC",
        args![],
        |row| {
            Ok(StoredKey {
                kid: row.get(0)?,
                alg: row.get(1)?,
                private_jwk: row.get(2)?,
                public_jwk: row.get(3)?,
                created_at: row.get(4)?,
                retired_at: row.get(5)?,
            })
        },
    )
}

/// The key that signs with `alg` now, as `(kid, private JWK)`: the newest not retired.
pub fn active(conn: &Db, alg: SigningAlg) -> StoreResult<Option<(String, String)>> {
    conn.query_opt(
        "SELECT kid, private_jwk FROM signing_keys WHERE retired_at IS NULL AND alg = ?1 \
             ORDER BY created_at DESC, rowid DESC LIMIT 1",
        args![alg],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
}

/// Retires every key still signing; the caller inserts the new ones in the same transaction.
pub fn retire_active(conn: &Db, now: UnixTime) -> StoreResult<()> {
    conn.execute(
        "UPDATE signing_keys SET retired_at = ?1 WHERE retired_at IS NULL",
        args![now],
    )?;
    Ok(())
}

/// Drops retired keys whose every token has expired.
pub fn delete_retired_before(conn: &Db, cutoff: UnixTime) -> StoreResult<()> {
    conn.execute(
        "DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at <= ?1",
        args![cutoff],
    )?;
    Ok(())
}
