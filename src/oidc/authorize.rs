//! The authorization endpoint's rules (OIDC Core §3.1.2, RFC 6749 §4.1, RFC 7636).

use crate::store::Db;

use super::error::{AuthorizeError, ErrorCode, OAuthError, UntrustedRequest};
use super::params::Params;
use super::redirect;
use super::scope::{self, Scopes};
use crate::clock::UnixTime;
use crate::config::Issuer;
use crate::directory::clients::admits;
use crate::names::ClientId;
use crate::secrets;
use crate::store::audit::{self, Event, EventKind, Origin};
use crate::store::clients::{self, Client};
use crate::store::consents;
use crate::store::grants::{self, Code, Grant};
use crate::store::sessions::Session;
use crate::store::users::{self, User};

/// The `prompt` values of a request (OIDC Core §3.1.2.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prompt {
    pub none: bool,
    pub login: bool,
    pub consent: bool,
    pub select_account: bool,
}

/// A request that passed every check that does not depend on who is signed in.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    pub client: Client,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub scopes: Scopes,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub prompt: Prompt,
    pub max_age: Option<i64>,
}

/// Longest nonce we keep; far beyond what any client sends.
const MAX_NONCE_LEN: usize = 2048;

/// Longest `state` we keep and send back: Proxmox sends about 100 bytes, and JWT-shaped
/// states a few hundred.
const MAX_STATE_LEN: usize = 4096;

/// Longest `scope` we read.
const MAX_SCOPE_LEN: usize = 1024;

/// The most a request kept while someone signs in may take, as stored.
pub const MAX_PARKED_BYTES: usize = 8 * 1024;

/// The parameters the rules read, and so the only ones kept while someone signs in.
pub const PARKED_PARAMETERS: &[&str] = &[
    "response_type",
    "response_mode",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "max_age",
];

/// Checks a request. Until the client and redirect URI are known to be genuine, errors are
/// `Untrusted`; after that they go back to the client.
pub fn validate(
    conn: &Db,
    issuer: &Issuer,
    params: &Params,
) -> Result<AuthRequest, AuthorizeError> {
    let (client, redirect_uri) = genuine(conn, params)?;
    // A state too long to keep is not sent back either.
    let state = params
        .get("state")
        .filter(|state| state.len() <= MAX_STATE_LEN)
        .map(str::to_string);
    let refusal = |(code, description): Refused| AuthorizeError::Redirect {
        redirect_uri: redirect_uri.clone(),
        state: state.clone(),
        issuer: issuer.as_str().to_string(),
        error: OAuthError::new(code, description),
    };
    if params.get("state").is_some_and(|s| s.len() > MAX_STATE_LEN) {
        return Err(refusal((
            ErrorCode::InvalidRequest,
            "state is too long (at most 4096 bytes)",
        )));
    }
    let checked = (|| {
        request_shape(params)?;
        Ok(AuthRequest {
            scopes: requested_scopes(params)?,
            code_challenge: code_challenge(params, &client)?,
            prompt: prompt(params)?,
            max_age: max_age(params)?,
            nonce: nonce(params)?,
            client: client.clone(),
            redirect_uri: redirect_uri.clone(),
            state: state.clone(),
        })
    })();
    checked.map_err(refusal)
}

/// Why a request from a genuine client and redirect URI is refused: it goes back to the
/// client with this error.
type Refused = (ErrorCode, &'static str);

/// The client and the redirect URI, once both are known to be genuine; until then, errors
/// are `Untrusted` (never a redirect to somewhere unknown).
fn genuine(conn: &Db, params: &Params) -> Result<(Client, String), AuthorizeError> {
    let client_id = params
        .get("client_id")
        .ok_or(UntrustedRequest::NoClientId)?;
    let unknown = || UntrustedRequest::UnknownClient {
        client_id: client_id.to_string(),
    };
    // An id no client can have names none.
    let id = ClientId::parse(client_id).map_err(|_| unknown())?;
    let client = clients::by_id(conn, &id)?.ok_or_else(unknown)?;
    let requested_uri =
        params
            .get("redirect_uri")
            .ok_or_else(|| UntrustedRequest::NoRedirectUri {
                client_name: client.name.clone(),
            })?;
    if redirect::find_registered(&client.redirect_uris, requested_uri).is_none() {
        return Err(UntrustedRequest::RedirectNotRegistered {
            client_name: client.name,
            redirect_uri: requested_uri.to_string(),
        }
        .into());
    }
    Ok((client, requested_uri.to_string()))
}

/// Request objects, the response type and the response mode.
fn request_shape(params: &Params) -> Result<(), Refused> {
    if params.get("request").is_some() {
        return Err((
            ErrorCode::RequestNotSupported,
            "request objects are not supported",
        ));
    }
    if params.get("request_uri").is_some() {
        return Err((
            ErrorCode::RequestUriNotSupported,
            "request_uri is not supported",
        ));
    }
    match params.get("response_type") {
        None => return Err((ErrorCode::InvalidRequest, "response_type is required")),
        Some("code") => {}
        Some(_) => {
            return Err((
                ErrorCode::UnsupportedResponseType,
                "only response_type=code is supported",
            ));
        }
    }
    if params.get("response_mode").is_some_and(|m| m != "query") {
        return Err((
            ErrorCode::InvalidRequest,
            "only response_mode=query is supported",
        ));
    }
    Ok(())
}

fn requested_scopes(params: &Params) -> Result<Scopes, Refused> {
    let requested = params.get("scope").unwrap_or_default();
    if requested.len() > MAX_SCOPE_LEN {
        return Err((ErrorCode::InvalidScope, "scope is too long"));
    }
    if !requested.split(' ').any(|s| s == scope::OPENID) {
        return Err((ErrorCode::InvalidScope, "the openid scope is required"));
    }
    Ok(Scopes::from_request(requested))
}

/// RFC 7636: S256 only; required for public clients and those that ask for it.
fn code_challenge(params: &Params, client: &Client) -> Result<Option<String>, Refused> {
    let challenge = match (
        params.get("code_challenge"),
        params.get("code_challenge_method"),
    ) {
        (None, None) => None,
        (None, Some(_)) => {
            return Err((
                ErrorCode::InvalidRequest,
                "code_challenge_method without code_challenge",
            ));
        }
        (Some(challenge), Some("S256")) if is_pkce_value(challenge) => Some(challenge.to_string()),
        (Some(_), Some("S256")) => {
            return Err((
                ErrorCode::InvalidRequest,
                "code_challenge must be 43 to 128 characters of [A-Za-z0-9-._~]",
            ));
        }
        (Some(_), _) => {
            return Err((
                ErrorCode::InvalidRequest,
                "code_challenge_method must be S256 (plain is not accepted)",
            ));
        }
    };
    match (challenge.is_none(), client.public, client.require_pkce) {
        (true, true, _) => Err((
            ErrorCode::InvalidRequest,
            "PKCE (code_challenge with S256) is required for public clients",
        )),
        (true, _, true) => Err((
            ErrorCode::InvalidRequest,
            "PKCE (code_challenge with S256) is required for this client",
        )),
        _ => Ok(challenge),
    }
}

fn prompt(params: &Params) -> Result<Prompt, Refused> {
    let mut prompt = Prompt::default();
    for value in params.get("prompt").unwrap_or_default().split(' ') {
        match value {
            "" => {}
            "none" => prompt.none = true,
            "login" => prompt.login = true,
            "consent" => prompt.consent = true,
            "select_account" => prompt.select_account = true,
            _ => return Err((ErrorCode::InvalidRequest, "unknown prompt value")),
        }
    }
    if prompt.none && (prompt.login || prompt.consent || prompt.select_account) {
        return Err((
            ErrorCode::InvalidRequest,
            "prompt=none cannot be combined with other values",
        ));
    }
    Ok(prompt)
}

fn max_age(params: &Params) -> Result<Option<i64>, Refused> {
    params
        .get("max_age")
        .map(|v| v.parse::<u32>().map(i64::from))
        .transpose()
        .map_err(|_| {
            (
                ErrorCode::InvalidRequest,
                "max_age must be a non-negative integer",
            )
        })
}

fn nonce(params: &Params) -> Result<Option<String>, Refused> {
    match params.get("nonce") {
        Some(nonce) if nonce.len() > MAX_NONCE_LEN => {
            Err((ErrorCode::InvalidRequest, "nonce is too long"))
        }
        nonce => Ok(nonce.map(str::to_string)),
    }
}

/// A valid request as it is kept while someone signs in: only the parameters the rules
/// read, and at most `MAX_PARKED_BYTES` (a request beyond that goes back to the client).
pub fn parked(
    issuer: &Issuer,
    request: &AuthRequest,
    params: &Params,
) -> Result<String, AuthorizeError> {
    let kept = serde_json::to_string(&params.only(PARKED_PARAMETERS))
        .map_err(AuthorizeError::Unkeepable)?;
    if kept.len() > MAX_PARKED_BYTES {
        return Err(AuthorizeError::Redirect {
            redirect_uri: request.redirect_uri.clone(),
            state: None,
            issuer: issuer.as_str().to_string(),
            error: OAuthError::invalid_request("the request is too large to keep during sign-in"),
        });
    }
    Ok(kept)
}

/// RFC 7636 §4.1/§4.2: 43 to 128 unreserved characters.
pub fn is_pkce_value(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// What to do with a valid request.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The person must sign in (again) first.
    SignIn,
    /// The person must agree to share their details first.
    Consent,
    /// Back to the client with a code.
    Redirect(String),
}

/// What happened to a request since it first arrived: when it was parked for a sign-in or
/// consent, and how the person answered the consent page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub parked_at: Option<UnixTime>,
    pub answer: ConsentAnswer,
}

impl Progress {
    /// A request seen for the first time.
    pub const NEW: Progress = Progress {
        parked_at: None,
        answer: ConsentAnswer::NotAsked,
    };
}

/// How the person answered the consent page, when the request comes back from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentAnswer {
    NotAsked,
    Allowed,
    Denied,
}

/// Decides a valid request for whoever is signed in. `signed_in_since` is when the request
/// was first parked for sign-in, if it was: a sign-in after that satisfies `prompt=login`
/// and `max_age`.
pub fn decide(
    conn: &Db,
    issuer: &Issuer,
    request: &AuthRequest,
    signed_in: Option<&(Session, User)>,
    progress: Progress,
    origin: &Origin,
    now: UnixTime,
) -> Result<Outcome, AuthorizeError> {
    let deciding = Deciding {
        conn,
        issuer,
        request,
        origin,
        now,
    };
    let Some((session, user)) = deciding.signed_in_enough(signed_in, progress)? else {
        return Ok(Outcome::SignIn);
    };
    deciding.check_groups(user)?;
    if let Some(outcome) = deciding.consent(user, progress.answer)? {
        return Ok(outcome);
    }
    deciding.issue_code(session, user)
}

/// What deciding a request needs at each step.
struct Deciding<'a> {
    conn: &'a Db<'a>,
    issuer: &'a Issuer,
    request: &'a AuthRequest,
    origin: &'a Origin,
    now: UnixTime,
}

impl Deciding<'_> {
    /// An error that goes back to the client.
    fn refusal(&self, code: ErrorCode, description: &str) -> AuthorizeError {
        AuthorizeError::Redirect {
            redirect_uri: self.request.redirect_uri.clone(),
            state: self.request.state.clone(),
            issuer: self.issuer.as_str().to_string(),
            error: OAuthError::new(code, description),
        }
    }

    fn record(&self, event: &Event) -> Result<(), AuthorizeError> {
        Ok(audit::record(self.conn, event, self.origin, self.now)?)
    }

    /// The signed-in person, when their sign-in satisfies the request (`prompt`, `max_age`);
    /// `None` when they must sign in (again) first.
    fn signed_in_enough<'s>(
        &self,
        signed_in: Option<&'s (Session, User)>,
        progress: Progress,
    ) -> Result<Option<&'s (Session, User)>, AuthorizeError> {
        let request = self.request;
        let enough = signed_in.filter(|(session, _)| {
            let fresh = progress.parked_at.is_some_and(|at| session.auth_time >= at);
            let too_old = request
                .max_age
                .is_some_and(|max_age| self.now - session.auth_time > max_age);
            fresh || !(request.prompt.login || request.prompt.select_account || too_old)
        });
        if enough.is_none() && request.prompt.none {
            return Err(self.refusal(ErrorCode::LoginRequired, "the user is not signed in"));
        }
        Ok(enough)
    }

    /// A client with allowed groups admits only their members.
    fn check_groups(&self, user: &User) -> Result<(), AuthorizeError> {
        let client = &self.request.client;
        if admits(client, &users::group_names(self.conn, &user.id)?) {
            return Ok(());
        }
        self.record(
            &Event::new(EventKind::AuthorizationDenied)
                .user(&user.id, &user.username)
                .client(client.client_id.as_str())
                .detail("not in an allowed group"),
        )?;
        // The client reads why, without the person being named to it.
        let refusal = self.refusal(
            ErrorCode::AccessDenied,
            "the user is not in a group allowed to use this client",
        );
        if self.request.prompt.none {
            return Err(refusal);
        }
        Err(AuthorizeError::NotAllowed {
            client_name: client.name.clone(),
            username: user.username.clone(),
            redirect: Box::new(refusal),
        })
    }

    /// Records the person's answer to the consent page, or asks for one when needed
    /// (`Some(Outcome::Consent)`); `None` when the request may go on.
    fn consent(
        &self,
        user: &User,
        answer: ConsentAnswer,
    ) -> Result<Option<Outcome>, AuthorizeError> {
        let request = self.request;
        let client_id = &request.client.client_id;
        match answer {
            ConsentAnswer::Denied => {
                self.record(
                    &Event::new(EventKind::ConsentDenied)
                        .user(&user.id, &user.username)
                        .client(client_id.as_str()),
                )?;
                Err(self.refusal(
                    ErrorCode::AccessDenied,
                    "the user declined to share their details",
                ))
            }
            ConsentAnswer::Allowed => {
                let scopes = request.scopes.joined();
                consents::grant(self.conn, &user.id, client_id, &scopes, self.now)?;
                self.record(
                    &Event::new(EventKind::ConsentGranted)
                        .user(&user.id, &user.username)
                        .client(client_id.as_str())
                        .detail(scopes),
                )?;
                Ok(None)
            }
            ConsentAnswer::NotAsked if needs_consent(self.conn, request, user)? => {
                if request.prompt.none {
                    return Err(self.refusal(
                        ErrorCode::ConsentRequired,
                        "the user has not consented to this client",
                    ));
                }
                Ok(Some(Outcome::Consent))
            }
            ConsentAnswer::NotAsked => Ok(None),
        }
    }

    /// A grant and its single-use code, and the redirect that carries it to the client.
    fn issue_code(&self, session: &Session, user: &User) -> Result<Outcome, AuthorizeError> {
        let request = self.request;
        let grant = Grant {
            id: uuid::Uuid::new_v4().to_string(),
            client_id: request.client.client_id.clone(),
            user_id: user.id.clone(),
            scope: request.scopes.joined(),
            auth_time: session.auth_time,
            amr: session.amr.clone(),
            created_at: self.now,
            revoked_at: None,
        };
        grants::insert_grant(self.conn, &grant)?;
        let code = secrets::random_token();
        grants::insert_code(
            self.conn,
            &Code {
                code_hash: secrets::token_hash(&code),
                grant_id: grant.id.clone(),
                redirect_uri: request.redirect_uri.clone(),
                nonce: request.nonce.clone(),
                code_challenge: request.code_challenge.clone(),
                session_hash: Some(session.id_hash.clone()),
                created_at: self.now,
                expires_at: self.now + super::CODE_TTL_SECS,
            },
        )?;
        self.record(
            &Event::new(EventKind::AuthorizationGranted)
                .user(&user.id, &user.username)
                .client(request.client.client_id.as_str())
                .detail(grant.scope.clone()),
        )?;
        let mut response = vec![("code", code.as_str())];
        if let Some(state) = &request.state {
            response.push(("state", state));
        }
        response.push(("iss", self.issuer.as_str()));
        Ok(Outcome::Redirect(redirect::with_params(
            &request.redirect_uri,
            &response,
        )))
    }
}

/// A client that asks for consent does so on a person's first authorization, whenever the
/// requested scopes go beyond what they agreed to, and on `prompt=consent`. Trusted clients
/// never ask.
fn needs_consent(conn: &Db, request: &AuthRequest, user: &User) -> Result<bool, AuthorizeError> {
    if !request.client.ask_consent {
        return Ok(false);
    }
    if request.prompt.consent {
        return Ok(true);
    }
    Ok(
        match consents::granted(conn, &user.id, &request.client.client_id)? {
            None => true,
            Some(granted) => !request.scopes.is_subset_of(&Scopes::from_request(&granted)),
        },
    )
}
