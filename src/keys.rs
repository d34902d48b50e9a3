//! Signing keys: one active key per algorithm (RSA-2048 for RS256, P-256 for ES256, Ed25519
//! for EdDSA), each identified by its RFC 7638 thumbprint and published in the JWKS while any
//! token it signed may still be checked.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::store::Db;
use josekit::jwk::alg::ed::EdCurve;
use josekit::jwk::{Jwk, KeyPair};
use josekit::jws::{ES256, EdDSA, JwsHeader, JwsSigner, JwsVerifier, RS256};
use serde_json::{Value, json};

use crate::clock::UnixTime;
use crate::secrets::sha256_base64url;
use crate::store::signing_keys::{self, SigningAlg, StoredKey};
use crate::store::{StoreError, StoreResult};

const RSA_KEY_BITS: u32 = 2048;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("signing key: {0}")]
    Jose(#[from] josekit::JoseError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no active {0} signing key (run `latchkey keys rotate`)")]
    NoActiveKey(SigningAlg),
    #[error("the token is not a JWT signed by one of our keys")]
    BadSignature,
}

/// RFC 7638 thumbprint of a public key: the members its key type requires, in lexicographic
/// order, without whitespace.
fn thumbprint(public: &Jwk) -> Result<String, KeyError> {
    let required: &[&str] = match public.key_type() {
        "RSA" => &["e", "kty", "n"],
        "EC" => &["crv", "kty", "x", "y"],
        "OKP" => &["crv", "kty", "x"],
        _ => return Err(KeyError::BadSignature),
    };
    let members = required
        .iter()
        .map(|name| {
            let value = public
                .parameter(name)
                .and_then(Value::as_str)
                .ok_or(KeyError::BadSignature)?;
            Ok(format!("{}:{}", json!(name), json!(value)))
        })
        .collect::<Result<Vec<_>, KeyError>>()?;
    Ok(sha256_base64url(
        format!("{{{}}}", members.join(",")).as_bytes(),
    ))
}

fn new_key_pair(alg: SigningAlg) -> Result<Box<dyn KeyPair>, KeyError> {
    Ok(match alg {
        SigningAlg::Rs256 => Box::new(RS256.generate_key_pair(RSA_KEY_BITS)?),
        SigningAlg::Es256 => Box::new(ES256.generate_key_pair()?),
        SigningAlg::EdDsa => Box::new(EdDSA.generate_key_pair(EdCurve::Ed25519)?),
    })
}

fn signer_for(alg: SigningAlg, private: &Jwk) -> Result<Box<dyn JwsSigner>, KeyError> {
    Ok(match alg {
        SigningAlg::Rs256 => Box::new(RS256.signer_from_jwk(private)?),
        SigningAlg::Es256 => Box::new(ES256.signer_from_jwk(private)?),
        SigningAlg::EdDsa => Box::new(EdDSA.signer_from_jwk(private)?),
    })
}

fn verifier_for(alg: SigningAlg, public: &Jwk) -> Result<Box<dyn JwsVerifier>, KeyError> {
    Ok(match alg {
        SigningAlg::Rs256 => Box::new(RS256.verifier_from_jwk(public)?),
        SigningAlg::Es256 => Box::new(ES256.verifier_from_jwk(public)?),
        SigningAlg::EdDsa => Box::new(EdDSA.verifier_from_jwk(public)?),
    })
}

/// Makes a new key for `alg`, labelled with its thumbprint as `kid`.
pub fn generate(alg: SigningAlg, now: UnixTime) -> Result<StoredKey, KeyError> {
    let pair = new_key_pair(alg)?;
    let mut public = pair.to_jwk_public_key();
    let mut private = pair.to_jwk_private_key();
    let kid = thumbprint(&public)?;
    for jwk in [&mut public, &mut private] {
        jwk.set_key_id(&kid);
        jwk.set_key_use("sig");
        jwk.set_algorithm(alg.as_str());
    }
    Ok(StoredKey {
        kid,
        alg,
        private_jwk: private.to_string(),
        public_jwk: public.to_string(),
        created_at: now,
        retired_at: None,
    })
}

/// Creates a key for each algorithm that has no active one (a new database, or one from
/// before ES256 and EdDSA); returns true when it made any.
pub fn ensure_active(conn: &Db, now: UnixTime) -> Result<bool, KeyError> {
    let mut created = false;
    for alg in SigningAlg::ALL {
        if signing_keys::active(conn, alg)?.is_none() {
            signing_keys::insert(conn, &generate(alg, now)?)?;
            created = true;
        }
    }
    Ok(created)
}

/// Replaces the active key of every algorithm; returns the new keys' ids. The retired keys
/// stay published for `keep_published` seconds, the longest a token they signed can live;
/// older retired keys are dropped.
pub fn rotate(conn: &Db, now: UnixTime, keep_published: i64) -> Result<Vec<String>, KeyError> {
    let fresh = SigningAlg::ALL
        .into_iter()
        .map(|alg| generate(alg, now))
        .collect::<Result<Vec<_>, _>>()?;
    signing_keys::delete_retired_before(conn, now - keep_published)?;
    signing_keys::retire_active(conn, now)?;
    for key in &fresh {
        signing_keys::insert(conn, key)?;
    }
    Ok(fresh.into_iter().map(|key| key.kid).collect())
}

/// Keys still worth publishing at `now`.
pub fn published(keys: &[StoredKey], now: UnixTime, keep_published: i64) -> Vec<&StoredKey> {
    keys.iter()
        .filter(|k| k.retired_at.is_none_or(|at| at + keep_published > now))
        .collect()
}

/// The JWKS document for the published keys: RS256 first (a relying party that takes the
/// first key finds the default one), each algorithm's newest key first.
pub fn jwks(keys: &[&StoredKey]) -> StoreResult<Value> {
    let mut ordered = keys.to_vec();
    ordered.sort_by_key(|k| k.alg);
    let keys = ordered
        .iter()
        .map(|k| crate::store::from_json::<Value>("signing_keys", &k.public_jwk))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json!({ "keys": keys }))
}

/// Signs with the newest active key of an algorithm, caching each parsed signer until its
/// key changes (a rotation from the CLI while `serve` runs is picked up at the next
/// signature).
#[derive(Default)]
pub struct Signer {
    cached: Mutex<HashMap<SigningAlg, Arc<dyn JwsSigner>>>,
}

impl Signer {
    fn current(&self, conn: &Db, alg: SigningAlg) -> Result<Arc<dyn JwsSigner>, KeyError> {
        let (kid, private_jwk) =
            signing_keys::active(conn, alg)?.ok_or(KeyError::NoActiveKey(alg))?;
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(signer) = cached.get(&alg)
            && signer.key_id() == Some(kid.as_str())
        {
            return Ok(signer.clone());
        }
        let signer: Arc<dyn JwsSigner> =
            signer_for(alg, &Jwk::from_bytes(private_jwk.as_bytes())?)?.into();
        cached.insert(alg, signer.clone());
        Ok(signer)
    }

    /// A compact JWS over `claims` signed with `alg`, with `typ: JWT` and the key's `kid` in
    /// the header.
    pub fn sign_jwt(&self, conn: &Db, alg: SigningAlg, claims: &Value) -> Result<String, KeyError> {
        let signer = self.current(conn, alg)?;
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

/// Checks a JWT we signed (any published key, with that key's algorithm) and returns its
/// claims, ignoring expiry: used for `id_token_hint`, which may legitimately be expired.
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
    let verifier = verifier_for(key.alg, &Jwk::from_bytes(key.public_jwk.as_bytes())?)?;
    // The verifier also insists that the header's `alg` is the key's.
    let (payload, _) = josekit::jws::deserialize_compact(jwt, verifier.as_ref())
        .map_err(|_| KeyError::BadSignature)?;
    serde_json::from_slice(&payload).map_err(|_| KeyError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_labelled_by_thumbprint() {
        for (alg, kty, crv) in [
            (SigningAlg::Rs256, "RSA", None),
            (SigningAlg::Es256, "EC", Some("P-256")),
            (SigningAlg::EdDsa, "OKP", Some("Ed25519")),
        ] {
            let key = generate(alg, 1000).unwrap();
            let public: Value = serde_json::from_str(&key.public_jwk).unwrap();
            assert_eq!(key.alg, alg);
            assert_eq!(public["kid"], key.kid.as_str());
            assert_eq!(public["use"], "sig");
            assert_eq!(public["alg"], alg.as_str());
            assert_eq!(public["kty"], kty);
            assert_eq!(public["crv"].as_str(), crv);
            assert!(
                public.get("d").is_none(),
                "the public JWK holds no private part"
            );
            assert_eq!(key.kid.len(), 43);
        }
    }

    #[test]
    fn an_okp_thumbprint_is_the_one_rfc_8037_gives() {
        let jwk = Jwk::from_bytes(
            br#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
        )
        .unwrap();
        assert_eq!(
            thumbprint(&jwk).unwrap(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn a_token_verifies_only_with_the_algorithm_of_its_key() {
        let key = generate(SigningAlg::Es256, 0).unwrap();
        let private = Jwk::from_bytes(key.private_jwk.as_bytes()).unwrap();
        let signer = signer_for(SigningAlg::Es256, &private).unwrap();
        let jwt =
            josekit::jws::serialize_compact(b"{}", &JwsHeader::new(), signer.as_ref()).unwrap();
        assert_eq!(verify_ours(&[&key], &jwt).unwrap(), json!({}));
        let mut mislabelled = key.clone();
        mislabelled.alg = SigningAlg::Rs256;
        assert!(verify_ours(&[&mislabelled], &jwt).is_err());
    }

    #[test]
    fn retired_keys_stay_published_for_a_while() {
        let mut old = generate(SigningAlg::EdDsa, 0).unwrap();
        old.retired_at = Some(100);
        let new = generate(SigningAlg::EdDsa, 100).unwrap();
        let keys = vec![new, old];
        assert_eq!(published(&keys, 150, 100).len(), 2);
        assert_eq!(published(&keys, 200, 100).len(), 1);
    }

    #[test]
    fn the_jwks_lists_rs256_first() {
        let keys: Vec<StoredKey> = [SigningAlg::EdDsa, SigningAlg::Rs256, SigningAlg::Es256]
            .into_iter()
            .map(|alg| generate(alg, 0).unwrap())
            .collect();
        let jwks = jwks(&keys.iter().collect::<Vec<_>>()).unwrap();
        let algs: Vec<&Value> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| &k["alg"])
            .collect();
        assert_eq!(algs, [&json!("RS256"), &json!("ES256"), &json!("EdDSA")]);
    }
}
