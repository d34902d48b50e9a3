//! One instance killed with SIGKILL while 16 clients run full flows through the balancer: the
//! only requests that fail are ones the balancer had sent to it before it was gone, every
//! flow started after HAProxy took it out succeeds, and the survivor serves everything from
//! then on, the tokens the dead instance issued included.
//!
//! Each client has one request outstanding at a time. A request sent to the dead instance
//! once its port is closed is retried by HAProxy on the survivor, and a flow whose next
//! request lands on the survivor loses nothing, because sessions and codes live in the
//! database. So the failures are the requests in flight when the signal landed, and at most
//! one more per client while the kernel tears the process down (its port still accepts a
//! connection, then resets it): at most two per client, 32 in all.
//!
//! The load's clients open a connection per request. On a kept-alive connection, HAProxy
//! answers a request lost with its instance by closing the connection without an answer or a
//! log line (HTTP lets the client retry such a request), which would leave the test unable to
//! tell which instance lost it; on a connection's first request it answers 502 and names the
//! instance in `X-Served-By`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::redirect::Policy;
use serde_json::Value;

use crate::cluster::{Cluster, Instance};
use crate::helpers::*;

const CLIENTS: usize = 16;
/// Successful flows to wait for before the kill, and again after HAProxy took it out.
const FLOWS_PER_PHASE: usize = 2 * CLIENTS;
/// Every loop below gives up after this long.
const LIMIT: Duration = Duration::from_secs(90);
const KILLED: &str = "b";
const SURVIVOR: &str = "a";

/// One request of a flow.
#[derive(Debug)]
struct Attempt {
    started: Instant,
    ended: Instant,
    /// The instance that answered (or failed to), from the balancer's `X-Served-By`.
    served_by: Option<String>,
    /// What came instead of the answer expected: the request, then a status and body or a
    /// lost connection.
    failure: Option<String>,
}

struct Flow {
    started: Instant,
    succeeded: bool,
}

#[derive(Default)]
struct Received {
    attempts: Vec<Attempt>,
    flows: Vec<Flow>,
    access_tokens: Vec<String>,
}

/// An answer with the status expected.
struct Answer {
    location: Option<String>,
    body: String,
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    let value = response.headers().get(name)?;
    Some(value.to_str().expect("an ASCII header").to_string())
}

impl Received {
    /// Sends `request` and records it; returns the answer if its status is `expected`.
    async fn send(
        &mut self,
        what: &'static str,
        request: reqwest::RequestBuilder,
        expected: u16,
    ) -> Option<Answer> {
        let started = Instant::now();
        let (served_by, answer) = match request.send().await {
            Err(lost) => (None, Err(lost.to_string())),
            Ok(response) => {
                let served_by = header(&response, "x-served-by");
                let status = response.status().as_u16();
                let location = header(&response, "location");
                let answer = match response.text().await {
                    Ok(body) if status == expected => Ok(Answer { location, body }),
                    Ok(body) => Err(format!("{status} {body}")),
                    Err(lost) => Err(lost.to_string()),
                };
                (served_by, answer)
            }
        };
        self.attempts.push(Attempt {
            started,
            ended: Instant::now(),
            served_by,
            failure: answer.as_ref().err().map(|why| format!("{what}: {why}")),
        });
        answer.ok()
    }
}

/// A client that opens a connection per request; `cookies` for a browser.
fn unpooled(app: &TestApp, cookies: bool) -> reqwest::Client {
    app.client_builder()
        .pool_max_idle_per_host(0)
        .cookie_store(cookies)
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// One full flow through the balancer: authorize with PKCE (the browser is signed in),
/// exchange the code with client_secret_basic, then userinfo. False when a request failed,
/// which ends the flow.
async fn flow(
    app: &TestApp,
    secret: &str,
    browser: &reqwest::Client,
    http: &reqwest::Client,
    received: &mut Received,
) -> bool {
    let pkce = pkce();
    let params = proxmox_params(&pkce);
    let url = url::Url::parse_with_params(&app.url("/authorize"), as_refs(&params)).unwrap();
    let Some(authorized) = received
        .send("authorize", browser.get(url.as_str()), 303)
        .await
    else {
        return false;
    };
    let to = authorized.location.expect("a redirect");
    let code = query(&to)
        .remove("code")
        .unwrap_or_else(|| panic!("no code in {to}"));
    let exchange = http
        .post(app.url("/token"))
        .basic_auth("proxmox", Some(secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", PVE_REDIRECT),
            ("code_verifier", pkce.verifier.as_str()),
        ]);
    let Some(tokens) = received.send("code exchange", exchange, 200).await else {
        return false;
    };
    let tokens: Value = serde_json::from_str(&tokens.body).unwrap();
    let access = tokens["access_token"].as_str().unwrap().to_string();
    received.access_tokens.push(access.clone());
    let userinfo = http.get(app.url("/userinfo")).bearer_auth(access);
    received.send("userinfo", userinfo, 200).await.is_some()
}

/// A load client: runs flows one after another until told to stop.
async fn load(
    app: Arc<TestApp>,
    secret: Arc<String>,
    browser: reqwest::Client,
    stop: Arc<AtomicBool>,
    succeeded: Arc<AtomicUsize>,
) -> Received {
    let http = unpooled(&app, false);
    let mut received = Received::default();
    let deadline = Instant::now() + LIMIT;
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        let started = Instant::now();
        let done = flow(&app, &secret, &browser, &http, &mut received).await;
        received.flows.push(Flow {
            started,
            succeeded: done,
        });
        if done {
            succeeded.fetch_add(1, Ordering::SeqCst);
        }
    }
    received
}

/// Waits until `succeeded` reaches `target`, bounded.
async fn until_succeeded(succeeded: &AtomicUsize, target: usize) {
    let deadline = Instant::now() + LIMIT;
    while succeeded.load(Ordering::SeqCst) < target {
        assert!(Instant::now() < deadline, "the load made no progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One client authentication on `instance` itself pays argon2 and fills its cache, so that
/// sixteen clients at once do not spend its per-address hashing budget.
async fn warm_up(cluster: &Cluster, instance: &Instance, secret: &str) {
    let response = cluster
        .http()
        .post(instance.url("/token"))
        .basic_auth("proxmox", Some(secret))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "warm-up"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400, "invalid_grant, the secret checked");
}

/// A browser of the load, signed in through a login link.
async fn signed_in(app: &TestApp) -> reqwest::Client {
    let browser = unpooled(app, true);
    let response = open_login_link(&browser, &app.login_link("alice")).await;
    assert_eq!(response.status(), 303, "the login link signs in");
    browser
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_an_instance_under_load_loses_only_its_requests_in_flight() {
    let mut cluster = Cluster::start();
    let app = cluster.app.clone();
    let secret = Arc::new(app.setup_proxmox());
    for instance in &cluster.instances {
        warm_up(&cluster, instance, &secret).await;
    }
    // Signed in one after another before the load starts, the login links' pages and buttons
    // alternate between the instances: 16 each, within the per-instance limit of 20.
    let mut browsers = Vec::new();
    for _ in 0..CLIENTS {
        browsers.push(signed_in(&app).await);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let succeeded = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = browsers
        .into_iter()
        .map(|browser| {
            tokio::spawn(load(
                app.clone(),
                secret.clone(),
                browser,
                stop.clone(),
                succeeded.clone(),
            ))
        })
        .collect();

    until_succeeded(&succeeded, FLOWS_PER_PHASE).await;
    let killing = Instant::now();
    let gone = cluster.kill(KILLED);
    tokio::task::block_in_place(|| cluster.balancer.wait_until(KILLED, "DOWN"));
    let taken_out = Instant::now();
    until_succeeded(
        &succeeded,
        succeeded.load(Ordering::SeqCst) + FLOWS_PER_PHASE,
    )
    .await;
    stop.store(true, Ordering::SeqCst);

    let mut all = Received::default();
    for client in clients {
        let received = client.await.unwrap();
        let failed: Vec<&Attempt> = received
            .attempts
            .iter()
            .filter(|attempt| attempt.failure.is_some())
            .collect();
        assert!(
            failed.len() <= 2,
            "more failures than one client can have in flight: {failed:#?}"
        );
        all.attempts.extend(received.attempts);
        all.flows.extend(received.flows);
        all.access_tokens.extend(received.access_tokens);
    }
    let failures: Vec<&Attempt> = all
        .attempts
        .iter()
        .filter(|attempt| attempt.failure.is_some())
        .collect();
    for failure in &failures {
        assert!(
            failure.started < gone && failure.ended > killing,
            "a request that was not in flight when {KILLED} died failed: {failure:#?}"
        );
        assert_eq!(
            failure.served_by.as_deref(),
            Some(KILLED),
            "a failed request that was not sent to {KILLED}: {failure:#?}"
        );
    }
    assert!(
        all.attempts.iter().any(
            |attempt| attempt.started < killing && attempt.served_by.as_deref() == Some(KILLED)
        ),
        "{KILLED} served its share before it died"
    );

    let after: Vec<&Flow> = all
        .flows
        .iter()
        .filter(|flow| flow.started > taken_out)
        .collect();
    assert!(after.len() >= CLIENTS, "flows after {KILLED} was taken out");
    assert!(
        after.iter().all(|flow| flow.succeeded),
        "a flow started after {KILLED} was taken out failed"
    );
    let strays: Vec<&Attempt> = all
        .attempts
        .iter()
        .filter(|attempt| {
            attempt.started > taken_out && attempt.served_by.as_deref() != Some(SURVIVOR)
        })
        .collect();
    assert!(strays.is_empty(), "not served by {SURVIVOR}: {strays:#?}");

    // Every access token either instance issued works on the survivor.
    for access in &all.access_tokens {
        let (status, _) = userinfo(&app, access).await;
        assert_eq!(status, 200, "a token issued before or after the kill");
    }
    eprintln!(
        "failover: {} flows ({} after {KILLED} was taken out, {:?} after the kill), {} requests, \
         {} failed, {} access tokens checked",
        all.flows.len(),
        after.len(),
        taken_out - killing,
        all.attempts.len(),
        failures.len(),
        all.access_tokens.len()
    );
}
