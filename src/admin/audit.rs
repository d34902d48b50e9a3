//! `/admin/audit`: the audit log, newest first, filtered and a page at a time.

use actix_web::HttpRequest;
use askama::Template;
use serde::Deserialize;

use super::access::{self, AdminError, AdminResult};
use super::{Frame, Section, admin_url, read, render};
use crate::clock;
use crate::state::State;
use crate::store::audit::{self, Filter, Page, Recorded, UnknownEventKind};
use crate::web::error::PageError;
use crate::web::pages::Base;

pub const PER_PAGE: i64 = 50;

#[derive(Template)]
#[template(path = "admin/audit.html")]
struct AuditPage {
    base: Base,
    frame: Frame,
    user: String,
    client: String,
    event: String,
    filtered: bool,
    rows: Vec<AuditRow>,
    number: i64,
    pages: i64,
    total: i64,
    newer: Option<String>,
    older: Option<String>,
}

/// One event as shown, with links that narrow the log to its user, client or kind.
pub struct AuditRow {
    pub at: String,
    pub event: String,
    pub event_href: String,
    pub username: Option<(String, String)>,
    pub client_id: Option<(String, String)>,
    pub ip: String,
    pub user_agent: String,
    pub detail: String,
    /// Who made the change, when not the person it concerns.
    pub actor: String,
}

#[derive(Debug, Default, Deserialize)]
struct AuditQuery {
    #[serde(default)]
    user: String,
    #[serde(default)]
    client: String,
    #[serde(default)]
    event: String,
    #[serde(default)]
    page: String,
}

/// The log narrowed as its address says, each field blank for any value. The event stays as
/// asked, so that a name no event is recorded under is shown back in the form and the links,
/// and matches nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Narrowed {
    username: Option<String>,
    client_id: Option<String>,
    event: Option<String>,
}

impl Narrowed {
    /// What to search the log for; an error when the event names no kind that is recorded.
    fn filter(&self) -> Result<Filter, UnknownEventKind> {
        Ok(Filter {
            username: self.username.clone(),
            client_id: self.client_id.clone(),
            event: self.event.as_deref().map(str::parse).transpose()?,
        })
    }
}

/// The address of the log narrowed to `narrowed`, at `page`.
fn href(state: &State, narrowed: &Narrowed, page: i64) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in [
        ("user", &narrowed.username),
        ("client", &narrowed.client_id),
        ("event", &narrowed.event),
    ] {
        if let Some(value) = value {
            query.append_pair(name, value);
        }
    }
    if page > 1 {
        query.append_pair("page", &page.to_string());
    }
    let query = query.finish();
    let path = admin_url(state, "/audit");
    if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    }
}

/// Events as rows; their links add to what `narrowed` already narrows.
pub fn rows(state: &State, events: Vec<Recorded>, narrowed: &Narrowed) -> Vec<AuditRow> {
    events
        .into_iter()
        .map(|recorded| {
            let narrowed = |change: &dyn Fn(&mut Narrowed)| {
                let mut narrower = narrowed.clone();
                change(&mut narrower);
                href(state, &narrower, 1)
            };
            AuditRow {
                at: clock::display(recorded.at),
                event_href: narrowed(&|f| f.event = Some(recorded.event.clone())),
                username: recorded
                    .username
                    .as_ref()
                    .map(|name| (name.clone(), narrowed(&|f| f.username = Some(name.clone())))),
                client_id: recorded
                    .client_id
                    .as_ref()
                    .map(|id| (id.clone(), narrowed(&|f| f.client_id = Some(id.clone())))),
                event: recorded.event,
                ip: recorded.ip.unwrap_or_default(),
                user_agent: recorded.user_agent.unwrap_or_default(),
                actor: recorded.actor.unwrap_or_default(),
                detail: match (recorded.detail, recorded.repeats) {
                    (detail, 1) => detail.unwrap_or_default(),
                    (Some(detail), n) => format!("{detail} (×{n} within a minute)"),
                    (None, n) => format!("×{n} within a minute"),
                },
            }
        })
        .collect()
}

/// A filter field: blank means any; anything longer than an e-mail address matches nothing
/// we record, so it is refused rather than searched for.
fn criterion(value: &str, what: &str) -> Result<Option<String>, AdminError> {
    let value = value.trim();
    if value.chars().count() > 254 || value.chars().any(char::is_control) {
        return Err(PageError::bad_request(
            "Filter not valid",
            format!("The {what} to look for has at most 254 characters and no control characters."),
        )
        .into());
    }
    Ok((!value.is_empty()).then(|| value.to_string()))
}

pub async fn page(req: HttpRequest, state: State) -> AdminResult {
    let admin = access::require(&req, &state).await?;
    let asked: AuditQuery = access::query(&req)?;
    let narrowed = Narrowed {
        // Usernames are stored lowercased.
        username: criterion(&asked.user, "username")?.map(|name| name.to_lowercase()),
        client_id: criterion(&asked.client, "client id")?,
        event: criterion(&asked.event, "event")?,
    };
    let number = match asked.page.trim() {
        "" => 1,
        page => page
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| {
                PageError::bad_request("Page not valid", "Pages are numbered from 1.")
            })?,
    };
    let found = match narrowed.filter() {
        Ok(filter) => {
            read(&state, move |conn| {
                Ok(audit::search(conn, &filter, number, PER_PAGE)?)
            })
            .await?
        }
        // No event is recorded under a name that no kind has.
        Err(UnknownEventKind(_)) => Page::empty(number),
    };
    let page = AuditPage {
        base: Base::of(&state.settings.issuer),
        frame: Frame::new(&req, &state, &admin, Section::Audit),
        user: narrowed.username.clone().unwrap_or_default(),
        client: narrowed.client_id.clone().unwrap_or_default(),
        event: narrowed.event.clone().unwrap_or_default(),
        filtered: narrowed != Narrowed::default(),
        newer: (found.number > 1).then(|| href(&state, &narrowed, found.number - 1)),
        older: (found.number < found.pages).then(|| href(&state, &narrowed, found.number + 1)),
        rows: rows(&state, found.events, &narrowed),
        number: found.number,
        pages: found.pages,
        total: found.total,
    };
    render(&page, &page.frame)
}
