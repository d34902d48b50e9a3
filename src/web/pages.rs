//! The page templates and one way to render them.

use actix_web::HttpResponse;
use actix_web::cookie::Cookie;
use actix_web::http::header;
use askama::Template;

use super::error::PageError;
use crate::config::Issuer;
use crate::names::{ClientId, GroupName, Username};

/// The path every link in a page starts with: the issuer's path, where the routes are
/// mounted (empty at the root). Each page carries its own, so that servers with different
/// issuers can share a process.
pub struct Base(String);

impl Base {
    pub fn of(issuer: &Issuer) -> Base {
        Base(issuer.path().to_string())
    }
}

impl std::fmt::Display for Base {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Renders `page` as a 200 HTML response that is never cached, setting `cookies`.
pub fn render(
    page: &impl Template,
    cookies: impl IntoIterator<Item = Cookie<'static>>,
) -> Result<HttpResponse, PageError> {
    let mut response = HttpResponse::Ok();
    response
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"));
    for cookie in cookies {
        response.cookie(cookie);
    }
    Ok(response.body(page.render()?))
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub base: Base,
    /// Someone is already signed in in this browser.
    pub signed_in_as: Option<Username>,
    /// An application is waiting for the sign-in.
    pub pending: bool,
    /// Passkeys work with this issuer.
    pub passkeys: bool,
}

#[derive(Template)]
#[template(path = "setup.html")]
pub struct SetupPage {
    pub base: Base,
    pub token: String,
    pub passkeys: bool,
}

#[derive(Template)]
#[template(path = "account.html")]
pub struct AccountPage {
    pub base: Base,
    pub username: Username,
    pub display_name: String,
    pub email: String,
    pub groups: Vec<GroupName>,
    pub is_admin: bool,
    pub signed_in_at: String,
    pub passkeys_enabled: bool,
    pub passkeys: Vec<PasskeyRow>,
    pub sessions: Vec<SessionRow>,
    pub consents: Vec<ConsentRow>,
    pub csrf_token: String,
}

pub struct ConsentRow {
    pub client_id: ClientId,
    pub client_name: String,
    pub scope: String,
    pub granted: String,
}

pub struct PasskeyRow {
    pub id: i64,
    pub name: String,
    pub created: String,
    pub last_used: String,
}

pub struct SessionRow {
    pub handle: String,
    pub device: String,
    pub ip: String,
    pub last_seen: String,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "logout.html")]
pub struct LogoutPage {
    pub base: Base,
    pub username: Username,
    pub client_name: Option<String>,
    /// The request's parameters, carried through the confirmation form.
    pub fields: Vec<(String, String)>,
    pub csrf_token: String,
}

#[derive(Template)]
#[template(path = "apps.html")]
pub struct AppsPage {
    pub base: Base,
    pub name: String,
    pub is_admin: bool,
    pub apps: Vec<AppLink>,
}

pub struct AppLink {
    pub name: String,
    pub url: String,
}

#[derive(Template)]
#[template(path = "not_allowed.html")]
pub struct NotAllowedPage {
    pub base: Base,
    pub client_name: String,
    pub username: Username,
    /// The app's redirect URI with `error=access_denied`.
    pub return_url: String,
}

#[derive(Template)]
#[template(path = "consent.html")]
pub struct ConsentPage {
    pub base: Base,
    pub client_name: String,
    pub username: Username,
    /// What the app will learn, in words.
    pub shares: Vec<&'static str>,
    /// Where the form's answer leads (for the page's form-action policy).
    pub redirect_origin: String,
    pub csrf_token: String,
}

#[derive(Template)]
#[template(path = "signed_out.html")]
pub struct SignedOutPage {
    pub base: Base,
}
