//! Errors shown to people as HTML pages, rendered in one place.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

use super::pages::Base;
use crate::directory::DirectoryError;
use crate::limits::Retry;
use crate::state::State;
use crate::store::StoreError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{title}: {message}")]
pub struct PageError {
    pub status: StatusCode,
    pub title: String,
    pub message: String,
    /// For 429: seconds until another attempt may succeed (`Retry-After`).
    pub retry_after: Option<i64>,
}

/// What people read when a per-address limit refuses them.
const TOO_MANY: &str = "Too many attempts from your address. Wait a minute and try again.";

impl PageError {
    pub fn new(status: StatusCode, title: impl Into<String>, message: impl Into<String>) -> Self {
        PageError {
            status,
            title: title.into(),
            message: message.into(),
            retry_after: None,
        }
    }

    /// A per-address limit refused the request.
    pub fn too_many(retry: Retry) -> Self {
        PageError {
            retry_after: Some(retry.after_secs),
            ..PageError::new(StatusCode::TOO_MANY_REQUESTS, "Slow down", TOO_MANY)
        }
    }

    pub fn bad_request(title: impl Into<String>, message: impl Into<String>) -> Self {
        PageError::new(StatusCode::BAD_REQUEST, title, message)
    }

    pub fn forbidden(title: impl Into<String>, message: impl Into<String>) -> Self {
        PageError::new(StatusCode::FORBIDDEN, title, message)
    }

    pub fn not_found() -> Self {
        PageError::new(
            StatusCode::NOT_FOUND,
            "Page not found",
            "There is nothing at this address.",
        )
    }

    /// Our fault: logged in full, shown without detail.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!("internal error: {cause}");
        PageError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "The server could not complete this request. Try again; if it keeps happening, \
             tell your administrator.",
        )
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        PageError::internal(&e)
    }
}

impl From<actix_web::error::BlockingError> for PageError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        PageError::internal(&e)
    }
}

impl From<askama::Error> for PageError {
    fn from(e: askama::Error) -> Self {
        PageError::internal(&e)
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    base: Base,
    title: &'a str,
    message: &'a str,
}

/// The answer without its page, which needs the issuer's path that only the request knows:
/// the error travels in the answer's extensions, and `show_pages` renders it.
impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = with_retry_after(HttpResponse::build(self.status), self.retry_after)
            .content_type("text/plain; charset=utf-8")
            .body(self.to_string());
        response.extensions_mut().insert(self.clone());
        response
    }
}

/// Middleware: an answer carrying a page error gets the error's page, linking under the path
/// of the issuer that serves the request.
pub async fn show_pages(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut response = next.call(req).await?;
    let error = response.response().extensions().get::<PageError>().cloned();
    let state = response.request().app_data::<State>().cloned();
    let (Some(error), Some(state)) = (error, state) else {
        return Ok(response.map_into_left_body());
    };
    let page = ErrorPage {
        base: Base::of(&state.settings.issuer),
        title: &error.title,
        message: &error.message,
    };
    let body = page.render().unwrap_or_else(|_| error.to_string());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    Ok(response.map_body(|_, _| body).map_into_right_body())
}

/// Errors of the JSON endpoints behind the pages' scripts: `{"error": "…"}` with a status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub retry_after: Option<i64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A per-address limit refused the request.
    pub fn too_many(retry: Retry) -> Self {
        PageError::too_many(retry).into()
    }
}

impl From<PageError> for ApiError {
    fn from(e: PageError) -> Self {
        ApiError {
            retry_after: e.retry_after,
            ..ApiError::new(e.status, e.message)
        }
    }
}

/// Every error answer is `no-store`; a refusal by a limit says when to try again.
fn with_retry_after(
    mut response: actix_web::HttpResponseBuilder,
    retry_after: Option<i64>,
) -> actix_web::HttpResponseBuilder {
    response.insert_header((header::CACHE_CONTROL, "no-store"));
    if let Some(seconds) = retry_after {
        response.insert_header((header::RETRY_AFTER, seconds.to_string()));
    }
    response
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        PageError::internal(&e).into()
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        PageError::internal(&e).into()
    }
}

impl From<DirectoryError> for ApiError {
    fn from(e: DirectoryError) -> Self {
        match e {
            DirectoryError::Store(store) => store.into(),
            other => ApiError::new(StatusCode::BAD_REQUEST, other.to_string()),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        with_retry_after(HttpResponse::build(self.status), self.retry_after)
            .json(serde_json::json!({ "error": self.message }))
    }
}
