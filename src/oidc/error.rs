//! Protocol errors: those of the back channel (answered as JSON, see `routes::errors`), and
//! the authorization endpoint's refusals, a redirect (RFC 6749 §4.1.2.1, with RFC 9207 `iss`)
//! or, where the redirect target cannot be trusted, a page (see `routes::authorize`).

use super::redirect;
use crate::keys::KeyError;
use crate::limits::Retry;
use crate::store::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedResponseType,
    InvalidScope,
    AccessDenied,
    ServerError,
    LoginRequired,
    ConsentRequired,
    InvalidToken,
    InsufficientScope,
    RequestNotSupported,
    RequestUriNotSupported,
    /// RFC 8628 §3.5's token-endpoint error, for too many attempts.
    SlowDown,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::ServerError => "server_error",
            ErrorCode::LoginRequired => "login_required",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::RequestNotSupported => "request_not_supported",
            ErrorCode::RequestUriNotSupported => "request_uri_not_supported",
            ErrorCode::SlowDown => "slow_down",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {description}", code.as_str())]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: String,
    /// For `slow_down`: seconds until another attempt may succeed (`Retry-After`).
    pub retry_after: Option<i64>,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<String>) -> OAuthError {
        OAuthError {
            code,
            description: description.into(),
            retry_after: None,
        }
    }

    /// RFC 6585 §4: too many attempts; another may succeed after `retry.after_secs`.
    pub fn slow_down(description: impl Into<String>, retry: Retry) -> OAuthError {
        OAuthError {
            retry_after: Some(retry.after_secs),
            ..OAuthError::new(ErrorCode::SlowDown, description)
        }
    }

    pub fn invalid_request(description: impl Into<String>) -> OAuthError {
        OAuthError::new(ErrorCode::InvalidRequest, description)
    }

    pub fn invalid_client(description: impl Into<String>) -> OAuthError {
        OAuthError::new(ErrorCode::InvalidClient, description)
    }

    pub fn invalid_grant(description: impl Into<String>) -> OAuthError {
        OAuthError::new(ErrorCode::InvalidGrant, description)
    }

    pub fn invalid_token(description: impl Into<String>) -> OAuthError {
        OAuthError::new(ErrorCode::InvalidToken, description)
    }

    pub fn access_denied(description: impl Into<String>) -> OAuthError {
        OAuthError::new(ErrorCode::AccessDenied, description)
    }

    /// Something on our side failed: logged in full, reported without detail.
    pub fn server_error(cause: &dyn std::fmt::Display) -> OAuthError {
        tracing::error!("server error: {cause}");
        OAuthError::new(
            ErrorCode::ServerError,
            "the server could not complete the request",
        )
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        OAuthError::server_error(&e)
    }
}

impl From<KeyError> for OAuthError {
    fn from(e: KeyError) -> Self {
        OAuthError::server_error(&e)
    }
}

/// What can go wrong at the authorization endpoint.
#[derive(Debug, thiserror::Error)]
pub enum AuthorizeError {
    /// The client or its redirect URI cannot be trusted: never redirect, tell the person.
    #[error(transparent)]
    Untrusted(#[from] UntrustedRequest),
    /// Everything else goes back to the client's redirect URI.
    #[error("{error} (to {redirect_uri})")]
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        issuer: String,
        error: OAuthError,
    },
    /// The person may not use the client (allowed groups). The client learns it as
    /// `access_denied` through `redirect`; a person in a browser first reads why, on a page
    /// that then sends them back (see `routes::authorize`).
    #[error("{username} may not use {client_name}")]
    NotAllowed {
        client_name: String,
        username: crate::names::Username,
        redirect: Box<AuthorizeError>,
    },
    /// The store failed: our fault, never the client's.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The request could not be written down to be kept while someone signs in.
    #[error("cannot keep the request: {0}")]
    Unkeepable(#[source] serde_json::Error),
}

/// Why a request cannot be answered at its client: who sent it, or where it asks to
/// return, is not known to be genuine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UntrustedRequest {
    #[error("no client_id")]
    NoClientId,
    #[error("no client \"{client_id}\" is registered")]
    UnknownClient { client_id: String },
    #[error("{client_name} sent no redirect_uri")]
    NoRedirectUri { client_name: String },
    #[error("\"{redirect_uri}\" is not a registered redirect URI of {client_name}")]
    RedirectNotRegistered {
        client_name: String,
        redirect_uri: String,
    },
}

impl AuthorizeError {
    /// The URL a redirected error sends the browser to.
    pub fn redirect_url(&self) -> Option<String> {
        match self {
            AuthorizeError::Redirect {
                redirect_uri,
                state,
                issuer,
                error,
            } => {
                let mut params = vec![
                    ("error", error.code.as_str()),
                    ("error_description", error.description.as_str()),
                ];
                if let Some(state) = state {
                    params.push(("state", state));
                }
                params.push(("iss", issuer));
                Some(redirect::with_params(redirect_uri, &params))
            }
            AuthorizeError::NotAllowed { redirect, .. } => redirect.redirect_url(),
            AuthorizeError::Untrusted(_)
            | AuthorizeError::Store(_)
            | AuthorizeError::Unkeepable(_) => None,
        }
    }
}
