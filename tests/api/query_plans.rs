//! Every statement a sign-in runs finds its rows through a key or an index: none reads a
//! whole table, whose cost would grow with every person, grant and token stored. SQLite's
//! own planner is asked (EXPLAIN QUERY PLAN) about each statement the rules really ran.

use std::sync::{Arc, Mutex};

use latchkey::auth::session;
use latchkey::config::{Issuer, SessionPolicy};
use latchkey::keys::Signer;
use latchkey::names::{ClientId, Username};
use latchkey::oidc::authorize::{self, Outcome, Progress};
use latchkey::oidc::params::Params;
use latchkey::oidc::token::{self, GrantType};
use latchkey::oidc::userinfo;
use latchkey::store::audit::Origin;
use latchkey::store::db::Db;
use latchkey::store::{DATABASE_FILE, Store, clients, users};
use rusqlite::trace::{TraceEvent, TraceEventCodes};

use crate::helpers::{pkce, query};

const ISSUER: &str = "http://localhost:8080";
const REDIRECT: &str = "https://app.example.com/cb";
const NOW: i64 = 1_800_000_000;

/// What may be read whole: the few signing keys (one per algorithm, and the retired ones
/// still published), and a constant row.
const SMALL: [&str; 2] = ["SCAN signing_keys", "SCAN CONSTANT ROW"];

/// A data dir with alice in the group `staff`, and a public client `app` for that group only.
fn world() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .env_remove("LATCHKEY_CONFIG")
            .env_remove("LATCHKEY_DATABASE_URL")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
    };
    cli(&["user", "add", "alice"]);
    cli(&["group", "add", "staff"]);
    cli(&["group", "add-member", "staff", "alice"]);
    cli(&[
        "client",
        "add",
        "app",
        "--public",
        "--redirect-uri",
        REDIRECT,
        "--allowed-group",
        "staff",
    ]);
    dir
}

/// The code flow with a refresh, as the server's rules run it, on `db`.
fn sign_in_and_refresh(db: &Db) {
    let issuer = Issuer::parse(ISSUER).unwrap();
    let origin = Origin::default();
    let policy = SessionPolicy::default();
    latchkey::keys::ensure_active(db, NOW).unwrap();
    let alice = users::by_username(db, &Username::parse("alice").unwrap())
        .unwrap()
        .unwrap();
    let cookie = session::start(db, &policy, &alice, &["hwk"], &origin, NOW)
        .unwrap()
        .secret;
    let signed_in = session::current(db, &cookie, &policy, NOW).unwrap();
    let pkce = pkce();
    let params = Params::parse(&format!(
        "response_type=code&client_id=app&redirect_uri={REDIRECT}&scope=openid+groups+offline_access\
         &code_challenge={}&code_challenge_method=S256",
        pkce.challenge
    ))
    .unwrap();
    let request = authorize::validate(db, &issuer, &params).unwrap();
    let outcome = authorize::decide(
        db,
        &issuer,
        &request,
        signed_in.as_ref(),
        Progress::NEW,
        &origin,
        NOW,
    )
    .unwrap();
    let Outcome::Redirect(to) = outcome else {
        panic!("alice gets a code");
    };
    let code = query(&to).remove("code").unwrap();
    let client = clients::by_id(db, &ClientId::parse("app").unwrap())
        .unwrap()
        .unwrap();
    let exchange = |form: String| {
        let params = Params::parse(&form).unwrap();
        let grant_type = GrantType::of(&params).unwrap();
        token::redeem(db, &issuer, &client, grant_type, &params, &origin, NOW)
            .unwrap()
            .issued()
            .unwrap()
            .signed(|alg, claims| Signer::default().sign_jwt(db, alg, claims))
            .unwrap()
    };
    let tokens = exchange(format!(
        "grant_type=authorization_code&code={code}&redirect_uri={REDIRECT}&code_verifier={}",
        pkce.verifier
    ));
    userinfo::claims_for(db, &tokens.access_token, NOW).unwrap();
    let refresh = tokens
        .refresh_token
        .expect("offline_access gives a refresh token");
    exchange(format!("grant_type=refresh_token&refresh_token={refresh}"));
}

#[test]
fn no_statement_of_a_sign_in_reads_a_whole_table() {
    let dir = world();
    let mut conn = rusqlite::Connection::open(dir.path().join(DATABASE_FILE)).unwrap();
    let ran = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = ran.clone();
    conn.trace_v2(
        TraceEventCodes::SQLITE_TRACE_STMT,
        Some(move |event: TraceEvent<'_>| {
            if let TraceEvent::Stmt(statement, _) = event {
                seen.lock().unwrap().push(statement.sql().into_owned());
            }
        }),
    )
    .unwrap();
    sign_in_and_refresh(&Db::Sqlite(&conn));
    let ran = ran.lock().unwrap().clone();
    assert!(ran.len() > 20, "the flow's statements were seen: {ran:?}");
    let mut scans = Vec::new();
    for sql in ran {
        let mut plan = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        // Parameters left unbound read as NULL: the plan does not depend on them.
        let mut steps = plan.raw_query();
        while let Some(step) = steps.next().unwrap() {
            let step: String = step.get(3).unwrap();
            if step.starts_with("SCAN ") && !SMALL.iter().any(|small| step == *small) {
                scans.push(format!("{step} in: {sql}"));
            }
        }
    }
    assert!(scans.is_empty(), "{scans:#?}");
}
