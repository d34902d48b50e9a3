//! Who may use the administration area: signed-in, enabled administrators. Every admin
//! handler starts with `require` (pages) or `form` (posted changes), so the rule lives once.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde::de::DeserializeOwned;

use crate::state::State;
use crate::store::StoreError;
use crate::store::users::User;
use crate::web::csrf;
use crate::web::error::PageError;

/// The administrator making the request.
#[derive(Debug, Clone)]
pub struct Admin {
    pub user: User,
}

/// Why an admin request gets no page of its own.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Nobody is signed in in this browser: send them to the sign-in page at this address.
    #[error("sign in first")]
    SignIn(String),
    #[error(transparent)]
    Page(#[from] PageError),
}

pub type AdminResult = Result<HttpResponse, AdminError>;

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        AdminError::Page(e.into())
    }
}

impl From<actix_web::error::BlockingError> for AdminError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        AdminError::Page(e.into())
    }
}

impl ResponseError for AdminError {
    fn status_code(&self) -> StatusCode {
        match self {
            AdminError::SignIn(_) => StatusCode::SEE_OTHER,
            AdminError::Page(page) => page.status,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            AdminError::SignIn(login) => super::see_other(login.clone()),
            AdminError::Page(page) => page.error_response(),
        }
    }
}

/// The signed-in administrator, a redirect to the sign-in page, or a 403 page.
pub async fn require(req: &HttpRequest, state: &State) -> Result<Admin, AdminError> {
    let sign_in = || AdminError::SignIn(format!("{}/login", state.settings.issuer.path()));
    let found = crate::auth::routes::signed_in(req, state).await?;
    // `current` already refuses disabled accounts; checked again so that this rule does not
    // hang on that one.
    match found {
        None => Err(sign_in()),
        Some((_, user)) if user.is_admin && !user.disabled => Ok(Admin { user }),
        Some(_) => Err(PageError::forbidden(
            "Administrators only",
            "This page is for Latchkey's administrators. If you need to change something \
             here, ask one of them.",
        )
        .into()),
    }
}

/// A posted admin form: checks access, then the CSRF token, and only then reads the fields,
/// so that a stranger learns nothing from how a malformed form is answered.
pub async fn form<T: DeserializeOwned>(
    req: &HttpRequest,
    state: &State,
    body: &[u8],
) -> Result<(Admin, T), AdminError> {
    let admin = require(req, state).await?;
    let token = form_urlencoded::parse(body)
        .find(|(name, _)| name == csrf::FIELD)
        .map(|(_, value)| value.into_owned());
    csrf::verify(req, &state.settings.issuer, token.as_deref())?;
    let fields = serde_urlencoded::from_bytes(body).map_err(|_| {
        PageError::bad_request(
            "Form not valid",
            "This form arrived incomplete. Go back, reload the page and try again.",
        )
    })?;
    Ok((admin, fields))
}

/// The query parameters of an admin page, read after the access check.
pub fn query<T: DeserializeOwned>(req: &HttpRequest) -> Result<T, AdminError> {
    serde_urlencoded::from_str(req.query_string()).map_err(|_| {
        PageError::bad_request(
            "Address not valid",
            "The address of this page has parameters it does not understand.",
        )
        .into()
    })
}
