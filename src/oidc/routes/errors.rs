//! How protocol errors are answered on the back channel: JSON (RFC 6749 §5.2), with a
//! `WWW-Authenticate` challenge where RFC 6749 §5.2 and RFC 6750 §3 ask for one.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::oidc::error::{ErrorCode, OAuthError};

impl From<actix_web::error::BlockingError> for OAuthError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        OAuthError::server_error(&e)
    }
}

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        match self.code {
            ErrorCode::InvalidClient | ErrorCode::InvalidToken => StatusCode::UNAUTHORIZED,
            ErrorCode::InsufficientScope => StatusCode::FORBIDDEN,
            ErrorCode::SlowDown => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"));
        let challenge = match self.code {
            ErrorCode::InvalidClient => Some(r#"Basic realm="latchkey""#.to_string()),
            ErrorCode::InvalidToken | ErrorCode::InsufficientScope => Some(format!(
                r#"Bearer realm="latchkey", error="{}", error_description="{}""#,
                self.code.as_str(),
                self.description.replace(['"', '\\'], "'")
            )),
            _ => None,
        };
        if let Some(challenge) = challenge {
            response.insert_header((header::WWW_AUTHENTICATE, challenge));
        }
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        response.json(json!({
            "error": self.code.as_str(),
            "error_description": self.description,
        }))
    }
}
