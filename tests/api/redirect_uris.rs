//! Redirect URIs: exact matching with RFC 3986's empty path equal to `/`, and no whitespace
//! or control characters anywhere.

use crate::helpers::*;

#[tokio::test]
async fn an_empty_path_and_the_root_path_are_the_same_uri() {
    let app = spawn_app();
    let secret = app.setup_proxmox();
    let browser = app.signed_in_browser("alice").await;
    let pkce = pkce();
    let mut params = proxmox_params(&pkce);
    params.retain(|(k, _)| *k != "redirect_uri");
    params.push(("redirect_uri", format!("{PVE_REDIRECT}/")));

    // Registered without the slash, asked with it: the redirect goes where the client said.
    let response = authorize(&app, &browser, &as_refs(&params)).await;
    assert_eq!(response.status(), 303);
    let to = location(&response);
    assert!(to.starts_with(&format!("{PVE_REDIRECT}/?code=")), "{to}");
    let code = query(&to).remove("code").unwrap();

    // openid-client 6 sends the other spelling at the token endpoint: the same URI.
    let (status, body) = exchange(&app, &secret, &code, &pkce.verifier).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn control_characters_in_a_loopback_uri_get_a_page_not_a_500() {
    let app = spawn_app();
    app.setup_proxmox();
    app.add_public_client("native", "http://127.0.0.1/cb");
    let browser = app.signed_in_browser("alice").await;
    let pkce = pkce();
    for bad in [
        "http://127.0.0.1:5555/cb\n",
        "http://127.0.0.1:5555/cb\r\nSet-Cookie: x=1",
        "http://127.0.0.1:5555/c b",
        "http://127.0.0.1:5555/cb\t",
    ] {
        let response = authorize(
            &app,
            &browser,
            &[
                ("response_type", "code"),
                ("client_id", "native"),
                ("redirect_uri", bad),
                ("scope", "openid"),
                ("code_challenge", &pkce.challenge),
                ("code_challenge_method", "S256"),
            ],
        )
        .await;
        assert_eq!(response.status(), 400, "{bad:?}");
        assert!(response.headers().get("location").is_none(), "{bad:?}");
    }
}

#[test]
fn registration_refuses_whitespace_and_control_characters_and_warns_on_plain_http() {
    let app = spawn_app();
    for bad in [
        "https://app.example.com/cb\n",
        "https://app.example.com/c b",
    ] {
        let out = app.cli(&["client", "add", "app", "--redirect-uri", bad]);
        assert!(!out.status.success(), "{bad:?} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("spaces or control characters"), "{stderr}");
    }
    let out = app.cli(&[
        "client",
        "add",
        "nas",
        "--redirect-uri",
        "http://nas.lan:8080/cb",
        "--redirect-uri",
        "http://127.0.0.1/cb",
    ]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("http://nas.lan:8080/cb is plain http"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("127.0.0.1"),
        "loopback is not warned about: {stderr}"
    );
}
