//! A deleted or renamed person's username, reused by a newcomer, would hand them the old
//! person's account in apps that key on usernames (Proxmox): only on purpose.

use crate::helpers::*;

/// Posts an admin form from `browser`, with the CSRF token of the page at `from`.
async fn post_admin(
    app: &TestApp,
    browser: &reqwest::Client,
    from: &str,
    to: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let page = browser.get(app.url(from)).send().await.unwrap();
    let token = csrf_token(&page.text().await.unwrap());
    let mut form = fields.to_vec();
    form.push(("csrf_token", &token));
    browser.post(app.url(to)).form(&form).send().await.unwrap()
}

/// An administrator renames `from` to `to` on the person's page.
async fn rename(app: &TestApp, admin: &reqwest::Client, from: &str, to: &str) -> reqwest::Response {
    let fields = [("username", to), ("display_name", ""), ("email", "")];
    let page = format!("/admin/users/{from}");
    post_admin(app, admin, &page, &format!("{page}/edit"), &fields).await
}

#[tokio::test]
async fn the_admin_pages_reuse_a_retired_username_only_when_ticked() {
    let app = spawn_app();
    app.cli_ok(&["user", "add", "ada", "--admin"]);
    let ada = app.signed_in_browser("ada").await;
    app.cli_ok(&["user", "add", "bob"]);
    app.cli_ok(&["user", "remove", "bob"]);

    let refused = post_admin(
        &app,
        &ada,
        "/admin/users",
        "/admin/users",
        &[("username", "bob")],
    )
    .await;
    assert_eq!(refused.status(), 409);
    let page = refused.text().await.unwrap();
    assert!(
        page.contains("belonged to someone who was deleted or renamed"),
        "{page}"
    );
    assert!(
        page.contains(r#"name="reuse_username""#),
        "the checkbox: {page}"
    );
    assert!(!app.cli_ok(&["user", "list"]).contains("bob"));

    let fields = [("username", "bob"), ("reuse_username", "yes")];
    let reused = post_admin(&app, &ada, "/admin/users", "/admin/users", &fields).await;
    assert_eq!(reused.status(), 303);
    assert_eq!(location(&reused), "/admin/users/bob");

    // Renaming retires the old name too; only its own holder may take it back.
    app.cli_ok(&["user", "add", "carol"]);
    app.cli_ok(&["user", "add", "dave"]);
    assert_eq!(rename(&app, &ada, "carol", "caroline").await.status(), 303);
    let taken = rename(&app, &ada, "dave", "carol").await;
    assert_eq!(taken.status(), 409);
    assert!(taken.text().await.unwrap().contains("belonged to someone"));
    let back = rename(&app, &ada, "caroline", "carol").await;
    assert_eq!(back.status(), 303, "carol takes her name back");
}
