//! Passkey registration and sign-in over the real routes, with a software authenticator (see
//! `passkeys` for why it is told not to keep the credential itself).

use serde_json::{Value, json};
use url::Url;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse};

use crate::helpers::*;

pub type Authenticator = SoftPasskey;

pub fn authenticator() -> Authenticator {
    // `true`: the software token claims user verification, as a real one would after a PIN.
    SoftPasskey::new(true)
}

/// A JSON POST from our own pages (with their `Origin`).
pub async fn post_json(
    app: &TestApp,
    client: &reqwest::Client,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let response = client
        .post(app.url(path))
        .header("origin", &app.issuer)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Registers a passkey for the signed-in `browser`; returns the finish answer.
pub async fn register(
    app: &TestApp,
    browser: &reqwest::Client,
    key: &mut Authenticator,
) -> (u16, Value) {
    let (status, start) = post_json(app, browser, "/account/passkeys/start", json!({})).await;
    assert_eq!(status, 200, "{start}");
    let selection = &start["publicKey"]["authenticatorSelection"];
    assert_eq!(
        selection["residentKey"], "required",
        "discoverable credentials only"
    );
    assert_eq!(selection["userVerification"], "required");
    assert_eq!(start["publicKey"]["attestation"], "none");
    let mut options = json!({ "publicKey": start["publicKey"] });
    options["publicKey"]["authenticatorSelection"]["requireResidentKey"] = json!(false);
    let options: CreationChallengeResponse = serde_json::from_value(options).unwrap();
    let credential = key
        .do_registration(Url::parse(&app.issuer).unwrap(), options)
        .expect("the authenticator registers");
    post_json(
        app,
        browser,
        "/account/passkeys/finish",
        json!({ "ceremony": start["ceremony"], "credential": credential }),
    )
    .await
}

/// Signs in with a passkey for `username` at `origin`; returns the finish status, body and
/// the assertion sent.
pub async fn sign_in(
    app: &TestApp,
    browser: &reqwest::Client,
    key: &mut Authenticator,
    username: &str,
    origin: &str,
) -> (u16, Value, Value) {
    let (status, start) = post_json(
        app,
        browser,
        "/login/passkey/start",
        json!({ "username": username }),
    )
    .await;
    assert_eq!(status, 200, "{start}");
    assert_eq!(start["publicKey"]["userVerification"], "required");
    let options: RequestChallengeResponse =
        serde_json::from_value(json!({ "publicKey": start["publicKey"] })).unwrap();
    let credential = key
        .do_authentication(Url::parse(origin).unwrap(), options)
        .expect("the authenticator signs");
    let credential = serde_json::to_value(credential).unwrap();
    let (status, body) = post_json(
        app,
        browser,
        "/login/passkey/finish",
        json!({ "ceremony": start["ceremony"], "credential": credential }),
    )
    .await;
    (status, body, credential)
}
