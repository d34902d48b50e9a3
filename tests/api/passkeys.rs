//! Passkey ceremonies over the real routes, with a software authenticator.
//!
//! The software authenticator cannot keep discoverable (resident) credentials, so after
//! checking that the server asks for one, these tests relax that flag on the client side;
//! usernameless sign-in is proven in Chromium (tests/browser).

use serde_json::{Value, json};
use url::Url;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_rs::prelude::RequestChallengeResponse;

use crate::ceremonies::*;
use crate::helpers::*;

fn stored_counter(app: &TestApp) -> u64 {
    let json: String = app.value("SELECT passkey FROM passkeys");
    let passkey: Value = serde_json::from_str(&json).unwrap();
    passkey["cred"]["counter"].as_u64().unwrap()
}

#[tokio::test]
async fn register_then_sign_in_with_the_passkey_alone() {
    let app = spawn_app_at("localhost");
    let secret = app.setup_proxmox();
    let mut key = authenticator();
    let browser = app.signed_in_browser("alice").await;
    let (status, added) = register(&app, &browser, &mut key).await;
    assert_eq!(status, 200, "{added}");
    assert_eq!(added["name"], "Passkey");
    let page = account_page(&app, &browser).await;
    assert!(
        page.contains("passkey-name\">Passkey<"),
        "listed on the account page"
    );

    let fresh = app.browser();
    let (status, body, _) = sign_in(&app, &fresh, &mut key, "alice", &app.issuer).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["redirect"], "/account");
    assert_eq!(account_status(&app, &fresh).await, 200);
    let first = stored_counter(&app);
    assert!(first > 0, "the signature counter is stored");

    let again = app.browser();
    let (status, _, _) = sign_in(&app, &again, &mut key, "alice", &app.issuer).await;
    assert_eq!(status, 200);
    assert!(stored_counter(&app) > first, "and updated on every use");

    // The passkey sign-in carries through to the relying party.
    let sign_in = proxmox_sign_in(&app, &again, "proxmox", &secret, &["groups"])
        .await
        .unwrap();
    assert_eq!(sign_in.id_token_json["amr"], json!(["hwk", "user", "mfa"]));
    assert_eq!(sign_in.id_token_json["groups"], json!(["pve-admins"]));
}

#[tokio::test]
async fn replayed_and_foreign_assertions_are_refused() {
    let app = spawn_app_at("localhost");
    app.setup_proxmox();
    let mut key = authenticator();
    let browser = app.signed_in_browser("alice").await;
    assert_eq!(register(&app, &browser, &mut key).await.0, 200);

    let first = app.browser();
    let (status, _, used) = sign_in(&app, &first, &mut key, "alice", &app.issuer).await;
    assert_eq!(status, 200);

    // The same assertion for a new ceremony: its challenge does not match.
    let (_, start) = post_json(
        &app,
        &first,
        "/login/passkey/start",
        json!({ "username": "alice" }),
    )
    .await;
    let (status, body) = post_json(
        &app,
        &first,
        "/login/passkey/finish",
        json!({ "ceremony": start["ceremony"], "credential": used }),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // And the spent ceremony cannot be used again.
    let (status, body) = post_json(
        &app,
        &first,
        "/login/passkey/finish",
        json!({ "ceremony": start["ceremony"], "credential": used }),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("expired or was already used")
    );

    // An assertion made on another origin of the same RP ID (another port).
    let other = app.browser();
    let elsewhere = format!("http://localhost:{}", app.port.wrapping_add(1));
    let (status, body, _) = sign_in(&app, &other, &mut key, "alice", &elsewhere).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(account_status(&app, &other).await, 303);

    // A request from another site's page.
    let response = other
        .post(app.url("/login/passkey/start"))
        .header("origin", "https://evil.example.com")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let no_origin = other
        .post(app.url("/login/passkey/start"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_origin.status(), 403);
}

#[tokio::test]
async fn disabled_users_cannot_use_their_passkey() {
    let app = spawn_app_at("localhost");
    app.setup_proxmox();
    let mut key = authenticator();
    let browser = app.signed_in_browser("alice").await;
    assert_eq!(register(&app, &browser, &mut key).await.0, 200);
    app.cli_ok(&["user", "disable", "alice"]);
    let (status, body, _) = sign_in(&app, &app.browser(), &mut key, "alice", &app.issuer).await;
    assert_eq!(status, 403);
    assert!(body["error"].as_str().unwrap().contains("disabled"));
}

/// The sign-in options for `username` with what is random blanked, and the credential ids
/// they allow.
async fn options_shape(app: &TestApp, username: &str) -> (Value, Vec<String>) {
    let (status, mut start) = post_json(
        app,
        &app.browser(),
        "/login/passkey/start",
        json!({ "username": username }),
    )
    .await;
    assert_eq!(status, 200, "{start}");
    start["ceremony"] = json!("…");
    start["publicKey"]["challenge"] = json!("…");
    let allowed = start["publicKey"]["allowCredentials"].take();
    let ids = allowed
        .as_array()
        .expect("a list of allowed credentials")
        .iter()
        .map(|credential| {
            let mut fields: Vec<_> = credential.as_object().unwrap().keys().cloned().collect();
            fields.sort();
            assert_eq!(fields, ["id", "type"], "nothing but an id: {credential}");
            assert_eq!(credential["type"], "public-key");
            credential["id"].as_str().unwrap().to_string()
        })
        .collect();
    (start, ids)
}

#[tokio::test]
async fn a_username_tells_nothing_about_who_exists() {
    let app = spawn_app_at("localhost");
    app.setup_proxmox();
    app.cli_ok(&["user", "add", "carol"]);
    let browser = app.signed_in_browser("alice").await;
    let mut key = authenticator();
    register(&app, &browser, &mut key).await;

    let (alice, alice_ids) = options_shape(&app, "alice").await;
    assert_eq!(alice_ids.len(), 1, "{alice}");
    let mut decoys = Vec::new();
    for other in ["nobody", "carol", "dave", "erin", "frank"] {
        let (shape, ids) = options_shape(&app, other).await;
        assert_eq!(
            shape, alice,
            "{other} (absent, or without a passkey) looks like alice"
        );
        assert_eq!(options_shape(&app, other).await.1, ids, "stable per name");
        decoys.extend(ids);
    }
    assert!(!decoys.is_empty() && !decoys.contains(&alice_ids[0]));
    decoys.sort();
    decoys.dedup();
    assert!(decoys.len() > 1, "each name has its own");

    // And nobody signs in through a name that has no passkey.
    let (status, body) = post_json(
        &app,
        &app.browser(),
        "/login/passkey/start",
        json!({ "username": "nobody" }),
    )
    .await;
    assert_eq!(status, 200);
    let mut options = json!({ "publicKey": body["publicKey"] });
    // A tampered page offers alice's passkey anyway.
    options["publicKey"]["allowCredentials"] =
        json!([{ "type": "public-key", "id": alice_ids[0] }]);
    let credential = key
        .do_authentication(
            Url::parse(&app.issuer).unwrap(),
            serde_json::from_value(options).unwrap(),
        )
        .expect("the authenticator signs");
    let (status, _) = post_json(
        &app,
        &app.browser(),
        "/login/passkey/finish",
        json!({ "ceremony": body["ceremony"], "credential": credential }),
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn first_run_setup_creates_the_administrator() {
    let app = spawn_app_at("localhost");
    let token = {
        let store = app.store().clone();
        store
            .write(|tx| latchkey::auth::setup::issue_if_needed(tx, latchkey::clock::now()))
            .unwrap()
            .expect("no administrator yet")
    };
    let browser = app.browser();
    let page = browser
        .get(app.url(&format!("/setup/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("Create account and passkey")
    );

    let (status, body) = post_json(
        &app,
        &browser,
        &format!("/setup/{token}/start"),
        json!({ "username": "bad name", "display_name": "", "email": "" }),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("invalid username"));

    let (status, start) = post_json(
        &app,
        &browser,
        &format!("/setup/{token}/start"),
        json!({ "username": "Root", "display_name": "Rita Root", "email": "rita@example.com" }),
    )
    .await;
    assert_eq!(status, 200, "{start}");
    let mut options = json!({ "publicKey": start["publicKey"] });
    options["publicKey"]["authenticatorSelection"]["requireResidentKey"] = json!(false);
    let mut key = authenticator();
    let credential = key
        .do_registration(
            Url::parse(&app.issuer).unwrap(),
            serde_json::from_value(options).unwrap(),
        )
        .unwrap();
    let (status, done) = post_json(
        &app,
        &browser,
        "/setup/finish",
        json!({ "ceremony": start["ceremony"], "credential": credential }),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["redirect"], "/account");
    let account = account_page(&app, &browser).await;
    assert!(account.contains("Administrator") && account.contains("Rita Root"));
    let users: Value = serde_json::from_str(&app.cli_ok(&["user", "list", "--json"])).unwrap();
    assert_eq!(users[0]["username"], "root");
    assert_eq!(users[0]["is_admin"], true);

    let reused = app
        .browser()
        .get(app.url(&format!("/setup/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(reused.status(), 410, "single use");
    let store = app.store().clone();
    let again = store
        .write(|tx| latchkey::auth::setup::issue_if_needed(tx, latchkey::clock::now()))
        .unwrap();
    assert!(
        again.is_none(),
        "no setup link once an administrator exists"
    );

    let (status, _, _) = sign_in(&app, &app.browser(), &mut key, "root", &app.issuer).await;
    assert_eq!(
        status, 200,
        "the administrator signs in with the new passkey"
    );
}

#[tokio::test]
async fn ceremonies_are_rate_limited_per_address() {
    let app = spawn_app_at("localhost");
    let client = app.browser();
    let mut last = 0;
    for _ in 0..70 {
        last = post_json(&app, &client, "/login/passkey/start", json!({}))
            .await
            .0;
        if last == 429 {
            break;
        }
    }
    assert_eq!(last, 429);
}

#[tokio::test]
async fn passkeys_are_renamed_and_the_last_one_needs_confirmation_to_delete() {
    let app = spawn_app_at("localhost");
    app.setup_proxmox();
    let browser = app.signed_in_browser("alice").await;
    let mut key = authenticator();
    let (_, added) = register(&app, &browser, &mut key).await;
    let id = added["id"].as_i64().unwrap();
    let csrf = account_csrf(&app, &browser).await;
    let renamed = browser
        .post(app.url(&format!("/account/passkeys/{id}/rename")))
        .form(&[("csrf_token", csrf.as_str()), ("name", "Work laptop")])
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), 303);
    let page = account_page(&app, &browser).await;
    assert!(page.contains("Work laptop"));
    assert!(page.contains("This is your only passkey"));

    // A sign-in that starts before the passkey is deleted and finishes after.
    let late = app.browser();
    let (_, start) = post_json(
        &app,
        &late,
        "/login/passkey/start",
        json!({ "username": "alice" }),
    )
    .await;
    let options: RequestChallengeResponse =
        serde_json::from_value(json!({ "publicKey": start["publicKey"] })).unwrap();
    let assertion = key
        .do_authentication(Url::parse(&app.issuer).unwrap(), options)
        .unwrap();

    let refused = browser
        .post(app.url(&format!("/account/passkeys/{id}/delete")))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    assert!(refused.text().await.unwrap().contains("login link"));
    let deleted = browser
        .post(app.url(&format!("/account/passkeys/{id}/delete")))
        .form(&[("csrf_token", csrf.as_str()), ("confirm_last", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 303);
    let (status, body) = post_json(
        &app,
        &late,
        "/login/passkey/finish",
        json!({ "ceremony": start["ceremony"], "credential": assertion }),
    )
    .await;
    assert_eq!(status, 401, "a deleted passkey no longer signs in: {body}");
    assert!(body["error"].as_str().unwrap().contains("not registered"));
}

#[tokio::test]
async fn a_passkey_sign_in_resumes_the_waiting_authorization() {
    let app = spawn_app_at("localhost");
    let secret = app.setup_proxmox();
    let mut key = authenticator();
    assert_eq!(
        register(&app, &app.signed_in_browser("alice").await, &mut key)
            .await
            .0,
        200
    );

    let browser = app.browser();
    let pkce = pkce();
    let waiting = authorize(&app, &browser, &as_refs(&proxmox_params(&pkce))).await;
    assert_eq!(location(&waiting), "/login");
    let (status, body, _) = sign_in(&app, &browser, &mut key, "alice", &app.issuer).await;
    assert_eq!(status, 200);
    assert_eq!(body["redirect"], "/authorize/resume");
    let resumed = browser
        .get(app.url("/authorize/resume"))
        .send()
        .await
        .unwrap();
    let code = query(&location(&resumed)).remove("code").expect("a code");
    let (status, tokens) = exchange(&app, &secret, &code, &pkce.verifier).await;
    assert_eq!(status, 200, "{tokens}");
}

#[tokio::test]
async fn sessions_can_be_ended_from_the_account_page() {
    let app = spawn_app_at("localhost");
    app.setup_proxmox();
    let laptop = app.signed_in_browser("alice").await;
    let phone = app.signed_in_browser("alice").await;
    let tablet = app.signed_in_browser("alice").await;
    let page = account_page(&app, &laptop).await;
    let csrf = csrf_token(&page);
    let handle = page
        .split("/account/sessions/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .filter(|h| *h != "end-others")
        .expect("another session is listed")
        .to_string();
    let ended = laptop
        .post(app.url(&format!("/account/sessions/{handle}/end")))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 303);
    let alive = |client: &reqwest::Client| {
        let client = client.clone();
        let url = app.url("/account");
        async move { client.get(url).send().await.unwrap().status() == 200 }
    };
    assert!(alive(&laptop).await);
    assert_eq!(
        [alive(&phone).await, alive(&tablet).await]
            .iter()
            .filter(|a| **a)
            .count(),
        1,
        "exactly one other session ended"
    );
    let others = laptop
        .post(app.url("/account/sessions/end-others"))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(others.status(), 303);
    assert!(alive(&laptop).await, "this browser stays signed in");
    assert!(!alive(&phone).await && !alive(&tablet).await);

    let forged = laptop
        .post(app.url("/account/sessions/end-others"))
        .form(&[("csrf_token", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
}

#[tokio::test]
async fn people_edit_their_profile_and_a_typed_email_is_not_verified() {
    let app = spawn_app_at("localhost");
    let secret = app.setup_proxmox();
    let browser = app.signed_in_browser("alice").await;
    let csrf = account_csrf(&app, &browser).await;
    let saved = browser
        .post(app.url("/account/profile"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("display_name", "Alice Pleasance Liddell"),
            ("email", "alice@wonderland.example"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(saved.status(), 303);
    let sign_in = proxmox_sign_in(&app, &browser, "proxmox", &secret, &["email", "profile"])
        .await
        .unwrap();
    let claims = &sign_in.id_token_json;
    assert_eq!(claims["email"], "alice@wonderland.example");
    assert_eq!(claims["email_verified"], json!(false));
    assert_eq!(claims["given_name"], "Alice");
    assert_eq!(claims["family_name"], "Pleasance Liddell");

    let bad = browser
        .post(app.url("/account/profile"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("display_name", "A"),
            ("email", "nope"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn a_signature_counter_that_goes_backwards_is_refused_and_logged() {
    let app = spawn_app_at("localhost");
    app.setup_proxmox();
    let mut key = authenticator();
    assert_eq!(
        register(&app, &app.signed_in_browser("alice").await, &mut key)
            .await
            .0,
        200
    );
    assert_eq!(
        sign_in(&app, &app.browser(), &mut key, "alice", &app.issuer)
            .await
            .0,
        200
    );

    // As if a clone of the authenticator had been used far more often than this one.
    let json: String = app.value("SELECT passkey FROM passkeys");
    let mut passkey: Value = serde_json::from_str(&json).unwrap();
    passkey["cred"]["counter"] = json!(1_000_000);
    app.execute(
        "UPDATE passkeys SET passkey = ?1",
        latchkey::args![passkey.to_string()],
    );

    let browser = app.browser();
    let (status, body, _) = sign_in(&app, &browser, &mut key, "alice", &app.issuer).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("counter went backwards")
    );
    assert_eq!(account_status(&app, &browser).await, 303);
    let logged: i64 =
        app.value("SELECT COUNT(*) FROM audit_events WHERE event = 'passkey.counter_regression'");
    assert_eq!(logged, 1);
}

#[tokio::test]
async fn a_credential_id_already_registered_is_refused() {
    let app = spawn_app_at("localhost");
    app.setup_proxmox();
    app.cli_ok(&["user", "add", "bob"]);
    let bob = app.signed_in_browser("bob").await;
    let (_, start) = post_json(&app, &bob, "/account/passkeys/start", json!({})).await;
    let mut options = json!({ "publicKey": start["publicKey"] });
    options["publicKey"]["authenticatorSelection"]["requireResidentKey"] = json!(false);
    let credential = authenticator()
        .do_registration(
            Url::parse(&app.issuer).unwrap(),
            serde_json::from_value(options).unwrap(),
        )
        .unwrap();

    // The same credential id already belongs to alice (say, a cloned authenticator).
    app.execute(
        "INSERT INTO passkeys (user_id, credential_id, name, passkey, created_at) \
         SELECT id, ?1, 'Passkey', '{}', 0 FROM users WHERE username = 'alice'",
        latchkey::args![credential.id],
    );

    let (status, body) = post_json(
        &app,
        &bob,
        "/account/passkeys/finish",
        json!({ "ceremony": start["ceremony"], "credential": credential }),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("already registered")
    );
    let bobs: i64 = app.value(
        "SELECT COUNT(*) FROM passkeys p JOIN users u ON u.id = p.user_id \
             WHERE u.username = 'bob'",
    );
    assert_eq!(bobs, 0);
}

#[tokio::test]
async fn adding_a_passkey_needs_a_recent_sign_in() {
    let app = spawn_app_at("localhost");
    app.setup_proxmox();
    let browser = app.signed_in_browser("alice").await;
    let mut key = authenticator();
    assert_eq!(register(&app, &browser, &mut key).await.0, 200, "fresh");

    // Eleven minutes later (the session's sign-in time moved back instead of waiting).
    app.execute(
        "UPDATE sessions SET auth_time = auth_time - 660",
        latchkey::args![],
    );
    let (status, body) = post_json(&app, &browser, "/account/passkeys/start", json!({})).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("Sign in again"),
        "{body}"
    );
    let account = account_page(&app, &browser).await;
    assert!(
        account.contains("id=\"sign-in-again\""),
        "the page leads to /login"
    );

    // Signing in again allows it.
    open_login_link(&browser, &app.login_link("alice")).await;
    let mut second = authenticator();
    assert_eq!(register(&app, &browser, &mut second).await.0, 200);
}
