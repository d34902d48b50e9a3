//! The authorization endpoint refuses bad requests the way the specs say: a page when the
//! client or redirect URI cannot be trusted, a redirect with an error otherwise.

use crate::helpers::*;

fn without(params: &[(&'static str, String)], name: &str) -> Vec<(&'static str, String)> {
    params.iter().filter(|(k, _)| *k != name).cloned().collect()
}

/// Asserts an error page: never a redirect.
async fn assert_page(response: reqwest::Response, status: u16, text: &str) {
    assert_eq!(response.status(), status);
    assert!(
        response.headers().get("location").is_none(),
        "never redirected"
    );
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let body = response.text().await.unwrap();
    assert!(body.contains(text), "page says {text:?}: {body}");
}

/// Asserts a redirect back to Proxmox with `error`, the state and the issuer.
fn assert_redirected_error(app: &TestApp, response: &reqwest::Response, error: &str) {
    assert_eq!(response.status(), 303);
    let to = location(response);
    assert!(to.starts_with(&format!("{PVE_REDIRECT}?")), "{to}");
    let params = query(&to);
    assert_eq!(params.get("error").map(String::as_str), Some(error), "{to}");
    assert_eq!(
        params["state"],
        r#"{"csrf_token":"abc","realm":"latchkey"}"#
    );
    assert_eq!(params["iss"], app.issuer);
    assert!(!params.contains_key("code"));
}

#[tokio::test]
async fn untrusted_client_or_redirect_uri_gets_a_page() {
    let app = spawn_app();
    app.setup_proxmox();
    let browser = app.signed_in_browser("alice").await;
    let params = proxmox_params(&pkce());

    for near_miss in [
        "https://pve.example.com:8006//",
        "https://pve.example.com:8006/cb",
        "https://PVE.example.com:8006",
        "https://pve.example.com:8006\n",
    ] {
        let near = with_param(&params, "redirect_uri", near_miss);
        assert_page(
            authorize(&app, &browser, &as_refs(&near)).await,
            400,
            "not one of its",
        )
        .await;
    }
    let other = with_param(&params, "redirect_uri", "https://evil.example.com");
    assert_page(
        authorize(&app, &browser, &as_refs(&other)).await,
        400,
        "not one of its",
    )
    .await;
    let unknown = with_param(&params, "client_id", "nobody");
    assert_page(
        authorize(&app, &browser, &as_refs(&unknown)).await,
        400,
        "Unknown application",
    )
    .await;
    let no_client = without(&params, "client_id");
    assert_page(
        authorize(&app, &browser, &as_refs(&no_client)).await,
        400,
        "client_id",
    )
    .await;
    let no_redirect = without(&params, "redirect_uri");
    assert_page(
        authorize(&app, &browser, &as_refs(&no_redirect)).await,
        400,
        "redirect_uri",
    )
    .await;
    let mut twice = as_refs(&params);
    twice.push(("client_id", "proxmox"));
    assert_page(
        authorize(&app, &browser, &twice).await,
        400,
        "more than once",
    )
    .await;
}

#[tokio::test]
async fn protocol_errors_go_back_to_the_client() {
    let app = spawn_app();
    app.setup_proxmox();
    let browser = app.signed_in_browser("alice").await;
    let params = proxmox_params(&pkce());

    let cases: Vec<(Vec<(&'static str, String)>, &str)> = vec![
        (
            with_param(&params, "response_type", "token"),
            "unsupported_response_type",
        ),
        (without(&params, "response_type"), "invalid_request"),
        (
            with_param(&params, "scope", "email profile"),
            "invalid_scope",
        ),
        (
            with_param(&params, "code_challenge_method", "plain"),
            "invalid_request",
        ),
        (without(&params, "code_challenge_method"), "invalid_request"),
        (
            with_param(&params, "code_challenge", "short"),
            "invalid_request",
        ),
        (
            with_param(&params, "prompt", "none login"),
            "invalid_request",
        ),
        (
            with_param(&params, "prompt", "sometimes"),
            "invalid_request",
        ),
        (with_param(&params, "max_age", "-5"), "invalid_request"),
        (
            with_param(&params, "response_mode", "fragment"),
            "invalid_request",
        ),
        (
            with_param(&params, "request", "eyJhbGciOiJub25lIn0.e30."),
            "request_not_supported",
        ),
        (
            with_param(&params, "request_uri", "https://x/req"),
            "request_uri_not_supported",
        ),
    ];
    for (case, error) in cases {
        let response = authorize(&app, &browser, &as_refs(&case)).await;
        assert_redirected_error(&app, &response, error);
    }
}

#[tokio::test]
async fn unknown_and_optional_parameters_are_accepted() {
    let app = spawn_app();
    app.setup_proxmox();
    let browser = app.signed_in_browser("alice").await;
    let mut params = proxmox_params(&pkce());
    for (name, value) in [
        ("ui_locales", "de-CH en"),
        ("login_hint", "alice"),
        ("acr_values", "urn:example:acr"),
        ("max_age", "3600"),
        ("prompt", "consent"),
        ("display", "popup"),
        ("claims_locales", "en"),
        ("something_new", "whatever"),
    ] {
        params.push((name, value.to_string()));
    }
    params.retain(|(k, v)| *k != "display" || v == "popup");
    code_for(&app, &browser, &params).await;
}

#[tokio::test]
async fn public_clients_must_use_pkce() {
    let app = spawn_app();
    app.setup_proxmox();
    app.add_public_client("spa", PVE_REDIRECT);
    let browser = app.signed_in_browser("alice").await;
    let mut params = without(&proxmox_params(&pkce()), "code_challenge");
    params.retain(|(k, _)| *k != "code_challenge_method");
    let params = with_param(&params, "client_id", "spa");
    let response = authorize(&app, &browser, &as_refs(&params)).await;
    assert_redirected_error(&app, &response, "invalid_request");
    assert!(query(&location(&response))["error_description"].contains("PKCE"));
}

#[tokio::test]
async fn a_user_outside_the_allowed_groups_is_refused() {
    let app = spawn_app();
    let secret = app.setup_proxmox();
    app.cli_ok(&["user", "add", "bob"]);
    let bob = app.signed_in_browser("bob").await;
    let response = authorize(&app, &bob, &as_refs(&proxmox_params(&pkce()))).await;
    assert_redirected_error(&app, &response, "access_denied");

    // Checked again at the token endpoint: alice loses her group between the two steps.
    let alice = app.signed_in_browser("alice").await;
    let pkce = pkce();
    let code = code_for(&app, &alice, &proxmox_params(&pkce)).await;
    app.cli_ok(&["group", "remove-member", "pve-admins", "alice"]);
    let (status, body) = exchange(&app, &secret, &code, &pkce.verifier).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "access_denied");
}

#[tokio::test]
async fn prompt_none_without_a_session_says_login_required() {
    let app = spawn_app();
    app.setup_proxmox();
    let params = with_param(&proxmox_params(&pkce()), "prompt", "none");
    let response = authorize(&app, &app.browser(), &as_refs(&params)).await;
    assert_redirected_error(&app, &response, "login_required");
}

#[tokio::test]
async fn sign_in_resumes_the_waiting_authorization() {
    let app = spawn_app();
    app.setup_proxmox();
    let browser = app.browser();
    let response = authorize(&app, &browser, &as_refs(&proxmox_params(&pkce()))).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/login");
    let login = browser.get(app.url("/login")).send().await.unwrap();
    assert!(login.text().await.unwrap().contains("waiting for you"));

    let link = open_login_link(&browser, &app.login_link("alice")).await;
    assert_eq!(location(&link), "/authorize/resume");
    let resumed = browser
        .get(app.url("/authorize/resume"))
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), 303);
    let params = query(&location(&resumed));
    assert!(params.contains_key("code"));
    assert_eq!(
        params["state"],
        r#"{"csrf_token":"abc","realm":"latchkey"}"#
    );

    // The parked request is single use.
    let again = browser
        .get(app.url("/authorize/resume"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 400);
}

#[tokio::test]
async fn prompt_login_asks_for_a_fresh_sign_in() {
    let app = spawn_app();
    app.setup_proxmox();
    let browser = app.signed_in_browser("alice").await;
    let params = with_param(&proxmox_params(&pkce()), "prompt", "login");
    let response = authorize(&app, &browser, &as_refs(&params)).await;
    assert_eq!(
        location(&response),
        "/login",
        "an existing session is not enough"
    );
    open_login_link(&browser, &app.login_link("alice")).await;
    let resumed = browser
        .get(app.url("/authorize/resume"))
        .send()
        .await
        .unwrap();
    assert!(query(&location(&resumed)).contains_key("code"));
}

#[tokio::test]
async fn a_person_in_a_browser_reads_why_before_going_back() {
    let app = spawn_app();
    app.setup_proxmox();
    app.cli_ok(&["user", "add", "bob"]);
    let bob = app.signed_in_browser("bob").await;
    let url =
        url::Url::parse_with_params(&app.url("/authorize"), &as_refs(&proxmox_params(&pkce())))
            .unwrap();
    let page = bob
        .get(url.as_str())
        .header("sec-fetch-dest", "document")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 403);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("You can&#x27;t use Proxmox VE") || html.contains("You can't use Proxmox VE")
    );
    assert!(html.contains("is not in a group allowed"));
    let refresh = html
        .split("content=\"5;url=")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page goes back by itself")
        .replace("&amp;", "&");
    assert!(refresh.starts_with(&format!("{PVE_REDIRECT}?")));
    let params = query(&refresh);
    assert_eq!(params["error"], "access_denied");
    assert!(!params.contains_key("code"));

    // prompt=none allows no page: straight back.
    let silent = with_param(&proxmox_params(&pkce()), "prompt", "none");
    let url = url::Url::parse_with_params(&app.url("/authorize"), &as_refs(&silent)).unwrap();
    let response = bob
        .get(url.as_str())
        .header("sec-fetch-dest", "document")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(query(&location(&response))["error"], "access_denied");
}
