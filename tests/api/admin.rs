//! The administration area in the browser: who gets in, the forms' CSRF protection, and what
//! an administrator does there (people, groups, login links, the audit log, signing keys),
//! checked against the CLI and the protocol endpoints.

use latchkey::names::GroupName;
use latchkey::store::Store;
use latchkey::store::audit::EventKind;
use serde_json::Value;

use crate::helpers::*;

/// Fields of a form, as `(name, value)` pairs.
type Form = &'static [(&'static str, &'static str)];

/// Every admin route, with the form a caller would send. `bob` and `staff` exist in the tests
/// that use this list; the passkey id and session handle need not.
const ROUTES: &[(&str, &str, Form)] = &[
    ("GET", "/admin", &[]),
    ("GET", "/admin/users", &[]),
    ("GET", "/admin/users/bob", &[]),
    ("GET", "/admin/groups", &[]),
    ("GET", "/admin/groups/staff", &[]),
    ("GET", "/admin/audit", &[]),
    ("GET", "/admin/keys", &[]),
    ("POST", "/admin/users", &[("username", "mallory")]),
    (
        "POST",
        "/admin/users/bob/edit",
        &[("username", "bob"), ("is_admin", "yes")],
    ),
    ("POST", "/admin/users/bob/groups", &[("group", "staff")]),
    ("POST", "/admin/users/bob/disable", &[]),
    ("POST", "/admin/users/bob/enable", &[]),
    ("POST", "/admin/users/bob/delete", &[("confirm", "yes")]),
    ("POST", "/admin/users/bob/login-link", &[("ttl", "900")]),
    ("POST", "/admin/users/bob/passkeys/1/delete", &[]),
    (
        "POST",
        "/admin/users/bob/sessions/0123456789abcdef/end",
        &[],
    ),
    ("POST", "/admin/users/bob/sessions/end-all", &[]),
    ("POST", "/admin/groups", &[("name", "intruders")]),
    ("POST", "/admin/groups/staff/rename", &[("name", "renamed")]),
    ("POST", "/admin/groups/staff/delete", &[("confirm", "yes")]),
    (
        "POST",
        "/admin/groups/staff/members",
        &[("username", "bob")],
    ),
    ("POST", "/admin/groups/staff/members/bob/remove", &[]),
    ("POST", "/admin/keys/rotate", &[]),
    ("GET", "/admin/clients", &[]),
    ("GET", "/admin/clients/web", &[]),
    (
        "POST",
        "/admin/clients",
        &[
            ("client_id", "evil"),
            ("redirect_uris", "https://evil.example.com/cb"),
        ],
    ),
    (
        "POST",
        "/admin/clients/web/edit",
        &[("redirect_uris", "https://evil.example.com/cb")],
    ),
    ("POST", "/admin/clients/web/rotate-secret", &[]),
    ("POST", "/admin/clients/web/delete", &[("confirm", "yes")]),
    (
        "POST",
        "/admin/clients/web/proxmox",
        &[
            ("product", "pbs"),
            ("api_url", "https://127.0.0.1:1"),
            ("token_id", "root@pam!evil"),
            ("token_secret", "x"),
            ("trust", "system"),
        ],
    ),
    (
        "POST",
        "/admin/clients/web/proxmox/rules",
        &[("group", "staff"), ("role", "Admin"), ("path", "/")],
    ),
    (
        "POST",
        "/admin/clients/web/proxmox/rules/remove",
        &[("group", "staff"), ("role", "Admin"), ("path", "/")],
    ),
    ("POST", "/admin/clients/web/proxmox/sync", &[]),
    (
        "POST",
        "/admin/clients/web/proxmox/disconnect",
        &[("confirm", "yes")],
    ),
];

/// A signed-in browser and the CSRF token its forms carry.
pub struct Browser {
    pub client: reqwest::Client,
    pub csrf: String,
}

impl Browser {
    pub async fn signed_in(app: &TestApp, username: &str) -> Browser {
        let client = app.signed_in_browser(username).await;
        let csrf = account_csrf(app, &client).await;
        Browser { client, csrf }
    }

    pub async fn get(&self, app: &TestApp, path: &str) -> (u16, String) {
        let response = self.client.get(app.url(path)).send().await.unwrap();
        let status = response.status().as_u16();
        (status, text(response).await)
    }

    /// Posts a form with this browser's CSRF token.
    pub async fn post(
        &self,
        app: &TestApp,
        path: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut form = fields.to_vec();
        form.push(("csrf_token", &self.csrf));
        self.client
            .post(app.url(path))
            .form(&form)
            .send()
            .await
            .unwrap()
    }
}

/// A server with one administrator, ada, signed in.
pub async fn admin_app() -> (TestApp, Browser) {
    let app = spawn_app();
    app.cli_ok(&["user", "add", "ada", "--admin", "--name", "Ada Lovelace"]);
    let ada = Browser::signed_in(&app, "ada").await;
    (app, ada)
}

/// A direct handle on the server's database, to set up what no page makes (passkeys, groups
/// from a config file).
pub fn store(app: &TestApp) -> Store {
    app.store().clone()
}

/// A page's HTML with askama's character escapes undone, to compare with plain sentences.
pub async fn text(response: reqwest::Response) -> String {
    let html = response.text().await.unwrap();
    [
        ("&#34;", "\""),
        ("&#39;", "'"),
        ("&#60;", "<"),
        ("&#62;", ">"),
        ("&#38;", "&"),
    ]
    .iter()
    .fold(html, |page, (escape, plain)| page.replace(escape, plain))
}

/// The summary line of an audit page: "N events match · page X of Y."
fn audit_summary(page: &str) -> &str {
    page.split("id=\"audit-summary\">")
        .nth(1)
        .and_then(|rest| rest.split(". Newest").next())
        .expect("an audit summary")
}

/// The login link shown on a page.
fn shown_link(page: &str) -> String {
    page.split("id=\"login-link\"")
        .nth(1)
        .and_then(|rest| rest.split("value=\"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .expect("a login link on the page")
        .to_string()
}

async fn jwks_kids(app: &TestApp) -> Vec<String> {
    jwks(app)
        .await
        .iter()
        .map(|key| key["kid"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn non_admins_get_403_everywhere_and_strangers_are_sent_to_sign_in() {
    let (app, _ada) = admin_app().await;
    app.cli_ok(&["user", "add", "bob"]);
    app.cli_ok(&["group", "add", "staff"]);
    let bob = Browser::signed_in(&app, "bob").await;
    let stranger = app.browser();
    let kids_before = jwks_kids(&app).await;

    for (method, path, fields) in ROUTES {
        let (status, body) = if *method == "GET" {
            bob.get(&app, path).await
        } else {
            let response = bob.post(&app, path, fields).await;
            let status = response.status().as_u16();
            (status, text(response).await)
        };
        assert_eq!(status, 403, "{method} {path} as a non-admin");
        assert!(body.contains("Administrators only"), "{method} {path}");
        assert!(body.contains("<html"), "{method} {path} is an HTML page");

        // Not even a malformed post tells a non-admin anything else.
        if *method == "POST" {
            let bare = bob.client.post(app.url(path)).send().await.unwrap();
            assert_eq!(bare.status(), 403, "{method} {path} with no form");
        }

        let anonymous = if *method == "GET" {
            stranger.get(app.url(path)).send().await.unwrap()
        } else {
            stranger
                .post(app.url(path))
                .form(fields)
                .send()
                .await
                .unwrap()
        };
        assert_eq!(anonymous.status(), 303, "{method} {path} without a session");
        assert_eq!(location(&anonymous), "/login", "{method} {path}");
    }

    // Nothing the non-admin posted took effect.
    let bob_now = app.cli_ok(&["user", "show", "bob"]);
    assert!(bob_now.contains("administrator: false"), "{bob_now}");
    assert!(bob_now.contains("disabled:     false"), "{bob_now}");
    assert_eq!(app.cli_ok(&["group", "list"]), "staff\t\n");
    assert_eq!(jwks_kids(&app).await, kids_before);
    let bob_account = bob.client.get(app.url("/account")).send().await.unwrap();
    assert_eq!(bob_account.status(), 200, "bob is still signed in");
}

#[tokio::test]
async fn forms_without_the_right_csrf_token_are_refused() {
    let (app, ada) = admin_app().await;
    let missing = ada
        .client
        .post(app.url("/admin/groups"))
        .form(&[("name", "no-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 403);
    assert!(text(missing).await.contains("Form expired"));

    let wrong = ada
        .client
        .post(app.url("/admin/groups"))
        .form(&[("name", "wrong-token"), ("csrf_token", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);

    let cross_site = ada
        .client
        .post(app.url("/admin/keys/rotate"))
        .header("origin", "https://evil.example.com")
        .form(&[("csrf_token", ada.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403);

    assert_eq!(app.cli_ok(&["group", "list"]), "", "no group was created");
    assert_eq!(jwks_kids(&app).await.len(), 3, "no key was rotated");

    let right = ada
        .post(&app, "/admin/groups", &[("name", "with-token")])
        .await;
    assert_eq!(right.status(), 303);
    assert_eq!(location(&right), "/admin/groups/with-token");
}

#[tokio::test]
async fn an_admin_adds_a_person_to_a_group_and_signs_them_in_with_a_link() {
    let (app, ada) = admin_app().await;

    let created = ada.post(&app, "/admin/groups", &[("name", "staff")]).await;
    assert_eq!(created.status(), 303);
    assert_eq!(location(&created), "/admin/groups/staff");

    let added = ada
        .post(
            &app,
            "/admin/users",
            &[
                ("username", "Carol"),
                ("display_name", "Carol Danvers"),
                ("email", "carol@example.com"),
            ],
        )
        .await;
    assert_eq!(added.status(), 303);
    assert_eq!(
        location(&added),
        "/admin/users/carol",
        "usernames are lowercased"
    );

    let member = ada
        .post(
            &app,
            "/admin/groups/staff/members",
            &[("username", "carol")],
        )
        .await;
    assert_eq!(member.status(), 303);
    assert_eq!(location(&member), "/admin/groups/staff");
    assert_eq!(app.cli_ok(&["group", "list"]), "staff\tcarol\n");

    let (status, page) = ada.get(&app, "/admin/users/carol").await;
    assert_eq!(status, 200);
    assert!(page.contains("Carol Danvers") && page.contains("carol@example.com"));
    assert!(
        page.contains(r#"name="group" value="staff" checked"#),
        "{page}"
    );

    let issued = ada
        .post(&app, "/admin/users/carol/login-link", &[("ttl", "3600")])
        .await;
    assert_eq!(issued.status(), 200);
    assert_eq!(issued.headers()["cache-control"], "no-store");
    let shown = text(issued).await;
    let link = shown_link(&shown);
    assert!(
        link.starts_with(&format!("{}/login/link/", app.issuer)),
        "{link}"
    );
    assert!(shown.contains("It works once, until"));
    assert!(shown.contains(r#"data-copy="login-link""#), "a copy button");
    let token = link.rsplit('/').next().unwrap();
    let (_, later) = ada.get(&app, "/admin/users/carol").await;
    assert!(!later.contains(token), "the link is shown once only");

    let carol = app.browser();
    let opened = open_login_link(&carol, &link).await;
    assert_eq!(opened.status(), 303);
    assert_eq!(location(&opened), "/account");
    let account = carol.get(app.url("/account")).send().await.unwrap();
    assert_eq!(account.status(), 200);
    let account = text(account).await;
    assert!(account.contains("Carol Danvers") && account.contains("staff"));
    assert_eq!(reqwest::get(&link).await.unwrap().status(), 410, "used up");

    // Renaming keeps the members; the person's groups follow.
    let renamed = ada
        .post(&app, "/admin/groups/staff/rename", &[("name", "crew")])
        .await;
    assert_eq!(renamed.status(), 303);
    assert_eq!(location(&renamed), "/admin/groups/crew");
    assert_eq!(app.cli_ok(&["group", "list"]), "crew\tcarol\n");
    let account = carol.get(app.url("/account")).send().await.unwrap();
    assert!(text(account).await.contains("crew"));
    let (gone, _) = ada.get(&app, "/admin/groups/staff").await;
    assert_eq!(gone, 404);

    // Groups change from the person's page too: ticking none removes them all.
    let none = ada.post(&app, "/admin/users/carol/groups", &[]).await;
    assert_eq!(none.status(), 303);
    assert_eq!(app.cli_ok(&["group", "list"]), "crew\t\n");
}

#[tokio::test]
async fn disabling_ends_access_and_enabling_restores_it() {
    let (app, ada) = admin_app().await;
    app.cli_ok(&["user", "add", "carol"]);
    let carol = app.signed_in_browser("carol").await;

    let (_, page) = ada.get(&app, "/admin/users/carol").await;
    assert!(page.contains("Signed-in browsers") && page.contains("127.0.0.1"));

    let disabled = ada.post(&app, "/admin/users/carol/disable", &[]).await;
    assert_eq!(disabled.status(), 303);
    assert_eq!(location(&disabled), "/admin/users/carol");
    let kicked = carol.get(app.url("/account")).send().await.unwrap();
    assert_eq!(location(&kicked), "/login", "disabling ends the session");
    assert!(
        app.cli_ok(&["user", "show", "carol"])
            .contains("disabled:     true")
    );

    let refused = ada
        .post(&app, "/admin/users/carol/login-link", &[("ttl", "900")])
        .await;
    assert_eq!(refused.status(), 409);
    assert!(text(refused).await.contains("User \"carol\" is disabled."));

    let enabled = ada.post(&app, "/admin/users/carol/enable", &[]).await;
    assert_eq!(enabled.status(), 303);
    assert!(
        app.cli_ok(&["user", "show", "carol"])
            .contains("disabled:     false")
    );
    let issued = ada
        .post(&app, "/admin/users/carol/login-link", &[("ttl", "900")])
        .await;
    assert_eq!(issued.status(), 200);
    let link = shown_link(&text(issued).await);
    assert_eq!(open_login_link(&app.browser(), &link).await.status(), 303);
}

#[tokio::test]
async fn an_admin_ends_sessions_and_deletes_passkeys() {
    let (app, ada) = admin_app().await;
    app.cli_ok(&["user", "add", "carol"]);
    let carol = app.signed_in_browser("carol").await;
    let carol_id = store(&app)
        .read(|conn| {
            let carol = latchkey::names::Username::parse("carol").unwrap();
            latchkey::store::users::by_username(conn, &carol)
        })
        .unwrap()
        .unwrap()
        .id;
    let passkey_id = store(&app)
        .write(|tx| {
            latchkey::store::passkeys::insert(
                tx,
                &latchkey::store::passkeys::StoredPasskey {
                    id: 0,
                    user_id: carol_id.clone(),
                    credential_id: "cred-1".into(),
                    name: "YubiKey 5".into(),
                    aaguid: None,
                    passkey: "{}".into(),
                    created_at: 1_700_000_000,
                    last_used_at: None,
                },
            )
        })
        .unwrap();

    let (_, page) = ada.get(&app, "/admin/users/carol").await;
    assert!(page.contains("YubiKey 5"));
    let handle = page
        .split("/admin/users/carol/sessions/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .to_string();
    assert_eq!(handle.len(), 16, "{handle}");

    let ended = ada
        .post(
            &app,
            &format!("/admin/users/carol/sessions/{handle}/end"),
            &[],
        )
        .await;
    assert_eq!(ended.status(), 303);
    let kicked = carol.get(app.url("/account")).send().await.unwrap();
    assert_eq!(location(&kicked), "/login");

    let deleted = ada
        .post(
            &app,
            &format!("/admin/users/carol/passkeys/{passkey_id}/delete"),
            &[],
        )
        .await;
    assert_eq!(deleted.status(), 303);
    let (_, page) = ada.get(&app, "/admin/users/carol").await;
    assert!(!page.contains("YubiKey 5"));
    assert!(page.contains("No passkey yet"));
    let again = ada
        .post(
            &app,
            &format!("/admin/users/carol/passkeys/{passkey_id}/delete"),
            &[],
        )
        .await;
    assert_eq!(again.status(), 409);
    assert!(text(again).await.contains("That passkey no longer exists"));
    let nonsense = ada
        .post(&app, "/admin/users/carol/passkeys/not-a-number/delete", &[])
        .await;
    assert_eq!(nonsense.status(), 409);
}

#[tokio::test]
async fn the_audit_log_shows_changes_newest_first_and_filters_them() {
    let (app, ada) = admin_app().await;
    app.cli_ok(&[
        "client",
        "add",
        "shop",
        "--redirect-uri",
        "https://shop.example.com/cb",
    ]);
    ada.post(&app, "/admin/groups", &[("name", "staff")]).await;
    ada.post(&app, "/admin/users", &[("username", "carol")])
        .await;
    ada.post(
        &app,
        "/admin/groups/staff/members",
        &[("username", "carol")],
    )
    .await;
    ada.post(&app, "/admin/users/carol/login-link", &[("ttl", "900")])
        .await;
    ada.post(&app, "/admin/groups/staff/rename", &[("name", "crew")])
        .await;
    ada.post(&app, "/admin/users/carol/disable", &[]).await;
    ada.post(&app, "/admin/users/carol/enable", &[]).await;

    let (status, everything) = ada.get(&app, "/admin/audit").await;
    assert_eq!(status, 200);
    for event in [
        "group.created",
        "user.created",
        "group.member_added",
        "login_link.issued",
        "group.renamed",
        "user.disabled",
        "user.enabled",
        "client.created",
    ] {
        assert!(everything.contains(&format!(">{event}</a>")), "{event}");
    }
    assert!(everything.contains("staff to crew"), "the detail is shown");
    assert!(everything.contains("127.0.0.1"), "the address is shown");

    let (_, carol) = ada.get(&app, "/admin/audit?user=carol").await;
    assert_eq!(audit_summary(&carol), "5 events match · page 1 of 1");
    let order: Vec<usize> = [
        "user.enabled",
        "user.disabled",
        "login_link.issued",
        "group.member_added",
        "user.created",
    ]
    .iter()
    .map(|event| carol.find(&format!(">{event}</a>")).expect(event))
    .collect();
    assert!(order.is_sorted(), "newest first: {order:?}");
    assert!(!carol.contains(">group.renamed</a>"));

    let (_, renamed) = ada.get(&app, "/admin/audit?event=group.renamed").await;
    assert_eq!(audit_summary(&renamed), "1 event matches · page 1 of 1");
    assert!(renamed.contains("staff to crew"));

    let (_, both) = ada
        .get(&app, "/admin/audit?user=CAROL&event=user.disabled")
        .await;
    assert_eq!(audit_summary(&both), "1 event matches · page 1 of 1");

    let (_, shop) = ada.get(&app, "/admin/audit?client=shop").await;
    let matches: usize = audit_summary(&shop)
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(matches >= 1);
    assert_eq!(
        shop.matches(">shop</a>").count(),
        matches,
        "only shop's events"
    );
    assert!(!shop.contains(">user.created</a>"));

    let (_, nothing) = ada.get(&app, "/admin/audit?user=nobody").await;
    assert_eq!(audit_summary(&nothing), "0 events match · page 1 of 1");
    assert!(nothing.contains("No events match these filters."));
}

#[tokio::test]
async fn the_audit_log_comes_fifty_events_a_page() {
    let (app, ada) = admin_app().await;
    for n in 0..52 {
        let name = format!("g{n:02}");
        let response = ada.post(&app, "/admin/groups", &[("name", &name)]).await;
        assert_eq!(response.status(), 303);
    }
    let (_, first) = ada.get(&app, "/admin/audit?event=group.created").await;
    assert_eq!(audit_summary(&first), "52 events match · page 1 of 2");
    assert_eq!(first.matches(">group.created</a>").count(), 50);
    assert!(first.find(">g51<").unwrap() < first.find(">g02<").unwrap());
    assert!(!first.contains(">g01<"));
    assert!(first.contains(r#"href="/admin/audit?event=group.created&page=2" rel="next""#));
    assert!(!first.contains("rel=\"prev\""));

    let (_, second) = ada
        .get(&app, "/admin/audit?event=group.created&page=2")
        .await;
    assert_eq!(audit_summary(&second), "52 events match · page 2 of 2");
    assert_eq!(second.matches(">group.created</a>").count(), 2);
    assert!(second.find(">g01<").unwrap() < second.find(">g00<").unwrap());
    assert!(second.contains(r#"href="/admin/audit?event=group.created" rel="prev""#));
    assert!(!second.contains("rel=\"next\""));

    let (_, past) = ada.get(&app, "/admin/audit?page=9").await;
    assert!(past.contains("No events."));
    for bad in ["0", "-1", "two"] {
        let (status, page) = ada.get(&app, &format!("/admin/audit?page={bad}")).await;
        assert_eq!(status, 400, "page={bad}");
        assert!(page.contains("Pages are numbered from 1."));
    }
}

#[tokio::test]
async fn an_event_name_no_kind_has_matches_nothing_and_is_kept() {
    let (app, ada) = admin_app().await;
    let created = ada.post(&app, "/admin/groups", &[("name", "staff")]).await;
    assert_eq!(created.status(), 303);
    let (_, known) = ada.get(&app, "/admin/audit?event=group.created").await;
    assert_eq!(audit_summary(&known), "1 event matches · page 1 of 1");

    for name in ["GROUP.CREATED", "group.created.", "no.such_event"] {
        let (status, page) = ada
            .get(&app, &format!("/admin/audit?user=ada&event={name}&page=2"))
            .await;
        assert_eq!(status, 200, "{name}");
        assert_eq!(
            audit_summary(&page),
            "0 events match · page 2 of 1",
            "{name}"
        );
        assert!(page.contains("No events match these filters."), "{name}");
        assert!(
            page.contains(&format!(
                r#"name="event" type="text" maxlength="254" value="{name}""#
            )),
            "{name}"
        );
        assert!(
            page.contains(&format!(
                r#"href="/admin/audit?user=ada&event={name}" rel="prev""#
            )),
            "{name}"
        );
    }
}

#[tokio::test]
async fn rotating_from_the_page_publishes_new_keys() {
    let (app, ada) = admin_app().await;
    let before = jwks_kids(&app).await;
    assert_eq!(before.len(), 3, "one key per algorithm");
    let (_, page) = ada.get(&app, "/admin/keys").await;
    assert!(page.contains(&before[0]) && page.contains("Active: signs new tokens"));

    let rotated = ada.post(&app, "/admin/keys/rotate", &[]).await;
    assert_eq!(rotated.status(), 303);
    assert_eq!(location(&rotated), "/admin/keys");

    let after = jwks_kids(&app).await;
    assert_eq!(after.len(), 6, "the old keys stay published");
    assert!(before.iter().all(|kid| after.contains(kid)));
    let new_kid = after.iter().find(|kid| !before.contains(kid)).unwrap();
    let (_, page) = ada.get(&app, "/admin/keys").await;
    assert_eq!(page.matches("Active: signs new tokens").count(), 3);
    assert!(page.contains("published until"));
    assert!(page.find(new_kid.as_str()).unwrap() < page.find(&before[0]).unwrap());
    let (_, audit) = ada.get(&app, "/admin/audit?event=keys.rotated").await;
    assert_eq!(audit_summary(&audit), "1 event matches · page 1 of 1");
    assert!(audit.contains(new_kid.as_str()));
}

#[tokio::test]
async fn admins_cannot_lock_themselves_out() {
    let (app, ada) = admin_app().await;
    let demoted = ada
        .post(
            &app,
            "/admin/users/ada/edit",
            &[("username", "ada"), ("display_name", "Ada"), ("email", "")],
        )
        .await;
    assert_eq!(demoted.status(), 409);
    let page = text(demoted).await;
    assert!(page.contains("You cannot remove your own administrator rights."));
    assert!(
        page.contains("Ada Lovelace"),
        "nothing of the edit was saved"
    );

    let disabled = ada.post(&app, "/admin/users/ada/disable", &[]).await;
    assert_eq!(disabled.status(), 409);
    assert!(
        text(disabled)
            .await
            .contains("You cannot disable your own account.")
    );
    let deleted = ada
        .post(&app, "/admin/users/ada/delete", &[("confirm", "yes")])
        .await;
    assert_eq!(deleted.status(), 409);
    assert!(
        text(deleted)
            .await
            .contains("You cannot delete your own account.")
    );
    let ada_now = app.cli_ok(&["user", "show", "ada"]);
    assert!(ada_now.contains("administrator: true") && ada_now.contains("disabled:     false"));
    assert_eq!(
        ada.get(&app, "/admin").await.0,
        200,
        "still an administrator"
    );

    // Another administrator can be demoted, renamed, and deleted (with the box ticked).
    app.cli_ok(&["user", "add", "eve", "--admin"]);
    let edited = ada
        .post(
            &app,
            "/admin/users/eve/edit",
            &[
                ("username", "eve2"),
                ("display_name", "Eve"),
                ("email", "eve@example.com"),
            ],
        )
        .await;
    assert_eq!(edited.status(), 303);
    assert_eq!(location(&edited), "/admin/users/eve2");
    let eve = app.cli_ok(&["user", "show", "eve2"]);
    assert!(eve.contains("administrator: false") && eve.contains("eve@example.com"));
    let unconfirmed = ada.post(&app, "/admin/users/eve2/delete", &[]).await;
    assert_eq!(unconfirmed.status(), 400);
    assert!(
        text(unconfirmed)
            .await
            .contains("Tick the confirmation to delete this person.")
    );
    let confirmed = ada
        .post(&app, "/admin/users/eve2/delete", &[("confirm", "yes")])
        .await;
    assert_eq!(confirmed.status(), 303);
    assert_eq!(location(&confirmed), "/admin/users");
    assert_eq!(ada.get(&app, "/admin/users/eve2").await.0, 404);
}

#[tokio::test]
async fn mistakes_are_explained_on_the_page() {
    let (app, ada) = admin_app().await;
    app.setup_proxmox();

    let bad = ada
        .post(
            &app,
            "/admin/users",
            &[("username", "Bad Name!"), ("email", "x@y")],
        )
        .await;
    assert_eq!(bad.status(), 400);
    let page = text(bad).await;
    assert!(page.contains("Invalid username \"Bad Name!\""), "{page}");
    assert!(page.contains(r#"value="x@y""#), "what was typed is kept");

    let taken = ada
        .post(&app, "/admin/users", &[("username", "alice")])
        .await;
    assert_eq!(taken.status(), 409);
    assert!(
        text(taken)
            .await
            .contains("A user named \"alice\" already exists.")
    );

    let group = ada.post(&app, "/admin/groups", &[("name", "a/b")]).await;
    assert_eq!(group.status(), 400);
    assert!(text(group).await.contains("Invalid group name"));

    let restricting = ada
        .post(
            &app,
            "/admin/groups/pve-admins/delete",
            &[("confirm", "yes")],
        )
        .await;
    assert_eq!(restricting.status(), 409);
    assert!(
        text(restricting)
            .await
            .contains("is an allowed group of client(s) proxmox")
    );
    assert!(app.cli_ok(&["group", "list"]).contains("pve-admins"));

    let unknown = ada
        .post(
            &app,
            "/admin/groups/pve-admins/members",
            &[("username", "ghost")],
        )
        .await;
    assert_eq!(unknown.status(), 404);
    assert!(text(unknown).await.contains("No user named \"ghost\"."));

    assert_eq!(ada.get(&app, "/admin/users/ghost").await.0, 404);
    assert_eq!(ada.get(&app, "/admin/groups/ghost").await.0, 404);
}

#[tokio::test]
async fn people_are_found_by_username_name_or_email() {
    let (app, ada) = admin_app().await;
    app.setup_proxmox();
    app.cli_ok(&["user", "add", "bob", "--email", "bob@builders.test"]);
    let found = |page: &str| {
        ["ada", "alice", "bob"]
            .into_iter()
            .filter(|name| page.contains(&format!("/admin/users/{name}\"")))
            .collect::<Vec<_>>()
    };
    let (_, all) = ada.get(&app, "/admin/users").await;
    assert_eq!(found(&all), ["ada", "alice", "bob"]);
    let (_, by_name) = ada.get(&app, "/admin/users?q=liddell").await;
    assert_eq!(found(&by_name), ["alice"]);
    let (_, by_email) = ada.get(&app, "/admin/users?q=builders").await;
    assert_eq!(found(&by_email), ["bob"]);
    let (_, by_username) = ada.get(&app, "/admin/users?q=AD").await;
    assert_eq!(found(&by_username), ["ada"]);
    let (_, wildcard) = ada.get(&app, "/admin/users?q=%25").await;
    assert_eq!(found(&wildcard), Vec::<&str>::new(), "% is not a wildcard");
    assert!(wildcard.contains("No one matches"));
}

#[tokio::test]
async fn groups_from_the_config_file_keep_their_name() {
    let (app, ada) = admin_app().await;
    store(&app)
        .write(|tx| {
            latchkey::store::groups::insert(
                tx,
                &GroupName::parse("declared").unwrap(),
                true,
                1_700_000_000,
            )
        })
        .unwrap();
    let (status, page) = ada.get(&app, "/admin/groups/declared").await;
    assert_eq!(status, 200);
    assert!(page.contains("declared in the config file"));
    assert!(!page.contains("/admin/groups/declared/rename"));
    assert!(!page.contains("/admin/groups/declared/delete"));

    let renamed = ada
        .post(&app, "/admin/groups/declared/rename", &[("name", "other")])
        .await;
    assert_eq!(renamed.status(), 409);
    assert!(
        text(renamed)
            .await
            .contains("\"declared\" is declared in the config file; change it there.")
    );
    let deleted = ada
        .post(&app, "/admin/groups/declared/delete", &[("confirm", "yes")])
        .await;
    assert_eq!(deleted.status(), 409);
    assert_eq!(app.cli_ok(&["group", "list"]), "declared\t\n");

    // Members are not part of the declaration: they are managed here.
    let member = ada
        .post(
            &app,
            "/admin/groups/declared/members",
            &[("username", "ada")],
        )
        .await;
    assert_eq!(member.status(), 303);
    assert_eq!(app.cli_ok(&["group", "list"]), "declared\tada\n");
}

/// The value of the read-only input `id` on a page.
fn input_value(page: &str, id: &str) -> String {
    page.split(&format!("id=\"{id}\""))
        .nth(1)
        .and_then(|rest| rest.split("value=\"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no input {id}"))
        .to_string()
}

#[tokio::test]
async fn admins_register_clients_and_read_the_secret_once() {
    let (app, ada) = admin_app().await;
    app.cli_ok(&["group", "add", "pve-admins"]);
    let created = ada
        .post(
            &app,
            "/admin/clients",
            &[
                ("client_id", "proxmox"),
                ("name", "Proxmox VE"),
                ("redirect_uris", "https://pve.example.com:8006\r\n"),
                ("group:pve-admins", "on"),
                ("ask_consent", "on"),
                ("launch_url", "https://pve.example.com:8006"),
            ],
        )
        .await;
    assert_eq!(created.status(), 200);
    let page = text(created).await;
    let secret = input_value(&page, "client-secret");
    assert!(secret.len() >= 43);
    assert!(
        page.contains(&format!("--issuer-url {}", app.issuer)),
        "{page}"
    );
    assert!(page.contains("--client-id proxmox"));
    assert!(page.contains("proxmox-backup-manager openid create"));
    let (status, _, _) = post_form(
        &app,
        "/introspect",
        &[("token", "x")],
        Some(("proxmox", &secret)),
    )
    .await;
    assert_eq!(status, 200, "the secret works");
    let listed: Value = serde_json::from_str(&app.cli_ok(&["client", "list", "--json"])).unwrap();
    assert_eq!(
        listed[0]["allowed_groups"],
        serde_json::json!(["pve-admins"])
    );
    assert_eq!(listed[0]["ask_consent"], true);

    let (status, page) = ada.get(&app, "/admin/clients/proxmox").await;
    assert_eq!(status, 200);
    assert!(!page.contains(&secret), "never shown again");

    // Edit: a new name and no more consent; the secret is kept.
    let edited = ada
        .post(
            &app,
            "/admin/clients/proxmox/edit",
            &[
                ("name", "PVE cluster"),
                ("redirect_uris", "https://pve.example.com:8006"),
                ("launch_url", "https://pve.example.com:8006"),
            ],
        )
        .await;
    assert_eq!(edited.status(), 303);
    let (_, page) = ada.get(&app, "/admin/clients/proxmox").await;
    assert!(page.contains("PVE cluster"));
    let (status, _, _) = post_form(
        &app,
        "/introspect",
        &[("token", "x")],
        Some(("proxmox", &secret)),
    )
    .await;
    assert_eq!(status, 200, "editing keeps the secret");
    let (_, landing) = ada.get(&app, "/").await;
    assert!(landing.contains("PVE cluster") && landing.contains("https://pve.example.com:8006"));

    // Rotate: the new secret is shown once, the old one stops working.
    let rotated = ada
        .post(&app, "/admin/clients/proxmox/rotate-secret", &[])
        .await;
    let fresh = input_value(&text(rotated).await, "client-secret");
    assert_ne!(fresh, secret);
    let (status, _, _) = post_form(
        &app,
        "/introspect",
        &[("token", "x")],
        Some(("proxmox", &secret)),
    )
    .await;
    assert_eq!(status, 401);

    // Delete needs the confirmation.
    let refused = ada.post(&app, "/admin/clients/proxmox/delete", &[]).await;
    assert_eq!(refused.status(), 400);
    let deleted = ada
        .post(&app, "/admin/clients/proxmox/delete", &[("confirm", "yes")])
        .await;
    assert_eq!(deleted.status(), 303);
    assert_eq!(app.cli_ok(&["client", "list", "--json"]).trim(), "[]");
}

#[tokio::test]
async fn a_refused_client_form_keeps_what_was_typed() {
    let (app, ada) = admin_app().await;
    let refused = ada
        .post(
            &app,
            "/admin/clients",
            &[
                ("client_id", "web"),
                ("name", "Wiki"),
                ("redirect_uris", "not a url"),
            ],
        )
        .await;
    assert_eq!(refused.status(), 400);
    let page = text(refused).await;
    assert!(page.contains("Invalid redirect URI"), "{page}");
    assert!(page.contains("value=\"Wiki\""), "the name is kept");
    let public = ada
        .post(
            &app,
            "/admin/clients",
            &[("redirect_uris", "http://127.0.0.1/cb"), ("public", "on")],
        )
        .await;
    assert_eq!(public.status(), 200);
    let page = text(public).await;
    assert!(page.contains("public client") && !page.contains("client-secret"));
    let listed: Value = serde_json::from_str(&app.cli_ok(&["client", "list", "--json"])).unwrap();
    assert_eq!(
        listed[0]["client_id"].as_str().unwrap().len(),
        32,
        "a generated id"
    );
}

#[tokio::test]
async fn declared_clients_are_read_only_in_the_admin_area() {
    let app = spawn_app_with_config(&format!(
        "[[clients]]\nclient_id = \"web\"\npublic = true\nredirect_uris = [\"{PVE_REDIRECT}\"]\n"
    ));
    app.cli_ok(&["user", "add", "ada", "--admin"]);
    let ada = Browser::signed_in(&app, "ada").await;
    let (_, page) = ada.get(&app, "/admin/clients/web").await;
    assert!(page.contains("declared in the config file"));
    assert!(!page.contains("Save settings"));
    let refused = ada
        .post(
            &app,
            "/admin/clients/web/edit",
            &[("redirect_uris", "https://x.example.com/cb")],
        )
        .await;
    assert_eq!(refused.status(), 409);
    let refused = ada
        .post(&app, "/admin/clients/web/delete", &[("confirm", "yes")])
        .await;
    assert_eq!(refused.status(), 409);
}

#[tokio::test]
async fn the_audit_log_names_who_made_each_change() {
    let (app, ada) = admin_app().await;
    app.cli_ok(&["group", "add", "from-cli"]);
    assert_eq!(
        ada.post(&app, "/admin/groups", &[("name", "from-web")])
            .await
            .status(),
        303
    );
    let events = store(&app)
        .read(|conn| latchkey::store::audit::recent(conn, 50))
        .unwrap();
    let by = |detail: &str| {
        events
            .iter()
            .find(|e| {
                e.event == EventKind::GroupCreated.as_str() && e.detail.as_deref() == Some(detail)
            })
            .and_then(|e| e.actor.clone())
    };
    assert_eq!(by("from-cli").as_deref(), Some("command line"));
    assert_eq!(by("from-web").as_deref(), Some("ada"));
    let (_, page) = ada.get(&app, "/admin/audit?event=group.created").await;
    assert!(
        page.contains("<td>ada</td>") && page.contains("<td>command line</td>"),
        "{page}"
    );
}
