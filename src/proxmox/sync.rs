//! One sync run against a target: prove the token's rights, read the server, check the rules'
//! roles, plan, and apply the plan in order (or only report it, on a dry run).

use std::collections::BTreeSet;

use serde::Serialize;

use super::api::{ApiError, Client};
use super::plan::{self, Change, Person, RealmSettings, USERNAME_CLAIM};
use super::target::{Product, Rule, Target};
use crate::names::GroupName;

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
        group: GroupName,
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

    /// The server did not answer (connection refused or timed out), as opposed to answering
    /// with a refusal: worth a retry, not a verdict on the settings.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            SyncError::Api(ApiError::Timeout { .. } | ApiError::Connect { .. })
        )
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::ClientId;
    use crate::proxmox::api::test_server::{Answer, Received, Server, issue, serve};
    use crate::proxmox::target::{Leavers, Trust};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const PBS_RIGHTS: [&str; 3] = ["Permissions.Modify", "Sys.Audit", "Realm.Allocate"];

    /// A PBS with `ada@latchkey` (no entries), the leaver `old@latchkey` (Admin on /) and
    /// `root@pam`; the token holds `rights` everywhere; the write numbered `fail_at` (from 1)
    /// is refused; `realm` is the OpenID realm list.
    fn pbs(rights: &'static [&'static str], fail_at: Option<usize>, realm: &'static str) -> Server {
        let writes = Arc::new(AtomicUsize::new(0));
        let issued = issue(&["localhost"]);
        serve(&issued, &issued, move |request: &Received| -> Answer {
            let url = url::Url::parse(&format!("https://pbs{}", request.target)).unwrap();
            let data = match (request.method.as_str(), url.path()) {
                ("GET", "/api2/json/access/permissions") => {
                    let path = url.query_pairs().find(|(name, _)| name == "path").unwrap().1.to_string();
                    let privileges: serde_json::Map<String, serde_json::Value> =
                        rights.iter().map(|right| (right.to_string(), true.into())).collect();
                    serde_json::json!({ path: privileges }).to_string()
                }
                ("GET", "/api2/json/access/roles") => r#"[{"roleid":"Admin"},{"roleid":"Audit"}]"#.to_string(),
                ("GET", "/api2/json/access/users") => {
                    r#"[{"userid":"ada@latchkey","firstname":"Ada","email":"ada@example.com"},
                        {"userid":"old@latchkey","enable":true},{"userid":"root@pam"}]"#
                        .to_string()
                }
                ("GET", "/api2/json/access/acl") => {
                    r#"[{"path":"/","ugid":"old@latchkey","ugid_type":"user","roleid":"Admin","propagate":true},
                        {"path":"/","ugid":"root@pam","ugid_type":"user","roleid":"Admin","propagate":true}]"#
                        .to_string()
                }
                ("GET", "/api2/json/config/access/openid") => realm.to_string(),
                ("GET", _) => return (404, "not found".to_string()),
                _ => {
                    let write = writes.fetch_add(1, Ordering::SeqCst) + 1;
                    if fail_at == Some(write) {
                        return (400, "no such user.".to_string());
                    }
                    "null".to_string()
                }
            };
            (200, format!(r#"{{"data":{data}}}"#))
        })
    }

    fn target(server: &Server) -> Target {
        let trust = Trust::Fingerprint(server.fingerprint.clone());
        target_at(&server.url("127.0.0.1"), trust)
    }

    fn target_at(api_url: &str, trust: Trust) -> Target {
        Target {
            client_id: ClientId::parse("pbs").unwrap(),
            product: Product::Pbs,
            api_url: api_url.to_string(),
            token_id: "root@pam!latchkey".to_string(),
            token_secret: "token-secret".to_string(),
            trust,
            realm: "latchkey".to_string(),
            leavers: Leavers::Disable,
            manage_realm: false,
        }
    }

    fn rules() -> Vec<Rule> {
        vec![Rule {
            group: GroupName::parse("admins").unwrap(),
            role: "Admin".to_string(),
            path: "/".to_string(),
            propagate: true,
        }]
    }

    fn people() -> Vec<Person> {
        vec![Person {
            username: "ada".to_string(),
            display_name: "Ada Lovelace".to_string(),
            given_name: Some("Ada".to_string()),
            family_name: None,
            email: Some("ada@example.com".to_string()),
            enabled: true,
            groups: vec![GroupName::parse("admins").unwrap()],
        }]
    }

    async fn sync(
        target: &Target,
        rules: &[Rule],
        secret: Option<&str>,
        dry_run: bool,
    ) -> Result<Report, SyncError> {
        let people = people();
        let inputs = Inputs {
            target,
            rules,
            people: &people,
            issuer: "https://id.example.com",
            realm_secret: secret,
        };
        run(&inputs, dry_run).await
    }

    fn writes(server: &Server) -> Vec<String> {
        let received = server.received();
        let writes = received.iter().filter(|request| request.method != "GET");
        writes
            .map(|request| format!("{} {} {}", request.method, request.target, request.body))
            .collect()
    }

    fn shown(report: &Report) -> Vec<String> {
        report.planned.iter().map(Change::to_string).collect()
    }

    const PLAN: [&str; 3] = [
        "grant Admin on / to ada@latchkey",
        "revoke Admin on / from old@latchkey",
        "disable user old@latchkey",
    ];

    #[tokio::test]
    async fn a_dry_run_plans_and_sends_no_change() {
        let server = pbs(&PBS_RIGHTS, None, "[]");
        let report = sync(&target(&server), &rules(), None, true).await.unwrap();
        assert_eq!(shown(&report), PLAN);
        assert_eq!((report.applied, report.realm_secret_written), (0, false));
        assert_eq!(writes(&server), Vec::<String>::new());
    }

    #[tokio::test]
    async fn a_run_applies_the_plan_in_order() {
        let server = pbs(&PBS_RIGHTS, None, "[]");
        let report = sync(&target(&server), &rules(), None, false).await.unwrap();
        assert_eq!(report.applied, 3);
        assert_eq!(
            writes(&server),
            [
                r#"PUT /api2/json/access/acl {"role":"Admin","path":"/","auth-id":"ada@latchkey","propagate":true}"#,
                r#"PUT /api2/json/access/acl {"role":"Admin","path":"/","auth-id":"old@latchkey","delete":true}"#,
                r#"PUT /api2/json/access/users/old@latchkey {"enable":false}"#,
            ]
        );
    }

    #[tokio::test]
    async fn a_failed_change_stops_the_run_and_says_how_many_were_applied() {
        let server = pbs(&PBS_RIGHTS, Some(2), "[]");
        let error = sync(&target(&server), &rules(), None, false)
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "revoke Admin on / from old@latchkey: 127.0.0.1:{}: PUT /access/acl: PBS answered 400: no such user. \
                 (1 of 3 changes were applied before it)",
                server.port
            )
        );
        let report = error.report().unwrap();
        assert_eq!(
            (shown(report), report.applied),
            (PLAN.map(String::from).to_vec(), 1)
        );
        assert_eq!(
            writes(&server).len(),
            2,
            "nothing is sent after the failure"
        );
    }

    #[tokio::test]
    async fn missing_rights_are_named_with_what_the_token_needs() {
        let server = pbs(&["Sys.Audit"], None, "[]");
        let managed = Target {
            manage_realm: true,
            ..target(&server)
        };
        let error = check(&managed).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "127.0.0.1:{}: the API token lacks Permissions.Modify on /access/users, Permissions.Modify on \
                 /access/acl, Realm.Allocate on /access/domains; a PBS token needs Admin on /access \
                 (Permissions.Modify and Sys.Audit), and Realm.Allocate on /access/domains to manage the realm",
                server.port
            )
        );
        assert!(matches!(
            sync(&managed, &rules(), None, true).await,
            Err(SyncError::MissingRights { .. })
        ));
        let server = pbs(&PBS_RIGHTS, None, "[]");
        check(&target(&server)).await.unwrap();
    }

    #[tokio::test]
    async fn a_rule_with_a_role_the_server_lacks_is_refused() {
        let server = pbs(&PBS_RIGHTS, None, "[]");
        let mut rules = rules();
        rules[0].role = "Administrator".to_string();
        let error = sync(&target(&server), &rules, None, true)
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "127.0.0.1:{}: the role Administrator (rule for group admins) does not exist on the server; \
                 its roles are Admin, Audit",
                server.port
            )
        );
        assert_eq!(roles(&target(&server)).await.unwrap(), ["Admin", "Audit"]);
    }

    #[tokio::test]
    async fn a_managed_realm_is_created_first_with_the_new_secret() {
        let server = pbs(&PBS_RIGHTS, None, "[]");
        let mut target = target(&server);
        target.manage_realm = true;
        let report = sync(&target, &rules(), Some("n3w-s3cret"), false)
            .await
            .unwrap();
        assert!(report.realm_secret_written);
        assert_eq!(report.applied, 4);
        assert!(
            shown(&report)[0].starts_with("create OpenID realm latchkey ("),
            "{:?}",
            shown(&report)
        );
        let created = &writes(&server)[0];
        assert!(
            created.starts_with("POST /api2/json/config/access/openid {"),
            "{created}"
        );
        assert!(
            created.contains(r#""client-key":"n3w-s3cret""#),
            "{created}"
        );
        let json = serde_json::to_string(&report).unwrap();
        assert!(
            !json.contains("n3w-s3cret") && !shown(&report).concat().contains("n3w-s3cret"),
            "{json}"
        );
    }

    #[tokio::test]
    async fn a_managed_realm_without_a_secret_is_still_created_and_no_secret_is_written() {
        let server = pbs(&PBS_RIGHTS, None, "[]");
        let mut target = target(&server);
        target.manage_realm = true;
        let report = sync(&target, &rules(), None, false).await.unwrap();
        assert!(!report.realm_secret_written);
        assert!(
            !writes(&server)[0].contains("client-key"),
            "{:?}",
            writes(&server)
        );
    }

    #[tokio::test]
    async fn a_realm_made_with_another_username_claim_is_refused() {
        let realm =
            r#"[{"realm":"latchkey","issuer-url":"https://id.example.com","client-id":"pbs"}]"#;
        let server = pbs(&PBS_RIGHTS, None, realm);
        let mut target = target(&server);
        target.manage_realm = true;
        let error = sync(&target, &rules(), None, true).await.unwrap_err();
        assert!(
            matches!(&error, SyncError::UsernameClaim { found, .. } if found == "sub"),
            "{error:?}"
        );
        assert!(
            error
                .to_string()
                .contains("cannot change that after creation"),
            "{error}"
        );
    }

    #[test]
    fn the_rights_a_token_needs_follow_the_product() {
        let target = Target {
            product: Product::Pve,
            manage_realm: true,
            ..target_at("https://pve:8006", Trust::SystemRoots)
        };
        assert_eq!(
            required_rights(&target),
            [
                (
                    "/access/realm/latchkey".to_string(),
                    vec!["Realm.AllocateUser"]
                ),
                (
                    "/access/groups".to_string(),
                    vec!["User.Modify", "Group.Allocate"]
                ),
                ("/".to_string(), vec!["Permissions.Modify"]),
                ("/access/realm".to_string(), vec!["Realm.Allocate"]),
            ]
        );
    }
}
