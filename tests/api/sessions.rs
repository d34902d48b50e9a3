//! Login links, sessions, logout, and what every page carries.

use crate::helpers::*;

#[tokio::test]
async fn login_links_work_once_and_then_say_why_not() {
    let app = spawn_app();
    app.setup_proxmox();
    let link = app.login_link("alice");
    assert!(
        link.starts_with(&format!("{}/login/link/", app.issuer)),
        "{link}"
    );

    let browser = app.browser();
    let first = open_login_link(&browser, &link).await;
    assert_eq!(first.status(), 303);
    assert_eq!(location(&first), "/account");
    let cookie = first.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    let account = browser.get(app.url("/account")).send().await.unwrap();
    assert_eq!(account.status(), 200);
    let page = account.text().await.unwrap();
    assert!(page.contains("Alice Liddell") && page.contains("pve-admins"));

    let reused = reqwest::get(&link).await.unwrap();
    assert_eq!(reused.status(), 410);
    assert!(reused.text().await.unwrap().contains("already been used"));
    let unknown = reqwest::get(app.url("/login/link/made-up")).await.unwrap();
    assert_eq!(unknown.status(), 410);
    assert!(unknown.text().await.unwrap().contains("not valid"));
    // Expiry is tested at chosen instants, without waiting: clock_rules.rs.
}

/// Posts a login link's form with `csrf_token` (the CSRF cookie is the browser's own).
async fn post_link(browser: &reqwest::Client, link: &str, csrf_token: &str) -> reqwest::Response {
    browser
        .post(link)
        .form(&[("csrf_token", csrf_token)])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn opening_a_login_link_spends_nothing_until_its_button_is_pressed() {
    let app = spawn_app();
    app.setup_proxmox();
    let link = app.login_link("alice");
    let browser = app.browser();
    // A link preview or a mail scanner only GETs: that shows the page again and again.
    for _ in 0..2 {
        let page = browser.get(&link).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let cookies: Vec<_> = page.headers().get_all("set-cookie").iter().collect();
        assert!(
            cookies
                .iter()
                .all(|c| !c.to_str().unwrap().contains("session")),
            "{cookies:?}"
        );
        let html = page.text().await.unwrap();
        assert!(html.contains("Sign in to Latchkey as alice"), "{html}");
    }
    assert_eq!(account_status(&app, &browser).await, 303, "not signed in");
    let page = browser.get(&link).send().await.unwrap();
    let token = csrf_token(&page.text().await.unwrap());

    // A post without the page's CSRF token is refused and spends nothing.
    let missing = browser
        .post(&link)
        .form(&[("x", "y")])
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 403);
    let wrong = post_link(&browser, &link, "forged").await;
    assert_eq!(wrong.status(), 403);
    let cross_site = browser
        .post(&link)
        .header("origin", "https://evil.example.com")
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403);
    let elsewhere = post_link(&app.browser(), &link, &token).await;
    assert_eq!(elsewhere.status(), 403, "another browser lacks the cookie");
    assert_eq!(
        account_status(&app, &browser).await,
        303,
        "still not signed in"
    );

    let signed_in = post_link(&browser, &link, &token).await;
    assert_eq!(signed_in.status(), 303);
    assert_eq!(location(&signed_in), "/account");
    assert_eq!(account_status(&app, &browser).await, 200);
    let again = post_link(&browser, &link, &token).await;
    assert_eq!(again.status(), 410, "the button works once");
    assert_eq!(browser.get(&link).send().await.unwrap().status(), 410);
}

#[tokio::test]
async fn someone_elses_link_says_who_it_signs_out_before_it_does() {
    let app = spawn_app();
    app.setup_proxmox();
    app.cli_ok(&["user", "add", "carol"]);
    app.cli_ok(&["group", "add-member", "pve-admins", "carol"]);
    let browser = app.signed_in_browser("alice").await;
    // Proxmox waits for a fresh sign-in in alice's browser.
    let params = proxmox_params(&pkce());
    let mut params = as_refs(&params);
    params.push(("prompt", "login"));
    let parked = authorize(&app, &browser, &params).await;
    assert_eq!(location(&parked), "/login");

    let link = app.login_link("carol");
    let page = browser.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Sign in to Latchkey as carol"), "{html}");
    assert!(
        html.contains("Proxmox VE"),
        "the app it continues to: {html}"
    );
    assert!(
        html.contains("You are signed in as alice. Continuing signs you out and in as carol."),
        "{html}"
    );
    assert!(
        account_page(&app, &browser)
            .await
            .contains("alice@example.com"),
        "still alice until the button"
    );

    let signed_in = post_link(&browser, &link, &csrf_token(&html)).await;
    assert_eq!(location(&signed_in), "/authorize/resume");
    let account = account_page(&app, &browser).await;
    assert!(account.contains("carol") && !account.contains("alice@example.com"));
}

#[tokio::test]
async fn disabled_users_lose_their_sessions_and_links() {
    let app = spawn_app();
    app.setup_proxmox();
    let browser = app.signed_in_browser("alice").await;
    let link = app.login_link("alice");
    app.cli_ok(&["user", "disable", "alice"]);
    let account = browser.get(app.url("/account")).send().await.unwrap();
    assert_eq!(location(&account), "/login", "the session ended");
    let opened = reqwest::get(&link).await.unwrap();
    assert_eq!(opened.status(), 410);
    assert!(opened.text().await.unwrap().contains("disabled"));
}

#[tokio::test]
async fn rp_initiated_logout_with_a_hint_ends_the_session_and_returns() {
    let app = spawn_app();
    app.cli_ok(&["user", "add", "alice", "--email", "alice@example.com"]);
    let out = app.cli_ok(&[
        "client",
        "add",
        "proxmox",
        "--redirect-uri",
        PVE_REDIRECT,
        "--post-logout-redirect-uri",
        "https://pve.example.com:8006/logged-out",
        "--json",
    ]);
    let secret: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let secret = secret["client_secret"].as_str().unwrap();
    let browser = app.signed_in_browser("alice").await;
    let sign_in = proxmox_sign_in(&app, &browser, "proxmox", secret, &["email"])
        .await
        .unwrap();

    let bad = browser
        .get(app.url("/logout"))
        .query(&[
            ("id_token_hint", sign_in.id_token_raw.as_str()),
            ("post_logout_redirect_uri", "https://evil.example.com/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        bad.status(),
        400,
        "an unregistered target is a page, not a redirect"
    );
    assert!(bad.headers().get("location").is_none());

    let out = browser
        .get(app.url("/logout"))
        .query(&[
            ("id_token_hint", sign_in.id_token_raw.as_str()),
            (
                "post_logout_redirect_uri",
                "https://pve.example.com:8006/logged-out",
            ),
            ("state", "xyz"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert_eq!(
        location(&out),
        "https://pve.example.com:8006/logged-out?state=xyz"
    );
    let account = browser.get(app.url("/account")).send().await.unwrap();
    assert_eq!(location(&account), "/login", "signed out");
    assert_eq!(
        userinfo(&app, &sign_in.access_token).await.0,
        200,
        "tokens outlive the session"
    );
}

#[tokio::test]
async fn logout_without_a_hint_asks_and_needs_the_csrf_token() {
    let app = spawn_app();
    app.setup_proxmox();
    let browser = app.signed_in_browser("alice").await;
    let page = browser.get(app.url("/logout")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Sign out?"));
    let token = csrf_token(&html);

    // Any site can link to this: a GET only ever asks.
    let linked = browser
        .get(app.url("/logout?confirm=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(linked.status(), 200);
    assert!(linked.text().await.unwrap().contains("Sign out?"));
    assert_eq!(account_status(&app, &browser).await, 200, "still signed in");

    let forged = browser
        .post(app.url("/logout"))
        .form(&[("confirm", "yes"), ("csrf_token", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let cross_site = browser
        .post(app.url("/logout"))
        .header("origin", "https://evil.example.com")
        .form(&[("confirm", "yes"), ("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403);
    assert_eq!(account_status(&app, &browser).await, 200);

    let confirmed = browser
        .post(app.url("/logout"))
        .form(&[("confirm", "yes"), ("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(confirmed.status(), 200);
    assert!(confirmed.text().await.unwrap().contains("Signed out"));
    assert_eq!(account_status(&app, &browser).await, 303);
}

#[tokio::test]
async fn pages_carry_security_headers_and_assets_are_embedded() {
    let app = spawn_app();
    let page = reqwest::get(app.url("/login")).await.unwrap();
    let headers = page.headers();
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["referrer-policy"], "same-origin");
    assert_eq!(headers["cache-control"], "no-store");

    let css = reqwest::get(app.url("/static/style.css")).await.unwrap();
    assert_eq!(css.status(), 200);
    assert!(
        css.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    assert_eq!(
        reqwest::get(app.url("/static/nope.js"))
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        reqwest::get(app.url("/healthz")).await.unwrap().status(),
        200
    );
}
