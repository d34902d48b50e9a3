//! The administration area (`/admin`): people, groups, clients, the audit log and signing
//! keys, for administrators only.
//!
//! Handlers stay thin: `access` admits the administrator and reads the form, a rule in
//! `directory` or `store` makes the change (and audit-logs it) in one transaction, and the
//! browser goes back to the page it came from. A change the rules refuse shows that page
//! again with the reason, keeping the administrator where they were.

mod access;
mod audit;
mod clients;
mod groups;
mod keys;
mod overview;
mod proxmox;
mod proxmox_view;
pub mod routes;
mod users;

use crate::store::Db;
use actix_web::cookie::Cookie;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;
use serde::de::DeserializeOwned;

use crate::clock::{self, UnixTime};
use crate::directory::{DirectoryError, DirectoryResult};
use crate::state::{State, blocking};
use crate::store::audit::Origin;
use crate::store::users::User;
use crate::web::csrf;
use crate::web::error::PageError;
use access::{Admin, AdminError, AdminResult};

fn see_other(location: String) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// The absolute path of an admin page, under the issuer's path.
fn admin_url(state: &State, path: &str) -> String {
    format!("{}/admin{path}", state.settings.issuer.path())
}

/// A path parameter of the matched route (percent-decoded by the router).
fn segment(req: &HttpRequest, name: &str) -> String {
    req.match_info().query(name).to_string()
}

/// The sections of the administration area, for the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Overview,
    Users,
    Groups,
    Clients,
    Audit,
    Keys,
}

/// What every admin page carries around its content: the navigation, the administrator,
/// the forms' CSRF token and, after a refused change, the reason.
struct Frame {
    section: Section,
    admin: crate::names::Username,
    csrf_token: String,
    error: Option<String>,
    status: StatusCode,
    csrf_cookie: Option<Cookie<'static>>,
}

impl Frame {
    fn new(req: &HttpRequest, state: &State, admin: &Admin, section: Section) -> Frame {
        let (csrf_token, csrf_cookie) = csrf::token(req, &state.settings.issuer);
        Frame {
            section,
            admin: admin.user.username.clone(),
            csrf_token,
            error: None,
            status: StatusCode::OK,
            csrf_cookie,
        }
    }

    /// The page, shown again because a change was refused.
    fn refused(mut self, refusal: Option<Refusal>) -> Frame {
        if let Some(refusal) = refusal {
            self.status = refusal.status;
            self.error = Some(refusal.message);
        }
        self
    }

    /// For the templates: `aria-current` on the link of this page's section.
    fn current(&self, section: &str) -> &'static str {
        let here = match self.section {
            Section::Overview => "overview",
            Section::Users => "users",
            Section::Groups => "groups",
            Section::Clients => "clients",
            Section::Audit => "audit",
            Section::Keys => "keys",
        };
        if here == section { "page" } else { "false" }
    }
}

/// Renders an admin page with its frame's status and cookie.
fn render(page: &impl Template, frame: &Frame) -> AdminResult {
    let mut response = crate::web::pages::render(page, frame.csrf_cookie.clone())?;
    *response.status_mut() = frame.status;
    Ok(response)
}

/// A change the rules refused, for a reason the administrator can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Refusal {
    status: StatusCode,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            message: message.into(),
        }
    }
}

/// A directory error as a sentence for a person: capitalised, with a full stop.
fn sentence(message: &str) -> String {
    let mut chars = message.chars();
    let mut text: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => return String::new(),
    };
    if !text.ends_with(['.', '!', '?']) {
        text.push('.');
    }
    text
}

/// A rule's answer as the page shows it: a refusal (bad input, a conflict, something missing)
/// is the sentence to show; a storage failure is a server error.
fn refused<T>(outcome: DirectoryResult<T>) -> Result<Result<T, Refusal>, PageError> {
    match outcome {
        Ok(value) => Ok(Ok(value)),
        Err(DirectoryError::Store(e)) => Err(PageError::from(e)),
        Err(refused) => {
            let status = match &refused {
                DirectoryError::Invalid(_) => StatusCode::BAD_REQUEST,
                DirectoryError::NoSuchUser(_)
                | DirectoryError::NoSuchGroup(_)
                | DirectoryError::NoSuchClient(_) => StatusCode::NOT_FOUND,
                _ => StatusCode::CONFLICT,
            };
            Ok(Err(Refusal::new(status, sentence(&refused.to_string()))))
        }
    }
}

/// Runs a change in one write transaction. A refusal writes nothing and comes back as the
/// sentence to show.
async fn change<T: Send + 'static>(
    state: &State,
    work: impl FnOnce(&Db, UnixTime) -> DirectoryResult<T> + Send + 'static,
) -> Result<Result<T, Refusal>, PageError> {
    blocking(state, move |state| {
        refused(state.store.write(|tx| work(tx, clock::now())))
    })
    .await
}

/// Reads what a change needs before it is made (such as what to check on another server
/// first); a refusal comes back as the sentence to show, as for `change`.
async fn check<T: Send + 'static>(
    state: &State,
    work: impl FnOnce(&Db) -> DirectoryResult<T> + Send + 'static,
) -> Result<Result<T, Refusal>, PageError> {
    blocking(state, move |state| refused(state.store.read(work))).await
}

/// What a posted change to the thing at its URL (a person, a group) works with.
struct Change<F, S> {
    actor: User,
    /// The path parameter naming the thing changed, parsed.
    subject: S,
    form: F,
    origin: Origin,
}

/// How a posted change ended.
enum Applied {
    /// Made: go to the page it leads to.
    Done(HttpResponse),
    /// Refused: show the subject's page again, with the reason.
    Refused(Admin, String, Refusal),
}

/// Handles a posted change to the thing named by the path parameter `subject`: admits the
/// administrator, reads the form, parses the subject with `name` and runs `work` in one
/// transaction; `work` returns the admin path to go to next.
async fn apply<F: DeserializeOwned + Send + 'static, S: 'static>(
    req: &HttpRequest,
    state: &State,
    body: &[u8],
    subject: &str,
    name: fn(&str) -> DirectoryResult<S>,
    work: impl FnOnce(&Db, Change<F, S>, UnixTime) -> DirectoryResult<String> + Send + 'static,
) -> Result<Applied, AdminError> {
    let (admin, form) = access::form::<F>(req, state, body).await?;
    let subject = segment(req, subject);
    let named = subject.clone();
    let actor = admin.user.clone();
    let origin = state.origin(req).by(&admin.user.username);
    let outcome = change(state, move |tx, now| {
        let posted = Change {
            actor,
            subject: name(&named)?,
            form,
            origin,
        };
        work(tx, posted, now)
    })
    .await?;
    Ok(match outcome {
        Ok(next) => Applied::Done(see_other(admin_url(state, &next))),
        Err(refusal) => Applied::Refused(admin, subject, refusal),
    })
}

/// Reads what a page shows on the blocking pool. What it looks for being gone is a 404.
async fn read<T: Send + 'static>(
    state: &State,
    work: impl FnOnce(&Db) -> DirectoryResult<T> + Send + 'static,
) -> Result<T, AdminError> {
    let found = blocking(state, move |state| {
        state.store.read(work).map_err(|e| match e {
            DirectoryError::Store(e) => PageError::from(e),
            DirectoryError::NoSuchUser(_) | DirectoryError::NoSuchGroup(_) => {
                PageError::not_found()
            }
            other => PageError::bad_request("Not possible", sentence(&other.to_string())),
        })
    })
    .await?;
    Ok(found)
}

/// A timestamp for people, or a word when there is none.
fn when(at: Option<UnixTime>, otherwise: &str) -> String {
    at.map_or_else(|| otherwise.to_string(), clock::display)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_errors_become_sentences() {
        assert_eq!(sentence("no user named \"bob\""), "No user named \"bob\".");
        assert_eq!(sentence("Done."), "Done.");
        assert_eq!(sentence(""), "");
    }
}
