//! Client authentication at the token, revocation and introspection endpoints:
//! `client_secret_basic`, `client_secret_post`, and `none` for public clients.

use std::collections::HashSet;
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use super::error::{ErrorCode, OAuthError};
use super::params::Params;
use crate::clock::UnixTime;
use crate::limits::{Address, RateLimiter, Retry};
use crate::names::ClientId;
use crate::secrets;
use crate::store::Store;
use crate::store::audit::{self, Event, EventKind, Origin, Repeats};
use crate::store::clients::{self, Client};

/// How many verified (client, secret, hash) triples the cache keeps before starting over.
const CACHE_LIMIT: usize = 4096;

/// Remembers secrets that verified, so the token endpoint pays argon2 once per secret and
/// process rather than on every call. Keys are SHA-256 digests of client id, presented
/// secret and stored hash together: a rotated secret misses, and nothing secret is kept.
///
/// argon2 is slow and takes 19 MiB on purpose, which makes unauthenticated requests with
/// made-up secrets a way to exhaust the machine: they are limited per address and client,
/// and hashed one at a time.
pub struct SecretCache {
    verified: Mutex<HashSet<[u8; 32]>>,
    hashing: Mutex<()>,
    hashings: RateLimiter,
}

/// Why a presented secret was not accepted.
enum Verdict {
    Valid,
    Invalid,
    TooManyAttempts(Retry),
    /// The stored hash is not one: our fault, never the client's.
    Unverifiable(secrets::SecretHashError),
}

impl SecretCache {
    /// A cache whose argon2 checks are limited to `per_minute` per address and client.
    pub fn new(per_minute: u32) -> SecretCache {
        SecretCache {
            verified: Mutex::default(),
            hashing: Mutex::default(),
            hashings: RateLimiter::new(per_minute, 60),
        }
    }

    /// How many secret checks the per-address limit refused since the start.
    pub fn refused(&self) -> u64 {
        self.hashings.refused()
    }

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
        if self.verified_before(client, secret, stored) {
            return Verdict::Valid;
        }
        let address = Address::of(origin.ip.as_deref());
        if let Err(retry) = self
            .hashings
            .check_for(&address, client.client_id.as_str(), now)
        {
            return Verdict::TooManyAttempts(retry);
        }
        let valid = {
            let _one_at_a_time = self.hashing.lock().unwrap_or_else(|e| e.into_inner());
            match secrets::verify_secret(secret, stored) {
                Ok(valid) => valid,
                Err(corrupt) => return Verdict::Unverifiable(corrupt),
            }
        };
        if !valid {
            return Verdict::Invalid;
        }
        let mut verified = self.lock();
        if verified.len() >= CACHE_LIMIT {
            verified.clear();
        }
        verified.insert(Self::key(client, secret, stored));
        Verdict::Valid
    }

    fn verified_before(&self, client: &Client, secret: &str, stored: &str) -> bool {
        self.lock().contains(&Self::key(client, secret, stored))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<[u8; 32]>> {
        self.verified.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Credentials as the request presented them, the client id already checked against the
/// client-id rule: nothing else is looked up or logged.
#[derive(Debug, PartialEq, Eq)]
struct Credentials {
    client_id: ClientId,
    secret: Option<String>,
}

/// A client id as the request sent it, before it is known to be well formed.
#[derive(Debug, PartialEq, Eq)]
struct Presented {
    client_id: String,
    secret: Option<String>,
}

/// RFC 6749 §2.3.1: the Basic credentials are form-urlencoded before base64.
fn from_basic(header: &str) -> Result<Presented, OAuthError> {
    let malformed = || OAuthError::invalid_client("malformed HTTP Basic credentials");
    let encoded = header.trim();
    let decoded = STANDARD.decode(encoded).map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    // Form decoding: `+` and `%XX`; a raw `&` stays itself rather than cutting the value.
    let unescape = |part: &str| {
        form_urlencoded::parse(format!("x={}", part.replace('&', "%26")).as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Presented {
        client_id: unescape(id),
        secret: Some(unescape(secret)),
    })
}

fn presented(authorization: Option<&str>, params: &Params) -> Result<Presented, OAuthError> {
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
            Ok(Presented {
                client_id: client_id.to_string(),
                secret: params.get("client_secret").map(str::to_string),
            })
        }
    }
}

/// The request's credentials, with a client id that follows the client-id rule.
fn credentials(authorization: Option<&str>, params: &Params) -> Result<Credentials, OAuthError> {
    let presented = presented(authorization, params)?;
    let client_id = ClientId::parse(&presented.client_id)
        .map_err(|_| OAuthError::invalid_client("malformed client_id"))?;
    Ok(Credentials {
        client_id,
        secret: presented.secret,
    })
}

/// What the token, revocation and introspection endpoints share to authenticate clients.
pub struct ClientAuth<'a> {
    pub store: &'a Store,
    pub secrets: &'a SecretCache,
    pub failures: &'a Repeats,
}

/// A request's client, checked as far as it can be without argon2.
pub enum Identified {
    /// Authenticated: a public client, or a secret this process verified before.
    Client(Client),
    /// A confidential client presenting a secret this process has not verified yet.
    Unverified(Unverified),
}

/// A client whose presented secret still needs argon2, which is slow on purpose: verify it
/// off the async workers.
pub struct Unverified {
    client: Client,
    client_id: ClientId,
    secret: String,
    origin: Origin,
}

impl Unverified {
    /// Checks the secret against the stored hash (once per secret and process).
    pub fn verify(self, auth: &ClientAuth, now: UnixTime) -> Result<Client, OAuthError> {
        let Unverified {
            client,
            client_id,
            secret,
            origin,
        } = self;
        let failure = match &client.secret_hash {
            None => Failure::Refused("client authentication failed"),
            Some(stored) => match auth.secrets.verify(&client, &secret, stored, &origin, now) {
                Verdict::Valid => return Ok(accepted(client)),
                Verdict::Invalid => Failure::Refused("client authentication failed"),
                Verdict::TooManyAttempts(retry) => Failure::TooMany(retry),
                Verdict::Unverifiable(corrupt) => {
                    return Err(OAuthError::server_error(&format!(
                        "client {}: its stored secret hash cannot be checked: {corrupt}",
                        client_id.as_str()
                    )));
                }
            },
        };
        refuse(auth, &client_id, failure, &origin, now)
    }
}

/// Authenticates the calling client, running argon2 here when its secret needs it.
pub fn authenticate(
    auth: &ClientAuth,
    authorization: Option<&str>,
    params: &Params,
    origin: &Origin,
    now: UnixTime,
) -> Result<Client, OAuthError> {
    match identify(auth, authorization, params, origin, now)? {
        Identified::Client(client) => Ok(client),
        Identified::Unverified(unverified) => unverified.verify(auth, now),
    }
}

/// Checks the calling client's credentials as far as that needs no argon2. Failures are
/// audit-logged (repeats counted, not written again): a flood of them is worth an operator's
/// attention, but must not fill the disk.
pub fn identify(
    auth: &ClientAuth,
    authorization: Option<&str>,
    params: &Params,
    origin: &Origin,
    now: UnixTime,
) -> Result<Identified, OAuthError> {
    let credentials = match credentials(authorization, params) {
        Ok(credentials) => credentials,
        Err(error) => {
            if error.code == ErrorCode::InvalidClient {
                log_failure(auth, None, &error.description, origin, now)?;
            }
            return Err(error);
        }
    };
    let client = auth
        .store
        .read(|conn| clients::by_id(conn, &credentials.client_id))?;
    let Some(client) = client else {
        return refuse(
            auth,
            &credentials.client_id,
            Failure::Refused("unknown client"),
            origin,
            now,
        );
    };
    match check_secret(auth, &client, credentials.secret) {
        Ok(Checked::Accepted) => Ok(Identified::Client(accepted(client))),
        Ok(Checked::NeedsHashing(secret)) => Ok(Identified::Unverified(Unverified {
            client,
            client_id: credentials.client_id,
            secret,
            origin: origin.clone(),
        })),
        Err(failure) => refuse(auth, &credentials.client_id, failure, origin, now),
    }
}

fn accepted(client: Client) -> Client {
    crate::observe::note_client(&client.client_id);
    client
}

const TOO_MANY: &str = "too many client authentication attempts from this address; wait a minute";

/// Why a known client was not authenticated.
enum Failure {
    Refused(&'static str),
    TooMany(Retry),
}

/// Answers a failed authentication, after logging it.
fn refuse<T>(
    auth: &ClientAuth,
    client_id: &ClientId,
    failure: Failure,
    origin: &Origin,
    now: UnixTime,
) -> Result<T, OAuthError> {
    let error = match failure {
        Failure::Refused(reason) => OAuthError::invalid_client(reason),
        Failure::TooMany(retry) => OAuthError::slow_down(TOO_MANY, retry),
    };
    log_failure(auth, Some(client_id), &error.description, origin, now)?;
    Err(error)
}

/// How far a presented secret was checked without argon2.
enum Checked {
    Accepted,
    /// The secret, not verified by this process before.
    NeedsHashing(String),
}

/// Public clients present no secret; confidential ones present theirs.
fn check_secret(
    auth: &ClientAuth,
    client: &Client,
    secret: Option<String>,
) -> Result<Checked, Failure> {
    match (client.public, secret, &client.secret_hash) {
        (true, None, _) => Ok(Checked::Accepted),
        (true, Some(_), _) => Err(Failure::Refused("a public client has no secret")),
        (false, None, _) => Err(Failure::Refused("client authentication is required")),
        (false, Some(secret), Some(stored)) => {
            Ok(if auth.secrets.verified_before(client, &secret, stored) {
                Checked::Accepted
            } else {
                Checked::NeedsHashing(secret)
            })
        }
        (false, Some(_), None) => Err(Failure::Refused("client authentication failed")),
    }
}

/// Logs a failed authentication; `client_id` only when it is well formed.
fn log_failure(
    auth: &ClientAuth,
    client_id: Option<&ClientId>,
    reason: &str,
    origin: &Origin,
    now: UnixTime,
) -> Result<(), OAuthError> {
    let mut event = Event::new(EventKind::ClientAuthFailed).detail(reason);
    event.client_id = client_id.map(ClientId::as_str);
    auth.store
        .write(|tx| audit::record_failure(tx, auth.failures, &event, origin, now))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_url_decoded() {
        let header = STANDARD.encode("my%20client:p%40ss%3Aword+x");
        assert_eq!(
            from_basic(&header).unwrap(),
            Presented {
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

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..Default::default()
        })]

        #[test]
        fn basic_credentials_round_trip(id in ".*", secret in ".*") {
            let encode = |part: &str| {
                form_urlencoded::byte_serialize(part.as_bytes()).collect::<String>()
            };
            let header = STANDARD.encode(format!("{}:{}", encode(&id), encode(&secret)));
            let parsed = from_basic(&header).unwrap();
            proptest::prop_assert_eq!(parsed.client_id, id);
            proptest::prop_assert_eq!(parsed.secret, Some(secret));
        }

        #[test]
        fn any_authorization_header_is_parsed_or_refused_without_panic(
            header in ".*",
            raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
        ) {
            let _ = from_basic(&header);
            let _ = from_basic(&STANDARD.encode(&raw));
            let params = Params::default();
            let _ = credentials(Some(&format!("Basic {header}")), &params);
        }

        #[test]
        fn malformed_client_ids_are_refused_before_any_lookup(id in ".*") {
            let header = format!("Basic {}", STANDARD.encode(format!("{id}:secret")));
            let accepted = credentials(Some(&header), &Params::default()).is_ok();
            let well_formed = !id.is_empty()
                && id.len() <= 64
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            let decoded_same = !id.contains(['%', '+']);
            proptest::prop_assume!(!id.contains(':'));
            if decoded_same {
                proptest::prop_assert_eq!(accepted, well_formed);
            }
        }
    }
}
