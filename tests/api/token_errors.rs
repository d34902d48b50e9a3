//! The token endpoint refuses bad requests with RFC 6749 §5.2 errors.

use crate::helpers::*;

#[tokio::test]
async fn a_code_works_once_and_its_reuse_revokes_the_tokens() {
    let app = spawn_app();
    let secret = app.setup_proxmox();
    let browser = app.signed_in_browser("alice").await;
    let pkce = pkce();
    let code = code_for(&app, &browser, &proxmox_params(&pkce)).await;

    let (status, first) = exchange(&app, &secret, &code, &pkce.verifier).await;
    assert_eq!(status, 200, "{first}");
    let access_token = first["access_token"].as_str().unwrap();
    assert_eq!(userinfo(&app, access_token).await.0, 200);

    let (status, second) = exchange(&app, &secret, &code, &pkce.verifier).await;
    assert_eq!(status, 400);
    assert_eq!(second["error"], "invalid_grant");
    let (status, _) = userinfo(&app, access_token).await;
    assert_eq!(status, 401, "tokens of the first use are revoked");
}

#[tokio::test]
async fn pkce_and_redirect_uri_must_match() {
    let app = spawn_app();
    let secret = app.setup_proxmox();
    let browser = app.signed_in_browser("alice").await;

    let pkce_a = pkce();
    let code = code_for(&app, &browser, &proxmox_params(&pkce_a)).await;
    let (status, body) = exchange(&app, &secret, &code, &pkce().verifier).await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    let code = code_for(&app, &browser, &proxmox_params(&pkce_a)).await;
    let (status, _, body) = post_form(
        &app,
        "/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://pve.example.com:8006/cb"),
            ("code_verifier", &pkce_a.verifier),
        ],
        Some(("proxmox", &secret)),
    )
    .await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    let code = code_for(&app, &browser, &proxmox_params(&pkce_a)).await;
    let (status, _, body) = post_form(
        &app,
        "/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", PVE_REDIRECT),
        ],
        Some(("proxmox", &secret)),
    )
    .await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn client_authentication_is_enforced() {
    let app = spawn_app();
    let secret = app.setup_proxmox();
    let browser = app.signed_in_browser("alice").await;
    let pkce = pkce();
    let code = code_for(&app, &browser, &proxmox_params(&pkce)).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", PVE_REDIRECT),
        ("code_verifier", pkce.verifier.as_str()),
    ];

    let (status, headers, body) =
        post_form(&app, "/token", &form, Some(("proxmox", "wrong-secret"))).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_client");
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );

    let (status, _, body) = post_form(&app, "/token", &form, None).await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (401, Some("invalid_client"))
    );

    let (status, _, body) = post_form(&app, "/token", &form, Some(("ghost", &secret))).await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (401, Some("invalid_client"))
    );

    // client_secret_post works too, and the code survived the failed attempts.
    let mut post = form.to_vec();
    post.push(("client_id", "proxmox"));
    post.push(("client_secret", &secret));
    let (status, _, body) = post_form(&app, "/token", &post, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
}

#[tokio::test]
async fn malformed_requests_get_errors_never_500() {
    let app = spawn_app();
    let secret = app.setup_proxmox();
    let basic = Some(("proxmox", secret.as_str()));
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![], "invalid_request"),
        (vec![("grant_type", "password")], "unsupported_grant_type"),
        (
            vec![("grant_type", "authorization_code")],
            "invalid_request",
        ),
        (
            vec![("grant_type", "authorization_code"), ("code", "nope")],
            "invalid_grant",
        ),
        (vec![("grant_type", "refresh_token")], "invalid_request"),
        (
            vec![("grant_type", "refresh_token"), ("refresh_token", "nope")],
            "invalid_grant",
        ),
        (
            vec![
                ("grant_type", "refresh_token"),
                ("grant_type", "refresh_token"),
            ],
            "invalid_request",
        ),
    ];
    for (form, error) in cases {
        let (status, _, body) = post_form(&app, "/token", &form, basic).await;
        assert_eq!(status, 400, "{form:?}");
        assert_eq!(body["error"], error, "{form:?}");
    }

    let http = reqwest::Client::new();
    let json_body = http
        .post(app.url("/token"))
        .json(&serde_json::json!({"grant_type": "authorization_code"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_body.status(), 400);
    let garbage = http
        .post(app.url("/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", "Basic %%%")
        .body(vec![0xff, 0xfe, b'=', 0x00])
        .send()
        .await
        .unwrap();
    assert!(garbage.status().is_client_error());

    // A bounded sweep of odd inputs at every endpoint: 4xx, never 5xx.
    let odd = ["", "%", "%zz", "a=b=c", "&&&", "\u{0}", &"x".repeat(10_000)];
    for path in [
        "/token",
        "/userinfo",
        "/revoke",
        "/introspect",
        "/authorize",
        "/logout",
    ] {
        for body in odd {
            let response = http
                .post(app.url(path))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            assert!(
                response.status().is_client_error() || response.status().is_success(),
                "{path} with {body:?} answered {}",
                response.status()
            );
        }
        let response = http
            .get(format!("{}?{}", app.url(path), "a=%ff%fe&client_id=%00"))
            .send()
            .await
            .unwrap();
        assert!(
            !response.status().is_server_error(),
            "{path}: {}",
            response.status()
        );
    }
}

#[tokio::test]
async fn guessing_client_secrets_is_slowed_down() {
    let app = spawn_app();
    let secret = app.setup_proxmox();
    let introspect = |secret: String| {
        let app = &app;
        async move {
            let (status, _, body) = post_form(
                app,
                "/introspect",
                &[("token", "x")],
                Some(("proxmox", &secret)),
            )
            .await;
            (status.as_u16(), body["error"].as_str().map(str::to_string))
        }
    };
    assert_eq!(
        introspect(secret.clone()).await.0,
        200,
        "verified once, then remembered"
    );
    let mut answers = Vec::new();
    for guess in 0..25 {
        answers.push(introspect(format!("guess-{guess}")).await);
    }
    assert!(
        answers[..19]
            .iter()
            .all(|a| *a == (401, Some("invalid_client".into())))
    );
    assert_eq!(answers[24], (429, Some("slow_down".into())));
    assert_eq!(
        introspect(secret).await.0,
        200,
        "a client that verified is not slowed down"
    );
}

/// A stored secret hash that is not one is the server's fault: a 500 `server_error`, never
/// `invalid_client` (which would tell the app its secret is wrong).
#[tokio::test]
async fn a_corrupt_stored_secret_hash_is_a_server_error() {
    let app = spawn_app();
    let secret = app.setup_proxmox();
    app.execute(
        "UPDATE clients SET secret_hash = 'not-a-hash' WHERE client_id = 'proxmox'",
        latchkey::args![],
    );
    let form = [("grant_type", "authorization_code"), ("code", "x")];
    let (status, _, body) = post_form(&app, "/token", &form, Some(("proxmox", &secret))).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"], "server_error");
}
