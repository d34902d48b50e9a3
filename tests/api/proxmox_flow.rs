//! The sign-in Proxmox VE and PBS perform, end to end.

use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn proxmox_sign_in_delivers_the_claims_proxmox_reads() {
    let app = spawn_app();
    let secret = app.setup_proxmox();
    let browser = app.signed_in_browser("alice").await;

    let sign_in = proxmox_sign_in(
        &app,
        &browser,
        "proxmox",
        &secret,
        &["email", "profile", "groups"],
    )
    .await
    .expect("Proxmox's sequence completes");

    assert!(sign_in.returned_state.starts_with(r#"{"csrf_token":""#));
    assert!(
        sign_in.returned_state.len() > 1024,
        "long state comes back whole"
    );
    assert_eq!(sign_in.returned_iss, app.issuer, "RFC 9207 iss");

    let claims = &sign_in.id_token;
    assert_eq!(claims.issuer().as_str(), app.issuer);
    assert_eq!(
        claims.preferred_username().map(|u| u.as_str()),
        Some("alice")
    );
    assert_eq!(
        claims.email().map(|e| e.as_str()),
        Some("alice@example.com")
    );
    assert_eq!(claims.email_verified(), Some(true));
    let id = &sign_in.id_token_json;
    assert_eq!(id["given_name"], "Alice");
    assert_eq!(id["family_name"], "Liddell");
    assert_eq!(id["groups"], json!(["pve-admins"]));
    assert_eq!(id["aud"], "proxmox", "a single audience, the client id");
    assert_ne!(id["sub"], "alice", "sub is opaque, never the username");
    assert!(id["auth_time"].is_i64());
    assert_eq!(id["amr"], json!(["otp"]));

    let info = &sign_in.userinfo;
    assert_eq!(info.subject().as_str(), id["sub"].as_str().unwrap());
    assert_eq!(info.preferred_username().map(|u| u.as_str()), Some("alice"));
    assert_eq!(info.email_verified(), Some(true));
    assert_eq!(
        info.additional_claims().groups.as_deref(),
        Some(&["pve-admins".to_string()][..])
    );
    assert!(
        sign_in.refresh_token.is_none(),
        "no offline_access, no refresh token"
    );
}

#[tokio::test]
async fn discovery_and_jwks_are_what_proxmox_needs() {
    let app = spawn_app();
    let http = reqwest::Client::new();
    let response = http
        .get(app.url("/.well-known/openid-configuration"))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let doc: serde_json::Value = response.json().await.unwrap();
    assert_eq!(doc["issuer"], app.issuer.as_str());
    for endpoint in [
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
        "end_session_endpoint",
        "revocation_endpoint",
        "introspection_endpoint",
    ] {
        assert!(
            doc[endpoint].as_str().unwrap().starts_with(&app.issuer),
            "{endpoint} is absolute under the issuer"
        );
    }
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        json!(["RS256", "ES256", "EdDSA"])
    );
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    assert!(
        doc["claims_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("groups"))
    );

    let jwks: serde_json::Value = http
        .get(doc["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 3, "one per algorithm");
    assert_eq!(keys[0]["use"], "sig");
    assert_eq!(keys[0]["alg"], "RS256", "the default key comes first");
    assert!(keys[0]["kid"].as_str().is_some_and(|k| !k.is_empty()));
    assert!(keys[0].get("d").is_none(), "no private key material");
}
