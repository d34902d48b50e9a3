//! A code or refresh token belongs to the client it was issued to: another client presenting
//! it is refused without spending or revoking anything (RFC 6749 §4.1.3, §6).

use crate::helpers::*;

/// A public client anyone can name: it has no secret to guess.
fn add_public_client(app: &TestApp) {
    app.add_public_client("spa", "http://127.0.0.1/cb");
}

/// The token endpoint as the public client `spa`, with no secret.
async fn as_public_client(app: &TestApp, form: &[(&str, &str)]) -> serde_json::Value {
    let mut form = form.to_vec();
    form.push(("client_id", "spa"));
    let (status, _, body) = post_form(app, "/token", &form, None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant", "{body}");
    body
}

#[tokio::test]
async fn another_client_cannot_spend_a_code() {
    let app = spawn_app();
    let secret = app.setup_proxmox();
    add_public_client(&app);
    let browser = app.signed_in_browser("alice").await;
    let pkce = pkce();
    let code = code_for(&app, &browser, &proxmox_params(&pkce)).await;

    as_public_client(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", PVE_REDIRECT),
            ("code_verifier", &pkce.verifier),
        ],
    )
    .await;

    let (status, body) = exchange(&app, &secret, &code, &pkce.verifier).await;
    assert_eq!(status, 200, "the owner's code is still unspent: {body}");
}

#[tokio::test]
async fn another_client_replaying_a_spent_code_revokes_nothing() {
    let app = spawn_app();
    let secret = app.setup_proxmox();
    add_public_client(&app);
    let browser = app.signed_in_browser("alice").await;
    let pkce = pkce();
    let code = code_for(&app, &browser, &proxmox_params(&pkce)).await;
    let (status, tokens) = exchange(&app, &secret, &code, &pkce.verifier).await;
    assert_eq!(status, 200, "{tokens}");

    as_public_client(
        &app,
        &[("grant_type", "authorization_code"), ("code", &code)],
    )
    .await;

    let access_token = tokens["access_token"].as_str().unwrap();
    assert_eq!(
        userinfo(&app, access_token).await.0,
        200,
        "alice's tokens survive a replay by someone else"
    );
    let (status, body) = exchange(&app, &secret, &code, &pkce.verifier).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        userinfo(&app, access_token).await.0,
        401,
        "the owner's own replay revokes the family"
    );
}

#[tokio::test]
async fn another_client_cannot_spend_or_burn_a_refresh_token() {
    let app = spawn_app();
    let secret = app.setup_proxmox();
    add_public_client(&app);
    let browser = app.signed_in_browser("alice").await;
    let pkce = pkce();
    let mut params = proxmox_params(&pkce);
    params.retain(|(k, _)| *k != "scope");
    params.push(("scope", "openid offline_access".into()));
    let code = code_for(&app, &browser, &params).await;
    let (status, first) = exchange(&app, &secret, &code, &pkce.verifier).await;
    assert_eq!(status, 200, "{first}");
    let r1 = first["refresh_token"].as_str().unwrap();

    let refresh = |token: &str| {
        [("grant_type", "refresh_token"), ("refresh_token", token)].map(|(k, v)| (k, v.to_string()))
    };
    let form = refresh(r1);
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    as_public_client(&app, &form).await;

    let (status, _, second) = post_form(&app, "/token", &form, Some(("proxmox", &secret))).await;
    assert_eq!(status, 200, "still unspent for its owner: {second}");

    // r1 is spent now: someone else replaying it must not revoke the live family.
    as_public_client(&app, &form).await;
    let r2 = second["refresh_token"].as_str().unwrap().to_string();
    let form2 = refresh(&r2);
    let form2: Vec<(&str, &str)> = form2.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, third) = post_form(&app, "/token", &form2, Some(("proxmox", &secret))).await;
    assert_eq!(status, 200, "the family is alive: {third}");
}
