//! `/metrics` on its own listener: the Prometheus text format, parsed, moves as people sign
//! in and clients get tokens.

use std::collections::BTreeMap;

use crate::helpers::*;
use crate::process::free_port;

/// One sample of a scrape: its metric name, labels and value.
#[derive(Debug)]
pub struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the Prometheus text format (version 0.0.4): comments, then `name{labels} value`.
pub fn parse(scrape: &str) -> Vec<Sample> {
    scrape
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
            let (name, labels) = match series.split_once('{') {
                None => (series, ""),
                Some((name, rest)) => (name, rest.strip_suffix('}').expect("labels close")),
            };
            let labels = labels
                .split("\",")
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once("=\"").expect("label=\"value\"");
                    (key.to_string(), value.trim_end_matches('"').to_string())
                })
                .collect();
            Sample {
                name: name.to_string(),
                labels,
                value: value.parse().expect("a number"),
            }
        })
        .collect()
}

/// The value of the one sample named `name` that has `labels` (among others).
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
    found[0].value
}

pub async fn scrape(address: &str) -> Vec<Sample> {
    let response = reqwest::get(format!("http://{address}/metrics"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    parse(&response.text().await.unwrap())
}

#[tokio::test]
async fn the_scrape_counts_sign_ins_authorizations_and_tokens() {
    let metrics = format!("127.0.0.1:{}", free_port());
    let app = spawn_app_with_config(&format!(
        "metrics_listen = \"{metrics}\"\n[limits]\nlogin_links = 2\n"
    ));
    let secret = app.setup_proxmox();
    let before = scrape(&metrics).await;
    assert_eq!(value(&before, "latchkey_build_info", &[]), 1.0);
    assert_eq!(value(&before, "latchkey_users", &[]), 1.0);
    assert_eq!(value(&before, "latchkey_clients", &[]), 1.0);
    assert_eq!(value(&before, "latchkey_active_sessions", &[]), 0.0);
    assert_eq!(
        value(
            &before,
            "latchkey_sign_ins_total",
            &[("method", "passkey"), ("result", "failure")]
        ),
        0.0,
        "sign-in series exist before the first"
    );

    let browser = app.signed_in_browser("alice").await;
    proxmox_sign_in(&app, &browser, "proxmox", &secret, &["openid"])
        .await
        .unwrap();
    let pkce = pkce();
    let code = code_for(&app, &browser, &proxmox_params(&pkce)).await;
    assert_eq!(exchange(&app, "wrong", &code, &pkce.verifier).await.0, 401);
    let over_limit = browser
        .get(app.url("/login/link/not-a-link"))
        .send()
        .await
        .unwrap();
    assert_eq!(over_limit.status(), 429);

    let after = scrape(&metrics).await;
    let counter = |name: &str, labels: &[(&str, &str)]| value(&after, name, labels);
    assert_eq!(
        counter(
            "latchkey_sign_ins_total",
            &[("method", "link"), ("result", "success")]
        ),
        1.0
    );
    assert_eq!(
        counter(
            "latchkey_authorizations_total",
            &[("client", "proxmox"), ("result", "code")]
        ),
        2.0
    );
    assert_eq!(
        counter(
            "latchkey_tokens_total",
            &[("grant", "authorization_code"), ("result", "issued")]
        ),
        1.0
    );
    assert_eq!(
        counter(
            "latchkey_tokens_total",
            &[
                ("grant", "authorization_code"),
                ("result", "invalid_client")
            ]
        ),
        1.0
    );
    assert_eq!(
        counter("latchkey_rate_limited_total", &[("limit", "login_links")]),
        1.0
    );
    assert_eq!(counter("latchkey_active_sessions", &[]), 1.0);
    assert!(counter("latchkey_write_queue_wait_seconds_count", &[]) > 0.0);
    assert!(
        counter(
            "latchkey_request_duration_seconds_count",
            &[("route", "/login/link/{token}"), ("method", "GET")]
        ) >= 1.0,
        "durations are per route pattern"
    );
    assert!(
        after.iter().all(|s| s
            .labels
            .get("route")
            .is_none_or(|route| !route.contains("not-a-link"))),
        "never the raw path"
    );

    let public = reqwest::get(app.url("/metrics")).await.unwrap();
    assert_eq!(public.status(), 404, "metrics only on their own listener");
}
