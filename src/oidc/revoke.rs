//! Token revocation (RFC 7009).

use crate::store::Db;

use crate::clock::UnixTime;
use crate::secrets;
use crate::store::StoreResult;
use crate::store::audit::{self, Event, EventKind, Origin};
use crate::store::clients::Client;
use crate::store::grants::{self, TokenKind};

/// Revokes `token` if it belongs to `client`. Unknown tokens, and other clients' tokens,
/// are silently ignored: the answer must not tell a caller which tokens exist.
/// A refresh token takes its whole grant with it (access tokens included, RFC 7009 §2.1).
pub fn revoke(
    conn: &Db,
    client: &Client,
    token: &str,
    origin: &Origin,
    now: UnixTime,
) -> StoreResult<()> {
    let hash = secrets::token_hash(token);
    if let Some(grant) = grants::token_grant(conn, TokenKind::Refresh, &hash)?
        && grant.client_id == client.client_id
    {
        grants::revoke_grant(conn, &grant.id, now)?;
        return record(
            conn,
            client,
            &grant,
            "refresh token and its family",
            origin,
            now,
        );
    }
    if let Some(grant) = grants::token_grant(conn, TokenKind::Access, &hash)?
        && grant.client_id == client.client_id
    {
        grants::delete_access_token(conn, &hash)?;
        return record(conn, client, &grant, "access token", origin, now);
    }
    Ok(())
}

fn record(
    conn: &Db,
    client: &Client,
    grant: &grants::Grant,
    what: &str,
    origin: &Origin,
    now: UnixTime,
) -> StoreResult<()> {
    let mut event = Event::new(EventKind::TokenRevoked)
        .client(client.client_id.as_str())
        .detail(what);
    event.user_id = Some(&grant.user_id);
    audit::record(conn, &event, origin, now)
}
