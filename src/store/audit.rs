//! The audit log: who did what, where, and from where.

mod kind;

use std::collections::HashMap;
use std::sync::Mutex;

use super::db::{Db, Row};
use crate::args;

use super::StoreResult;
use crate::clock::UnixTime;
use crate::limits::Address;
use crate::names::{UserId, Username};

pub use kind::{EventKind, UnknownEventKind};

/// The longest text kept in any column of an event: whatever a request sends, a row stays
/// small.
pub const MAX_FIELD_CHARS: usize = 512;

/// Where an action came from: a request (IP and user agent) or the command line, and who
/// took it when that is not the person it concerns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// An administrator's username, "command line" or "config file".
    pub actor: Option<String>,
}

impl Origin {
    /// Actions taken with the `latchkey` command on the server itself.
    pub fn cli() -> Origin {
        Origin {
            ip: None,
            user_agent: Some("latchkey-cli".to_string()),
            actor: Some("command line".to_string()),
        }
    }

    /// Actions the config file declares.
    pub fn config_file() -> Origin {
        Origin {
            ip: None,
            user_agent: Some("latchkey-config".to_string()),
            actor: Some("config file".to_string()),
        }
    }

    /// Changes the Proxmox sync makes on a server.
    pub fn sync() -> Origin {
        Origin {
            ip: None,
            user_agent: Some("latchkey-sync".to_string()),
            actor: Some("Proxmox sync".to_string()),
        }
    }

    /// The same origin, acted on by `actor`.
    pub fn by(mut self, actor: &Username) -> Origin {
        self.actor = Some(actor.to_string());
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event<'a> {
    pub kind: EventKind,
    pub user_id: Option<&'a UserId>,
    pub username: Option<&'a Username>,
    pub client_id: Option<&'a str>,
    pub detail: Option<String>,
}

impl<'a> Event<'a> {
    pub fn new(kind: EventKind) -> Event<'a> {
        Event {
            kind,
            user_id: None,
            username: None,
            client_id: None,
            detail: None,
        }
    }

    pub fn user(mut self, user_id: &'a UserId, username: &'a Username) -> Self {
        self.user_id = Some(user_id);
        self.username = Some(username);
        self
    }

    pub fn client(mut self, client_id: &'a str) -> Self {
        self.client_id = Some(client_id);
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

/// `text` cut to `max` characters, marked with an ellipsis when cut: what the audit log and
/// the access log keep of a value a request sent.
pub fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((at, _)) => format!("{}…", &text[..at]),
    }
}

/// `text` cut to `MAX_FIELD_CHARS` characters.
fn capped(text: Option<&str>) -> Option<String> {
    text.map(|text| cut(text, MAX_FIELD_CHARS))
}

/// Writes one event, every value capped to `MAX_FIELD_CHARS`.
pub fn record(conn: &Db, event: &Event, origin: &Origin, now: UnixTime) -> StoreResult<()> {
    insert(conn, event, origin, now).map(|_| ())
}

/// Writes one event; returns its row id.
fn insert(conn: &Db, event: &Event, origin: &Origin, now: UnixTime) -> StoreResult<i64> {
    conn.query_one(
        "INSERT INTO audit_events (at, event, user_id, username, client_id, ip, user_agent, \
         detail, actor) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING id",
        args![
            now,
            event.kind.as_str(),
            capped(event.user_id.map(UserId::as_str)),
            capped(event.username.map(Username::as_str)),
            capped(event.client_id),
            capped(origin.ip.as_deref()),
            capped(origin.user_agent.as_deref()),
            capped(event.detail.as_deref()),
            capped(origin.actor.as_deref())
        ],
        |row| row.get(0),
    )
}

/// How long repeats of one failure are counted on one row.
pub const REPEAT_WINDOW_SECS: i64 = 60;

/// How many failure kinds are followed at once; past that, the table starts over (which only
/// means a new row for the next failure of each kind).
const MAX_REPEATS_TRACKED: usize = 10_000;

/// Failures that anyone can cause as fast as they like (a wrong client secret, an unknown
/// link) are written once per address, event, client and reason a minute; the same failure
/// again within that minute counts on that row (`repeats`) instead of adding one.
#[derive(Default)]
pub struct Repeats {
    open: Mutex<HashMap<RepeatKey, (UnixTime, i64)>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RepeatKey {
    address: Address,
    kind: EventKind,
    client_id: Option<String>,
    detail: Option<String>,
}

/// Records a failure, or counts it on the row of the same failure from the same address
/// within the last `REPEAT_WINDOW_SECS`.
pub fn record_failure(
    conn: &Db,
    repeats: &Repeats,
    event: &Event,
    origin: &Origin,
    now: UnixTime,
) -> StoreResult<()> {
    let key = RepeatKey {
        address: Address::of(origin.ip.as_deref()),
        kind: event.kind,
        client_id: capped(event.client_id),
        detail: capped(event.detail.as_deref()),
    };
    let mut open = repeats.open.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&(since, row)) = open.get(&key)
        && now - since < REPEAT_WINDOW_SECS
        && count_repeat(conn, row, event.kind, since)?
    {
        return Ok(());
    }
    let row = insert(conn, event, origin, now)?;
    if open.len() >= MAX_REPEATS_TRACKED {
        open.retain(|_, (since, _)| now - *since < REPEAT_WINDOW_SECS);
        if open.len() >= MAX_REPEATS_TRACKED {
            open.clear();
        }
    }
    open.insert(key, (now, row));
    Ok(())
}

/// Adds one to a failure's row; false when the row is gone (rolled back or purged).
fn count_repeat(conn: &Db, row: i64, kind: EventKind, at: UnixTime) -> StoreResult<bool> {
    let updated = conn.execute(
        "UPDATE audit_events SET repeats = repeats + 1 WHERE id = ?1 AND event = ?2 AND at = ?3",
        args![row, kind.as_str(), at],
    )?;
    Ok(updated == 1)
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Recorded {
    pub at: UnixTime,
    pub event: String,
    pub username: Option<String>,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub detail: Option<String>,
    pub actor: Option<String>,
    /// How many times this event happened within `REPEAT_WINDOW_SECS` of `at` (1 for most).
    pub repeats: i64,
}

const RECORDED: &str = "at, event, username, client_id, ip, user_agent, detail, actor, repeats";

fn recorded(row: &Row) -> StoreResult<Recorded> {
    Ok(Recorded {
        at: row.get(0)?,
        event: row.get(1)?,
        username: row.get(2)?,
        client_id: row.get(3)?,
        ip: row.get(4)?,
        user_agent: row.get(5)?,
        detail: row.get(6)?,
        actor: row.get(7)?,
        repeats: row.get(8)?,
    })
}

/// The newest events first.
pub fn recent(conn: &Db, limit: i64) -> StoreResult<Vec<Recorded>> {
    let events = conn.query(
        &format!("SELECT {RECORDED} FROM audit_events ORDER BY id DESC LIMIT ?1"),
        args![limit],
        recorded,
    )?;
    Ok(events)
}

/// What part of the log to show; `None` matches every event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub username: Option<String>,
    pub client_id: Option<String>,
    pub event: Option<EventKind>,
}

/// One page of the log, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub events: Vec<Recorded>,
    /// The page shown, from 1.
    pub number: i64,
    /// How many pages the filtered log has (at least 1, even when empty).
    pub pages: i64,
    /// How many events match the filter.
    pub total: i64,
}

impl Page {
    /// Page `number` of a filter that no event can match.
    pub fn empty(number: i64) -> Page {
        Page {
            events: Vec::new(),
            number: number.max(1),
            pages: 1,
            total: 0,
        }
    }
}

/// The events matching `filter` (exact values), `per_page` at a time, newest first. Pages
/// count from 1; a page past the end is empty rather than an error, since new events move
/// the boundaries under a reader's feet.
pub fn search(conn: &Db, filter: &Filter, page: i64, per_page: i64) -> StoreResult<Page> {
    let per_page = per_page.max(1);
    let number = page.max(1);
    const MATCHES: &str = "(CAST(?1 AS TEXT) IS NULL OR username = ?1) \
                           AND (CAST(?2 AS TEXT) IS NULL OR client_id = ?2) \
                           AND (CAST(?3 AS TEXT) IS NULL OR event = ?3)";
    let event = filter.event.map(EventKind::as_str);
    let criteria = args![filter.username, filter.client_id, event];
    let total: i64 = conn.query_one(
        &format!("SELECT COUNT(*) FROM audit_events WHERE {MATCHES}"),
        criteria,
        |row| row.get(0),
    )?;
    let events = conn.query(&format!(
        "SELECT {RECORDED} FROM audit_events WHERE {MATCHES} ORDER BY id DESC LIMIT ?4 OFFSET ?5"
    ), args![
                filter.username,
                filter.client_id,
                event,
                per_page,
                (number - 1).saturating_mul(per_page)
            ], recorded)?;
    Ok(Page {
        events,
        number,
        pages: ((total + per_page - 1) / per_page).max(1),
        total,
    })
}

/// Deletes events older than `cutoff`; returns how many.
pub fn purge_before(conn: &Db, cutoff: UnixTime) -> StoreResult<usize> {
    conn.execute("DELETE FROM audit_events WHERE at < ?1", args![cutoff])
}
