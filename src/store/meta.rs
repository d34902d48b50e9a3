//! Small facts about this installation.

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreResult;

/// The issuer `serve` last published, so that the CLI prints links that match it.
pub const SERVED_ISSUER: &str = "served_issuer";

/// Whether the database answers at all.
pub fn ping(conn: &Connection) -> StoreResult<()> {
    conn.prepare_cached("SELECT 1")?.query_row([], |_| Ok(()))?;
    Ok(())
}

pub fn get(conn: &Connection, key: &str) -> StoreResult<Option<String>> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
            row.get(0)
        })
        .optional()?)
}

pub fn set(conn: &Connection, key: &str, value: &str) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![key, value])?;
    Ok(())
}
