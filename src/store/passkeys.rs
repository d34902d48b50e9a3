//! Registered passkeys.

use super::db::{Db, Row};
use crate::args;

use super::StoreResult;
use crate::clock::UnixTime;
use crate::names::UserId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPasskey {
    pub id: i64,
    pub user_id: UserId,
    pub credential_id: String,
    pub name: String,
    pub aaguid: Option<String>,
    /// webauthn-rs `Passkey`, as JSON.
    pub passkey: String,
    pub created_at: UnixTime,
    pub last_used_at: Option<UnixTime>,
}

const COLUMNS: &str = "id, user_id, credential_id, name, aaguid, passkey, created_at, last_used_at";

fn from_row(row: &Row) -> StoreResult<StoredPasskey> {
    Ok(StoredPasskey {
        id: row.get(0)?,
        user_id: row.get(1)?,
        credential_id: row.get(2)?,
        name: row.get(3)?,
        aaguid: row.get(4)?,
        passkey: row.get(5)?,
        created_at: row.get(6)?,
        last_used_at: row.get(7)?,
    })
}

pub fn insert(conn: &Db, passkey: &StoredPasskey) -> StoreResult<i64> {
    conn.query_one(
        "INSERT INTO passkeys (user_id, credential_id, name, aaguid, passkey, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
        args![
            passkey.user_id,
            passkey.credential_id,
            passkey.name,
            passkey.aaguid,
            passkey.passkey,
            passkey.created_at
        ],
        |row| row.get(0),
    )
}

pub fn for_user(conn: &Db, user_id: &UserId) -> StoreResult<Vec<StoredPasskey>> {
    let keys = conn.query(
        &format!("SELECT {COLUMNS} FROM passkeys WHERE user_id = ?1 ORDER BY created_at, id"),
        args![user_id],
        from_row,
    )?;
    Ok(keys)
}

pub fn by_credential_id(conn: &Db, credential_id: &str) -> StoreResult<Option<StoredPasskey>> {
    conn.query_opt(
        &format!("SELECT {COLUMNS} FROM passkeys WHERE credential_id = ?1"),
        args![credential_id],
        from_row,
    )
}

/// Records a use; `passkey` is the updated JSON when webauthn-rs reported a change
/// (counter, backup state).
pub fn record_use(conn: &Db, id: i64, passkey: Option<&str>, now: UnixTime) -> StoreResult<()> {
    conn.execute(
        "UPDATE passkeys SET last_used_at = ?2, passkey = COALESCE(?3, passkey) WHERE id = ?1",
        args![id, now, passkey],
    )?;
    Ok(())
}

/// Renames one of `user_id`'s passkeys; false when they have no such passkey.
pub fn rename(conn: &Db, user_id: &UserId, id: i64, name: &str) -> StoreResult<bool> {
    Ok(conn.execute(
        "UPDATE passkeys SET name = ?3 WHERE id = ?1 AND user_id = ?2",
        args![id, user_id, name],
    )? == 1)
}

/// Deletes one of `user_id`'s passkeys, returning it.
pub fn delete(conn: &Db, user_id: &UserId, id: i64) -> StoreResult<Option<StoredPasskey>> {
    conn.query_opt(
        &format!("DELETE FROM passkeys WHERE id = ?1 AND user_id = ?2 RETURNING {COLUMNS}"),
        args![id, user_id],
        from_row,
    )
}
