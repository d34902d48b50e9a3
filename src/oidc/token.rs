//! The token endpoint's rules (RFC 6749 §4.1.3, §6; RFC 7636 §4.6; OIDC Core §3.1.3, §12).

use crate::store::Db;
use serde::Serialize;
use serde_json::Value;

use super::authorize::is_pkce_value;
use super::claims::{self, IdTokenContext};
use super::error::{ErrorCode, OAuthError};
use super::params::Params;
use super::redirect;
use super::scope::{self, Scopes};
use crate::clock::UnixTime;
use crate::config::Issuer;
use crate::directory::clients::admits;
use crate::keys::KeyError;
use crate::names::GroupName;
use crate::secrets;
use crate::store::audit::{self, Event, EventKind, Origin};
use crate::store::clients::Client;
use crate::store::grants::{self, CodeUse, Grant, RefreshUse, TokenKind};
use crate::store::signing_keys::SigningAlg;
use crate::store::users::{self, User};

#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// The grant types the token endpoint accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
}

impl GrantType {
    /// The request's `grant_type`, checked before the client is authenticated.
    pub fn of(params: &Params) -> Result<GrantType, OAuthError> {
        match params.get("grant_type") {
            None => Err(OAuthError::invalid_request("grant_type is required")),
            Some("authorization_code") => Ok(GrantType::AuthorizationCode),
            Some("refresh_token") => Ok(GrantType::RefreshToken),
            Some(_) => Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                "grant_type must be authorization_code or refresh_token",
            )),
        }
    }
}

/// Redeems the grant of an authenticated client's token request, inside the write
/// transaction. The ID token's claims come back unsigned: the signature is made after the
/// commit, so that the writer never waits for RSA.
pub fn redeem(
    tx: &Db,
    issuer: &Issuer,
    client: &Client,
    grant_type: GrantType,
    params: &Params,
    origin: &Origin,
    now: UnixTime,
) -> Decided {
    match grant_type {
        GrantType::AuthorizationCode => redeem_code(issuer, tx, client, params, origin, now),
        GrantType::RefreshToken => refresh(issuer, tx, client, params, origin, now),
    }
}

/// Tokens issued and committed, their ID token not yet signed.
pub struct Issued {
    response: TokenResponse,
    id_claims: Option<Value>,
    /// How the client wants its ID tokens signed.
    alg: SigningAlg,
}

impl Issued {
    /// The answer to the client, its ID token signed by `sign`.
    pub fn signed(
        self,
        sign: impl FnOnce(SigningAlg, &Value) -> Result<String, KeyError>,
    ) -> Result<TokenResponse, OAuthError> {
        let id_token = self
            .id_claims
            .as_ref()
            .map(|claims| sign(self.alg, claims))
            .transpose()?;
        Ok(TokenResponse {
            id_token,
            ..self.response
        })
    }
}

/// How a token request's transaction ends. `Ok(Issued)` and `Ok(Refused)` both commit what
/// was written (a spent code or refresh token, a revocation, an audit event); `Err` rolls
/// everything back. Each refusal below says which one it is.
pub enum Outcome {
    Issued(Issued),
    Refused(OAuthError),
}

impl Outcome {
    /// The tokens, or the refusal that was committed.
    pub fn issued(self) -> Result<Issued, OAuthError> {
        match self {
            Outcome::Issued(issued) => Ok(issued),
            Outcome::Refused(error) => Err(error),
        }
    }
}

pub type Decided = Result<Outcome, OAuthError>;

/// A refusal that commits what the transaction wrote so far.
fn refused(error: OAuthError) -> Decided {
    Ok(Outcome::Refused(error))
}

fn redeem_code(
    issuer: &Issuer,
    tx: &Db,
    client: &Client,
    params: &Params,
    origin: &Origin,
    now: UnixTime,
) -> Decided {
    let code = params
        .get("code")
        .ok_or_else(|| OAuthError::invalid_request("code is required"))?;
    let hash = secrets::token_hash(code);
    let code = match grants::spend_code(tx, &hash, &client.client_id, now)? {
        CodeUse::Fresh(code) => code,
        CodeUse::Unknown => return refused(OAuthError::invalid_grant("unknown code")),
        // Another client's attempt changes nothing.
        CodeUse::OtherClient => {
            return refused(OAuthError::invalid_grant(
                "the code was issued to another client",
            ));
        }
        CodeUse::Replayed { grant_id } => {
            // RFC 6749 §4.1.2: a code its own client uses twice revokes what it issued.
            return revoke_replayed(
                tx,
                client,
                &grant_id,
                EventKind::CodeReplayed,
                "the code was already used; tokens issued with it are revoked",
                origin,
                now,
            );
        }
    };
    // From here on the code is spent, and stays spent whatever the answer.
    if let Some(refusal) = code_refusal(&code, params, now) {
        return refused(refusal);
    }
    let Some(grant) = grants::grant_by_id(tx, &code.grant_id)?.filter(|g| g.revoked_at.is_none())
    else {
        return refused(OAuthError::invalid_grant("the code was revoked"));
    };
    let scopes = Scopes::from_request(&grant.scope);
    issue(
        issuer,
        tx,
        client,
        &grant,
        &scopes,
        code.nonce.as_deref(),
        origin,
        now,
    )
}

/// Why a spent code does not give tokens to this request, if it does not: expiry, the
/// redirect URI and PKCE.
fn code_refusal(code: &grants::Code, params: &Params, now: UnixTime) -> Option<OAuthError> {
    if code.expires_at <= now {
        return Some(OAuthError::invalid_grant("the code has expired"));
    }
    if !params
        .get("redirect_uri")
        .is_some_and(|uri| redirect::same_uri(uri, &code.redirect_uri))
    {
        return Some(OAuthError::invalid_grant(
            "redirect_uri does not match the authorization request",
        ));
    }
    let why = match (&code.code_challenge, params.get("code_verifier")) {
        (Some(_), None) => "code_verifier is required",
        // RFC 9700 §2.1.1: a verifier without a challenge is a downgrade attempt.
        (None, Some(_)) => {
            "code_verifier sent, but the authorization request had no code_challenge"
        }
        (Some(challenge), Some(verifier))
            if !is_pkce_value(verifier)
                || !secrets::constant_time_eq(
                    &secrets::sha256_base64url(verifier.as_bytes()),
                    challenge,
                ) =>
        {
            "code_verifier does not match the code_challenge"
        }
        _ => return None,
    };
    Some(OAuthError::invalid_grant(why))
}

fn refresh(
    issuer: &Issuer,
    tx: &Db,
    client: &Client,
    params: &Params,
    origin: &Origin,
    now: UnixTime,
) -> Decided {
    let token = params
        .get("refresh_token")
        .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
    let hash = secrets::token_hash(token);
    // Whose token it is, whatever its state, before anything is spent or revoked.
    if grants::token_grant(tx, TokenKind::Refresh, &hash)?
        .is_some_and(|grant| grant.client_id != client.client_id)
    {
        return refused(OAuthError::invalid_grant(
            "the refresh token was issued to another client",
        ));
    }
    let live = match grants::spend_refresh_token(tx, &hash, now)? {
        RefreshUse::Fresh(live) => live,
        RefreshUse::Unknown => {
            return refused(OAuthError::invalid_grant(
                "unknown, expired or revoked refresh token",
            ));
        }
        RefreshUse::Replayed { grant_id } => {
            // RFC 9700 §4.14.2: reuse of a rotated token means it leaked; end the family.
            return revoke_replayed(
                tx,
                client,
                &grant_id,
                EventKind::RefreshReplayed,
                "the refresh token was already used; its family is revoked",
                origin,
                now,
            );
        }
    };
    let granted = Scopes::from_request(&live.grant.scope);
    let scopes = match params.get("scope").map(Scopes::from_request) {
        None => granted,
        Some(asked) if asked.is_subset_of(&granted) => asked,
        Some(_) => {
            // Rolled back: the refresh token stays usable with a correct request.
            return Err(OAuthError::new(
                ErrorCode::InvalidScope,
                "a refresh may not widen the granted scope",
            ));
        }
    };
    issue(issuer, tx, client, &live.grant, &scopes, None, origin, now)
}

/// Answers a replayed code or refresh token of this client: the grant it belongs to is
/// revoked, the replay audit-logged, both committed, and the request refused.
fn revoke_replayed(
    tx: &Db,
    client: &Client,
    grant_id: &str,
    event: EventKind,
    description: &str,
    origin: &Origin,
    now: UnixTime,
) -> Decided {
    grants::revoke_grant(tx, grant_id, now)?;
    audit::record(
        tx,
        &Event::new(event)
            .client(client.client_id.as_str())
            .detail(description),
        origin,
        now,
    )?;
    refused(OAuthError::invalid_grant(description))
}

/// Issues an access token, an ID token and (with `offline_access`) a refresh token, after
/// checking that the person may still use the client.
#[allow(clippy::too_many_arguments)]
fn issue(
    issuer: &Issuer,
    tx: &Db,
    client: &Client,
    grant: &Grant,
    scopes: &Scopes,
    nonce: Option<&str>,
    origin: &Origin,
    now: UnixTime,
) -> Decided {
    let (user, groups) = match holder(tx, client, grant)? {
        Ok(holder) => holder,
        Err(refusal) => return refused(refusal),
    };
    let minted = mint(tx, client, grant, scopes, now)?;
    let id_claims = scopes.contains(scope::OPENID).then(|| {
        claims::id_token(
            &IdTokenContext {
                issuer: issuer.as_str(),
                client_id: client.client_id.as_str(),
                alg: client.id_token_signed_response_alg,
                auth_time: grant.auth_time,
                amr: &grant.amr,
                nonce,
                access_token: &minted.access_token,
                now,
                ttl_secs: super::ID_TOKEN_TTL_SECS,
            },
            claims::user_claims(&user, &groups, scopes),
        )
    });
    audit::record(
        tx,
        &Event::new(EventKind::TokenIssued)
            .user(&user.id, &user.username)
            .client(client.client_id.as_str())
            .detail(minted.scope.clone()),
        origin,
        now,
    )?;
    Ok(Outcome::Issued(Issued {
        response: minted,
        id_claims,
        alg: client.id_token_signed_response_alg,
    }))
}

/// The grant's person and their groups, while they may still use `client`; the inner error is
/// a refusal to commit, the outer one a failure.
fn holder(
    tx: &Db,
    client: &Client,
    grant: &Grant,
) -> Result<Result<(User, Vec<GroupName>), OAuthError>, OAuthError> {
    let (user, groups) = match users::with_groups(tx, &grant.user_id)? {
        Some((user, groups)) if !user.disabled => (user, groups),
        _ => {
            return Ok(Err(OAuthError::invalid_grant(
                "the user no longer exists or is disabled",
            )));
        }
    };
    if !admits(client, &groups) {
        // The answer goes to the client: it says why, without naming the person.
        return Ok(Err(OAuthError::access_denied(
            "the user is not in a group allowed to use this client",
        )));
    }
    Ok(Ok((user, groups)))
}

/// A new access token, and a refresh token when `offline_access` was granted; only their
/// hashes are stored.
fn mint(
    tx: &Db,
    client: &Client,
    grant: &Grant,
    scopes: &Scopes,
    now: UnixTime,
) -> Result<TokenResponse, OAuthError> {
    let access_ttl = client
        .access_token_ttl
        .unwrap_or(super::ACCESS_TOKEN_TTL_SECS);
    let access_token = secrets::random_token();
    let scope = scopes.joined();
    grants::insert_token(
        tx,
        TokenKind::Access,
        &secrets::token_hash(&access_token),
        &grant.id,
        &scope,
        now,
        now + access_ttl,
    )?;
    let refresh_token = if scopes.contains(scope::OFFLINE_ACCESS) {
        let token = secrets::random_token();
        let refresh_ttl = client
            .refresh_token_ttl
            .unwrap_or(super::REFRESH_TOKEN_TTL_SECS);
        grants::insert_token(
            tx,
            TokenKind::Refresh,
            &secrets::token_hash(&token),
            &grant.id,
            &grant.scope,
            now,
            now + refresh_ttl,
        )?;
        Some(token)
    } else {
        None
    };
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: access_ttl,
        scope,
        id_token: None,
        refresh_token,
    })
}
