//! One sync run against a target: prove the token's rights, read the server, check the rules'
//! roles, plan, and apply the plan in order (or only report it, on a dry run).

use std::collections::BTreeSet;

use serde::Serialize;

use super::api::{ApiError, Client};
use super::plan::{self, Change, Person, RealmSettings, USERNAME_CLAIM};
use super::target::{Product, Rule, Target};

/// What one run works from.
pub struct Inputs<'a> {
    pub target: &'a Target,
    pub rules: &'a [Rule],
    pub people: &'a [Person],
    /// Latchkey's issuer, for the managed realm.
    pub issuer: &'a str,
    /// A new client secret to write into the managed realm.
    pub realm_secret: Option<&'a str>,
}

/// What a run found to do and did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// What the run found to do, in order.
    pub planned: Vec<Change>,
    /// How many of `planned` were applied (0 on a dry run).
    pub applied: usize,
    /// The realm change carrying `realm_secret` was applied.
    pub realm_secret_written: bool,
}

/// Why a run (or a check) failed. `Display` is one line.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("{host}: the API token lacks {}; {}", .missing.join(", "), what_tokens_need(*.product))]
    MissingRights {
        host: String,
        product: Product,
        missing: Vec<String>,
    },
    #[error("{host}: the role {role} (rule for group {group}) does not exist on the server; its roles are {}", .known.join(", "))]
    UnknownRole {
        host: String,
        role: String,
        group: String,
        known: Vec<String>,
    },
    #[error(
        "{host}: the OpenID realm {realm} takes usernames from the claim {found:?}, and Proxmox \
         cannot change that after creation; remove the realm on the server so that Latchkey \
         creates it with {USERNAME_CLAIM:?}, or stop managing the realm"
    )]
    UsernameClaim {
        host: String,
        realm: String,
        found: String,
    },
    /// A change failed; `report` says what was planned and applied before it.
    #[error(
        "{change}: {source} ({} of {} changes were applied before it)",
        .report.applied,
        .report.planned.len()
    )]
    Apply {
        change: String,
        #[source]
        source: Box<ApiError>,
        report: Box<Report>,
    },
}

impl SyncError {
    /// What a failed run had planned and applied, when it got that far.
    pub fn report(&self) -> Option<&Report> {
        match self {
            SyncError::Apply { report, .. } => Some(report),
            _ => None,
        }
    }
}

/// The guidance a missing right comes with.
fn what_tokens_need(product: Product) -> &'static str {
    match product {
        Product::Pbs => {
            "a PBS token needs Admin on /access (Permissions.Modify and Sys.Audit), and \
             Realm.Allocate on /access/domains to manage the realm"
        }
        Product::Pve => {
            "a PVE token needs Realm.AllocateUser, User.Modify, Group.Allocate and \
             Permissions.Modify (and Realm.Allocate to manage the realm), e.g. through a role \
             with these privileges on /"
        }
    }
}

/// The privileges a target's token needs, by path, as the sources check them: PBS
/// `Permissions.Modify` and `Sys.Audit` on `/access/users` and `/access/acl` (listings
/// without Sys.Audit silently show only the token's own entries), `Realm.Allocate` on
/// `/access/domains`; PVE `Realm.AllocateUser` on `/access/realm/<realm>`, `User.Modify` and
/// `Group.Allocate` on `/access/groups`, `Permissions.Modify` on `/` (which also lets it list
/// every ACL entry), `Realm.Allocate` on `/access/realm`.
pub fn required_rights(target: &Target) -> Vec<(String, Vec<&'static str>)> {
    let mut rights = match target.product {
        Product::Pbs => vec![
            (
                "/access/users".to_string(),
                vec!["Permissions.Modify", "Sys.Audit"],
            ),
            (
                "/access/acl".to_string(),
                vec!["Permissions.Modify", "Sys.Audit"],
            ),
        ],
        Product::Pve => vec![
            (
                format!("/access/realm/{}", target.realm),
                vec!["Realm.AllocateUser"],
            ),
            (
                "/access/groups".to_string(),
                vec!["User.Modify", "Group.Allocate"],
            ),
            ("/".to_string(), vec!["Permissions.Modify"]),
        ],
    };
    if target.manage_realm {
        let path = match target.product {
            Product::Pbs => "/access/domains",
            Product::Pve => "/access/realm",
        };
        rights.push((path.to_string(), vec!["Realm.Allocate"]));
    }
    rights
}

/// Proves the token's rights: asks the server for the token's privileges on each path it
/// needs, and fails naming every missing one.
pub async fn check(target: &Target) -> Result<(), SyncError> {
    check_with(&Client::new(target)?, target).await
}

async fn check_with(client: &Client, target: &Target) -> Result<(), SyncError> {
    let mut missing = Vec::new();
    for (path, needed) in required_rights(target) {
        let held = client.privileges(&path).await?;
        missing.extend(
            needed
                .into_iter()
                .filter(|privilege| !held.contains(*privilege))
                .map(|privilege| format!("{privilege} on {path}")),
        );
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(SyncError::MissingRights {
            host: client.host().to_string(),
            product: target.product,
            missing,
        })
    }
}

/// The server's role ids.
pub async fn roles(target: &Target) -> Result<Vec<String>, SyncError> {
    Ok(Client::new(target)?.roles().await?)
}

/// One run: check the token's rights, read the server, check that every rule's role exists,
/// plan, and unless `dry_run` apply the changes in order, stopping at the first failure.
pub async fn run(inputs: &Inputs<'_>, dry_run: bool) -> Result<Report, SyncError> {
    let target = inputs.target;
    let client = Client::new(target)?;
    check_with(&client, target).await?;
    check_roles(&client, inputs.rules).await?;
    let actual = client.actual(&target.realm, target.manage_realm).await?;
    if let Some(realm) = &actual.realm {
        check_username_claim(&client, target, realm)?;
    }
    let mut desired = plan::desired(target, inputs.rules, inputs.people);
    desired.realm = plan::desired_realm(target, inputs.issuer, inputs.realm_secret);
    let mut report = Report {
        planned: plan::plan(target, &desired, &actual),
        applied: 0,
        realm_secret_written: false,
    };
    if dry_run {
        return Ok(report);
    }
    for index in 0..report.planned.len() {
        let change = &report.planned[index];
        if let Err(source) = client.apply(change).await {
            let change = change.to_string();
            let (source, report) = (Box::new(source), Box::new(report));
            return Err(SyncError::Apply {
                change,
                source,
                report,
            });
        }
        report.realm_secret_written |= carries_client_key(change);
        report.applied += 1;
    }
    Ok(report)
}

async fn check_roles(client: &Client, rules: &[Rule]) -> Result<(), SyncError> {
    let known = client.roles().await?;
    let known_set: BTreeSet<&str> = known.iter().map(String::as_str).collect();
    match rules
        .iter()
        .find(|rule| !known_set.contains(rule.role.as_str()))
    {
        None => Ok(()),
        Some(rule) => Err(SyncError::UnknownRole {
            host: client.host().to_string(),
            role: rule.role.clone(),
            group: rule.group.clone(),
            known,
        }),
    }
}

/// Proxmox cannot change a realm's username claim: a realm made with another claim cannot
/// be managed.
fn check_username_claim(
    client: &Client,
    target: &Target,
    realm: &RealmSettings,
) -> Result<(), SyncError> {
    let found = realm.effective_username_claim();
    if found == USERNAME_CLAIM {
        return Ok(());
    }
    Err(SyncError::UsernameClaim {
        host: client.host().to_string(),
        realm: target.realm.clone(),
        found: found.to_string(),
    })
}

fn carries_client_key(change: &Change) -> bool {
    matches!(
        change,
        Change::CreateRealm {
            client_key: Some(_),
            ..
        } | Change::UpdateRealm {
            client_key: Some(_),
            ..
        }
    )
}
