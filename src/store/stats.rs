//! Counts for monitoring.

use super::db::Db;
use crate::args;

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
pub fn counts(conn: &Db, idle_secs: i64, now: UnixTime) -> StoreResult<Counts> {
    conn.query_one(
        "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM clients), \
         (SELECT count(*) FROM sessions WHERE expires_at > ?1 AND last_seen_at > ?2)",
        args![now, now - idle_secs],
        |row| {
            Ok(Counts {
                users: row.get(0)?,
                clients: row.get(1)?,
                sessions: row.get(2)?,
            })
        },
    )
}
