//! Passkey ceremonies (WebAuthn, through webauthn-rs): registration, sign-in with a
//! discoverable credential or for a named user, and the rules around them.
//!
//! Ceremony state stays server-side, single use, for a few minutes. A credential id is
//! registered once. Signature counters are checked by webauthn-rs; a regression is refused
//! and audit-logged.

use crate::store::Db;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use webauthn_rs::fake::{FakePasskeyDistribution, WebauthnFakeCredentialGenerator};
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, RequestChallengeResponse, Webauthn,
    WebauthnBuilder, WebauthnError,
};

use super::aaguid;
use crate::clock::UnixTime;
use crate::config::Issuer;
use crate::names::{UserId, Username};
use crate::secrets;
use crate::store::audit::{self, Event, EventKind, Origin, Repeats};
use crate::store::ceremonies::{self, Kind};
use crate::store::meta;
use crate::store::passkeys::{self, StoredPasskey};
use crate::store::users::{self, User};
use crate::store::{StoreError, from_json, to_json};

/// The `meta` entry holding the key that decoy credential ids are made with. It never
/// leaves the database: whoever knows it can tell decoys from real passkeys.
const DECOY_KEY: &str = "decoy_credential_key";

/// How long a started ceremony may take to finish.
pub const CEREMONY_TTL_SECS: i64 = 300;

#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    #[error("This attempt expired or was already used. Please try again.")]
    CeremonyExpired,
    #[error(
        "This passkey is not registered here. Use another one, or ask your administrator for a login link."
    )]
    UnknownCredential,
    #[error("This account is disabled. Ask your administrator.")]
    Disabled,
    #[error("This passkey is already registered.")]
    AlreadyRegistered,
    #[error("The passkey could not be verified ({0}). Please try again.")]
    Rejected(String),
    #[error(
        "This passkey's signature counter went backwards, so it may have been copied. It was \
         refused; ask your administrator."
    )]
    CounterRegression,
    #[error("Passkeys need the issuer to be a domain name (not an IP address): {0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for PasskeyError {
    fn from(e: rusqlite::Error) -> Self {
        PasskeyError::Store(e.into())
    }
}

fn rejected(error: WebauthnError) -> PasskeyError {
    match error {
        WebauthnError::CredentialPossibleCompromise => PasskeyError::CounterRegression,
        other => PasskeyError::Rejected(other.to_string()),
    }
}

/// What a ceremony remembers between start and finish.
#[derive(Serialize, Deserialize)]
enum CeremonyState {
    Register(PasskeyRegistration),
    Setup(Box<SetupState>),
    ForUser(PasskeyAuthentication),
    Discoverable(DiscoverableAuthentication),
    /// A sign-in for a name without passkeys: nothing can finish it.
    Decoy,
}

/// A first-run setup in progress: the future administrator and the link that allows it.
#[derive(Serialize, Deserialize)]
pub struct SetupState {
    registration: PasskeyRegistration,
    pub user_id: UserId,
    pub profile: SetupProfile,
    pub link_hash: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetupProfile {
    pub username: Username,
    pub display_name: String,
    pub email: Option<String>,
}

/// The relying party: built from the issuer, whose host is the RP ID.
pub struct Passkeys {
    webauthn: Webauthn,
}

impl Passkeys {
    pub fn new(issuer: &Issuer) -> Result<Passkeys, PasskeyError> {
        let unavailable = |e: WebauthnError| PasskeyError::Unavailable(e.to_string());
        if issuer.host().parse::<std::net::IpAddr>().is_ok() || issuer.host().starts_with('[') {
            return Err(PasskeyError::Unavailable(issuer.to_string()));
        }
        let origin = url::Url::parse(issuer.origin())
            .map_err(|e| PasskeyError::Unavailable(e.to_string()))?;
        let webauthn = WebauthnBuilder::new(issuer.host(), &origin)
            .map_err(unavailable)?
            .rp_name("Latchkey")
            .build()
            .map_err(unavailable)?;
        Ok(Passkeys { webauthn })
    }

    fn begin_registration(
        &self,
        conn: &Db,
        user_id: &UserId,
        username: &str,
        display_name: &str,
    ) -> Result<(Value, PasskeyRegistration), PasskeyError> {
        let exclude = passkeys::for_user(conn, user_id)?
            .into_iter()
            .filter_map(|p| URL_SAFE_NO_PAD.decode(p.credential_id).ok())
            .collect::<Vec<_>>();
        let display = if display_name.is_empty() {
            username
        } else {
            display_name
        };
        let (options, state) = self
            .webauthn
            .start_passkey_registration(user_id.uuid(), username, display, Some(exclude))
            .map_err(rejected)?;
        // webauthn-rs asks for a non-resident key; ours must be discoverable, so that sign-in
        // works without a username and from autofill.
        let mut options =
            serde_json::to_value(options).map_err(|e| PasskeyError::Rejected(e.to_string()))?;
        options["publicKey"]["authenticatorSelection"] = json!({
            "residentKey": "required",
            "requireResidentKey": true,
            "userVerification": "required",
        });
        Ok((options, state))
    }

    /// Starts adding a passkey for a signed-in user.
    pub fn start_registration(
        &self,
        conn: &Db,
        user: &User,
        now: UnixTime,
    ) -> Result<(String, Value), PasskeyError> {
        let (options, state) =
            self.begin_registration(conn, &user.id, user.username.as_str(), &user.display_name)?;
        let id = park(
            conn,
            Kind::Register,
            Some(&user.id),
            &CeremonyState::Register(state),
            now,
        )?;
        Ok((id, options))
    }

    /// Starts the first-run setup: the passkey of a user who does not exist yet.
    pub fn start_setup(
        &self,
        conn: &Db,
        profile: SetupProfile,
        link_hash: String,
        now: UnixTime,
    ) -> Result<(String, Value), PasskeyError> {
        let user_id = UserId::generate();
        let (options, registration) = self.begin_registration(
            conn,
            &user_id,
            profile.username.as_str(),
            &profile.display_name,
        )?;
        let state = CeremonyState::Setup(Box::new(SetupState {
            registration,
            user_id,
            profile,
            link_hash,
        }));
        let id = park(conn, Kind::Setup, None, &state, now)?;
        Ok((id, options))
    }

    /// Finishes adding a passkey for a signed-in user.
    pub fn finish_registration(
        &self,
        conn: &Db,
        ceremony: &str,
        user: &User,
        credential: &RegisterPublicKeyCredential,
        origin: &Origin,
        now: UnixTime,
    ) -> Result<StoredPasskey, PasskeyError> {
        let (owner, state) = take(conn, ceremony, Kind::Register, now)?;
        let CeremonyState::Register(state) = state else {
            return Err(PasskeyError::CeremonyExpired);
        };
        if owner.as_ref() != Some(&user.id) {
            return Err(PasskeyError::CeremonyExpired);
        }
        let passkey = self.verify_registration(credential, &state)?;
        save_new(conn, user, &passkey, credential, origin, now)
    }

    /// Takes a setup ceremony and checks its credential; the caller creates the user.
    pub fn finish_setup(
        &self,
        conn: &Db,
        ceremony: &str,
        credential: &RegisterPublicKeyCredential,
        now: UnixTime,
    ) -> Result<(SetupState, Passkey), PasskeyError> {
        let (_, state) = take(conn, ceremony, Kind::Setup, now)?;
        let CeremonyState::Setup(setup) = state else {
            return Err(PasskeyError::CeremonyExpired);
        };
        let passkey = self.verify_registration(credential, &setup.registration)?;
        Ok((*setup, passkey))
    }

    fn verify_registration(
        &self,
        credential: &RegisterPublicKeyCredential,
        state: &PasskeyRegistration,
    ) -> Result<Passkey, PasskeyError> {
        self.webauthn
            .finish_passkey_registration(credential, state)
            .map_err(rejected)
    }

    /// Starts a sign-in. Without a username, any discoverable credential may answer. With
    /// one, the browser is told which passkeys may: the person's own, or, for a name with
    /// no passkey or no person, decoys (see `decoy_options`), so that the answer never tells
    /// which names exist.
    pub fn start_authentication(
        &self,
        conn: &Db,
        username: Option<&str>,
        now: UnixTime,
    ) -> Result<(String, RequestChallengeResponse), PasskeyError> {
        let Some(name) = username.map(|name| name.trim().to_lowercase()) else {
            let (options, state) = self
                .webauthn
                .start_discoverable_authentication()
                .map_err(rejected)?;
            let id = park(
                conn,
                Kind::Authenticate,
                None,
                &CeremonyState::Discoverable(state),
                now,
            )?;
            return Ok((id, options));
        };
        // A name no account can have is looked up as nobody: the answer must not differ.
        let user = match Username::parse(&name) {
            Ok(name) => users::by_username(conn, &name)?,
            Err(_) => None,
        };
        let registered = match &user {
            Some(user) => passkeys::for_user(conn, &user.id)?,
            None => Vec::new(),
        };
        let (mut options, state, owner) = match user {
            Some(user) if !registered.is_empty() => {
                let keys = registered
                    .iter()
                    .map(|p| from_json::<Passkey>("passkeys", &p.passkey))
                    .collect::<Result<Vec<_>, _>>()?;
                let (options, state) = self
                    .webauthn
                    .start_passkey_authentication(&keys)
                    .map_err(rejected)?;
                (options, CeremonyState::ForUser(state), Some(user.id))
            }
            _ => (self.decoy_options(conn, &name)?, CeremonyState::Decoy, None),
        };
        // Decoys carry no transports, so real passkeys do not either.
        for allowed in &mut options.public_key.allow_credentials {
            allowed.transports = None;
        }
        let id = park(conn, Kind::Authenticate, owner.as_ref(), &state, now)?;
        Ok((id, options))
    }

    /// Options shaped like a person's (`start_passkey_authentication`'s), for a name without
    /// passkeys: credential ids made up from the name with a key kept in the database, the
    /// same for that name every time, in the numbers and lengths real passkeys come in. They
    /// match no passkey.
    fn decoy_options(
        &self,
        conn: &Db,
        name: &str,
    ) -> Result<RequestChallengeResponse, PasskeyError> {
        let key = match meta::get(conn, DECOY_KEY)? {
            Some(key) => key,
            None => {
                let key = secrets::random_token();
                meta::set(conn, DECOY_KEY, &key)?;
                key
            }
        };
        let decoys =
            WebauthnFakeCredentialGenerator::<FakePasskeyDistribution>::new(key.as_bytes())
                .and_then(|generator| generator.generate(name.as_bytes()))
                .map_err(rejected)?;
        let (mut options, _) = self
            .webauthn
            .start_discoverable_authentication()
            .map_err(rejected)?;
        options.mediation = None;
        options.public_key.extensions = None;
        let allowed: Vec<Value> = decoys
            .iter()
            .map(|id| json!({ "type": "public-key", "id": URL_SAFE_NO_PAD.encode(id) }))
            .collect();
        options.public_key.allow_credentials = serde_json::from_value(Value::Array(allowed))
            .map_err(|e| PasskeyError::Rejected(e.to_string()))?;
        Ok(options)
    }

    /// Finishes a sign-in: the user and the authentication methods (RFC 8176) used.
    /// Failures anyone can cause are audit-logged once per address and reason a minute
    /// (`failures` counts the repeats); a counter going backwards is logged every time.
    pub fn finish_authentication(
        &self,
        conn: &Db,
        failures: &Repeats,
        ceremony: &str,
        credential: &PublicKeyCredential,
        origin: &Origin,
        now: UnixTime,
    ) -> Result<(User, Vec<&'static str>), PasskeyError> {
        let (owner, state) = take(conn, ceremony, Kind::Authenticate, now)?;
        let credential_id = URL_SAFE_NO_PAD.encode(credential.get_credential_id());
        let stored = passkeys::by_credential_id(conn, &credential_id)?;
        let outcome = match (state, stored) {
            (_, None) | (CeremonyState::Decoy, _) => Err(PasskeyError::UnknownCredential),
            (CeremonyState::ForUser(state), Some(stored)) => {
                if owner.as_ref() != Some(&stored.user_id) {
                    Err(PasskeyError::UnknownCredential)
                } else {
                    self.webauthn
                        .finish_passkey_authentication(credential, &state)
                        .map_err(rejected)
                        .map(|result| (stored, result))
                }
            }
            (CeremonyState::Discoverable(state), Some(stored)) => {
                let (user_handle, _) = self
                    .webauthn
                    .identify_discoverable_authentication(credential)
                    .map_err(rejected)?;
                if user_handle != stored.user_id.uuid() {
                    Err(PasskeyError::UnknownCredential)
                } else {
                    let passkey: Passkey = from_json("passkeys", &stored.passkey)?;
                    self.webauthn
                        .finish_discoverable_authentication_v2(credential, state, &passkey)
                        .map_err(rejected)
                        .map(|result| (stored, result))
                }
            }
            _ => Err(PasskeyError::CeremonyExpired),
        };
        let (stored, result) = match outcome {
            Ok(found) => found,
            Err(error) => {
                if let PasskeyError::CounterRegression = error {
                    let event = Event::new(EventKind::PasskeyCounterRegression)
                        .detail(format!("passkey: {error}"));
                    audit::record(conn, &event, origin, now)?;
                } else {
                    let event =
                        Event::new(EventKind::SigninFailed).detail(format!("passkey: {error}"));
                    audit::record_failure(conn, failures, &event, origin, now)?;
                }
                return Err(error);
            }
        };
        let user = users::by_id(conn, &stored.user_id)?.ok_or(PasskeyError::UnknownCredential)?;
        if user.disabled {
            audit::record(
                conn,
                &Event::new(EventKind::SigninFailed)
                    .user(&user.id, &user.username)
                    .detail("disabled account"),
                origin,
                now,
            )?;
            return Err(PasskeyError::Disabled);
        }
        let mut passkey: Passkey = from_json("passkeys", &stored.passkey)?;
        let changed = passkey.update_credential(&result) == Some(true);
        passkeys::record_use(
            conn,
            stored.id,
            changed.then(|| to_json(&passkey)).as_deref(),
            now,
        )?;
        audit::record(
            conn,
            &Event::new(EventKind::PasskeyUsed)
                .user(&user.id, &user.username)
                .detail(stored.name.clone()),
            origin,
            now,
        )?;
        // A passkey with user verification is possession plus a PIN or biometric. Synced
        // passkeys (backup eligible) live in software; device-bound ones in hardware.
        let key = if result.backup_eligible() {
            "swk"
        } else {
            "hwk"
        };
        Ok((user, vec![key, "user", "mfa"]))
    }
}

fn park(
    conn: &Db,
    kind: Kind,
    user_id: Option<&UserId>,
    state: &CeremonyState,
    now: UnixTime,
) -> Result<String, PasskeyError> {
    let id = secrets::random_token();
    ceremonies::insert(
        conn,
        &secrets::token_hash(&id),
        kind,
        user_id,
        &to_json(state),
        now,
        now + CEREMONY_TTL_SECS,
    )?;
    Ok(id)
}

fn take(
    conn: &Db,
    id: &str,
    kind: Kind,
    now: UnixTime,
) -> Result<(Option<UserId>, CeremonyState), PasskeyError> {
    let (owner, state) = ceremonies::take(conn, &secrets::token_hash(id), kind, now)?
        .ok_or(PasskeyError::CeremonyExpired)?;
    Ok((owner, from_json("webauthn_ceremonies", &state)?))
}

/// Stores a newly registered passkey for `user`, refusing a credential id seen before.
pub fn save_new(
    conn: &Db,
    user: &User,
    passkey: &Passkey,
    credential: &RegisterPublicKeyCredential,
    origin: &Origin,
    now: UnixTime,
) -> Result<StoredPasskey, PasskeyError> {
    let credential_id = URL_SAFE_NO_PAD.encode(passkey.cred_id());
    if passkeys::by_credential_id(conn, &credential_id)?.is_some() {
        return Err(PasskeyError::AlreadyRegistered);
    }
    let aaguid = aaguid::from_attestation_object(&credential.response.attestation_object);
    let mut stored = StoredPasskey {
        id: 0,
        user_id: user.id.clone(),
        credential_id,
        name: aaguid::name_for(aaguid.as_deref()).to_string(),
        aaguid,
        passkey: to_json(passkey),
        created_at: now,
        last_used_at: None,
    };
    stored.id = passkeys::insert(conn, &stored)?;
    audit::record(
        conn,
        &Event::new(EventKind::PasskeyAdded)
            .user(&user.id, &user.username)
            .detail(stored.name.clone()),
        origin,
        now,
    )?;
    Ok(stored)
}
