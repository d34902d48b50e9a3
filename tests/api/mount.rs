//! Two servers in one process, one under its issuer's path and one at the root: the pages of
//! each, error pages included, link under that server's own path.

use crate::helpers::*;

/// Asserts that `page` takes its stylesheet from under `base`, tells its scripts `base`, and
/// has a link to `under_base` (a path after `base`).
fn assert_links_under(page: &str, base: &str, under_base: &str) {
    for link in [
        format!(r#"href="{base}/static/style.css""#),
        format!(r#"<body data-base="{base}">"#),
        format!(r#"="{base}{under_base}""#),
    ] {
        assert!(page.contains(&link), "{link} in {page}");
    }
}

async fn get(browser: &reqwest::Client, url: String) -> (u16, String) {
    let response = browser.get(url).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// The login page, a page error from a handler, one from the router, one from the
/// authorization endpoint, and an admin page.
async fn assert_pages_under(app: &TestApp, base: &str) {
    let browser = app.browser();
    let (status, login) = get(&browser, app.url("/login")).await;
    assert_eq!(status, 200);
    assert_links_under(&login, base, "/static/webauthn.js");

    let (status, nothing) = get(&browser, app.url("/static/nothing.css")).await;
    assert_eq!(status, 404);
    assert_links_under(&nothing, base, "/account");

    let (status, nowhere) = get(&browser, format!("http://127.0.0.1:{}/nowhere", app.port)).await;
    assert_eq!(status, 404);
    assert_links_under(&nowhere, base, "/account");

    let (status, refused) = get(&browser, app.url("/authorize?client_id=nobody")).await;
    assert_eq!(status, 400);
    assert_links_under(&refused, base, "/account");

    app.cli_ok(&["user", "add", "ada", "--admin"]);
    let admin = app.signed_in_browser("ada").await;
    let (status, users) = get(&admin, app.url("/admin/users")).await;
    assert_eq!(status, 200);
    assert_links_under(&users, base, "/admin/groups");
}

#[tokio::test]
async fn each_server_links_under_its_own_issuers_path() {
    let under = spawn_app_under("/id");
    let root = spawn_app();
    assert_pages_under(&under, "/id").await;
    assert_pages_under(&root, "").await;
}
