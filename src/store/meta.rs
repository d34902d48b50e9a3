//! Small facts about this installation.

use super::db::Db;
use crate::args;

use super::StoreResult;

/// The issuer `serve` last published, so that the CLI prints links that match it.
pub const SERVED_ISSUER: &str = "served_issuer";

/// Whether the database answers at all.
pub fn ping(conn: &Db) -> StoreResult<()> {
    conn.query_one("SELECT 1", args![], |_| Ok(()))?;
    Ok(())
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
