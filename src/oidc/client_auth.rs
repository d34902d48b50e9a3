//! Client authentication at the token, revocation and introspection endpoints:
//! `client_secret_basic`, `client_secret_post`, and `none` for public clients.

use std::collections::HashSet;
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rusqlite::Connection;
use sha2::{Digest, Sha256};

use super::error::{ErrorCode, OAuthError};
use super::params::Params;
use crate::auth::rate_limit::RateLimiter;
use crate::clock::UnixTime;
use crate::secrets;
use crate::store::audit::{self, Event, Origin};
use crate::store::clients::{self, Client};

/// How many verified (client, secret, hash) triples the cache keeps before starting over.
const CACHE_LIMIT: usize = 4096;

/// Secret checks that need argon2, per address and minute. Clients that already verified
/// hit the cache and are never counted; guessing a secret is.
const HASHINGS_PER_MINUTE: u32 = 20;

/// Remembers secrets that verified, so the token endpoint pays argon2 once per secret and
/// process rather than on every call. Keys are SHA-256 digests of client id, presented
/// secret and stored hash together: a rotated secret misses, and nothing secret is kept.
///
/// argon2 is slow and takes 19 MiB on purpose, which makes unauthenticated requests with
/// made-up secrets a way to exhaust the machine: they are limited per address and hashed one
/// at a time.
pub struct SecretCache {
    verified: Mutex<HashSet<[u8; 32]>>,
    hashing: Mutex<()>,
    hashings: RateLimiter,
}

impl Default for SecretCache {
    fn default() -> Self {
        SecretCache {
            verified: Mutex::default(),
            hashing: Mutex::default(),
            hashings: RateLimiter::new(HASHINGS_PER_MINUTE, 60),
        }
    }
}

/// Why a presented secret was not accepted.
enum Verdict {
    Valid,
    Invalid,
    TooManyAttempts,
}

impl SecretCache {
    fn key(client: &Client, secret: &str, stored: &str) -> [u8; 32] {
        let mut hasher = Sha256::new();
        for part in [client.client_id.as_str(), secret, stored] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part.as_bytes());
        }
        hasher.finalize().into()
    }

    fn verify(
        &self,
        client: &Client,
        secret: &str,
        stored: &str,
        origin: &Origin,
        now: UnixTime,
    ) -> Verdict {
        let key = Self::key(client, secret, stored);
        if self.lock().contains(&key) {
            return Verdict::Valid;
        }
        let address = origin.ip.as_deref().unwrap_or_default();
        if !self.hashings.allow(address, now) {
            return Verdict::TooManyAttempts;
        }
        let valid = {
            let _one_at_a_time = self.hashing.lock().unwrap_or_else(|e| e.into_inner());
            secrets::verify_secret(secret, stored).unwrap_or(false)
        };
        if !valid {
            return Verdict::Invalid;
        }
        let mut verified = self.lock();
        if verified.len() >= CACHE_LIMIT {
            verified.clear();
        }
        verified.insert(key);
        Verdict::Valid
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<[u8; 32]>> {
        self.verified.lock().unwrap_or_else(|e| e.into_inner())
    }
}

const TOO_MANY: &str = "too many client authentication attempts from this address; wait a minute";

/// Credentials as the request presented them.
#[derive(Debug, PartialEq, Eq)]
struct Credentials {
    client_id: String,
    secret: Option<String>,
}

/// RFC 6749 §2.3.1: the Basic credentials are form-urlencoded before base64.
fn from_basic(header: &str) -> Result<Credentials, OAuthError> {
    let malformed = || OAuthError::invalid_client("malformed HTTP Basic credentials");
    let encoded = header.trim();
    let decoded = STANDARD.decode(encoded).map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    let unescape = |part: &str| {
        form_urlencoded::parse(format!("x={part}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Credentials {
        client_id: unescape(id),
        secret: Some(unescape(secret)),
    })
}

fn presented(authorization: Option<&str>, params: &Params) -> Result<Credentials, OAuthError> {
    let basic = authorization
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, value)| from_basic(value))
        .transpose()?;
    match basic {
        Some(credentials) => {
            if params.get("client_secret").is_some() {
                return Err(OAuthError::invalid_request(
                    "use one client authentication method, not both Basic and client_secret",
                ));
            }
            if params
                .get("client_id")
                .is_some_and(|id| id != credentials.client_id)
            {
                return Err(OAuthError::invalid_request(
                    "client_id does not match the Basic credentials",
                ));
            }
            Ok(credentials)
        }
        None => {
            let client_id = params
                .get("client_id")
                .ok_or_else(|| OAuthError::invalid_client("client authentication is required"))?;
            Ok(Credentials {
                client_id: client_id.to_string(),
                secret: params.get("client_secret").map(str::to_string),
            })
        }
    }
}

/// Authenticates the calling client. Failures are audit-logged: a flood of them is worth an
/// operator's attention.
pub fn authenticate(
    conn: &Connection,
    cache: &SecretCache,
    authorization: Option<&str>,
    params: &Params,
    origin: &Origin,
    now: UnixTime,
) -> Result<Client, OAuthError> {
    let credentials = presented(authorization, params)?;
    let client = clients::by_id(conn, &credentials.client_id)?;
    let outcome = match (&client, &credentials.secret) {
        (None, _) => Err("unknown client"),
        (Some(client), None) if client.public => Ok(()),
        (Some(client), Some(_)) if client.public => Err("a public client has no secret"),
        (Some(_), None) => Err("client authentication is required"),
        (Some(client), Some(secret)) => match &client.secret_hash {
            Some(stored) => match cache.verify(client, secret, stored, origin, now) {
                Verdict::Valid => Ok(()),
                Verdict::Invalid => Err("client authentication failed"),
                Verdict::TooManyAttempts => Err(TOO_MANY),
            },
            None => Err("client authentication failed"),
        },
    };
    match (outcome, client) {
        (Ok(()), Some(client)) => Ok(client),
        (failure, _) => {
            let reason = failure.err().unwrap_or("client authentication failed");
            audit::record(
                conn,
                &Event::new("client.auth_failed")
                    .client(&credentials.client_id)
                    .detail(reason),
                origin,
                now,
            )?;
            if reason == TOO_MANY {
                return Err(OAuthError::new(ErrorCode::SlowDown, reason));
            }
            Err(OAuthError::invalid_client(reason))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_url_decoded() {
        let header = STANDARD.encode("my%20client:p%40ss%3Aword+x");
        assert_eq!(
            from_basic(&header).unwrap(),
            Credentials {
                client_id: "my client".into(),
                secret: Some("p@ss:word x".into())
            }
        );
        assert!(from_basic("!!!").is_err());
    }

    #[test]
    fn two_methods_at_once_are_refused() {
        let header = format!("Basic {}", STANDARD.encode("a:b"));
        let params = Params::parse("client_secret=b").unwrap();
        assert!(presented(Some(&header), &params).is_err());
    }
}
