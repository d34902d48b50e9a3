//! `/admin`: where things stand, and the way to each part of the administration area.

use actix_web::HttpRequest;
use askama::Template;

use super::access::{self, AdminResult};
use super::audit::{AuditRow, Narrowed, rows};
use super::{Frame, Section, read, render};
use crate::clock;
use crate::state::State;
use crate::store::audit;
use crate::store::{groups, signing_keys, users};
use crate::web::pages::Base;

/// How many of the newest events the overview shows.
const RECENT_EVENTS: i64 = 10;

#[derive(Template)]
#[template(path = "admin/overview.html")]
struct OverviewPage {
    base: Base,
    frame: Frame,
    people: usize,
    admins: usize,
    disabled: usize,
    groups: usize,
    /// The key signing tokens now, and since when.
    signing_key: Option<(String, String)>,
    rows: Vec<AuditRow>,
}

pub async fn page(req: HttpRequest, state: State) -> AdminResult {
    let admin = access::require(&req, &state).await?;
    let (everyone, group_count, keys, recent) = read(&state, |conn| {
        Ok((
            users::list(conn)?,
            groups::list(conn)?.len(),
            signing_keys::list(conn)?,
            audit::recent(conn, RECENT_EVENTS)?,
        ))
    })
    .await?;
    let page = OverviewPage {
        base: Base::of(&state.settings.issuer),
        frame: Frame::new(&req, &state, &admin, Section::Overview),
        people: everyone.len(),
        admins: everyone
            .iter()
            .filter(|u| u.is_admin && !u.disabled)
            .count(),
        disabled: everyone.iter().filter(|u| u.disabled).count(),
        groups: group_count,
        signing_key: keys
            .iter()
            .find(|key| key.retired_at.is_none())
            .map(|key| (key.kid.clone(), clock::display(key.created_at))),
        rows: rows(&state, recent, &Narrowed::default()),
    };
    render(&page, &page.frame)
}
