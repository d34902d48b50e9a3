//! Random tokens, hashing at rest, and client-secret hashing.
//!
//! Bearer values (session ids, link tokens, codes, access and refresh tokens) carry 256 bits
//! of randomness and are stored only as SHA-256 hashes: a stolen database yields nothing
//! usable. Client secrets are argon2id PHC strings, compared in constant time.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A fresh random token: 32 bytes (256 bits), base64url without padding (43 characters).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The at-rest form of a bearer token: lowercase hex SHA-256.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

pub fn sha256_base64url(input: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(input))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Constant-time equality for secrets that are compared directly (PKCE, CSRF tokens).
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[derive(Debug, thiserror::Error)]
pub enum SecretHashError {
    #[error("not an argon2 PHC string (expected `$argon2id$v=19$...`)")]
    NotPhc,
    #[error("hashing failed: {0}")]
    Hashing(String),
}

/// Hashes a client secret to an argon2id PHC string with the crate's default parameters.
pub fn hash_secret(secret: &str) -> Result<String, SecretHashError> {
    Argon2::default()
        .hash_password(secret.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| SecretHashError::Hashing(e.to_string()))
}

/// True when `phc` parses as an argon2 PHC string.
pub fn is_phc(phc: &str) -> bool {
    phc.starts_with("$argon2") && PasswordHash::new(phc).is_ok()
}

/// Verifies `secret` against an argon2 PHC string; the comparison inside is constant-time.
pub fn verify_secret(secret: &str, phc: &str) -> Result<bool, SecretHashError> {
    let parsed = PasswordHash::new(phc).map_err(|_| SecretHashError::NotPhc)?;
    Ok(Argon2::default()
        .verify_password(secret.as_bytes(), &parsed)
        .is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_and_distinct() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert_ne!(token_hash(&a), token_hash(&b));
        assert_eq!(token_hash(&a).len(), 64);
    }

    #[test]
    fn secret_hash_round_trip() {
        let phc = hash_secret("s3cret").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$"));
        assert!(is_phc(&phc));
        assert!(verify_secret("s3cret", &phc).unwrap());
        assert!(!verify_secret("s3cret!", &phc).unwrap());
        assert!(verify_secret("x", "plain").is_err());
    }
}
