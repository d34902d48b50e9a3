//! What anonymous clients send cannot grow the database without bound, and limits answer
//! with `Retry-After`.

use crate::helpers::*;

fn audit_rows(app: &TestApp, event: &str) -> Vec<(Option<String>, Option<String>, i64)> {
    app.store()
        .read(|db| {
            db.query(
                "SELECT client_id, detail, repeats FROM audit_events WHERE event = ?1",
                latchkey::args![event],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
        })
        .unwrap()
}

#[tokio::test]
async fn made_up_clients_cannot_fill_the_audit_log() {
    let app = spawn_app();
    app.setup_proxmox();
    let huge = "x".repeat(12_000);
    let before = app.db_bytes();
    for _ in 0..100 {
        for client_id in [huge.as_str(), "ghost", "a b"] {
            for path in ["/token", "/revoke", "/introspect"] {
                let (status, _, body) = post_form(
                    &app,
                    path,
                    &[
                        ("grant_type", "authorization_code"),
                        ("code", "x"),
                        ("token", "x"),
                        ("client_id", client_id),
                        ("client_secret", "guess"),
                    ],
                    None,
                )
                .await;
                assert_eq!(status, 401, "{path}: {body}");
                assert_eq!(body["error"], "invalid_client");
            }
        }
    }
    let rows = audit_rows(&app, "client.auth_failed");
    assert!(rows.len() <= 3, "one row per address and reason: {rows:?}");
    assert!(
        rows.iter().all(|(client, detail, _)| {
            client.as_deref().is_none_or(|c| c.len() <= 64)
                && detail.as_deref().is_none_or(|d| d.len() <= 600)
        }),
        "nothing long is kept: {rows:?}"
    );
    let counted: i64 = rows.iter().map(|(_, _, repeats)| repeats).sum();
    assert_eq!(counted, 900, "every failure is counted: {rows:?}");
    let grown = app.db_bytes() - before;
    assert!(grown < 256 * 1024, "the database grew by {grown} bytes");
}

#[tokio::test]
async fn back_channel_bodies_are_small() {
    let app = spawn_app();
    let secret = app.setup_proxmox();
    let padding = "p".repeat(20 * 1024);
    for path in ["/token", "/revoke", "/introspect", "/userinfo"] {
        let (status, _, _) = post_form(
            &app,
            path,
            &[("token", "x"), ("padding", &padding)],
            Some(("proxmox", &secret)),
        )
        .await;
        assert_eq!(status, 413, "{path}");
    }
}

#[tokio::test]
async fn parked_requests_keep_only_what_the_rules_read_and_are_limited() {
    let app = spawn_app();
    app.setup_proxmox();
    let anonymous = app.browser();
    let pkce = pkce();
    let mut params = proxmox_params(&pkce);
    params.push(("junk", "j".repeat(8_000)));
    params.push(("login_hint", "h".repeat(8_000)));
    let response = authorize(&app, &anonymous, &as_refs(&params)).await;
    assert_eq!(response.status(), 303, "to the sign-in page");
    let parked: String = app.value("SELECT params FROM pending_authorizations");
    assert!(parked.len() < 1024, "{parked}");
    assert!(
        !parked.contains("junk") && !parked.contains("hhhh"),
        "{parked}"
    );

    let long_state = with_param(&params, "state", &"s".repeat(5_000));
    let response = authorize(&app, &anonymous, &as_refs(&long_state)).await;
    let to = location(&response);
    assert!(to.contains("error=invalid_request"), "{to}");
    assert!(
        !to.contains("sssss"),
        "a state too long is not sent back: {to}"
    );

    let mut last = None;
    for _ in 0..40 {
        let response = authorize(&app, &anonymous, &as_refs(&params)).await;
        if response.status() != 303 {
            last = Some(response);
            break;
        }
    }
    let refused = last.expect("parking is limited per address");
    assert_eq!(refused.status(), 429);
    let retry: i64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let rows: i64 = app.value("SELECT COUNT(*) FROM pending_authorizations");
    assert_eq!(rows, 30, "the default limit is 30 a minute");
}

#[tokio::test]
async fn secret_guessing_is_limited_per_client_with_retry_after() {
    let app = spawn_app();
    let secret = app.setup_proxmox();
    let out = app.cli_ok(&[
        "client",
        "add",
        "backup",
        "--redirect-uri",
        "https://pbs.example.com:8007",
        "--json",
    ]);
    let backup: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let backup_secret = backup["client_secret"].as_str().unwrap();
    let introspect = |client: &'static str, secret: String| {
        let app = &app;
        async move {
            post_form(
                app,
                "/introspect",
                &[("token", "x")],
                Some((client, &secret)),
            )
            .await
        }
    };
    let mut slowed = None;
    for guess in 0..25 {
        let (status, headers, _) = introspect("proxmox", format!("guess-{guess}")).await;
        if status == 429 {
            slowed = Some(headers);
            break;
        }
    }
    let headers = slowed.expect("guessing is slowed down");
    assert!(headers.contains_key("retry-after"));
    let (status, _, body) = introspect("backup", backup_secret.to_string()).await;
    assert_eq!(
        status, 200,
        "another client's first check is not blocked: {body}"
    );
    let (status, _, _) = introspect("proxmox", secret).await;
    assert_eq!(status, 429, "the guessed client waits for its window");
}

#[tokio::test]
async fn introspection_refuses_public_clients() {
    let app = spawn_app();
    app.add_public_client("spa", "http://127.0.0.1/cb");
    let (status, _, body) = post_form(
        &app,
        "/introspect",
        &[("token", "x"), ("client_id", "spa")],
        None,
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "invalid_client");
}

#[tokio::test]
async fn refusals_sent_to_apps_do_not_name_the_person() {
    let app = spawn_app();
    app.setup_proxmox();
    app.cli_ok(&["user", "add", "mallory"]);
    let browser = app.signed_in_browser("mallory").await;
    let params = with_param(&proxmox_params(&pkce()), "prompt", "none");
    let response = authorize(&app, &browser, &as_refs(&params)).await;
    let to = location(&response);
    let answer = query(&to);
    assert_eq!(answer["error"], "access_denied");
    assert!(!answer["error_description"].contains("mallory"), "{to}");
}

#[tokio::test]
async fn json_errors_carry_no_parser_internals() {
    let app = spawn_app_at("localhost");
    let response = app
        .client_builder()
        .build()
        .unwrap()
        .post(app.url("/login/passkey/start"))
        .header("origin", &app.issuer)
        .header("content-type", "application/json")
        .body(r#"{"username": 5}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body = response.text().await.unwrap();
    for internal in ["line", "column", "invalid type", "expected"] {
        assert!(!body.contains(internal), "{body}");
    }
}

#[tokio::test]
async fn the_parked_request_cookie_is_host_prefixed_on_https() {
    let app = spawn_app_https();
    app.setup_proxmox();
    let anonymous = app.browser();
    let response = authorize(&app, &anonymous, &as_refs(&proxmox_params(&pkce()))).await;
    assert_eq!(response.status(), 303);
    let cookies: Vec<_> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().to_string())
        .collect();
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("__Host-latchkey_authorization=") && c.contains("Secure")),
        "{cookies:?}"
    );
}

#[tokio::test]
async fn limits_are_settings() {
    let app = spawn_app_with_config("[limits]\nauthorization_requests = 2\n");
    app.setup_proxmox();
    let anonymous = app.browser();
    let params = proxmox_params(&pkce());
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(
            authorize(&app, &anonymous, &as_refs(&params))
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [303, 303, 429]);

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("latchkey.toml");
    std::fs::write(&config, "[limits]\nlogin_links = 0\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--config")
        .arg(&config)
        .args(["user", "list"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("limits.login_links"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}
