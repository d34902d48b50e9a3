//! Proxmox's sign-in through the balancer, each request on the other instance.

use serde_json::json;

use crate::balancer::assert_alternates;
use crate::cluster::Cluster;
use crate::helpers::*;

#[tokio::test]
async fn the_proxmox_sign_in_works_when_each_request_lands_on_the_other_instance() {
    let cluster = Cluster::start();
    let app = &cluster.app;
    let secret = app.setup_proxmox();

    let (sign_in, hops) = cluster
        .balancer
        .record(async {
            let browser = app.signed_in_browser("alice").await;
            proxmox_sign_in(app, &browser, "proxmox", &secret, &["email", "groups"]).await
        })
        .await;
    let sign_in = sign_in.expect("Proxmox's sequence completes");
    assert_alternates(&hops);
    let requests: Vec<(&str, &str)> = hops
        .iter()
        .map(|hop| (hop.method.as_str(), hop.path.as_str()))
        .filter(|(_, path)| !path.starts_with("/login/"))
        .collect();
    assert_eq!(
        requests,
        [
            ("GET", "/.well-known/openid-configuration"),
            ("GET", "/.well-known/jwks.json"),
            ("GET", "/authorize"),
            ("POST", "/token"),
            ("GET", "/userinfo"),
        ],
        "after the login link's page and button: {hops:#?}"
    );
    assert_eq!(sign_in.id_token_json["groups"], json!(["pve-admins"]));
    assert_eq!(sign_in.returned_iss, app.issuer);

    // The access token works on each instance by itself.
    let sub = sign_in.id_token_json["sub"].as_str().unwrap();
    for instance in &cluster.instances {
        let response = cluster
            .http()
            .get(instance.url("/userinfo"))
            .bearer_auth(&sign_in.access_token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "userinfo on {}", instance.name);
        let claims: serde_json::Value = response.json().await.unwrap();
        assert_eq!(claims["sub"], sub, "on {}", instance.name);
        assert_eq!(claims["groups"], json!(["pve-admins"]));
    }
}
