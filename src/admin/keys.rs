//! `/admin/keys`: the signing keys, and rotating them.

use actix_web::HttpRequest;
use actix_web::web::Bytes;
use askama::Template;
use serde::de::IgnoredAny;

use super::access::{self, AdminResult};
use super::{Frame, Section, admin_url, read, render, see_other};
use crate::clock::{self, UnixTime};
use crate::keys::{self, KeyError};
use crate::oidc::KEY_PUBLISH_AFTER_RETIREMENT_SECS;
use crate::state::{State, blocking};
use crate::store::audit::{self, Event, EventKind};
use crate::store::signing_keys::{self, StoredKey};
use crate::web::error::PageError;
use crate::web::pages::Base;

#[derive(Template)]
#[template(path = "admin/keys.html")]
struct KeysPage {
    base: Base,
    frame: Frame,
    keys: Vec<KeyRow>,
}

struct KeyRow {
    kid: String,
    alg: &'static str,
    created: String,
    active: bool,
    status: String,
}

/// Where a key stands at `now`: signing, still published for tokens it signed, or neither.
fn status(key: &StoredKey, now: UnixTime) -> String {
    match key.retired_at {
        None => "Active: signs new tokens".to_string(),
        Some(at) if at + KEY_PUBLISH_AFTER_RETIREMENT_SECS > now => format!(
            "Retired {}; published until {}",
            clock::display(at),
            clock::display(at + KEY_PUBLISH_AFTER_RETIREMENT_SECS)
        ),
        Some(at) => format!("Retired {}; no longer published", clock::display(at)),
    }
}

pub async fn page(req: HttpRequest, state: State) -> AdminResult {
    let admin = access::require(&req, &state).await?;
    let stored = read(&state, |conn| Ok(signing_keys::list(conn)?)).await?;
    let now = clock::now();
    let page = KeysPage {
        base: Base::of(&state.settings.issuer),
        frame: Frame::new(&req, &state, &admin, Section::Keys),
        keys: stored
            .iter()
            .map(|key| KeyRow {
                kid: key.kid.clone(),
                alg: key.alg.as_str(),
                created: clock::display(key.created_at),
                active: key.retired_at.is_none(),
                status: status(key, now),
            })
            .collect(),
    };
    render(&page, &page.frame)
}

/// Signs with a new key of every algorithm from now on; the old ones stay in the JWKS until
/// every token they signed has expired, so nothing already issued breaks.
pub async fn rotate(req: HttpRequest, state: State, body: Bytes) -> AdminResult {
    let (admin, _) = access::form::<IgnoredAny>(&req, &state, &body).await?;
    let origin = state.origin(&req).by(&admin.user.username);
    blocking(&state, move |state| {
        let now = clock::now();
        state
            .store
            .write(|tx| {
                let kids = keys::rotate(tx, now, KEY_PUBLISH_AFTER_RETIREMENT_SECS)?;
                let event = Event::new(EventKind::KeysRotated).detail(kids.join(" "));
                audit::record(tx, &event, &origin, now)?;
                Ok::<_, KeyError>(())
            })
            .map_err(|e| PageError::internal(&e))
    })
    .await?;
    Ok(see_other(admin_url(&state, "/keys")))
}
