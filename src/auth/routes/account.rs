//! `/account`: profile, passkeys and sessions of the signed-in person.

use crate::store::Db;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use webauthn_rs::prelude::RegisterPublicKeyCredential;

use super::sign_in::FinishRequest;
use super::{ceremony_allowed, ceremony_started, see_other, signed_in, with_passkeys};
use crate::auth::{AuthState, session};
use crate::clock;
use crate::directory::users as directory_users;
use crate::names::ClientId;
use crate::observe::metrics::Ceremony;
use crate::state::{State, blocking};
use crate::store::audit::{self, Event, EventKind, Origin};
use crate::store::sessions::{self, Session};
use crate::store::users::{self, User};
use crate::store::{StoreError, consents, grants, passkeys as stored_passkeys};
use crate::web::csrf;
use crate::web::error::{ApiError, PageError};
use crate::web::pages::{self, AccountPage, Base, ConsentRow, PasskeyRow, SessionRow};

pub fn configure(cfg: &mut web::ServiceConfig) {
    let post = web::post;
    cfg.service(
        web::scope("/account")
            .route("", web::get().to(account_page))
            .route("/profile", post().to(update_profile))
            .route("/passkeys/start", post().to(start_registration))
            .route("/passkeys/finish", post().to(finish_registration))
            .route("/passkeys/{id}/rename", post().to(rename_passkey))
            .route("/passkeys/{id}/delete", post().to(delete_passkey))
            .route("/sessions/{handle}/end", post().to(end_session))
            .route("/sessions/end-others", post().to(end_other_sessions))
            .route("/consents/{client_id}/revoke", post().to(revoke_consent)),
    );
}

fn account_url(state: &State) -> String {
    format!("{}/account", state.settings.issuer.path())
}

/// The signed-in person, or the sign-in page.
async fn require_session(
    req: &HttpRequest,
    state: &State,
) -> Result<(Session, User), HttpResponse> {
    match signed_in(req, state).await {
        Ok(Some(found)) => Ok(found),
        Ok(None) => Err(see_other(format!("{}/login", state.settings.issuer.path()))),
        Err(error) => Err(actix_web::ResponseError::error_response(&error)),
    }
}

/// "Firefox on Linux", from a user agent string; enough to tell one's devices apart.
fn device(user_agent: Option<&str>) -> String {
    let ua = user_agent.unwrap_or_default();
    let browser = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
        ("curl/", "curl"),
    ]
    .iter()
    .find(|(marker, _)| ua.contains(marker))
    .map_or("Unknown browser", |(_, name)| name);
    let system = [
        ("Android", "Android"),
        ("iPhone", "iPhone"),
        ("iPad", "iPad"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("CrOS", "ChromeOS"),
        ("Linux", "Linux"),
    ]
    .iter()
    .find(|(marker, _)| ua.contains(marker))
    .map(|(_, name)| *name);
    match system {
        Some(system) => format!("{browser} on {system}"),
        None => browser.to_string(),
    }
}

async fn account_page(
    req: HttpRequest,
    state: State,
    auth: web::Data<AuthState>,
) -> Result<HttpResponse, PageError> {
    let (session, user) = match require_session(&req, &state).await {
        Ok(found) => found,
        Err(redirect) => return Ok(redirect),
    };
    let user_id = user.id.clone();
    let (groups, keys, live, agreed) = blocking(&state, move |state| {
        state
            .store
            .read(|conn| {
                Ok::<_, StoreError>((
                    users::group_names(conn, &user_id)?,
                    stored_passkeys::for_user(conn, &user_id)?,
                    sessions::for_user(conn, &user_id, clock::now())?,
                    consents::for_user(conn, &user_id)?,
                ))
            })
            .map_err(PageError::from)
    })
    .await?;
    let (csrf_token, csrf_cookie) = csrf::token(&req, &state.settings.issuer);
    let page = AccountPage {
        base: Base::of(&state.settings.issuer),
        username: user.username,
        display_name: user.display_name,
        email: user.email.unwrap_or_default(),
        groups,
        is_admin: user.is_admin,
        signed_in_at: clock::display(session.auth_time),
        passkeys_enabled: auth.passkeys.is_some(),
        passkeys: keys
            .into_iter()
            .map(|key| PasskeyRow {
                id: key.id,
                name: key.name,
                created: clock::display(key.created_at),
                last_used: key.last_used_at.map_or("never".into(), clock::display),
            })
            .collect(),
        sessions: live
            .iter()
            .map(|other| SessionRow {
                handle: sessions::handle(other).to_string(),
                device: device(other.user_agent.as_deref()),
                ip: other.ip.clone().unwrap_or_else(|| "unknown".into()),
                last_seen: clock::display(other.last_seen_at),
                current: other.id_hash == session.id_hash,
            })
            .collect(),
        consents: agreed
            .into_iter()
            .map(|(client_id, client_name, scope, granted_at)| ConsentRow {
                client_id,
                client_name,
                scope,
                granted: clock::display(granted_at),
            })
            .collect(),
        csrf_token,
    };
    pages::render(&page, csrf_cookie)
}

#[derive(Deserialize)]
struct ProfileForm {
    csrf_token: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    email: String,
}

/// What a posted account change works with.
struct Posted {
    session: Session,
    user: User,
    origin: Origin,
    now: clock::UnixTime,
}

/// Handles a posted change to the signed-in person's account: checks the CSRF token and the
/// session, runs `work` in one transaction, and goes back to the account page.
async fn account_change(
    req: &HttpRequest,
    state: &State,
    csrf_token: &str,
    work: impl FnOnce(&Db, Posted) -> Result<(), PageError> + Send + 'static,
) -> Result<HttpResponse, PageError> {
    csrf::verify(req, &state.settings.issuer, Some(csrf_token))?;
    let (session, user) = match require_session(req, state).await {
        Ok(found) => found,
        Err(redirect) => return Ok(redirect),
    };
    let origin = state.origin(req);
    blocking(state, move |state| {
        state.store.write(|tx| {
            let posted = Posted {
                session,
                user,
                origin,
                now: clock::now(),
            };
            work(tx, posted)
        })
    })
    .await?;
    Ok(see_other(account_url(state)))
}

/// Records an account change in the audit log.
fn record(tx: &Db, posted: &Posted, kind: EventKind, detail: String) -> Result<(), PageError> {
    let event = Event::new(kind)
        .user(&posted.user.id, &posted.user.username)
        .detail(detail);
    Ok(audit::record(tx, &event, &posted.origin, posted.now)?)
}

async fn update_profile(
    req: HttpRequest,
    state: State,
    form: web::Form<ProfileForm>,
) -> Result<HttpResponse, PageError> {
    let form = form.into_inner();
    let token = form.csrf_token.clone();
    account_change(&req, &state, &token, move |tx, posted| {
        directory_users::update_own_profile(
            tx,
            &posted.user,
            &form.display_name,
            &form.email,
            &posted.origin,
            posted.now,
        )
        .map(|_| ())
        .map_err(|e| match e {
            crate::directory::DirectoryError::Store(e) => PageError::from(e),
            other => PageError::bad_request("Profile not saved", other.to_string()),
        })
    })
    .await
}

async fn start_registration(
    req: HttpRequest,
    state: State,
    auth: web::Data<AuthState>,
) -> Result<HttpResponse, ApiError> {
    ceremony_allowed(&req, &state)?;
    let Ok((session, user)) = require_session(&req, &state).await else {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "Sign in first."));
    };
    if !session::signed_in_recently(&session, clock::now()) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Adding a passkey needs a sign-in from the last 10 minutes. Sign in again, then \
             add it.",
        ));
    }
    let (ceremony, options) = with_passkeys(&state, auth, move |_, passkeys, tx| {
        passkeys
            .start_registration(tx, &user, clock::now())
            .map_err(ApiError::from)
    })
    .await?;
    state.metrics.ceremony_started(Ceremony::Register);
    Ok(ceremony_started(&ceremony, &options["publicKey"]))
}

async fn finish_registration(
    req: HttpRequest,
    state: State,
    auth: web::Data<AuthState>,
    body: web::Json<FinishRequest<RegisterPublicKeyCredential>>,
) -> Result<HttpResponse, ApiError> {
    ceremony_allowed(&req, &state)?;
    let Ok((_, user)) = require_session(&req, &state).await else {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "Sign in first."));
    };
    let origin = state.origin(&req);
    let FinishRequest {
        ceremony,
        credential,
    } = body.into_inner();
    // The ceremony is spent even when the attempt fails.
    let saved = with_passkeys(&state, auth, move |_, passkeys, tx| {
        Ok(passkeys
            .finish_registration(tx, &ceremony, &user, &credential, &origin, clock::now())
            .map_err(ApiError::from))
    })
    .await
    .and_then(|finished| finished);
    state
        .metrics
        .ceremony_ended(Ceremony::Register, saved.is_ok());
    let saved = saved?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "id": saved.id, "name": saved.name })))
}

#[derive(Deserialize)]
struct RenameForm {
    csrf_token: String,
    name: String,
}

async fn rename_passkey(
    req: HttpRequest,
    state: State,
    id: web::Path<i64>,
    form: web::Form<RenameForm>,
) -> Result<HttpResponse, PageError> {
    let name = crate::names::display_name(&form.name)
        .ok()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            PageError::bad_request(
                "Name not valid",
                "A passkey name has 1 to 128 characters and no control characters.",
            )
        })?;
    let id = id.into_inner();
    account_change(&req, &state, &form.csrf_token, move |tx, posted| {
        if !stored_passkeys::rename(tx, &posted.user.id, id, &name)? {
            return Err(PageError::not_found());
        }
        record(tx, &posted, EventKind::PasskeyRenamed, name)
    })
    .await
}

#[derive(Deserialize)]
struct DeleteForm {
    csrf_token: String,
    /// Required, as "yes", to delete the last passkey.
    #[serde(default)]
    confirm_last: Option<String>,
}

async fn delete_passkey(
    req: HttpRequest,
    state: State,
    id: web::Path<i64>,
    form: web::Form<DeleteForm>,
) -> Result<HttpResponse, PageError> {
    let confirmed = form.confirm_last.as_deref() == Some("yes");
    let id = id.into_inner();
    account_change(&req, &state, &form.csrf_token, move |tx, posted| {
        let count = stored_passkeys::for_user(tx, &posted.user.id)?.len();
        if count == 1 && !confirmed {
            return Err(PageError::bad_request(
                "This is your last passkey",
                "Without a passkey you can sign in again only with a login link from an \
                 administrator. Go back and tick the confirmation to delete it anyway.",
            ));
        }
        directory_users::remove_passkey_of(tx, &posted.user, id, &posted.origin, posted.now)?
            .ok_or_else(PageError::not_found)?;
        Ok(())
    })
    .await
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf_token: String,
}

async fn end_session(
    req: HttpRequest,
    state: State,
    handle: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let handle = handle.into_inner();
    account_change(&req, &state, &form.csrf_token, move |tx, posted| {
        directory_users::end_session_of(tx, &posted.user, &handle, &posted.origin, posted.now)?;
        Ok(())
    })
    .await
}

async fn end_other_sessions(
    req: HttpRequest,
    state: State,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    account_change(&req, &state, &form.csrf_token, move |tx, posted| {
        let ended = sessions::delete_others(tx, &posted.user.id, &posted.session.id_hash)?;
        record(
            tx,
            &posted,
            EventKind::SessionRevoked,
            format!("{ended} other sessions"),
        )
    })
    .await
}

async fn revoke_consent(
    req: HttpRequest,
    state: State,
    client_id: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    // An id no client can have names no consent: nothing to withdraw.
    let client_id = ClientId::parse(&client_id).ok();
    account_change(&req, &state, &form.csrf_token, move |tx, posted| {
        // Withdrawing consent also ends what the app holds: its access and refresh tokens.
        if let Some(client_id) = &client_id
            && consents::revoke(tx, &posted.user.id, client_id)?
        {
            let revoked =
                grants::revoke_grants_of(tx, &posted.user.id, Some(client_id), posted.now)?;
            record(
                tx,
                &posted,
                EventKind::ConsentRevoked,
                format!("{client_id}; {revoked} grants revoked"),
            )?;
        }
        Ok(())
    })
    .await
}
