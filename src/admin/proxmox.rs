//! The Proxmox section of a client's page: connecting the client's Proxmox VE or Backup Server
//! (its target), the permission rules, the sync status with "Sync now", disconnecting, and the
//! commands that make a least-privilege API token on the server.
//!
//! The changes are the CLI's (`directory::proxmox`, which audit-logs them), checked against
//! the server the same way: the token before a target is saved, the role before a rule is
//! added. A server that does not answer never blocks a change; the page says so instead.

use crate::store::Db;
use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use serde::Deserialize;

use super::access::{self, Admin, AdminResult};
use super::clients::{self, DeleteForm, Nothing};
use super::proxmox_view::{RuleForm, Shown, TargetForm};
use super::{Refusal, admin_url, change, check, refused, see_other, segment, sentence};
use crate::directory::clients as directory_clients;
use crate::directory::groups as directory_groups;
use crate::directory::proxmox::{self as rules, DEFAULT_REALM};
use crate::directory::{DirectoryError, DirectoryResult};
use crate::names::ClientId;
use crate::proxmox::sync;
use crate::proxmox::target::{self, Rule, Target, TargetError, Trust};
use crate::state::State;
use crate::store::proxmox::{self as stored, StoredTarget};
use crate::web::error::PageError;

/// The client's stored target, if any, when the client may be changed here.
fn editable(conn: &Db, client_id: &ClientId) -> DirectoryResult<Option<StoredTarget>> {
    let client = directory_clients::find(conn, client_id)?;
    if client.declared {
        return Err(DirectoryError::Declared(client.client_id.to_string()));
    }
    Ok(stored::target(conn, client_id)?)
}

fn no_target() -> DirectoryError {
    DirectoryError::Invalid("connect a Proxmox server first".into())
}

/// The target form as posted.
#[derive(Deserialize)]
struct PostedTarget {
    #[serde(default)]
    product: String,
    #[serde(default)]
    api_url: String,
    #[serde(default)]
    token_id: String,
    /// Blank keeps the stored secret, unless the server or the token changes.
    #[serde(default)]
    token_secret: String,
    #[serde(default)]
    trust: String,
    #[serde(default)]
    fingerprint: String,
    #[serde(default)]
    ca_pem: String,
    #[serde(default)]
    realm: String,
    #[serde(default)]
    leavers: String,
    manage_realm: Option<String>,
}

impl PostedTarget {
    /// What was typed, to show again; the secret is never shown.
    fn typed(&self) -> TargetForm {
        TargetForm {
            product: self.product.clone(),
            api_url: self.api_url.clone(),
            token_id: self.token_id.clone(),
            trust: self.trust.clone(),
            fingerprint: self.fingerprint.clone(),
            ca_pem: self.ca_pem.clone(),
            realm: self.realm.clone(),
            leavers: self.leavers.clone(),
            manage_realm: self.manage_realm.is_some(),
        }
    }

    fn target(&self, client_id: &ClientId, stored: Option<&Target>) -> Result<Target, TargetError> {
        let api_url = target::api_url(self.api_url.trim())?;
        let token_id = target::token_id(self.token_id.trim())?;
        // The stored secret goes only to the server and token it was given for.
        let kept = stored
            .filter(|s| s.api_url == api_url && s.token_id == token_id)
            .map(|s| s.token_secret.as_str());
        let realm = match self.realm.trim() {
            "" => DEFAULT_REALM,
            typed => typed,
        };
        Ok(Target {
            client_id: client_id.clone(),
            product: target::product(&self.product)?,
            token_secret: token_secret(&self.token_secret, kept)?,
            trust: self.trust()?,
            realm: target::realm(realm)?,
            leavers: target::leavers(&self.leavers)?,
            manage_realm: self.manage_realm.is_some(),
            api_url,
            token_id,
        })
    }

    fn trust(&self) -> Result<Trust, TargetError> {
        match self.trust.as_str() {
            "fingerprint" => Ok(Trust::Fingerprint(target::fingerprint(shown_fingerprint(
                &self.fingerprint,
            ))?)),
            "ca" => Ok(Trust::CaPem(target::ca_pem(&self.ca_pem)?)),
            "system" => Ok(Trust::SystemRoots),
            other => Err(TargetError(format!(
                "invalid trust {other:?}: choose the fingerprint, a CA certificate or the \
                 system's CA certificates"
            ))),
        }
    }
}

/// The fingerprint out of a line as the commands print it (`Fingerprint (sha256): ab:…`,
/// `sha256 Fingerprint=AB:…`), or as typed.
fn shown_fingerprint(text: &str) -> &str {
    text.trim().rsplit(['=', ' ']).next().unwrap_or_default()
}

/// The token secret as pasted, or the stored one when the field was left blank.
fn token_secret(typed: &str, kept: Option<&str>) -> Result<String, TargetError> {
    match (typed.trim(), kept) {
        ("", Some(kept)) => Ok(kept.to_string()),
        ("", None) => Err(TargetError(
            "paste the API token's secret (needed again when the API URL or token id changes)"
                .into(),
        )),
        (secret, _) => target::token_secret(secret),
    }
}

/// A rule as posted (to add or to remove).
#[derive(Deserialize)]
struct PostedRule {
    #[serde(default)]
    group: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    path: String,
    propagate: Option<String>,
}

impl PostedRule {
    fn typed(&self) -> RuleForm {
        RuleForm {
            group: self.group.clone(),
            role: self.role.clone(),
            path: self.path.clone(),
            propagate: self.propagate.is_some(),
        }
    }

    /// The rule; a group name no group can have names none.
    fn rule(&self) -> DirectoryResult<Rule> {
        let path = match self.path.trim() {
            "" => "/",
            typed => typed,
        };
        let invalid = |error: TargetError| DirectoryError::Invalid(error.0);
        Ok(Rule {
            role: target::role(self.role.trim()).map_err(invalid)?,
            path: target::acl_path(path).map_err(invalid)?,
            group: directory_groups::named(self.group.trim())?,
            propagate: self.propagate.is_some(),
        })
    }
}

fn refusal(message: &str) -> Refusal {
    Refusal::new(StatusCode::BAD_REQUEST, sentence(message))
}

/// The client page again, after a refused change or with notices about one made.
async fn client_page(
    req: &HttpRequest,
    state: &State,
    admin: &Admin,
    refused: Option<Refusal>,
    shown: Shown,
) -> AdminResult {
    clients::client_page_with(req, state, admin, None, refused, shown).await
}

/// After a change: the client page at its Proxmox section, or that page with the notices.
async fn done(
    req: &HttpRequest,
    state: &State,
    admin: &Admin,
    notices: Vec<String>,
) -> AdminResult {
    if notices.is_empty() {
        let id = segment(req, "id");
        return Ok(see_other(admin_url(
            state,
            &format!("{}#proxmox", clients::client_path(&id)),
        )));
    }
    let shown = Shown {
        notices,
        ..Shown::default()
    };
    client_page(req, state, admin, None, shown).await
}

/// Connects the client to its server, or changes the connection.
pub async fn save(req: HttpRequest, state: State, body: Bytes) -> AdminResult {
    let (admin, posted): (_, PostedTarget) = access::form(&req, &state, &body).await?;
    let id = clients::client_in_path(&req)?;
    let again = |refused| {
        let shown = Shown {
            target: Some(posted.typed()),
            ..Shown::default()
        };
        client_page(&req, &state, &admin, Some(refused), shown)
    };
    let found = id.clone();
    let stored_target = match check(&state, move |conn| editable(conn, &found)).await? {
        Ok(stored_target) => stored_target,
        Err(refused) => return again(refused).await,
    };
    let target = match posted.target(&id, stored_target.as_ref().map(|s| &s.target)) {
        Ok(target) => target,
        Err(invalid) => return again(refusal(&invalid.0)).await,
    };
    let mut notices = Vec::new();
    if let Err(error) = sync::check(&target).await {
        if !error.is_unreachable() {
            return again(refusal(&error.to_string())).await;
        }
        notices.push(format!(
            "Saved, but the server does not answer ({error}). Latchkey keeps trying: the sync \
             status below shows when it gets through."
        ));
    }
    let checked = target.clone();
    let minted = match check(&state, move |conn| rules::needs_new_secret(conn, &checked)).await? {
        Ok(true) => Some(directory_clients::new_secret().map_err(|e| PageError::internal(&e))?),
        Ok(false) => None,
        Err(refused) => return again(refused).await,
    };
    let origin = state.origin(&req).by(&admin.user.username);
    let realm = target.realm.clone();
    let saved = change(&state, move |tx, now| {
        rules::set(tx, &target, minted.as_ref(), &origin, now)
    })
    .await?;
    match saved {
        Ok(outcome) => {
            if outcome.realm_secret_minted {
                notices.push(format!(
                    "Latchkey manages the realm {realm} now: it minted a new client secret and \
                     writes it into the realm; the old secret no longer works."
                ));
            }
            done(&req, &state, &admin, notices).await
        }
        Err(refused) => again(refused).await,
    }
}

/// Adds a rule, once the server knows its role (or cannot say).
pub async fn add_rule(req: HttpRequest, state: State, body: Bytes) -> AdminResult {
    let (admin, posted): (_, PostedRule) = access::form(&req, &state, &body).await?;
    let id = clients::client_in_path(&req)?;
    let again = |refused| {
        let shown = Shown {
            rule: Some(posted.typed()),
            ..Shown::default()
        };
        client_page(&req, &state, &admin, Some(refused), shown)
    };
    let rule = match refused(posted.rule())? {
        Ok(rule) => rule,
        Err(refused) => return again(refused).await,
    };
    let (found, group) = (id.clone(), rule.group.clone());
    let target = match check(&state, move |conn| {
        let stored_target = editable(conn, &found)?.ok_or_else(no_target)?;
        directory_groups::get(conn, &group)?;
        Ok(stored_target.target)
    })
    .await?
    {
        Ok(target) => target,
        Err(refused) => return again(refused).await,
    };
    let mut notices = Vec::new();
    match sync::roles(&target).await {
        Ok(roles) if roles.contains(&rule.role) => {}
        Ok(roles) => {
            let message = format!(
                "the server has no role {:?}; it has {}",
                rule.role,
                roles.join(", ")
            );
            return again(refusal(&message)).await;
        }
        Err(error) => notices.push(format!(
            "Latchkey cannot check the role {} now ({error}); the next sync does.",
            rule.role
        )),
    }
    let origin = state.origin(&req).by(&admin.user.username);
    let (to, added) = (id.clone(), rule.clone());
    match change(&state, move |tx, now| {
        rules::allow(tx, &to, &added, &origin, now)
    })
    .await?
    {
        Ok(true) => done(&req, &state, &admin, notices).await,
        Ok(false) => {
            notices.push(format!(
                "{} was there already.",
                rules::describe_rule(&rule)
            ));
            done(&req, &state, &admin, notices).await
        }
        Err(refused) => again(refused).await,
    }
}

/// Removes a rule.
pub async fn remove_rule(req: HttpRequest, state: State, body: Bytes) -> AdminResult {
    let (admin, posted): (_, PostedRule) = access::form(&req, &state, &body).await?;
    let id = clients::client_in_path(&req)?;
    let rule = match refused(posted.rule())? {
        Ok(rule) => rule,
        Err(refused) => {
            return client_page(&req, &state, &admin, Some(refused), Shown::default()).await;
        }
    };
    let origin = state.origin(&req).by(&admin.user.username);
    let removed = change(&state, move |tx, now| {
        match rules::deny(tx, &id, &rule, &origin, now)? {
            true => Ok(()),
            false => Err(DirectoryError::Invalid(format!(
                "this client has no rule giving {} the role {} on {}",
                rule.group, rule.role, rule.path
            ))),
        }
    })
    .await?;
    match removed {
        Ok(()) => done(&req, &state, &admin, Vec::new()).await,
        Err(refused) => client_page(&req, &state, &admin, Some(refused), Shown::default()).await,
    }
}

/// Asks for a sync as soon as possible.
pub async fn sync_now(req: HttpRequest, state: State, body: Bytes) -> AdminResult {
    let (admin, _): (_, Nothing) = access::form(&req, &state, &body).await?;
    let origin = state.origin(&req).by(&admin.user.username);
    let id = clients::client_in_path(&req)?;
    let requested = change(&state, move |tx, now| {
        match rules::request_sync(tx, &id, &origin, now)? {
            true => Ok(()),
            false => Err(no_target()),
        }
    })
    .await?;
    match requested {
        Ok(()) => done(&req, &state, &admin, Vec::new()).await,
        Err(refused) => client_page(&req, &state, &admin, Some(refused), Shown::default()).await,
    }
}

/// Stops managing the client's server; the server keeps what it has.
pub async fn disconnect(req: HttpRequest, state: State, body: Bytes) -> AdminResult {
    let (admin, form): (_, DeleteForm) = access::form(&req, &state, &body).await?;
    if form.confirm.as_deref() != Some("yes") {
        let refused = refusal("tick the confirmation to disconnect the Proxmox server");
        return client_page(&req, &state, &admin, Some(refused), Shown::default()).await;
    }
    let origin = state.origin(&req).by(&admin.user.username);
    let id = clients::client_in_path(&req)?;
    match change(&state, move |tx, now| rules::unset(tx, &id, &origin, now)).await? {
        Ok(()) => done(&req, &state, &admin, Vec::new()).await,
        Err(refused) => client_page(&req, &state, &admin, Some(refused), Shown::default()).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_read_from_the_lines_the_commands_print() {
        assert_eq!(shown_fingerprint(" Fingerprint (sha256): ab:cd "), "ab:cd");
        assert_eq!(shown_fingerprint("sha256 Fingerprint=AB:CD"), "AB:CD");
        assert_eq!(shown_fingerprint("AB:CD"), "AB:CD");
    }

    #[test]
    fn a_blank_secret_keeps_the_stored_one_only() {
        assert_eq!(token_secret(" ", Some("kept")).unwrap(), "kept");
        assert_eq!(token_secret("new", Some("kept")).unwrap(), "new");
        assert!(token_secret("", None).is_err());
        assert!(token_secret("a b", None).is_err());
    }
}
