//! Signing keys: RSA-2048 for RS256, identified by their RFC 7638 thumbprint, published in
//! the JWKS while any token they signed may still be checked.

use std::sync::{Arc, Mutex};

use josekit::jwk::Jwk;
use josekit::jwk::alg::rsa::RsaKeyPair;
use josekit::jws::alg::rsassa::{RsassaJwsSigner, RsassaJwsVerifier};
use josekit::jws::{JwsHeader, RS256};
use rusqlite::Connection;
use serde_json::{Value, json};

use crate::clock::UnixTime;
use crate::secrets::sha256_base64url;
use crate::store::signing_keys::{self, StoredKey};
use crate::store::{StoreError, StoreResult};

pub const ALGORITHM: &str = "RS256";
const KEY_BITS: u32 = 2048;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("signing key: {0}")]
    Jose(#[from] josekit::JoseError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no active signing key (run `latchkey keys rotate`)")]
    NoActiveKey,
    #[error("the token is not a JWT signed by one of our keys")]
    BadSignature,
}

/// RFC 7638 thumbprint of an RSA public key: the required members in lexicographic order.
fn thumbprint(public: &Jwk) -> Result<String, KeyError> {
    let member = |name| {
        public
            .parameter(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or(KeyError::BadSignature)
    };
    let canonical = format!(
        r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
        member("e")?,
        member("n")?
    );
    Ok(sha256_base64url(canonical.as_bytes()))
}

/// Makes a new RSA key, labelled with its thumbprint as `kid`.
pub fn generate(now: UnixTime) -> Result<StoredKey, KeyError> {
    let pair = RsaKeyPair::generate(KEY_BITS)?;
    let mut public = josekit::jwk::KeyPair::to_jwk_public_key(&pair);
    let mut private = josekit::jwk::KeyPair::to_jwk_private_key(&pair);
    let kid = thumbprint(&public)?;
    for jwk in [&mut public, &mut private] {
        jwk.set_key_id(&kid);
        jwk.set_key_use("sig");
        jwk.set_algorithm(ALGORITHM);
    }
    Ok(StoredKey {
        kid,
        alg: ALGORITHM.to_string(),
        private_jwk: private.to_string(),
        public_jwk: public.to_string(),
        created_at: now,
        retired_at: None,
    })
}

/// Creates the first key when there is none; returns true when it did.
pub fn ensure_active(conn: &Connection, now: UnixTime) -> Result<bool, KeyError> {
    let keys = signing_keys::list(conn)?;
    if keys.iter().any(|k| k.retired_at.is_none()) {
        return Ok(false);
    }
    signing_keys::insert(conn, &generate(now)?)?;
    Ok(true)
}

/// Replaces the active key. The retired one stays published for `keep_published` seconds,
/// the longest a token it signed can live; older retired keys are dropped.
pub fn rotate(conn: &Connection, now: UnixTime, keep_published: i64) -> Result<String, KeyError> {
    let fresh = generate(now)?;
    signing_keys::delete_retired_before(conn, now - keep_published)?;
    signing_keys::retire_active(conn, now)?;
    signing_keys::insert(conn, &fresh)?;
    Ok(fresh.kid)
}

/// Keys still worth publishing at `now`.
pub fn published(keys: &[StoredKey], now: UnixTime, keep_published: i64) -> Vec<&StoredKey> {
    keys.iter()
        .filter(|k| k.retired_at.is_none_or(|at| at + keep_published > now))
        .collect()
}

/// The JWKS document for the published keys.
pub fn jwks(keys: &[&StoredKey]) -> StoreResult<Value> {
    let keys = keys
        .iter()
        .map(|k| crate::store::from_json::<Value>("signing_keys", &k.public_jwk))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json!({ "keys": keys }))
}

/// Signs with the newest active key, caching the parsed signer until the key changes (a
/// rotation from the CLI while `serve` runs is picked up at the next signature).
#[derive(Default)]
pub struct Signer {
    cached: Mutex<Option<Arc<RsassaJwsSigner>>>,
}

impl Signer {
    fn current(&self, conn: &Connection) -> Result<Arc<RsassaJwsSigner>, KeyError> {
        let (kid, private_jwk): (String, String) = conn
            .prepare_cached(
                "SELECT kid, private_jwk FROM signing_keys WHERE retired_at IS NULL \
                 ORDER BY created_at DESC, rowid DESC LIMIT 1",
            )
            .map_err(StoreError::from)?
            .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => KeyError::NoActiveKey,
                other => KeyError::Store(other.into()),
            })?;
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(signer) = cached.as_ref()
            && josekit::jws::JwsSigner::key_id(signer.as_ref()) == Some(kid.as_str())
        {
            return Ok(signer.clone());
        }
        let jwk = Jwk::from_bytes(private_jwk.as_bytes())?;
        let signer = Arc::new(RS256.signer_from_jwk(&jwk)?);
        *cached = Some(signer.clone());
        Ok(signer)
    }

    /// A compact JWS over `claims`, with `typ: JWT` and the key's `kid` in the header.
    pub fn sign_jwt(&self, conn: &Connection, claims: &Value) -> Result<String, KeyError> {
        let signer = self.current(conn)?;
        let mut header = JwsHeader::new();
        header.set_token_type("JWT");
        let payload = serde_json::to_vec(claims).map_err(|_| KeyError::BadSignature)?;
        Ok(josekit::jws::serialize_compact(
            &payload,
            &header,
            signer.as_ref(),
        )?)
    }
}

/// Checks a JWT we signed (any published key) and returns its claims, ignoring expiry:
/// used for `id_token_hint`, which may legitimately be expired.
pub fn verify_ours(keys: &[&StoredKey], jwt: &str) -> Result<Value, KeyError> {
    let header = josekit::jwt::decode_header(jwt).map_err(|_| KeyError::BadSignature)?;
    let kid = header
        .claim("kid")
        .and_then(Value::as_str)
        .ok_or(KeyError::BadSignature)?;
    let key = keys
        .iter()
        .find(|k| k.kid == kid)
        .ok_or(KeyError::BadSignature)?;
    let jwk = Jwk::from_bytes(key.public_jwk.as_bytes())?;
    let verifier: RsassaJwsVerifier = RS256.verifier_from_jwk(&jwk)?;
    let (payload, _) =
        josekit::jws::deserialize_compact(jwt, &verifier).map_err(|_| KeyError::BadSignature)?;
    serde_json::from_slice(&payload).map_err(|_| KeyError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_is_labelled_by_thumbprint() {
        let key = generate(1000).unwrap();
        let public: Value = serde_json::from_str(&key.public_jwk).unwrap();
        assert_eq!(public["kid"], key.kid.as_str());
        assert_eq!(public["use"], "sig");
        assert_eq!(public["alg"], "RS256");
        assert_eq!(public["kty"], "RSA");
        assert!(
            public.get("d").is_none(),
            "the public JWK holds no private part"
        );
        assert_eq!(key.kid.len(), 43);
    }

    #[test]
    fn retired_keys_stay_published_for_a_while() {
        let mut old = generate(0).unwrap();
        old.retired_at = Some(100);
        let new = generate(100).unwrap();
        let keys = vec![new, old];
        assert_eq!(published(&keys, 150, 100).len(), 2);
        assert_eq!(published(&keys, 200, 100).len(), 1);
    }
}
