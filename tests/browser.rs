//! The browser end-to-end tests (tests/browser: Node's test runner driving Debian's Chromium
//! with a WebAuthn virtual authenticator), run as part of `cargo test` against the binary
//! cargo just built. They fail, never skip, when Node, their packages or Chromium are missing.

use std::path::Path;
use std::process::Command;

#[test]
fn pages_and_passkeys_in_chromium() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "the browser tests' packages are missing: run `npm ci --prefix tests/browser` \
         (.ci/run does)"
    );
    let status = Command::new("npm")
        .args(["test", "--silent"])
        .current_dir(&dir)
        .env("LATCHKEY_BIN", env!("CARGO_BIN_EXE_latchkey"))
        .status()
        .expect("npm (Node.js) must be installed to run the browser tests");
    assert!(
        status.success(),
        "the browser tests failed; their screenshots are in test-output/browser/"
    );
}
