//! The access log: whatever a request sends, a line stays short, one-time link tokens never
//! appear, and `X-Forwarded-For` from an untrusted peer is not believed.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::free_port;

#[tokio::test]
async fn log_lines_stay_short_and_keep_no_link_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("serve.log");
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["serve", "--listen", &address, "--issuer"])
        .arg(format!("http://{address}"))
        .env("RUST_LOG", "info")
        .env_remove("LATCHKEY_CONFIG")
        .stdout(std::fs::File::create(&log_path).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://{address}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "serve did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let long = "q".repeat(20_000);
    let requests = [
        http.get(format!("{base}/authorize?junk={long}")),
        http.get(format!("{base}/login/link/SECRET-LINK-TOKEN?x=1")),
        http.get(format!("{base}/setup/SECRET-SETUP-TOKEN")),
        http.get(format!("{base}/healthz"))
            .header("user-agent", "u".repeat(6_000))
            .header("x-forwarded-for", "FORGED-ADDRESS"),
    ];
    for request in requests {
        request.send().await.unwrap();
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("/healthz"),
        "the requests were logged: {log:.2000}"
    );
    assert!(
        !log.contains('\u{1b}'),
        "no colour codes when writing to a file"
    );
    for line in log.lines() {
        assert!(line.len() < 2_000, "a line of {} bytes", line.len());
    }
    for secret in ["SECRET-LINK-TOKEN", "SECRET-SETUP-TOKEN", "FORGED-ADDRESS"] {
        assert!(!log.contains(secret), "{secret} reached the log");
    }
}
