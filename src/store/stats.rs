//! Counts for monitoring.

use rusqlite::{Connection, params};

use super::StoreResult;
use crate::clock::UnixTime;

/// How many people, clients and live sessions there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub users: i64,
    pub clients: i64,
    pub sessions: i64,
}

/// The counts at `now`; a session unused for `idle_secs` has ended.
pub fn counts(conn: &Connection, idle_secs: i64, now: UnixTime) -> StoreResult<Counts> {
    Ok(conn.query_row(
        "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM clients), \
         (SELECT count(*) FROM sessions WHERE expires_at > ?1 AND last_seen_at > ?2)",
        params![now, now - idle_secs],
        |row| {
            Ok(Counts {
                users: row.get(0)?,
                clients: row.get(1)?,
                sessions: row.get(2)?,
            })
        },
    )?)
}
