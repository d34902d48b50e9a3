//! The authorization endpoint's rules (OIDC Core §3.1.2, RFC 6749 §4.1, RFC 7636).

use rusqlite::Connection;

use super::error::{AuthorizeError, ErrorCode, OAuthError};
use super::params::Params;
use super::redirect;
use super::scope::{self, Scopes};
use crate::clock::UnixTime;
use crate::config::Issuer;
use crate::secrets;
use crate::store::audit::{self, Event, Origin};
use crate::store::clients::{self, Client};
use crate::store::consents;
use crate::store::grants::{self, Code, Grant};
use crate::store::sessions::Session;
use crate::store::users::{self, User};
use crate::web::error::PageError;

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

fn page(title: &str, message: String) -> AuthorizeError {
    AuthorizeError::Page(PageError::bad_request(title, message))
}

/// Checks a request. Until the client and redirect URI are known to be genuine, errors are
/// pages; after that they go back to the client.
pub fn validate(
    conn: &Connection,
    issuer: &Issuer,
    params: &Params,
) -> Result<AuthRequest, AuthorizeError> {
    let client_id = params.get("client_id").ok_or_else(|| {
        page(
            "Sign-in request not valid",
            "The application did not say who it is (no client_id). Go back to it and try again."
                .into(),
        )
    })?;
    let client = clients::by_id(conn, client_id)?.ok_or_else(|| {
        page(
            "Unknown application",
            format!(
                "No application with client id \"{client_id}\" is registered here. \
                 Ask your administrator to add it."
            ),
        )
    })?;
    let requested_uri = params.get("redirect_uri").ok_or_else(|| {
        page(
            "Sign-in request not valid",
            format!(
                "{} did not say where to return after sign-in (no redirect_uri).",
                client.name
            ),
        )
    })?;
    let redirect_uri = redirect::find_registered(&client.redirect_uris, requested_uri)
        .map(|_| requested_uri.to_string())
        .ok_or_else(|| {
            page(
                "Redirect URI not registered",
                format!(
                    "{} asked to return to \"{requested_uri}\", which is not one of its \
                     registered redirect URIs. Redirect URIs must match exactly, including \
                     any trailing slash.",
                    client.name
                ),
            )
        })?;
    // A state too long to keep is not sent back either.
    let state = params
        .get("state")
        .filter(|state| state.len() <= MAX_STATE_LEN)
        .map(str::to_string);
    let fail = |code: ErrorCode, description: &str| AuthorizeError::Redirect {
        redirect_uri: redirect_uri.clone(),
        state: state.clone(),
        issuer: issuer.as_str().to_string(),
        error: OAuthError::new(code, description),
    };
    if params.get("state").is_some_and(|s| s.len() > MAX_STATE_LEN) {
        return Err(fail(
            ErrorCode::InvalidRequest,
            "state is too long (at most 4096 bytes)",
        ));
    }

    if params.get("request").is_some() {
        return Err(fail(
            ErrorCode::RequestNotSupported,
            "request objects are not supported",
        ));
    }
    if params.get("request_uri").is_some() {
        return Err(fail(
            ErrorCode::RequestUriNotSupported,
            "request_uri is not supported",
        ));
    }
    match params.get("response_type") {
        None => return Err(fail(ErrorCode::InvalidRequest, "response_type is required")),
        Some("code") => {}
        Some(_) => {
            return Err(fail(
                ErrorCode::UnsupportedResponseType,
                "only response_type=code is supported",
            ));
        }
    }
    if params.get("response_mode").is_some_and(|m| m != "query") {
        return Err(fail(
            ErrorCode::InvalidRequest,
            "only response_mode=query is supported",
        ));
    }
    let requested_scope = params.get("scope").unwrap_or_default();
    if requested_scope.len() > MAX_SCOPE_LEN {
        return Err(fail(ErrorCode::InvalidScope, "scope is too long"));
    }
    if !requested_scope.split(' ').any(|s| s == scope::OPENID) {
        return Err(fail(
            ErrorCode::InvalidScope,
            "the openid scope is required",
        ));
    }
    let scopes = Scopes::from_request(requested_scope);

    let code_challenge = match (
        params.get("code_challenge"),
        params.get("code_challenge_method"),
    ) {
        (None, None) => None,
        (None, Some(_)) => {
            return Err(fail(
                ErrorCode::InvalidRequest,
                "code_challenge_method without code_challenge",
            ));
        }
        (Some(challenge), Some("S256")) => {
            if !is_pkce_value(challenge) {
                return Err(fail(
                    ErrorCode::InvalidRequest,
                    "code_challenge must be 43 to 128 characters of [A-Za-z0-9-._~]",
                ));
            }
            Some(challenge.to_string())
        }
        (Some(_), _) => {
            return Err(fail(
                ErrorCode::InvalidRequest,
                "code_challenge_method must be S256 (plain is not accepted)",
            ));
        }
    };
    if (client.public || client.require_pkce) && code_challenge.is_none() {
        let why = if client.public {
            "PKCE (code_challenge with S256) is required for public clients"
        } else {
            "PKCE (code_challenge with S256) is required for this client"
        };
        return Err(fail(ErrorCode::InvalidRequest, why));
    }

    let mut prompt = Prompt::default();
    for value in params.get("prompt").unwrap_or_default().split(' ') {
        match value {
            "" => {}
            "none" => prompt.none = true,
            "login" => prompt.login = true,
            "consent" => prompt.consent = true,
            "select_account" => prompt.select_account = true,
            _ => return Err(fail(ErrorCode::InvalidRequest, "unknown prompt value")),
        }
    }
    if prompt.none && (prompt.login || prompt.consent || prompt.select_account) {
        return Err(fail(
            ErrorCode::InvalidRequest,
            "prompt=none cannot be combined with other values",
        ));
    }
    let max_age = params
        .get("max_age")
        .map(|v| v.parse::<u32>().map(i64::from))
        .transpose()
        .map_err(|_| {
            fail(
                ErrorCode::InvalidRequest,
                "max_age must be a non-negative integer",
            )
        })?;
    let nonce = params.get("nonce").map(str::to_string);
    if nonce.as_ref().is_some_and(|n| n.len() > MAX_NONCE_LEN) {
        return Err(fail(ErrorCode::InvalidRequest, "nonce is too long"));
    }

    Ok(AuthRequest {
        client,
        redirect_uri,
        state,
        scopes,
        nonce,
        code_challenge,
        prompt,
        max_age,
    })
}

/// A valid request as it is kept while someone signs in: only the parameters the rules
/// read, and at most `MAX_PARKED_BYTES` (a request beyond that goes back to the client).
pub fn parked(
    issuer: &Issuer,
    request: &AuthRequest,
    params: &Params,
) -> Result<String, AuthorizeError> {
    let kept = serde_json::to_string(&params.only(PARKED_PARAMETERS))
        .map_err(|e| PageError::internal(&e))?;
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
    conn: &Connection,
    issuer: &Issuer,
    request: &AuthRequest,
    signed_in: Option<&(Session, User)>,
    progress: Progress,
    origin: &Origin,
    now: UnixTime,
) -> Result<Outcome, AuthorizeError> {
    let fail = |code: ErrorCode, description: String| AuthorizeError::Redirect {
        redirect_uri: request.redirect_uri.clone(),
        state: request.state.clone(),
        issuer: issuer.as_str().to_string(),
        error: OAuthError::new(code, description),
    };
    let needs_sign_in = match signed_in {
        None => true,
        Some((session, _)) => {
            let fresh = progress.parked_at.is_some_and(|at| session.auth_time >= at);
            let too_old = request
                .max_age
                .is_some_and(|max_age| now - session.auth_time > max_age);
            !fresh && (request.prompt.login || request.prompt.select_account || too_old)
        }
    };
    let (session, user) = match signed_in {
        Some(pair) if !needs_sign_in => pair,
        _ if request.prompt.none => {
            return Err(fail(
                ErrorCode::LoginRequired,
                "the user is not signed in".into(),
            ));
        }
        _ => return Ok(Outcome::SignIn),
    };

    let groups = users::group_names(conn, &user.id)?;
    if !is_allowed(&request.client, &groups) {
        audit::record(
            conn,
            &Event::new("authorization.denied")
                .user(&user.id, &user.username)
                .client(&request.client.client_id)
                .detail("not in an allowed group"),
            origin,
            now,
        )?;
        // The client reads why, without the person being named to it.
        let refusal = fail(
            ErrorCode::AccessDenied,
            "the user is not in a group allowed to use this client".into(),
        );
        if request.prompt.none {
            return Err(refusal);
        }
        return Err(AuthorizeError::NotAllowed {
            client_name: request.client.name.clone(),
            username: user.username.clone(),
            redirect: Box::new(refusal),
        });
    }

    match progress.answer {
        ConsentAnswer::Denied => {
            audit::record(
                conn,
                &Event::new("consent.denied")
                    .user(&user.id, &user.username)
                    .client(&request.client.client_id),
                origin,
                now,
            )?;
            return Err(fail(
                ErrorCode::AccessDenied,
                "the user declined to share their details".into(),
            ));
        }
        ConsentAnswer::Allowed => {
            consents::grant(
                conn,
                &user.id,
                &request.client.client_id,
                &request.scopes.joined(),
                now,
            )?;
            audit::record(
                conn,
                &Event::new("consent.granted")
                    .user(&user.id, &user.username)
                    .client(&request.client.client_id)
                    .detail(request.scopes.joined()),
                origin,
                now,
            )?;
        }
        ConsentAnswer::NotAsked => {
            if needs_consent(conn, request, user)? {
                if request.prompt.none {
                    return Err(fail(
                        ErrorCode::ConsentRequired,
                        "the user has not consented to this client".into(),
                    ));
                }
                return Ok(Outcome::Consent);
            }
        }
    }

    let grant = Grant {
        id: uuid::Uuid::new_v4().to_string(),
        client_id: request.client.client_id.clone(),
        user_id: user.id.clone(),
        scope: request.scopes.joined(),
        auth_time: session.auth_time,
        amr: session.amr.clone(),
        created_at: now,
        revoked_at: None,
    };
    grants::insert_grant(conn, &grant)?;
    let code = secrets::random_token();
    grants::insert_code(
        conn,
        &Code {
            code_hash: secrets::token_hash(&code),
            grant_id: grant.id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            nonce: request.nonce.clone(),
            code_challenge: request.code_challenge.clone(),
            session_hash: Some(session.id_hash.clone()),
            created_at: now,
            expires_at: now + super::CODE_TTL_SECS,
        },
    )?;
    audit::record(
        conn,
        &Event::new("authorization.granted")
            .user(&user.id, &user.username)
            .client(&request.client.client_id)
            .detail(grant.scope.clone()),
        origin,
        now,
    )?;
    let mut response = vec![("code", code.as_str())];
    if let Some(state) = &request.state {
        response.push(("state", state));
    }
    response.push(("iss", issuer.as_str()));
    Ok(Outcome::Redirect(redirect::with_params(
        &request.redirect_uri,
        &response,
    )))
}

/// A client that asks for consent does so on a person's first authorization, whenever the
/// requested scopes go beyond what they agreed to, and on `prompt=consent`. Trusted clients
/// never ask.
fn needs_consent(
    conn: &Connection,
    request: &AuthRequest,
    user: &User,
) -> Result<bool, AuthorizeError> {
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

/// A client with allowed groups admits only their members; one without admits everyone.
pub fn is_allowed(client: &Client, user_groups: &[String]) -> bool {
    client.allowed_groups.is_empty()
        || client
            .allowed_groups
            .iter()
            .any(|allowed| user_groups.contains(allowed))
}
