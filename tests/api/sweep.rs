//! A hostile-input sweep: over ten thousand malformed requests across every route, signed
//! out, as a person and as an administrator. No answer is a 5xx, the server keeps answering,
//! and the database grows less than the README's bound.

use reqwest::Method;
use reqwest::header::{HeaderName, HeaderValue};
use tokio::task::JoinSet;

use crate::helpers::*;

/// Every route, with made-up or real path segments.
const PATHS: &[&str] = &[
    "/",
    "/.well-known/openid-configuration",
    "/.well-known/jwks.json",
    "/authorize",
    "/authorize/resume",
    "/authorize/consent",
    "/token",
    "/userinfo",
    "/revoke",
    "/introspect",
    "/logout",
    "/login",
    "/login/link/made-up",
    "/login/passkey/start",
    "/login/passkey/finish",
    "/setup/made-up",
    "/setup/made-up/start",
    "/setup/finish",
    "/account",
    "/account/profile",
    "/account/passkeys/start",
    "/account/passkeys/finish",
    "/account/passkeys/1/rename",
    "/account/passkeys/x/delete",
    "/account/sessions/x/end",
    "/account/sessions/end-others",
    "/account/consents/proxmox/revoke",
    "/admin",
    "/admin/audit",
    "/admin/users",
    "/admin/users/alice",
    "/admin/users/alice/edit",
    "/admin/users/alice/disable",
    "/admin/users/alice/enable",
    "/admin/users/alice/delete",
    "/admin/users/alice/groups",
    "/admin/users/alice/login-link",
    "/admin/users/alice/passkeys/x/delete",
    "/admin/users/alice/sessions/end-all",
    "/admin/users/alice/sessions/x/end",
    "/admin/groups",
    "/admin/groups/pve-admins",
    "/admin/groups/pve-admins/rename",
    "/admin/groups/pve-admins/delete",
    "/admin/groups/pve-admins/members",
    "/admin/groups/pve-admins/members/alice/remove",
    "/admin/clients",
    "/admin/clients/proxmox",
    "/admin/clients/proxmox/edit",
    "/admin/clients/proxmox/rotate-secret",
    "/admin/clients/proxmox/delete",
    "/admin/keys",
    "/admin/keys/rotate",
    "/healthz",
    "/static/style.css",
    "/static/../Cargo.toml",
    "/static/%2e%2e/%2e%2e/etc/passwd",
    "/static/..%2f..%2fCargo.toml",
    "/static/%ff%fe",
    "/admin/users/%ff%fe",
    "/admin/users/..%2f..%2fadmin",
    "/account/passkeys/%00/rename",
];

/// Query strings and form bodies: bad percent-encoding, NUL and CRLF, duplicates, and the
/// parameters the endpoints read, with odd values.
const PAYLOADS: &[&str] = &[
    "",
    "%",
    "%zz=%zz",
    "a=%ff%fe%00",
    "&&&==&=",
    "client_id=proxmox&client_id=proxmox",
    "csrf_token=x&csrf_token=y",
    "redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb%0d%0aSet-Cookie%3A%20x%3D1&client_id=proxmox",
    "response_type=code&client_id=proxmox&redirect_uri=https%3A%2F%2Fpve.example.com%3A8006&scope=openid&state=%00%0a",
    "response_type=code&client_id=proxmox&redirect_uri=https%3A%2F%2Fpve.example.com%3A8006&scope=openid&prompt=none&max_age=-1",
    "response_type=code&client_id=proxmox&redirect_uri=https%3A%2F%2Fpve.example.com%3A8006&scope=openid&code_challenge=x&code_challenge_method=plain",
    "grant_type=authorization_code&code=%00&client_id=%0a",
    "grant_type=refresh_token&refresh_token=x&client_id=spa",
    "grant_type=authorization_code&code=x&client_id=spa&redirect_uri=%0d%0a",
    "token=x&token_type_hint=%ff",
    "id_token_hint=a.b.c&post_logout_redirect_uri=javascript%3Aalert(1)&confirm=1",
    "decision=allow&csrf_token=",
    "username=%00&display_name=%0d%0a&email=a%40b",
    "name=..%2F..&members=alice&members=alice",
    "confirm=yes&csrf_token=forged",
    "{\"username\": 5}",
    "{\"ceremony\": \"x\", \"credential\": {\"id\": 1}}",
];

/// Content types, good and wrong.
const CONTENT_TYPES: &[&str] = &[
    "application/x-www-form-urlencoded",
    "application/json",
    "multipart/form-data; boundary=x",
    "text/plain; charset=utf-16",
    "application/x-www-form-urlencoded; charset=\u{ff}",
];

const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"];

struct Probe {
    method: Method,
    path: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Vec<u8>,
    /// Whether the server may close the connection instead of answering (huge headers).
    may_close: bool,
}

/// A deterministic stream of numbers, so that a failure names a reproducible probe.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % sides as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.roll(items.len())]
    }
}

/// A body of one of the odd kinds.
fn body(dice: &mut Dice) -> (Vec<u8>, bool) {
    match dice.roll(8) {
        0 => (vec![0xff, 0xfe, b'=', 0x00, b'&', 0xc3], false),
        1 => ("[".repeat(5_000).into_bytes(), false),
        2 => (
            format!("{}1{}", "{\"a\":".repeat(2_000), "}".repeat(2_000)).into_bytes(),
            false,
        ),
        3 => (vec![b'x'; 300 * 1024], true),
        _ => (dice.pick(PAYLOADS).as_bytes().to_vec(), false),
    }
}

/// Headers of the odd kinds: a huge one, many cookies, broken credentials, a forged origin.
fn headers(dice: &mut Dice) -> (Vec<(HeaderName, HeaderValue)>, bool) {
    let header = |name: &'static str, value: &[u8]| {
        (
            HeaderName::from_static(name),
            HeaderValue::from_bytes(value).unwrap(),
        )
    };
    let content_type = header("content-type", dice.pick(CONTENT_TYPES).as_bytes());
    let extra = match dice.roll(9) {
        0 => (header("x-padding", &vec![b'h'; 40 * 1024]), true),
        1 => {
            let cookies: Vec<String> = (0..300).map(|n| format!("c{n}=v{n}")).collect();
            (header("cookie", cookies.join("; ").as_bytes()), true)
        }
        2 => (header("authorization", b"Basic %%%\xff"), false),
        3 => (header("authorization", b"Bearer \xfe\xff"), false),
        4 => (header("origin", b"https://evil.example.com"), false),
        5 => (header("x-forwarded-for", b"1.2.3.4, \xff"), false),
        6 => (
            header("cookie", b"latchkey_session=\xff; latchkey_csrf=x"),
            false,
        ),
        _ => (header("accept", b"*/*"), false),
    };
    (vec![content_type, extra.0], extra.1)
}

fn probe(dice: &mut Dice) -> Probe {
    let path = dice.pick(PATHS);
    let query = dice.pick(PAYLOADS);
    let path = if dice.roll(2) == 0 && !query.starts_with('{') {
        format!("{path}?{query}")
    } else {
        path.to_string()
    };
    let (headers, huge_header) = headers(dice);
    let (body, huge_body) = body(dice);
    Probe {
        method: Method::from_bytes(dice.pick(METHODS).as_bytes()).unwrap(),
        path,
        headers,
        body,
        may_close: huge_header || huge_body,
    }
}

/// Sends `count` probes from `client`, 16 at a time; returns how many were answered, and
/// the answers that were not acceptable. A signed-in client sends no cookie headers of its own: they would replace its
/// session cookie, and a sign-out page would then rightly clear it from the client's jar.
async fn sweep(
    app: &TestApp,
    client: reqwest::Client,
    signed_in: bool,
    seed: u64,
    count: usize,
) -> (usize, Vec<String>) {
    let mut dice = Dice(seed);
    let mut answered = 0;
    let mut failures = Vec::new();
    let mut running = JoinSet::new();
    for n in 0..count {
        let probe = probe(&mut dice);
        let mut request = client.request(probe.method.clone(), app.url(&probe.path));
        for (name, value) in probe.headers {
            if !(signed_in && name == reqwest::header::COOKIE) {
                request = request.header(name, value);
            }
        }
        let request = request.body(probe.body);
        let what = format!("#{n} {} {}", probe.method, probe.path);
        let may_close = probe.may_close;
        running.spawn(async move {
            match request.send().await {
                Ok(response) if response.status().is_server_error() => {
                    (true, Some(format!("{what}: {}", response.status())))
                }
                Ok(_) => (true, None),
                Err(_) if may_close => (false, None),
                Err(error) => (false, Some(format!("{what}: {error}"))),
            }
        });
        if running.len() >= 16 {
            let (was_answered, failure) = running.join_next().await.unwrap().unwrap();
            answered += usize::from(was_answered);
            failures.extend(failure);
        }
    }
    while let Some(done) = running.join_next().await {
        let (was_answered, failure) = done.unwrap();
        answered += usize::from(was_answered);
        failures.extend(failure);
    }
    (answered, failures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_hostile_requests_get_no_5xx_and_leave_the_database_small() {
    let app = spawn_app_at("localhost");
    app.setup_proxmox();
    app.cli_ok(&["user", "add", "root", "--admin"]);
    app.add_public_client("spa", "http://127.0.0.1/cb");
    let user = app.signed_in_browser("alice").await;
    let admin = app.signed_in_browser("root").await;
    let anonymous = app.browser();
    let before = app.db_bytes();

    let mut failures = Vec::new();
    let mut answered = 0;
    for (seed, client, signed_in) in [
        (1, anonymous, false),
        (2, user.clone(), true),
        (3, admin.clone(), true),
    ] {
        let (answers, bad) = sweep(&app, client, signed_in, seed, 3_400).await;
        answered += answers;
        failures.extend(bad);
    }
    assert!(answered >= 9_000, "only {answered} requests were answered");
    assert!(
        failures.is_empty(),
        "{} bad answers, such as {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );

    let health = reqwest::get(app.url("/healthz").replace("localhost", "127.0.0.1"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "the server still answers");
    assert_eq!(
        account_status(&app, &user).await,
        200,
        "alice is still signed in"
    );
    assert_eq!(
        account_status(&app, &admin).await,
        200,
        "root is still signed in"
    );
    let grown = app.db_bytes() - before;
    assert!(
        grown < 1024 * 1024,
        "one address may grow the database by less than 1 MiB a minute; it grew {grown} bytes"
    );
}
