//! Time-based rules, tested at chosen instants through the `now` every rule takes: the last
//! second a thing is good, and the first second it is not. No sleeps; a real SQLite store.

use latchkey::auth::login_link::{self, LinkError};
use latchkey::auth::passkeys::{PasskeyError, Passkeys};
use latchkey::auth::{session, setup};
use latchkey::clock::UnixTime;
use latchkey::config::{Issuer, SessionPolicy};
use latchkey::directory::clients::{self, ClientSettings, NewClient};
use latchkey::directory::users::{self, NewUser};
use latchkey::keys::{self, Signer};
use latchkey::names::{ClientId, Username};
use latchkey::oidc::authorize::{self, AuthRequest, Outcome, Progress};
use latchkey::oidc::client_auth::{self, ClientAuth, SecretCache};
use latchkey::oidc::error::{ErrorCode, OAuthError};
use latchkey::oidc::params::Params;
use latchkey::oidc::scope::Scopes;
use latchkey::oidc::token::{self, TokenResponse};
use latchkey::oidc::{CODE_TTL_SECS, userinfo};
use latchkey::store::Store;
use latchkey::store::audit::{Origin, Repeats};
use latchkey::store::clients::Client;
use latchkey::store::sessions::Session;
use latchkey::store::users::User;
use serde_json::json;
use url::Url;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs::prelude::CreationChallengeResponse;

use crate::helpers::{Pkce, pkce, query};

/// Any fixed instant will do; the rules only compare.
const T0: UnixTime = 1_800_000_000;
const ISSUER: &str = "http://localhost:8080";
const REDIRECT: &str = "https://app.example.com/cb";
const DAY: i64 = 86_400;

/// A store with alice, a public client `app` and a signing key.
struct World {
    store: Store,
    issuer: Issuer,
    alice: User,
    client: Client,
    signer: Signer,
    secrets: SecretCache,
    failures: Repeats,
    _dir: tempfile::TempDir,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (alice, client) = store
        .write(|tx| {
            keys::ensure_active(tx, T0).unwrap();
            let alice = users::add(
                tx,
                &NewUser {
                    id: None,
                    username: Username::parse("alice").unwrap(),
                    display_name: None,
                    email: None,
                    is_admin: false,
                    reuse_username: false,
                },
                &Origin::cli(),
                T0,
            )?;
            let client = clients::add(
                tx,
                &NewClient {
                    client_id: ClientId::parse("app").unwrap(),
                    settings: ClientSettings {
                        redirect_uris: vec![REDIRECT.into()],
                        public: true,
                        ..ClientSettings::default()
                    },
                },
                None,
                &Origin::cli(),
                T0,
            )?;
            Ok::<_, latchkey::directory::DirectoryError>((alice, client))
        })
        .unwrap();
    World {
        store,
        issuer: Issuer::parse(ISSUER).unwrap(),
        alice,
        client,
        signer: Signer::default(),
        secrets: SecretCache::new(20),
        failures: Repeats::default(),
        _dir: dir,
    }
}

impl World {
    /// Signs alice in at `at`; returns the session cookie's value.
    fn sign_in(&self, policy: &SessionPolicy, at: UnixTime) -> String {
        self.store
            .write(|tx| session::start(tx, policy, &self.alice, &["hwk"], &Origin::default(), at))
            .unwrap()
            .secret
    }

    /// The session behind `cookie` at `at`, as a request would see it.
    fn session(
        &self,
        cookie: &str,
        policy: &SessionPolicy,
        at: UnixTime,
    ) -> Option<(Session, User)> {
        self.store
            .write(|tx| session::current(tx, cookie, policy, at))
            .unwrap()
    }

    /// A code-flow request for `app` with PKCE and `offline_access`.
    fn request(&self, pkce: &Pkce, max_age: Option<i64>) -> AuthRequest {
        AuthRequest {
            client: self.client.clone(),
            redirect_uri: REDIRECT.into(),
            state: None,
            scopes: Scopes::from_request("openid offline_access"),
            nonce: None,
            code_challenge: Some(pkce.challenge.clone()),
            prompt: Default::default(),
            max_age,
        }
    }

    /// What `/authorize` decides at `at` for a person who signed in at `signed_in_at`.
    fn decide(&self, request: &AuthRequest, signed_in_at: UnixTime, at: UnixTime) -> Outcome {
        let policy = SessionPolicy::default();
        let cookie = self.sign_in(&policy, signed_in_at);
        let signed_in = self.session(&cookie, &policy, at).expect("signed in");
        self.store
            .write(|tx| {
                authorize::decide(
                    tx,
                    &self.issuer,
                    request,
                    Some(&signed_in),
                    Progress::NEW,
                    &Origin::default(),
                    at,
                )
            })
            .unwrap()
    }

    /// An authorization code issued at `at`, and its PKCE verifier.
    fn code(&self, at: UnixTime) -> (String, String) {
        let pkce = pkce();
        let Outcome::Redirect(to) = self.decide(&self.request(&pkce, None), at, at) else {
            panic!("a signed-in person gets a code");
        };
        (query(&to).remove("code").unwrap(), pkce.verifier)
    }

    /// A token request by `app` at `at`.
    fn token(&self, form: &[(&str, &str)], at: UnixTime) -> Result<TokenResponse, OAuthError> {
        let mut form = form.to_vec();
        form.push(("client_id", "app"));
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let params = Params::parse(&body).unwrap();
        let origin = Origin::default();
        let grant_type = token::GrantType::of(&params)?;
        let auth = ClientAuth {
            store: &self.store,
            secrets: &self.secrets,
            failures: &self.failures,
        };
        let client = client_auth::authenticate(&auth, None, &params, &origin, at)?;
        let issued = self
            .store
            .write(|tx| token::redeem(tx, &self.issuer, &client, grant_type, &params, &origin, at))?
            .issued()?;
        issued.signed(|alg, claims| {
            self.store
                .read(|conn| self.signer.sign_jwt(conn, alg, claims))
        })
    }

    fn exchange(
        &self,
        code: &str,
        verifier: &str,
        at: UnixTime,
    ) -> Result<TokenResponse, OAuthError> {
        self.token(
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", verifier),
            ],
            at,
        )
    }

    /// Tokens from a code issued and exchanged at `at`.
    fn tokens(&self, at: UnixTime) -> TokenResponse {
        let (code, verifier) = self.code(at);
        self.exchange(&code, &verifier, at).unwrap()
    }

    fn refresh(&self, refresh_token: &str, at: UnixTime) -> Result<TokenResponse, OAuthError> {
        self.token(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
            at,
        )
    }

    fn userinfo(&self, access_token: &str, at: UnixTime) -> Result<(), OAuthError> {
        self.store
            .read(|conn| userinfo::claims_for(conn, access_token, at))
            .map(drop)
    }
}

/// A refusal because something expired: its error code.
fn expired(result: Result<TokenResponse, OAuthError>) -> ErrorCode {
    let error = result.expect_err("refused");
    assert!(error.description.contains("expired"), "{error:?}");
    error.code
}

#[test]
fn a_code_is_good_for_60_seconds() {
    let world = world();
    let (code, verifier) = world.code(T0);
    assert!(
        world
            .exchange(&code, &verifier, T0 + CODE_TTL_SECS - 1)
            .is_ok()
    );
    let (code, verifier) = world.code(T0);
    assert_eq!(
        expired(world.exchange(&code, &verifier, T0 + CODE_TTL_SECS)),
        ErrorCode::InvalidGrant
    );
}

#[test]
fn an_access_token_lives_an_hour_and_a_refresh_token_30_days() {
    let world = world();
    let tokens = world.tokens(T0);
    assert!(world.userinfo(&tokens.access_token, T0 + 3600 - 1).is_ok());
    assert_eq!(
        world
            .userinfo(&tokens.access_token, T0 + 3600)
            .unwrap_err()
            .code,
        ErrorCode::InvalidToken
    );

    let refresh = tokens.refresh_token.unwrap();
    assert!(world.refresh(&refresh, T0 + 30 * DAY - 1).is_ok());
    let refresh = world.tokens(T0).refresh_token.unwrap();
    assert_eq!(
        expired(world.refresh(&refresh, T0 + 30 * DAY)),
        ErrorCode::InvalidGrant
    );
}

#[test]
fn a_session_ends_at_its_lifetime_however_much_it_is_used() {
    let world = world();
    let policy = SessionPolicy {
        lifetime_secs: 1000,
        idle_secs: 600,
    };
    let cookie = world.sign_in(&policy, T0);
    for at in [T0 + 500, T0 + 999] {
        assert!(
            world.session(&cookie, &policy, at).is_some(),
            "at +{}",
            at - T0
        );
    }
    assert!(world.session(&cookie, &policy, T0 + 1000).is_none());
}

#[test]
fn a_session_ends_after_its_idle_timeout_counted_from_its_last_use() {
    let world = world();
    let policy = SessionPolicy {
        lifetime_secs: 10 * DAY,
        idle_secs: 600,
    };
    // The last use is recorded at most once a minute: the rule allows that minute.
    let limit = 600 + 60;
    let used = world.sign_in(&policy, T0);
    assert!(world.session(&used, &policy, T0 + limit).is_some());
    let unused = world.sign_in(&policy, T0);
    assert!(world.session(&unused, &policy, T0 + limit + 1).is_none());
    // Each use restarts the count: long after the sign-in, still good a limit after the last.
    assert!(world.session(&used, &policy, T0 + 2 * limit).is_some());
    assert!(world.session(&used, &policy, T0 + 3 * limit + 1).is_none());
}

#[test]
fn max_age_asks_for_a_new_sign_in_once_the_sign_in_is_older() {
    let world = world();
    let request = world.request(&pkce(), Some(300));
    assert!(matches!(
        world.decide(&request, T0, T0 + 300),
        Outcome::Redirect(_)
    ));
    assert_eq!(world.decide(&request, T0, T0 + 301), Outcome::SignIn);
}

#[test]
fn a_login_link_works_until_its_lifetime_ends() {
    let world = world();
    let ttl = login_link::DEFAULT_TTL_SECS;
    let redeem = |at: UnixTime| {
        world
            .store
            .write(|tx| {
                let alice = Username::parse("alice").unwrap();
                let (_, token) = login_link::issue(tx, &alice, ttl, &Origin::cli(), T0)?;
                Ok::<_, latchkey::directory::DirectoryError>(login_link::redeem(
                    tx,
                    &Repeats::default(),
                    &token,
                    &Origin::default(),
                    at,
                )?)
            })
            .unwrap()
            .map(|user| user.username.to_string())
    };
    assert_eq!(redeem(T0 + ttl - 1), Ok("alice".to_string()));
    assert_eq!(redeem(T0 + ttl), Err(LinkError::Expired));
}

#[test]
fn the_setup_link_works_for_24_hours() {
    let world = world();
    let token = world
        .store
        .write(|tx| setup::issue_if_needed(tx, T0))
        .unwrap()
        .expect("no administrator yet");
    let check = |at: UnixTime| {
        world
            .store
            .read(|conn| setup::check(conn, &token, at))
            .is_ok()
    };
    assert_eq!(setup::LINK_TTL_SECS, DAY);
    assert!(check(T0 + DAY - 1));
    assert!(!check(T0 + DAY));
}

/// A software authenticator that claims user verification, as a real one after a PIN.
fn authenticator() -> SoftPasskey {
    SoftPasskey::new(true)
}

/// Adds a passkey for alice in a ceremony started at `T0` and finished at `at`.
fn register(
    world: &World,
    passkeys: &Passkeys,
    key: &mut SoftPasskey,
    at: UnixTime,
) -> Result<(), PasskeyError> {
    let (ceremony, options) = world
        .store
        .write(|tx| passkeys.start_registration(tx, &world.alice, T0))
        .unwrap();
    let mut options = json!({ "publicKey": options["publicKey"] });
    // The software authenticator cannot keep discoverable credentials.
    options["publicKey"]["authenticatorSelection"]["requireResidentKey"] = json!(false);
    let options: CreationChallengeResponse = serde_json::from_value(options).unwrap();
    let credential = key
        .do_registration(Url::parse(ISSUER).unwrap(), options)
        .unwrap();
    world
        .store
        .write(|tx| {
            passkeys.finish_registration(
                tx,
                &ceremony,
                &world.alice,
                &credential,
                &Origin::default(),
                at,
            )
        })
        .map(drop)
}

/// Signs alice in with `key` in a ceremony started at `T0` and finished at `at`.
fn authenticate(
    world: &World,
    passkeys: &Passkeys,
    key: &mut SoftPasskey,
    at: UnixTime,
) -> Result<(), PasskeyError> {
    let (ceremony, options) = world
        .store
        .write(|tx| passkeys.start_authentication(tx, Some("alice"), T0))
        .unwrap();
    let credential = key
        .do_authentication(Url::parse(ISSUER).unwrap(), options)
        .unwrap();
    world
        .store
        .write(|tx| {
            passkeys.finish_authentication(
                tx,
                &Repeats::default(),
                &ceremony,
                &credential,
                &Origin::default(),
                at,
            )
        })
        .map(drop)
}

#[test]
fn a_passkey_ceremony_lives_5_minutes() {
    let world = world();
    let passkeys = Passkeys::new(&world.issuer).unwrap();
    let mut key = authenticator();
    let ttl = latchkey::auth::passkeys::CEREMONY_TTL_SECS;
    assert_eq!(ttl, 300);
    assert!(matches!(
        register(&world, &passkeys, &mut authenticator(), T0 + ttl),
        Err(PasskeyError::CeremonyExpired)
    ));
    register(&world, &passkeys, &mut key, T0 + ttl - 1).unwrap();

    assert!(matches!(
        authenticate(&world, &passkeys, &mut key, T0 + ttl),
        Err(PasskeyError::CeremonyExpired)
    ));
    authenticate(&world, &passkeys, &mut key, T0 + ttl - 1).unwrap();
}
