//! Refresh, userinfo, revocation and introspection.

use crate::helpers::*;
use serde_json::json;

/// A finished sign-in of alice at `proxmox` with the given scopes: the token response.
async fn tokens(app: &TestApp, secret: &str, scope: &str) -> serde_json::Value {
    let browser = app.signed_in_browser("alice").await;
    let pkce = pkce();
    let mut params = proxmox_params(&pkce);
    params.retain(|(k, _)| *k != "scope");
    params.push(("scope", scope.to_string()));
    let code = code_for(app, &browser, &params).await;
    let (status, body) = exchange(app, secret, &code, &pkce.verifier).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn refresh(
    app: &TestApp,
    secret: &str,
    token: &str,
) -> (reqwest::StatusCode, serde_json::Value) {
    let (status, _, body) = post_form(
        app,
        "/token",
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
        Some(("proxmox", secret)),
    )
    .await;
    (status, body)
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_family() {
    let app = spawn_app();
    let secret = app.setup_proxmox();
    let first = tokens(&app, &secret, "openid profile groups offline_access").await;
    let r1 = first["refresh_token"]
        .as_str()
        .expect("offline_access gives a refresh token");

    let (status, second) = refresh(&app, &secret, r1).await;
    assert_eq!(status, 200, "{second}");
    let r2 = second["refresh_token"].as_str().unwrap();
    assert_ne!(r1, r2, "rotated");
    assert!(second["id_token"].is_string());
    let a2 = second["access_token"].as_str().unwrap();
    assert_eq!(userinfo(&app, a2).await.1["groups"], json!(["pve-admins"]));

    // r1 again: theft is assumed, the whole family goes.
    let (status, body) = refresh(&app, &secret, r1).await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, body) = refresh(&app, &secret, r2).await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(userinfo(&app, a2).await.0, 401);
}

/// Sent several times at once, as a thief racing the app would, a refresh token is spent by
/// one request only; the others are replays, and revoke the family.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refresh_token_sent_four_times_at_once_is_spent_once() {
    let app = spawn_app();
    let secret = app.setup_proxmox();
    let first = tokens(&app, &secret, "openid offline_access").await;
    let r1 = first["refresh_token"].as_str().unwrap();
    let answers = tokio::join!(
        refresh(&app, &secret, r1),
        refresh(&app, &secret, r1),
        refresh(&app, &secret, r1),
        refresh(&app, &secret, r1),
    );
    let answers = [answers.0, answers.1, answers.2, answers.3];
    let won: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status == 200)
        .collect();
    assert_eq!(won.len(), 1, "{answers:?}");
    for (status, body) in answers.iter().filter(|(status, _)| *status != 200) {
        assert_eq!(
            (status.as_u16(), body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
    }
    let next = won[0].1["refresh_token"].as_str().unwrap();
    let (status, _) = refresh(&app, &secret, next).await;
    assert_eq!(status, 400, "the replays revoked the family");
}

#[tokio::test]
async fn refresh_is_refused_when_the_user_leaves_the_allowed_groups() {
    let app = spawn_app();
    let secret = app.setup_proxmox();
    let first = tokens(&app, &secret, "openid offline_access").await;
    app.cli_ok(&["group", "remove-member", "pve-admins", "alice"]);
    let (status, body) = refresh(&app, &secret, first["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (400, Some("access_denied"))
    );
}

#[tokio::test]
async fn a_refresh_cannot_widen_the_scope() {
    let app = spawn_app();
    let secret = app.setup_proxmox();
    let first = tokens(&app, &secret, "openid offline_access").await;
    let (status, _, body) = post_form(
        &app,
        "/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", first["refresh_token"].as_str().unwrap()),
            ("scope", "openid email"),
        ],
        Some(("proxmox", &secret)),
    )
    .await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (400, Some("invalid_scope"))
    );
}

#[tokio::test]
async fn userinfo_takes_the_token_from_header_or_form_and_refuses_others() {
    let app = spawn_app();
    let secret = app.setup_proxmox();
    let body = tokens(&app, &secret, "openid email").await;
    let token = body["access_token"].as_str().unwrap();
    let http = reqwest::Client::new();

    let posted = http
        .post(app.url("/userinfo"))
        .form(&[("access_token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);
    let claims: serde_json::Value = posted.json().await.unwrap();
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["email_verified"], json!(true));
    assert!(claims.get("groups").is_none(), "groups scope not granted");

    let missing = http.get(app.url("/userinfo")).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    assert!(
        missing.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let (status, body) = userinfo(&app, "not-a-token").await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (401, Some("invalid_token"))
    );
}

#[tokio::test]
async fn revocation_and_introspection() {
    let app = spawn_app();
    let secret = app.setup_proxmox();
    app.cli_ok(&[
        "client",
        "add",
        "other",
        "--redirect-uri",
        "https://other.example.com/cb",
    ]);
    let body = tokens(&app, &secret, "openid offline_access").await;
    let access = body["access_token"].as_str().unwrap();
    let refresh_token = body["refresh_token"].as_str().unwrap();
    let basic = Some(("proxmox", secret.as_str()));

    let (status, _, active) = post_form(&app, "/introspect", &[("token", access)], basic).await;
    assert_eq!(status, 200);
    assert_eq!(active["active"], true);
    assert_eq!(active["client_id"], "proxmox");
    assert_eq!(active["username"], "alice");
    assert_eq!(active["iss"], app.issuer.as_str());

    let (status, _, unknown) = post_form(&app, "/introspect", &[("token", "nope")], basic).await;
    assert_eq!(
        (status.as_u16(), &unknown),
        (200, &json!({"active": false}))
    );
    let (status, _, _) = post_form(&app, "/introspect", &[("token", access)], None).await;
    assert_eq!(status, 401, "introspection needs client authentication");

    let (status, _, _) = post_form(&app, "/revoke", &[("token", "never-issued")], basic).await;
    assert_eq!(status, 200, "RFC 7009: unknown tokens are not an error");
    let (status, _, _) = post_form(
        &app,
        "/revoke",
        &[
            ("token", refresh_token),
            ("token_type_hint", "refresh_token"),
        ],
        basic,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        userinfo(&app, access).await.0,
        401,
        "the family went with the refresh token"
    );
    let (_, _, inactive) = post_form(&app, "/introspect", &[("token", access)], basic).await;
    assert_eq!(inactive["active"], false);
}

#[tokio::test]
async fn browser_clients_may_call_the_back_channel_from_their_origin() {
    let app = spawn_app();
    let http = reqwest::Client::new();
    for path in ["/userinfo", "/token", "/.well-known/jwks.json"] {
        let preflight = http
            .request(reqwest::Method::OPTIONS, app.url(path))
            .header("origin", "https://spa.example.com")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization")
            .send()
            .await
            .unwrap();
        assert_eq!(preflight.status(), 204, "{path}");
        let headers = preflight.headers();
        assert_eq!(headers["access-control-allow-origin"], "*");
        assert!(
            headers["access-control-allow-headers"]
                .to_str()
                .unwrap()
                .contains("Authorization")
        );
        assert!(headers.get("access-control-allow-credentials").is_none());
    }
}
