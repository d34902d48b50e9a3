//! Pages for signing in and the account.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::login_link;
use super::session;
use crate::clock;
use crate::oidc::routes::{after_sign_in, has_pending};
use crate::server::{AppState, State, blocking};
use crate::store::users;
use crate::web::csrf;
use crate::web::error::PageError;
use crate::web::pages::{self, AccountPage, LoginPage};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(home))
        .route("/login", web::get().to(login_page))
        .route("/login/link/{token}", web::get().to(open_login_link))
        .route("/account", web::get().to(account_page));
}

fn see_other(location: String) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

async fn home(state: State) -> HttpResponse {
    see_other(format!("{}/account", state.settings.issuer.path()))
}

/// The signed-in user of this browser, if any.
async fn signed_in(
    req: &HttpRequest,
    state: &State,
) -> Result<Option<(crate::store::sessions::Session, users::User)>, PageError> {
    let Some(cookie) = AppState::cookie(req, session::cookie_name(&state.settings.issuer)) else {
        return Ok(None);
    };
    blocking(state, move |state| {
        state
            .store
            .read(|conn| session::current(conn, &cookie, clock::now()))
            .map_err(PageError::from)
    })
    .await
}

async fn login_page(req: HttpRequest, state: State) -> Result<HttpResponse, PageError> {
    let current = signed_in(&req, &state).await?;
    let page = LoginPage {
        signed_in_as: current.map(|(_, user)| user.username),
        pending: has_pending(&req),
    };
    pages::render(&page, [])
}

async fn open_login_link(
    req: HttpRequest,
    state: State,
    token: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let origin = state.origin(&req);
    let previous = AppState::cookie(&req, session::cookie_name(&state.settings.issuer));
    let token = token.into_inner();
    let cookie = blocking(&state, move |state| {
        let now = clock::now();
        state.store.write(|tx| {
            let user = match login_link::redeem(tx, &token, &origin, now)? {
                Ok(user) => user,
                Err(failure) => return Ok(Err(failure)),
            };
            // A link replaces whoever was signed in in this browser before.
            if let Some(previous) = previous {
                crate::store::sessions::delete(tx, &crate::secrets::token_hash(&previous))?;
            }
            let cookie = session::start(tx, &state.settings.issuer, &user, &["otp"], &origin, now)?;
            Ok::<_, PageError>(Ok(cookie))
        })
    })
    .await?
    .map_err(|failure| {
        PageError::new(
            actix_web::http::StatusCode::GONE,
            "Login link not valid",
            failure.to_string(),
        )
    })?;
    let mut response = see_other(after_sign_in(&req, state.settings.issuer.path()));
    response
        .add_cookie(&cookie)
        .map_err(|e| PageError::internal(&e))?;
    Ok(response)
}

async fn account_page(req: HttpRequest, state: State) -> Result<HttpResponse, PageError> {
    let Some((session, user)) = signed_in(&req, &state).await? else {
        return Ok(see_other(format!("{}/login", state.settings.issuer.path())));
    };
    let user_id = user.id.clone();
    let groups = blocking(&state, move |state| {
        state
            .store
            .read(|conn| users::group_names(conn, &user_id))
            .map_err(PageError::from)
    })
    .await?;
    let (csrf_token, csrf_cookie) = csrf::token(&req, &state.settings.issuer);
    let page = AccountPage {
        username: user.username,
        display_name: user.display_name,
        email: user.email,
        groups,
        is_admin: user.is_admin,
        signed_in_at: clock::display(session.auth_time),
        csrf_token,
    };
    pages::render(&page, csrf_cookie)
}
