//! Small facts about this installation.

use super::db::Db;
use crate::args;

use super::StoreResult;
use crate::clock::UnixTime;

/// The issuer `serve` last published, so that the CLI prints links that match it.
pub const SERVED_ISSUER: &str = "served_issuer";

/// Whether the database answers at all.
pub fn ping(conn: &Db) -> StoreResult<()> {
    conn.query_one("SELECT 1", args![], |_| Ok(()))?;
    Ok(())
}

/// Periodic work shared by every instance on one database: the purge.
pub const PURGED_AT: &str = "purged_at";

/// Whether the periodic work `key` is this caller's to do now: true at most once per
/// `every_secs` among all the instances sharing the database, and then the turn is taken.
/// Meant for a write transaction, which serialises the instances' checks.
pub fn take_turn(conn: &Db, key: &str, now: UnixTime, every_secs: i64) -> StoreResult<bool> {
    let last = get(conn, key)?.and_then(|text| text.parse::<UnixTime>().ok());
    if last.is_some_and(|last| now < last + every_secs) {
        return Ok(false);
    }
    set(conn, key, &now.to_string())?;
    Ok(true)
}

pub fn get(conn: &Db, key: &str) -> StoreResult<Option<String>> {
    conn.query_opt("SELECT value FROM meta WHERE key = ?1", args![key], |row| {
        row.get(0)
    })
}

pub fn set(conn: &Db, key: &str, value: &str) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        args![key, value],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{PURGED_AT, take_turn};
    use crate::store::Store;

    #[test]
    fn periodic_work_is_one_callers_turn_per_period() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let turn = |now| {
            store
                .write(|db| take_turn(db, PURGED_AT, now, 3600))
                .unwrap()
        };
        assert!(turn(10_000), "never done: due");
        assert!(!turn(10_060), "done a minute ago, by any instance");
        assert!(!turn(13_599));
        assert!(turn(13_600), "an hour later");
        assert!(!turn(13_600), "and only once");
    }
}
