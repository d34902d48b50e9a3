//! RP-initiated logout.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::{csp_allowing_form_to, form_params, query_params};
use crate::auth::session;
use crate::clock;
use crate::oidc::logout::{self, LogoutError};
use crate::oidc::params::Params;
use crate::state::{AppState, State, blocking};
use crate::web::cookies;
use crate::web::csrf;
use crate::web::error::PageError;
use crate::web::pages::{self, Base, LogoutPage, SignedOutPage};

/// The title of every page refusing a sign-out request.
const NOT_VALID: &str = "Sign-out request not valid";

/// How a refused logout request is shown: the store failing is our fault (500); anything
/// else is the application's mistake (400).
impl From<LogoutError> for PageError {
    fn from(e: LogoutError) -> Self {
        let message = match e {
            LogoutError::Store(store) => return store.into(),
            LogoutError::ForeignHint(_) => {
                "The application sent an ID token that was not issued here.".to_string()
            }
            LogoutError::AudienceMismatch => {
                "client_id does not match the ID token's audience.".to_string()
            }
            LogoutError::UnknownClient { client_id } => {
                format!("No application with client id \"{client_id}\".")
            }
            LogoutError::RedirectWithoutClient => {
                "A post-logout redirect needs id_token_hint or client_id.".to_string()
            }
            LogoutError::RedirectNotRegistered { uri, client_name } => {
                format!("\"{uri}\" is not a registered post-logout redirect URI of {client_name}.")
            }
        };
        PageError::bad_request(NOT_VALID, message)
    }
}

pub(super) async fn logout_get(req: HttpRequest, state: State) -> Result<HttpResponse, PageError> {
    let params = query_params(&req).map_err(|why| PageError::bad_request(NOT_VALID, why))?;
    // Any site can send a browser here: a GET never counts as the person's confirmation.
    logout_flow(req, state, params, false).await
}

pub(super) async fn logout_post(
    req: HttpRequest,
    state: State,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let params = form_params(&req, &body).map_err(|why| PageError::bad_request(NOT_VALID, why))?;
    let confirmed = params.get("confirm").is_some();
    if confirmed {
        csrf::verify(&req, &state.settings.issuer, params.get(csrf::FIELD))?;
    }
    logout_flow(req, state, params, confirmed).await
}

/// Ends the session when the person `confirmed` (on the confirmation page's form, CSRF
/// checked), or when the relying party proved with an ID token hint that it signed this
/// person in; otherwise asks first.
async fn logout_flow(
    req: HttpRequest,
    state: State,
    params: Params,
    confirmed: bool,
) -> Result<HttpResponse, PageError> {
    let origin = state.origin(&req);
    let issuer = state.settings.issuer.clone();
    let session_cookie = AppState::cookie(&req, cookies::session_name(&issuer));
    let carried = params.clone();
    let (request, signed_in_as) = blocking(&state, move |state| {
        let now = clock::now();
        state.store.write(|tx| {
            let request = logout::validate(
                tx,
                &params,
                crate::oidc::KEY_PUBLISH_AFTER_RETIREMENT_SECS,
                now,
            )?;
            let signed_in = match &session_cookie {
                Some(cookie) => session::current(tx, cookie, &state.settings.sessions, now)?,
                None => None,
            };
            let Some((session, user)) = signed_in else {
                return Ok::<_, PageError>((request, None));
            };
            let hinted = request.hinted_subject.as_ref() == Some(&user.id);
            if confirmed || hinted {
                session::end(tx, &session, &user, &origin, now)?;
                return Ok((request, None));
            }
            Ok((request, Some(user.username)))
        })
    })
    .await?;
    if let Some(username) = signed_in_as {
        let (csrf_token, csrf_cookie) = csrf::token(&req, &issuer);
        let fields = [
            "id_token_hint",
            "client_id",
            "post_logout_redirect_uri",
            "state",
        ]
        .iter()
        .filter_map(|name| carried.get(name).map(|v| (name.to_string(), v.to_string())))
        .collect();
        let page = LogoutPage {
            base: Base::of(&issuer),
            username,
            client_name: request.client.map(|c| c.name),
            fields,
            csrf_token,
        };
        let mut response = pages::render(&page, csrf_cookie)?;
        if let Some(target) = &request.return_to {
            response.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                csp_allowing_form_to(target).map_err(|e| PageError::internal(&e))?,
            );
        }
        return Ok(response);
    }
    let removal = cookies::removal(&issuer, cookies::session_name(&issuer));
    match request.return_to {
        Some(target) => Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, target))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .cookie(removal)
            .finish()),
        None => pages::render(
            &SignedOutPage {
                base: Base::of(&issuer),
            },
            [removal],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    #[test]
    fn a_store_failure_is_our_fault_not_the_clients() {
        let store = StoreError::Sqlite(rusqlite::Error::QueryReturnedNoRows);
        let page = PageError::from(LogoutError::Store(store));
        assert_eq!(
            page.status,
            actix_web::http::StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn a_refused_request_is_the_applications_mistake() {
        let page = PageError::from(LogoutError::AudienceMismatch);
        assert_eq!(page.status, actix_web::http::StatusCode::BAD_REQUEST);
        assert_eq!(page.title, NOT_VALID);
    }
}
