//! The Proxmox section of a client's admin page, over real HTTP: connecting a server (one that
//! does not answer is saved with a warning), rules, the sync status and "Sync now",
//! disconnecting, what is refused and why, and the token secret never coming back.

use latchkey::names::ClientId;
use latchkey::store::audit::EventKind;
use latchkey::store::proxmox::{self as stored, StoredTarget, SyncStatus};
use latchkey::store::{Db, StoreError};

use crate::admin::{Browser, admin_app, store, text};
use crate::helpers::*;

/// A token secret, to look for in every page.
const SECRET: &str = "5e1f0c2a-77d4-4b8e-9c1d-write-only";
/// Nothing listens there: the server "does not answer".
const DOWN: &str = "https://127.0.0.1:1";
/// A SHA-256 fingerprint as typed: lower case, no colons.
const TYPED_FINGERPRINT: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
/// The same, as Proxmox shows it and Latchkey keeps it.
const FINGERPRINT: &str = "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:\
                           00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";

/// The connect form for a PBS at `api_url`.
fn connect_form<'a>(api_url: &'a str, secret: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("product", "pbs"),
        ("api_url", api_url),
        ("token_id", "root@pam!latchkey"),
        ("token_secret", secret),
        ("trust", "fingerprint"),
        ("fingerprint", TYPED_FINGERPRINT),
        ("realm", "latchkey"),
        ("leavers", "disable"),
    ]
}

/// The client the tests connect.
fn pbs() -> ClientId {
    ClientId::parse("pbs").unwrap()
}

fn read<T>(app: &TestApp, work: impl FnOnce(&Db) -> Result<T, StoreError>) -> T {
    store(app).read(work).unwrap()
}

fn target(app: &TestApp) -> Option<StoredTarget> {
    read(app, |conn| stored::target(conn, &pbs()))
}

fn status(app: &TestApp) -> SyncStatus {
    read(app, |conn| stored::status(conn, &pbs())).unwrap()
}

/// An admin with a confidential client `pbs` and a group `backup-admins`.
async fn pbs_app() -> (TestApp, Browser) {
    let (app, ada) = admin_app().await;
    app.cli_ok(&[
        "client",
        "add",
        "pbs",
        "--redirect-uri",
        "https://pbs.example.com:8007",
    ]);
    app.cli_ok(&["group", "add", "backup-admins"]);
    (app, ada)
}

/// Every page an administrator saw, to check that none shows the token secret.
struct Seen(Vec<String>);

impl Seen {
    async fn page(&mut self, response: reqwest::Response) -> (u16, String) {
        let status = response.status().as_u16();
        let page = text(response).await;
        self.0.push(page.clone());
        (status, page)
    }

    async fn get(&mut self, app: &TestApp, ada: &Browser, path: &str) -> String {
        let (status, page) = ada.get(app, path).await;
        assert_eq!(status, 200, "GET {path}");
        self.0.push(page.clone());
        page
    }

    fn never_shows(&self, secret: &str) {
        for page in &self.0 {
            assert!(
                !page.contains(secret),
                "a page shows the token secret:\n{page}"
            );
        }
    }
}

#[tokio::test]
async fn an_admin_connects_a_server_that_does_not_answer_then_adds_rules_syncs_and_disconnects() {
    let (app, ada) = pbs_app().await;
    let mut seen = Seen(Vec::new());

    let page = seen.get(&app, &ada, "/admin/clients/pbs").await;
    assert!(page.contains("Proxmox permissions"), "{page}");
    assert!(page.contains("1. Make an API token on the server"));
    assert!(!page.contains("Sync now"), "no status without a target");

    let saved = ada
        .post(
            &app,
            "/admin/clients/pbs/proxmox",
            &connect_form(DOWN, SECRET),
        )
        .await;
    let (code, page) = seen.page(saved).await;
    assert_eq!(code, 200, "{page}");
    assert!(
        page.contains("Saved, but the server does not answer"),
        "{page}"
    );
    let saved = target(&app).expect("the target is saved");
    assert_eq!(saved.target.api_url, DOWN);
    assert_eq!(saved.target.token_id, "root@pam!latchkey");
    assert_eq!(saved.target.token_secret, SECRET);
    assert_eq!(
        saved.target.trust,
        latchkey::proxmox::target::Trust::Fingerprint(FINGERPRINT.into())
    );
    assert!(!saved.declared);
    assert!(status(&app).due_at.is_some(), "a sync is asked for");

    let page = seen.get(&app, &ada, "/admin/clients/pbs").await;
    assert!(
        page.contains(&format!("SHA-256 fingerprint {FINGERPRINT}")),
        "{page}"
    );
    assert!(
        page.contains("Sync status") && page.contains("Pending</dt><dd>Yes"),
        "{page}"
    );
    assert!(page.contains("No rules yet"));
    assert!(page.contains("Save the connection") && page.contains("Disconnect"));
    assert!(
        page.contains("proxmox-backup-manager user generate-token root@pam latchkey"),
        "the guidance names this token"
    );

    // A rule: the server cannot say whether it has the role, so the next sync checks it.
    let added = ada
        .post(
            &app,
            "/admin/clients/pbs/proxmox/rules",
            &[
                ("group", "backup-admins"),
                ("role", "DatastoreBackup"),
                ("path", "/datastore/main/"),
                ("propagate", "on"),
            ],
        )
        .await;
    let (code, page) = seen.page(added).await;
    assert_eq!(code, 200, "{page}");
    assert!(
        page.contains("cannot check the role DatastoreBackup now"),
        "{page}"
    );
    let rules = read(&app, |conn| stored::rules(conn, &pbs()));
    assert_eq!(rules.len(), 1);
    assert_eq!(
        (
            rules[0].group.as_str(),
            rules[0].role.as_str(),
            rules[0].path.as_str()
        ),
        ("backup-admins", "DatastoreBackup", "/datastore/main")
    );
    assert!(rules[0].propagate);
    let page = seen.get(&app, &ada, "/admin/clients/pbs").await;
    assert!(
        page.contains(
            "aria-label=\"Remove the rule backup-admins → DatastoreBackup on /datastore/main\""
        ),
        "{page}"
    );
    let status_out = app.cli_ok(&["proxmox", "status", "pbs"]);
    assert!(
        status_out.contains("rule: backup-admins → DatastoreBackup on /datastore/main"),
        "the CLI sees the page's rule: {status_out}"
    );

    // Sync now asks for a run (whatever the queue worker has done meanwhile).
    let before = status(&app).generation;
    let synced = ada.post(&app, "/admin/clients/pbs/proxmox/sync", &[]).await;
    assert_eq!(synced.status(), 303);
    assert_eq!(location(&synced), "/admin/clients/pbs#proxmox");
    let after = status(&app);
    assert_eq!(after.generation, before + 1);
    assert!(after.due_at.is_some());

    // Removing the rule; removing it again says there is none.
    let rule = [
        ("group", "backup-admins"),
        ("role", "DatastoreBackup"),
        ("path", "/datastore/main"),
    ];
    let removed = ada
        .post(&app, "/admin/clients/pbs/proxmox/rules/remove", &rule)
        .await;
    assert_eq!(removed.status(), 303);
    assert!(read(&app, |conn| stored::rules(conn, &pbs())).is_empty());
    let again = ada
        .post(&app, "/admin/clients/pbs/proxmox/rules/remove", &rule)
        .await;
    let (code, page) = seen.page(again).await;
    assert_eq!(code, 400);
    assert!(
        page.contains("This client has no rule giving backup-admins"),
        "{page}"
    );

    // Disconnecting needs the confirmation, and leaves the server as it is.
    let unconfirmed = ada
        .post(&app, "/admin/clients/pbs/proxmox/disconnect", &[])
        .await;
    let (code, page) = seen.page(unconfirmed).await;
    assert_eq!(code, 400);
    assert!(page.contains("Tick the confirmation to disconnect"));
    assert!(target(&app).is_some());
    let page = seen.get(&app, &ada, "/admin/clients/pbs").await;
    assert!(page.contains("the server keeps its users and ACL entries as they are"));
    let disconnected = ada
        .post(
            &app,
            "/admin/clients/pbs/proxmox/disconnect",
            &[("confirm", "yes")],
        )
        .await;
    assert_eq!(disconnected.status(), 303);
    assert!(target(&app).is_none());
    let page = seen.get(&app, &ada, "/admin/clients/pbs").await;
    assert!(page.contains("1. Make an API token on the server") && !page.contains("Sync now"));

    // Every change is in the audit log, by ada; no page showed the secret.
    let events = read(&app, |conn| latchkey::store::audit::recent(conn, 50));
    for kind in [
        EventKind::ProxmoxTargetSet,
        EventKind::ProxmoxRuleAdded,
        EventKind::ProxmoxRuleRemoved,
        EventKind::ProxmoxSyncRequested,
        EventKind::ProxmoxTargetUnset,
    ] {
        let event = events.iter().find(|e| e.event == kind.as_str());
        assert_eq!(
            event.and_then(|e| e.actor.as_deref()),
            Some("ada"),
            "{} by ada",
            kind.as_str()
        );
    }
    seen.get(&app, &ada, "/admin/audit").await;
    seen.never_shows(SECRET);
}

#[tokio::test]
async fn the_token_secret_is_write_only() {
    let (app, ada) = pbs_app().await;
    let mut seen = Seen(Vec::new());
    let saved = ada
        .post(
            &app,
            "/admin/clients/pbs/proxmox",
            &connect_form(DOWN, SECRET),
        )
        .await;
    assert_eq!(saved.status(), 200);

    let page = seen.get(&app, &ada, "/admin/clients/pbs").await;
    assert!(
        page.contains(
            r#"name="token_secret" type="password" autocomplete="new-password" aria-describedby"#
        ),
        "the field is empty and not required on edit: {page}"
    );
    assert!(page.contains("Leave it blank to keep the stored one"));

    // Blank keeps the stored secret while the server and the token stay.
    let mut edit = connect_form(DOWN, "");
    edit.retain(|(name, _)| *name != "leavers");
    edit.push(("leavers", "delete"));
    let edited = ada.post(&app, "/admin/clients/pbs/proxmox", &edit).await;
    let (code, page) = seen.page(edited).await;
    assert_eq!(code, 200, "{page}");
    let kept = target(&app).unwrap().target;
    assert_eq!(kept.token_secret, SECRET);
    assert_eq!(kept.leavers.as_str(), "delete");

    // Pointing the token at another server needs the secret again.
    let moved = ada
        .post(
            &app,
            "/admin/clients/pbs/proxmox",
            &connect_form("https://127.0.0.2:1", ""),
        )
        .await;
    let (code, page) = seen.page(moved).await;
    assert_eq!(code, 400);
    assert!(page.contains("Paste the API token's secret"), "{page}");
    assert!(
        page.contains("value=\"https://127.0.0.2:1\""),
        "what was typed stays"
    );
    assert_eq!(
        target(&app).unwrap().target.api_url,
        DOWN,
        "nothing changed"
    );
    seen.never_shows(SECRET);
}

#[tokio::test]
async fn mistakes_are_refused_with_the_reason_and_change_nothing() {
    let (app, ada) = pbs_app().await;
    let mut seen = Seen(Vec::new());
    let refused = |field: &'static str, value: &'static str| {
        let mut form = connect_form(DOWN, SECRET);
        form.retain(|(name, _)| *name != field);
        form.push((field, value));
        form
    };
    for (form, reason) in [
        (
            refused("fingerprint", "AB:CD"),
            "Invalid fingerprint \"AB:CD\"",
        ),
        (refused("api_url", "http://pbs:8007"), "served over https"),
        (refused("token_id", "root@pam"), "Invalid API token id"),
        (refused("product", "pmg"), "Invalid product \"pmg\""),
        (refused("realm", "1x"), "Invalid realm \"1x\""),
        (
            refused("trust", "ca"),
            "Paste the CA certificate in PEM form",
        ),
        (
            refused("token_secret", "two words"),
            "one line without spaces",
        ),
    ] {
        let response = ada.post(&app, "/admin/clients/pbs/proxmox", &form).await;
        let (code, page) = seen.page(response).await;
        assert_eq!(code, 400, "{reason}");
        assert!(page.contains(reason), "{reason}: {page}");
    }
    assert!(target(&app).is_none(), "nothing was saved");

    // A rule needs a target first, then an existing group and a well-formed role and path.
    let rule = |group, role, path| [("group", group), ("role", role), ("path", path)];
    let early = ada
        .post(
            &app,
            "/admin/clients/pbs/proxmox/rules",
            &rule("backup-admins", "Admin", "/"),
        )
        .await;
    let (code, page) = seen.page(early).await;
    assert_eq!(code, 400);
    assert!(page.contains("Connect a Proxmox server first"), "{page}");
    ada.post(
        &app,
        "/admin/clients/pbs/proxmox",
        &connect_form(DOWN, SECRET),
    )
    .await;
    for (form, code, reason) in [
        (
            rule("ghosts", "Admin", "/"),
            404,
            "No group named \"ghosts\"",
        ),
        (
            rule("backup-admins", "Admin Role", "/"),
            400,
            "Invalid role",
        ),
        (
            rule("backup-admins", "Admin", "/../etc"),
            400,
            "Invalid ACL path",
        ),
    ] {
        let response = ada
            .post(&app, "/admin/clients/pbs/proxmox/rules", &form)
            .await;
        let (status, page) = seen.page(response).await;
        assert_eq!(status, code, "{reason}");
        assert!(page.contains(reason), "{reason}: {page}");
    }
    assert!(read(&app, |conn| stored::rules(conn, &pbs())).is_empty());

    // No client, no section.
    let (code, _) = ada.get(&app, "/admin/clients/nobody").await;
    assert_eq!(code, 404);
    let missing = ada
        .post(&app, "/admin/clients/nobody/proxmox/sync", &[])
        .await;
    assert_eq!(missing.status(), 404);
    seen.never_shows(SECRET);
}

#[tokio::test]
async fn forms_without_their_csrf_token_change_nothing() {
    let (app, ada) = pbs_app().await;
    ada.post(
        &app,
        "/admin/clients/pbs/proxmox",
        &connect_form(DOWN, SECRET),
    )
    .await;
    let generation = status(&app).generation;
    let other = connect_form("https://127.0.0.3:1", "stolen");
    let rule = [("group", "backup-admins"), ("role", "Admin"), ("path", "/")];
    let posts: [(&str, &[(&str, &str)]); 5] = [
        ("/admin/clients/pbs/proxmox", &other),
        ("/admin/clients/pbs/proxmox/rules", &rule),
        ("/admin/clients/pbs/proxmox/rules/remove", &rule),
        ("/admin/clients/pbs/proxmox/sync", &[]),
        (
            "/admin/clients/pbs/proxmox/disconnect",
            &[("confirm", "yes")],
        ),
    ];
    for (path, form) in posts {
        let response = ada
            .client
            .post(app.url(path))
            .form(form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{path}");
        assert!(text(response).await.contains("Form expired"), "{path}");
    }
    let kept = target(&app).expect("still connected").target;
    assert_eq!(kept.api_url, DOWN);
    assert!(read(&app, |conn| stored::rules(conn, &pbs())).is_empty());
    assert_eq!(status(&app).generation, generation, "no sync was asked for");
}

#[tokio::test]
async fn a_declared_target_is_shown_read_only() {
    let app = spawn_app_with_config(&format!(
        r#"
[[groups]]
name = "backup-admins"

[[clients]]
client_id = "pbs"
public = true
redirect_uris = ["https://pbs.example.com:8007"]

[clients.proxmox]
product = "pbs"
api_url = "{DOWN}"
token_id = "root@pam!latchkey"
token_secret = "{SECRET}"
fingerprint = "{TYPED_FINGERPRINT}"

[[clients.proxmox.permissions]]
group = "backup-admins"
role = "Admin"
path = "/datastore/main"
"#
    ));
    app.cli_ok(&["user", "add", "ada", "--admin"]);
    let ada = Browser::signed_in(&app, "ada").await;
    let mut seen = Seen(Vec::new());

    let page = seen.get(&app, &ada, "/admin/clients/pbs").await;
    assert!(
        page.contains(&format!("SHA-256 fingerprint {FINGERPRINT}")),
        "{page}"
    );
    assert!(
        page.contains("<code>/datastore/main</code>"),
        "the rule is listed"
    );
    assert!(page.contains("Sync now"), "a sync may be asked for");
    for form in [
        "/admin/clients/pbs/proxmox\"",
        "/proxmox/rules\"",
        "/proxmox/rules/remove",
        "/proxmox/disconnect",
    ] {
        assert!(!page.contains(form), "no form posting to {form}");
    }

    let rule = [
        ("group", "backup-admins"),
        ("role", "Admin"),
        ("path", "/datastore/main"),
    ];
    let declared = "\"pbs\" is declared in the config file; change it there.";
    for (path, form) in [
        ("/admin/clients/pbs/proxmox", connect_form(DOWN, "other")),
        ("/admin/clients/pbs/proxmox/rules", rule.to_vec()),
        ("/admin/clients/pbs/proxmox/rules/remove", rule.to_vec()),
        (
            "/admin/clients/pbs/proxmox/disconnect",
            vec![("confirm", "yes")],
        ),
    ] {
        let response = ada.post(&app, path, &form).await;
        let (code, page) = seen.page(response).await;
        assert_eq!(code, 409, "{path}");
        assert!(page.contains(declared), "{path}: {page}");
    }
    let kept = target(&app).expect("still declared");
    assert!(kept.declared);
    assert_eq!(kept.target.token_secret, SECRET);
    assert_eq!(read(&app, |conn| stored::rules(conn, &pbs())).len(), 1);

    let synced = ada.post(&app, "/admin/clients/pbs/proxmox/sync", &[]).await;
    assert_eq!(synced.status(), 303);
    seen.never_shows(SECRET);
}

#[tokio::test]
async fn the_guidance_gives_this_clients_commands_and_taking_over_the_realm_mints_a_secret() {
    let (app, ada) = admin_app().await;
    let out = app.cli_ok(&[
        "client",
        "add",
        "pve",
        "--redirect-uri",
        PVE_REDIRECT,
        "--json",
    ]);
    let old_secret: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let old_secret = old_secret["client_secret"].as_str().unwrap().to_string();

    let page = ada.get(&app, "/admin/clients/pve").await.1;
    for command in [
        "proxmox-backup-manager user generate-token root@pam latchkey",
        "proxmox-backup-manager acl update /access Admin --auth-id 'root@pam!latchkey'",
        "proxmox-backup-manager cert info | grep Fingerprint",
        "pveum user token add root@pam latchkey --privsep 1",
        "pveum role add LatchkeySync --privs \"Realm.AllocateUser User.Modify Group.Allocate \
         Permissions.Modify Sys.Audit\"",
        "pveum acl modify / --tokens 'root@pam!latchkey' --roles LatchkeySync",
        "pvenode cert info | grep -i fingerprint",
        "openssl s_client -connect pbs.example.com:8007",
        "proxmox-backup-manager openid create latchkey --issuer-url",
        "pveum realm add latchkey --type openid --issuer-url",
        "--client-id pve --client-key 'THE-CLIENT-SECRET'",
        "--autocreate 0",
    ] {
        assert!(page.contains(command), "{command}:\n{page}");
    }

    let form = [
        ("product", "pve"),
        ("api_url", "https://127.0.0.1:1"),
        ("token_id", "sync@pve!people"),
        ("token_secret", SECRET),
        ("trust", "system"),
        ("realm", "homelab"),
        ("leavers", "disable"),
        ("manage_realm", "on"),
    ];
    let saved = ada.post(&app, "/admin/clients/pve/proxmox", &form).await;
    assert_eq!(saved.status(), 200);
    let page = text(saved).await;
    assert!(
        page.contains("Latchkey manages the realm homelab now: it minted a new client secret"),
        "{page}"
    );
    let (status, _, _) = post_form(
        &app,
        "/introspect",
        &[("token", "x")],
        Some(("pve", &old_secret)),
    )
    .await;
    assert_eq!(status, 401, "the old client secret no longer works");

    let page = ada.get(&app, "/admin/clients/pve").await.1;
    assert!(page.contains("A new client secret waits to be written into the realm"));
    assert!(page.contains("Nothing to do: Latchkey creates and updates the realm"));
    assert!(!page.contains("pveum realm add homelab"), "no realm step");
    for command in [
        "pveum user token add sync@pve people --privsep 1",
        "Permissions.Modify Sys.Audit Realm.Allocate\"",
        "--tokens 'sync@pve!people'",
        "openssl s_client -connect 127.0.0.1:1 ",
        "the system's CA certificates",
    ] {
        assert!(page.contains(command), "{command}:\n{page}");
    }
    assert!(!page.contains(SECRET));
}
