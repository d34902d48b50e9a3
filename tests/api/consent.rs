//! Consent: asked once per client and scope set, remembered, withdrawn from the account page.

use crate::helpers::*;

/// Alice, and a client `proxmox` that asks for consent.
fn consenting_app() -> (TestApp, String) {
    let app = spawn_app();
    app.cli_ok(&["user", "add", "alice", "--email", "alice@example.com"]);
    let out = app.cli_ok(&[
        "client",
        "add",
        "proxmox",
        "--name",
        "Proxmox VE",
        "--redirect-uri",
        PVE_REDIRECT,
        "--ask-consent",
        "--json",
    ]);
    let json: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    (app, json["client_secret"].as_str().unwrap().to_string())
}

/// Answers the consent page the browser is on.
async fn answer(
    app: &TestApp,
    browser: &reqwest::Client,
    page: &str,
    decision: &str,
) -> reqwest::Response {
    browser
        .post(app.url("/authorize/consent"))
        .form(&[
            ("csrf_token", csrf_token(page).as_str()),
            ("decision", decision),
        ])
        .send()
        .await
        .unwrap()
}

fn with_scope(params: &[(&'static str, String)], scope: &str) -> Vec<(&'static str, String)> {
    let mut out: Vec<_> = params
        .iter()
        .filter(|(k, _)| *k != "scope")
        .cloned()
        .collect();
    out.push(("scope", scope.to_string()));
    out
}

#[tokio::test]
async fn the_first_authorization_asks_and_the_answer_is_remembered() {
    let (app, secret) = consenting_app();
    let browser = app.signed_in_browser("alice").await;
    let pkce = pkce();
    let params = proxmox_params(&pkce);

    let asked = authorize(&app, &browser, &as_refs(&params)).await;
    assert_eq!(asked.status(), 200);
    let csp = asked.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains(&format!("form-action 'self' {PVE_REDIRECT}")),
        "{csp}"
    );
    let page = asked.text().await.unwrap();
    assert!(page.contains("Allow Proxmox VE?"));
    assert!(page.contains("Your email address") && page.contains("The groups you belong to"));

    let allowed = answer(&app, &browser, &page, "allow").await;
    assert_eq!(allowed.status(), 303);
    let to = location(&allowed);
    let returned = query(&to);
    assert_eq!(
        returned["state"],
        r#"{"csrf_token":"abc","realm":"latchkey"}"#
    );
    let (status, _) = exchange(&app, &secret, &returned["code"], &pkce.verifier).await;
    assert_eq!(status, 200);

    // Asked once: the same request goes straight through now.
    let again = authorize(&app, &browser, &as_refs(&proxmox_params(&pkce))).await;
    assert_eq!(again.status(), 303);
    assert!(query(&location(&again)).contains_key("code"));

    // Fewer scopes: still covered. More scopes, or prompt=consent: asked again.
    let fewer = authorize(
        &app,
        &browser,
        &as_refs(&with_scope(&params, "openid email")),
    )
    .await;
    assert_eq!(fewer.status(), 303);
    let more = with_scope(&params, "openid email profile groups offline_access");
    assert_eq!(
        authorize(&app, &browser, &as_refs(&more)).await.status(),
        200
    );
    let mut prompted = params.clone();
    prompted.push(("prompt", "consent".into()));
    assert_eq!(
        authorize(&app, &browser, &as_refs(&prompted))
            .await
            .status(),
        200
    );

    // The account page lists it; withdrawing it means being asked again.
    let account = account_page(&app, &browser).await;
    assert!(account.contains("Apps you allowed") && account.contains("Proxmox VE"));
    let withdrawn = browser
        .post(app.url("/account/consents/proxmox/revoke"))
        .form(&[("csrf_token", csrf_token(&account).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(withdrawn.status(), 303);
    assert_eq!(
        authorize(&app, &browser, &as_refs(&params)).await.status(),
        200
    );
}

#[tokio::test]
async fn a_denial_returns_access_denied_and_prompt_none_cannot_ask() {
    let (app, _) = consenting_app();
    let browser = app.signed_in_browser("alice").await;
    let params = proxmox_params(&pkce());
    let mut silent = params.clone();
    silent.push(("prompt", "none".into()));
    let refused = authorize(&app, &browser, &as_refs(&silent)).await;
    assert_eq!(refused.status(), 303);
    assert_eq!(query(&location(&refused))["error"], "consent_required");

    let page = authorize(&app, &browser, &as_refs(&params))
        .await
        .text()
        .await
        .unwrap();
    let denied = answer(&app, &browser, &page, "deny").await;
    assert_eq!(denied.status(), 303);
    let returned = query(&location(&denied));
    assert_eq!(returned["error"], "access_denied");
    assert_eq!(returned["iss"], app.issuer);
    assert!(!returned.contains_key("code"));

    // The consent form needs its CSRF token, and works once.
    let page = authorize(&app, &browser, &as_refs(&params))
        .await
        .text()
        .await
        .unwrap();
    let forged = browser
        .post(app.url("/authorize/consent"))
        .form(&[("csrf_token", "forged"), ("decision", "allow")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(answer(&app, &browser, &page, "allow").await.status(), 303);
    assert_eq!(answer(&app, &browser, &page, "allow").await.status(), 400);
}

#[tokio::test]
async fn trusted_clients_never_ask() {
    let app = spawn_app();
    app.setup_proxmox();
    let browser = app.signed_in_browser("alice").await;
    let mut params = proxmox_params(&pkce());
    params.push(("prompt", "consent".into()));
    let response = authorize(&app, &browser, &as_refs(&params)).await;
    assert_eq!(response.status(), 303);
    assert!(query(&location(&response)).contains_key("code"));
}

#[tokio::test]
async fn withdrawing_consent_revokes_that_apps_tokens() {
    let (app, secret) = consenting_app();
    let browser = app.signed_in_browser("alice").await;
    let pkce = pkce();
    let params = with_scope(&proxmox_params(&pkce), "openid email offline_access");
    let page = authorize(&app, &browser, &as_refs(&params))
        .await
        .text()
        .await
        .unwrap();
    let code = query(&location(&answer(&app, &browser, &page, "allow").await))["code"].clone();
    let (status, tokens) = exchange(&app, &secret, &code, &pkce.verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(userinfo(&app, access).await.0, 200);

    let withdrawn = browser
        .post(app.url("/account/consents/proxmox/revoke"))
        .form(&[("csrf_token", account_csrf(&app, &browser).await.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(withdrawn.status(), 303);

    assert_eq!(
        userinfo(&app, access).await.0,
        401,
        "the access token stops"
    );
    let (status, _, body) = post_form(
        &app,
        "/token",
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        Some(("proxmox", &secret)),
    )
    .await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}
