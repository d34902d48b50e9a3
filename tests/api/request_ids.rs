//! Every response carries an `X-Request-Id`: a trusted proxy's when it sent a sane one, else
//! a new one.

use crate::helpers::*;

async fn request_id(app: &TestApp, sent: Option<&str>) -> String {
    let mut request = reqwest::Client::new().get(app.url("/healthz"));
    if let Some(sent) = sent {
        request = request.header("x-request-id", sent);
    }
    let response = request.send().await.unwrap();
    response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn request_ids_come_from_trusted_proxies_or_are_made() {
    let direct = spawn_app();
    let made = request_id(&direct, None).await;
    assert_eq!(made.len(), 32, "{made}");
    assert_ne!(made, request_id(&direct, None).await, "one per request");
    assert_ne!(
        request_id(&direct, Some("from-anyone")).await,
        "from-anyone",
        "only a trusted proxy chooses the id"
    );

    let behind_proxy = spawn_app_with_config("trusted_proxies = [\"127.0.0.1\"]\n");
    assert_eq!(
        request_id(&behind_proxy, Some("proxy-4f2a")).await,
        "proxy-4f2a"
    );
    let long = "x".repeat(200);
    for insane in [long.as_str(), "two words"] {
        assert_ne!(request_id(&behind_proxy, Some(insane)).await, insane);
    }
}
