//! A passkey registration, then a passkey sign-in that resumes Proxmox's waiting
//! authorization, through the balancer: each step of a ceremony on the other instance from
//! the one that started it.

use crate::balancer::assert_alternates;
use crate::ceremonies::*;
use crate::cluster::Cluster;
use crate::helpers::*;

/// The requests of `hops` as `METHOD PATH`.
fn requests(hops: &[crate::balancer::Hop]) -> Vec<String> {
    hops.iter()
        .map(|hop| format!("{} {}", hop.method, hop.path))
        .collect()
}

#[tokio::test]
async fn passkey_ceremonies_finish_on_the_other_instance() {
    let cluster = Cluster::start();
    let app = &cluster.app;
    let secret = app.setup_proxmox();
    let mut key = authenticator();
    let browser = app.signed_in_browser("alice").await;

    let ((status, added), hops) = cluster
        .balancer
        .record(register(app, &browser, &mut key))
        .await;
    assert_eq!(status, 200, "{added}");
    assert_alternates(&hops);
    assert_eq!(
        requests(&hops),
        [
            "POST /account/passkeys/start",
            "POST /account/passkeys/finish"
        ]
    );

    // Proxmox sends a browser that is not signed in: its request waits while a passkey signs
    // in, then resumes.
    let fresh = app.browser();
    let pkce = pkce();
    let (code, hops) = cluster
        .balancer
        .record(async {
            let waiting = authorize(app, &fresh, &as_refs(&proxmox_params(&pkce))).await;
            assert_eq!(location(&waiting), "/login");
            let (status, body, _) = sign_in(app, &fresh, &mut key, "alice", &app.issuer).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["redirect"], "/authorize/resume");
            let resumed = fresh
                .get(app.url("/authorize/resume"))
                .send()
                .await
                .unwrap();
            query(&location(&resumed)).remove("code")
        })
        .await;
    assert_alternates(&hops);
    assert_eq!(
        requests(&hops),
        [
            "GET /authorize",
            "POST /login/passkey/start",
            "POST /login/passkey/finish",
            "GET /authorize/resume",
        ]
    );
    let code = code.expect("a code after the passkey sign-in");
    let (status, tokens) = exchange(app, &secret, &code, &pkce.verifier).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(account_status(app, &fresh).await, 200, "signed in");
}
