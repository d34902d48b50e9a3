//! A signing key rotation made through instance `a` is served by instance `b` at once: its
//! JWKS lists the new keys, and the next ID token it issues is signed with the new default
//! key. The JWKS itself may be cached by whoever fetched it for its `max-age`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet};
use openidconnect::{ClientId, ClientSecret, IssuerUrl, Nonce};
use serde_json::{Value, json};

use crate::cluster::{Cluster, Instance};
use crate::helpers::*;

/// The nonce of `proxmox_params`.
const NONCE: &str = "n-0S6_WzA2Mj";

/// `instance`'s own JWKS (not through the balancer): its keys and its Cache-Control.
async fn jwks_of(cluster: &Cluster, instance: &Instance) -> (Vec<Value>, String) {
    let response = cluster
        .http()
        .get(instance.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cache_control = response.headers()["cache-control"]
        .to_str()
        .unwrap()
        .to_string();
    let jwks: Value = response.json().await.unwrap();
    (jwks["keys"].as_array().unwrap().clone(), cache_control)
}

fn kids(keys: &[Value]) -> Vec<&str> {
    keys.iter()
        .map(|key| key["kid"].as_str().unwrap())
        .collect()
}

/// An ID token issued by `instance` itself: `browser` is sent to `/authorize` through the
/// balancer, and the code is exchanged at the instance.
async fn id_token_from(
    cluster: &Cluster,
    instance: &Instance,
    browser: &reqwest::Client,
    secret: &str,
) -> String {
    let pkce = pkce();
    let code = code_for(&cluster.app, browser, &proxmox_params(&pkce)).await;
    let response = cluster
        .http()
        .post(instance.url("/token"))
        .basic_auth("proxmox", Some(secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", PVE_REDIRECT),
            ("code_verifier", pkce.verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "the code exchange on {}",
        instance.name
    );
    let tokens: Value = response.json().await.unwrap();
    tokens["id_token"].as_str().unwrap().to_string()
}

/// The `kid` in a JWT's header.
fn kid(jwt: &str) -> String {
    let header = jwt.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_string()
}

/// Verifies an ID token as a relying party does, against `keys`; returns its subject.
fn verified_subject(cluster: &Cluster, jwt: &str, keys: &[Value], secret: &str) -> String {
    let keys: CoreJsonWebKeySet = serde_json::from_value(json!({ "keys": keys })).unwrap();
    let verifier = CoreIdTokenVerifier::new_confidential_client(
        ClientId::new("proxmox".into()),
        ClientSecret::new(secret.into()),
        IssuerUrl::new(cluster.app.issuer.clone()).unwrap(),
        keys,
    );
    let token: CoreIdToken = jwt.parse().unwrap();
    let claims = token
        .claims(&verifier, &Nonce::new(NONCE.into()))
        .expect("the ID token verifies");
    claims.subject().to_string()
}

#[tokio::test]
async fn a_rotation_through_one_instance_is_served_by_the_other_at_once() {
    let cluster = Cluster::start();
    let app = &cluster.app;
    let secret = app.setup_proxmox();
    app.cli_ok(&["user", "add", "ada", "--admin"]);
    let (a, b) = (cluster.instance("a"), cluster.instance("b"));
    let alice = app.signed_in_browser("alice").await;

    // b signs with the default (RS256) key, the first its JWKS lists.
    let (before, _) = jwks_of(&cluster, b).await;
    assert_eq!(before.len(), 3, "one key per algorithm");
    let token = id_token_from(&cluster, b, &alice, &secret).await;
    assert_eq!(kid(&token), kids(&before)[0]);

    // An administrator rotates on a's admin page.
    let ada = app.signed_in_browser("ada").await;
    let csrf = account_csrf(app, &ada).await;
    let rotated = ada
        .post(a.url("/admin/keys/rotate"))
        .form(&[("csrf_token", csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), 303, "rotated on a");
    assert_eq!(location(&rotated), "/admin/keys");

    let (after, cache_control) = jwks_of(&cluster, b).await;
    assert_eq!(
        after.len(),
        6,
        "b publishes the new keys and still the old ones"
    );
    assert!(kids(&before).iter().all(|kid| kids(&after).contains(kid)));
    let new_default = kids(&after)[0];
    assert!(!kids(&before).contains(&new_default), "a new default key");
    assert_eq!(
        cache_control, "public, max-age=300",
        "the README states this bound for relying parties' copies"
    );

    let token = id_token_from(&cluster, b, &alice, &secret).await;
    assert_eq!(kid(&token), new_default, "b signs with the new key");
    let subject = verified_subject(&cluster, &token, &after, &secret);
    let from_a = id_token_from(&cluster, a, &alice, &secret).await;
    assert_eq!(kid(&from_a), new_default, "and so does a");
    assert_eq!(
        verified_subject(&cluster, &from_a, &after, &secret),
        subject
    );
}
