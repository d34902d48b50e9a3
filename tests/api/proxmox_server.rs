//! A Proxmox API test server: the parts of Proxmox Backup Server (PBS) and Proxmox VE (PVE)
//! that Latchkey's sync uses (users, PVE groups, ACL, roles, OpenID realms), served over https
//! with a certificate generated at start, with API tokens checked as each product checks them.
//!
//! It follows the products' sources, not memory or guides:
//! - PBS 3.2.4 (proxmox-backup, "bump version to 3.2.4-1"): src/api2/access/{user,acl,role}.rs,
//!   src/api2/config/access/openid.rs, src/auth.rs (lookup_authenticator),
//!   pbs-config/src/{acl,domains}.rs, pbs-api-types/src/{acl,user,openid,lib}.rs.
//! - The proxmox crates PBS is built on (proxmox/proxmox, 2026): proxmox-rest-server 1.0.6
//!   src/{rest,formatter}.rs (content types, error bodies, 401/403/404),
//!   proxmox-auth-api src/{api/mod,types}.rs (the `PBSAPIToken` header, user and token ids),
//!   proxmox-router src/permission.rs, proxmox-schema src/{schema,api_types}.rs (parameter
//!   parsing and its error texts).
//! - PVE 9 (pve-access-control 9.1.1): src/PVE/API2/{User,Group,ACL,Role,Domains}.pm,
//!   src/PVE/{AccessControl,RPCEnvironment}.pm, src/PVE/Auth/{Plugin,OpenId}.pm;
//!   pve-http-server 6.0.5 src/PVE/APIServer/{AnyEvent,Formatter,Formatter/Standard}.pm;
//!   pve-manager 9 PVE/HTTPServer.pm (auth_handler, rest_handler); pve-common 9
//!   src/PVE/{JSONSchema,SectionConfig,Exception,ParseUtils}.pm.
//!
//! What it leaves out on purpose: the 3 s delay both products add to a 401 (tests stay fast),
//! tickets and cookies (only API tokens), config digests (accepted, not compared), passwords,
//! LDAP/AD realms, and the reason phrases PVE puts in status lines other than its 401.
//!
//! Each server runs in a thread of its own with its own actix System (as `spawn_app` does), so
//! it works the same under `#[tokio::test]` and in plain `#[test]`s; every test control is a
//! plain, thread-safe method.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// Which product the server plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Pbs,
    Pve,
}

/// How the server's certificate is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Certificate {
    /// A self-signed leaf, as Proxmox installs by default: clients pin its fingerprint.
    SelfSigned,
    /// A leaf signed by a CA generated with it: clients trust the CA's PEM.
    SignedByCa,
}

/// The failure switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// Every request gets a 500 in the product's error shape.
    Fail500,
    /// Every request is held until the mode changes, the server stops, or 60 s pass.
    Hang,
}

/// What an API token may do: its effective privileges (for PBS, already the intersection of
/// the token's and its owner's ACLs, as privilege separation makes them).
#[derive(Clone, Debug)]
pub enum Rights {
    /// `Admin` (PBS) or `Administrator` (PVE) on `/`.
    Full,
    /// `Audit` (PBS) or `PVEAuditor` (PVE) on `/`.
    ReadOnly,
    /// No ACL entry at all.
    Nothing,
    /// These (path, role) ACL entries, all propagating.
    Roles(Vec<(String, String)>),
}

/// A user as the server keeps it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct User {
    pub userid: String,
    /// PBS keeps `None` for "enabled" after an update with `enable=true`; PVE always has a value.
    pub enable: Option<bool>,
    pub expire: Option<i64>,
    pub firstname: Option<String>,
    pub lastname: Option<String>,
    pub email: Option<String>,
    pub comment: Option<String>,
    /// PVE group memberships (sorted); always empty on PBS.
    pub groups: Vec<String>,
}

impl User {
    pub fn new(userid: &str) -> User {
        User {
            userid: userid.to_string(),
            ..User::default()
        }
    }

    /// Enabled as the products read it: absent means enabled.
    pub fn enabled(&self) -> bool {
        self.enable.unwrap_or(true)
    }
}

/// What an ACL entry is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UgKind {
    User,
    Group,
    Token,
}

/// One ACL entry: `role` for `ugid` at `path`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AclEntry {
    pub path: String,
    pub kind: UgKind,
    pub ugid: String,
    pub role: String,
    pub propagate: bool,
}

impl AclEntry {
    /// A propagating entry for a user.
    pub fn user(path: &str, userid: &str, role: &str) -> AclEntry {
        AclEntry::new(path, UgKind::User, userid, role)
    }

    /// A propagating entry for a (PVE) group.
    pub fn group(path: &str, groupid: &str, role: &str) -> AclEntry {
        AclEntry::new(path, UgKind::Group, groupid, role)
    }

    fn new(path: &str, kind: UgKind, ugid: &str, role: &str) -> AclEntry {
        AclEntry {
            path: path.to_string(),
            kind,
            ugid: ugid.to_string(),
            role: role.to_string(),
            propagate: true,
        }
    }

    fn same_grant(&self, other: &AclEntry) -> bool {
        self.path == other.path
            && self.kind == other.kind
            && self.ugid == other.ugid
            && self.role == other.role
    }
}

/// A PVE group with its members.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Group {
    pub groupid: String,
    pub comment: Option<String>,
    pub members: Vec<String>,
}

/// An authentication realm. `options` hold the realm's settings as the product returns them
/// (kebab-case keys; PBS booleans are JSON booleans, PVE booleans are 0/1).
#[derive(Clone, Debug, PartialEq)]
pub struct Realm {
    pub realm: String,
    /// `openid`, or the built-in `pam`, `pbs`, `pve`.
    pub kind: String,
    pub options: Map<String, Value>,
}

impl Realm {
    /// An OpenID realm with the two options both products require.
    pub fn openid(realm: &str, issuer_url: &str, client_id: &str) -> Realm {
        let mut options = Map::new();
        options.insert("issuer-url".into(), issuer_url.into());
        options.insert("client-id".into(), client_id.into());
        Realm {
            realm: realm.to_string(),
            kind: "openid".to_string(),
            options,
        }
    }
}

/// One request the server received.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// The path as sent, e.g. `/api2/json/access/users/alice%40latchkey`.
    pub path: String,
    pub query: String,
    pub body: String,
    /// The API token that authenticated the request, if one did.
    pub token: Option<String>,
    /// The status answered, once answered.
    pub status: Option<u16>,
}

/// The test server. Stops when dropped.
pub struct ProxmoxServer {
    flavor: Flavor,
    port: u16,
    shared: Arc<Shared>,
    tls: Tls,
    running: Mutex<Option<Running>>,
}

impl ProxmoxServer {
    /// Starts a server with a self-signed certificate.
    pub fn start(flavor: Flavor) -> ProxmoxServer {
        ProxmoxServer::start_with(flavor, Certificate::SelfSigned)
    }

    pub fn start_with(flavor: Flavor, certificate: Certificate) -> ProxmoxServer {
        let tls = Tls::generate(certificate);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let shared = Arc::new(Shared {
            flavor,
            state: Mutex::new(State::new(flavor)),
            stopping: AtomicBool::new(false),
        });
        let running = Running::spawn(Arc::clone(&shared), tls.config.clone(), listener);
        ProxmoxServer {
            flavor,
            port,
            shared,
            tls,
            running: Mutex::new(Some(running)),
        }
    }

    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `https://127.0.0.1:PORT`, the API URL a target takes.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The SHA-256 fingerprint of the server's certificate as Proxmox shows it:
    /// upper-case hex bytes joined by `:`.
    pub fn fingerprint(&self) -> String {
        self.tls.fingerprint.clone()
    }

    /// The PEM a client trusts: the CA's with [`Certificate::SignedByCa`], the self-signed leaf
    /// itself with [`Certificate::SelfSigned`].
    pub fn ca_pem(&self) -> String {
        self.tls.ca_pem.clone()
    }

    /// A plain client that trusts this server (through [`ProxmoxServer::ca_pem`]).
    pub fn client(&self) -> reqwest::Client {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.tls.ca_der.clone()).expect("trust anchor");
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        reqwest::Client::builder()
            .use_preconfigured_tls(config)
            .build()
            .expect("client")
    }

    /// Makes an API token known, creating its owner user (enabled) when missing, as an
    /// administrator would before `generate-token`.
    pub fn add_token(&self, token_id: &str, secret: &str, rights: Rights) {
        let (owner, _) = token_id
            .split_once('!')
            .expect("a token id is USER@REALM!NAME");
        let mut state = self.state();
        if !state.users.contains_key(owner) {
            let user = state.normalized(User::new(owner));
            state.users.insert(owner.to_string(), user);
        }
        let token = Token {
            secret: secret.to_string(),
            rights,
        };
        state.tokens.insert(token_id.to_string(), Arc::new(token));
    }

    pub fn users(&self) -> Vec<User> {
        let state = self.state();
        state.users.keys().map(|id| state.user(id)).collect()
    }

    pub fn user(&self, userid: &str) -> Option<User> {
        let state = self.state();
        state.users.contains_key(userid).then(|| state.user(userid))
    }

    pub fn acl(&self) -> Vec<AclEntry> {
        let mut entries = self.state().acl.clone();
        entries.sort();
        entries
    }

    pub fn groups(&self) -> Vec<Group> {
        let state = self.state();
        state.groups.keys().map(|id| state.group(id)).collect()
    }

    /// Every realm, the built-in ones included.
    pub fn realms(&self) -> Vec<Realm> {
        self.state().realms.values().cloned().collect()
    }

    pub fn realm(&self, realm: &str) -> Option<Realm> {
        self.state().realms.get(realm).cloned()
    }

    /// Creates or replaces a user directly; on PVE `user.groups` become its memberships (the
    /// groups must exist).
    pub fn put_user(&self, user: User) {
        let mut state = self.state();
        for groupid in &user.groups {
            let group = state.groups.get_mut(groupid);
            let group = group.unwrap_or_else(|| panic!("no group {groupid} on the server"));
            group.members.insert(user.userid.clone());
        }
        for (groupid, group) in state.groups.iter_mut() {
            if !user.groups.contains(groupid) {
                group.members.remove(&user.userid);
            }
        }
        let user = state.normalized(user);
        state.users.insert(user.userid.clone(), user);
    }

    /// Deletes a user as the product's API does: PBS leaves its ACL entries behind, PVE removes
    /// them and its group memberships.
    pub fn remove_user(&self, userid: &str) {
        self.state().delete_user(userid);
    }

    /// Adds an ACL entry directly (replacing the same grant's propagate flag).
    pub fn add_acl(&self, entry: AclEntry) {
        self.state().grant(entry);
    }

    /// Removes the entry with the same path, kind, ugid and role.
    pub fn remove_acl(&self, entry: &AclEntry) {
        self.state().acl.retain(|e| !e.same_grant(entry));
    }

    /// Creates or replaces a PVE group with exactly these members (who must exist).
    pub fn put_group(&self, group: Group) {
        let mut state = self.state();
        for member in &group.members {
            assert!(state.users.contains_key(member), "no user {member}");
        }
        let record = GroupRecord {
            comment: group.comment,
            members: group.members.into_iter().collect(),
        };
        state.groups.insert(group.groupid, record);
    }

    pub fn remove_group(&self, groupid: &str) {
        let mut state = self.state();
        state.groups.remove(groupid);
        state
            .acl
            .retain(|e| !(e.kind == UgKind::Group && e.ugid == groupid));
    }

    /// Creates or replaces a realm directly.
    pub fn add_realm(&self, realm: Realm) {
        self.state().realms.insert(realm.realm.clone(), realm);
    }

    pub fn remove_realm(&self, realm: &str) {
        self.state().realms.remove(realm);
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state().mode = mode;
    }

    /// Every request received since the start (or the last [`ProxmoxServer::clear_requests`]).
    pub fn requests(&self) -> Vec<Request> {
        self.state().log.clone()
    }

    pub fn clear_requests(&self) {
        self.state().log.clear();
    }

    /// Stops serving (connections are then refused); the state is kept for [`restart`].
    ///
    /// [`restart`]: ProxmoxServer::restart
    pub fn stop(&self) {
        let running = self.running.lock().unwrap().take();
        if let Some(running) = running {
            self.shared.stopping.store(true, Ordering::SeqCst);
            running.stop();
            self.shared.stopping.store(false, Ordering::SeqCst);
        }
    }

    /// Serves again on the same port with the same certificate and state.
    pub fn restart(&self) {
        self.stop();
        let listener = TcpListener::bind(("127.0.0.1", self.port)).expect("bind again");
        let running = Running::spawn(Arc::clone(&self.shared), self.tls.config.clone(), listener);
        *self.running.lock().unwrap() = Some(running);
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap()
    }
}

impl Drop for ProxmoxServer {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------------------------
// Serving

struct Running {
    handle: actix_web::dev::ServerHandle,
    thread: std::thread::JoinHandle<()>,
}

impl Running {
    fn spawn(shared: Arc<Shared>, config: rustls::ServerConfig, listener: TcpListener) -> Running {
        let (sender, receiver) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let data = web::Data::from(shared);
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .app_data(web::PayloadConfig::new(1 << 20))
                        .default_service(web::to(serve))
                })
                .workers(1)
                .listen_rustls_0_23(listener, config)
                .expect("listen")
                .run();
                sender.send(server.handle()).expect("send handle");
                server.await.expect("serve");
            })
        });
        let handle = receiver.recv().expect("server handle");
        Running { handle, thread }
    }

    fn stop(self) {
        // The stop command is sent when `stop` is called; its future only waits for the end.
        drop(self.handle.stop(false));
        self.thread.join().expect("server thread");
    }
}

struct Shared {
    flavor: Flavor,
    state: Mutex<State>,
    stopping: AtomicBool,
}

const HANG_LIMIT: Duration = Duration::from_secs(60);

async fn serve(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let call = Call::new(&req, &body);
    let index = shared.arrive(&call);
    hold_while_hanging(&shared).await;
    let (reply, token) = {
        let mut state = shared.state.lock().unwrap();
        if state.mode == Mode::Fail500 {
            let failure = Fail::Status(500, "simulated failure".into());
            (Err(failure), None)
        } else {
            state.answer(&call)
        }
    };
    let response = render(shared.flavor, reply);
    shared.finish(index, response.status().as_u16(), token);
    response
}

async fn hold_while_hanging(shared: &Shared) {
    let start = Instant::now();
    while shared.state.lock().unwrap().mode == Mode::Hang
        && !shared.stopping.load(Ordering::SeqCst)
        && start.elapsed() < HANG_LIMIT
    {
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Shared {
    fn arrive(&self, call: &Call) -> usize {
        let mut state = self.state.lock().unwrap();
        state.log.push(Request {
            method: call.method.clone(),
            path: call.raw_path.clone(),
            query: call.query.clone(),
            body: call.body.clone(),
            token: None,
            status: None,
        });
        state.log.len() - 1
    }

    fn finish(&self, index: usize, status: u16, token: Option<String>) {
        let mut state = self.state.lock().unwrap();
        // The log may have been cleared meanwhile.
        if let Some(entry) = state.log.get_mut(index) {
            entry.status = Some(status);
            entry.token = token;
        }
    }
}

/// One request, as the handlers see it.
struct Call {
    method: String,
    raw_path: String,
    /// The decoded components after `/api2/json`, or `None` outside the JSON API.
    segments: Option<Vec<String>>,
    query: String,
    content_type: Option<String>,
    authorization: Option<String>,
    body: String,
}

impl Call {
    fn new(req: &HttpRequest, body: &[u8]) -> Call {
        let header = |name| {
            req.headers()
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        let raw_path = req.path().to_string();
        let segments = raw_path.strip_prefix("/api2/json").map(|rest| {
            rest.split('/')
                .filter(|s| !s.is_empty())
                .map(percent_decode)
                .collect()
        });
        Call {
            method: req.method().as_str().to_string(),
            raw_path,
            segments,
            query: req.query_string().to_string(),
            content_type: header("content-type"),
            authorization: header("authorization"),
            body: String::from_utf8_lossy(body).into_owned(),
        }
    }

    fn query_pairs(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(self.query.as_bytes())
            .into_owned()
            .filter(|(k, _)| k != "_dc")
            .collect()
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Why a request failed, before it is put in the product's shape.
#[derive(Debug)]
enum Fail {
    /// 401; for PVE the status line's reason ("No ticket", "Authentication failed!").
    Unauthorized(&'static str),
    /// Any status with a message (PBS plain text; PVE `{"data":null,"message":…}`).
    Status(u16, String),
    /// Parameter errors (name, message): PBS 400 text, PVE 400 with `errors`.
    Params(Vec<(String, String)>),
    /// A status with an empty body and a reason phrase (PVE's HTTP-level refusals).
    Bare(u16, &'static str),
}

type Reply = Result<Value, Fail>;

fn render(flavor: Flavor, reply: Reply) -> HttpResponse {
    match flavor {
        Flavor::Pbs => render_pbs(reply),
        Flavor::Pve => render_pve(reply),
    }
}

const JSON_TYPE: &str = "application/json;charset=UTF-8";

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).expect("status code")
}

fn render_pbs(reply: Reply) -> HttpResponse {
    // proxmox-rest-server sends error text with the JSON content type.
    let text = |code: u16, message: String| {
        HttpResponse::build(status(code))
            .content_type(JSON_TYPE)
            .body(message)
    };
    match reply {
        Ok(data) => text(200, json!({ "data": data }).to_string()),
        Err(Fail::Unauthorized(_)) => {
            HttpResponse::build(StatusCode::UNAUTHORIZED).body("authentication failed")
        }
        Err(Fail::Status(code, message)) => text(code, message),
        Err(Fail::Params(errors)) => text(400, pbs_parameter_error(&errors)),
        Err(Fail::Bare(code, reason)) => text(code, reason.to_string()),
    }
}

/// proxmox-schema's `ParameterError` display.
fn pbs_parameter_error(errors: &[(String, String)]) -> String {
    match errors {
        [(name, message)] => format!("parameter verification failed - '{name}': {message}"),
        _ => {
            let lines: String = errors
                .iter()
                .map(|(name, message)| format!("- '{name}': {message}\n"))
                .collect();
            format!("parameter verification failed:\n{lines}")
                .trim()
                .to_string()
        }
    }
}

fn render_pve(reply: Reply) -> HttpResponse {
    let body = |code: u16, value: Value| {
        HttpResponse::build(status(code))
            .content_type(JSON_TYPE)
            .body(value.to_string())
    };
    let bare = |code: u16, reason: &'static str| {
        let mut response = HttpResponse::build(status(code)).finish();
        response.head_mut().reason = Some(reason);
        response
    };
    match reply {
        Ok(data) => body(200, json!({ "data": data })),
        Err(Fail::Unauthorized(reason)) => bare(401, reason),
        Err(Fail::Status(code, message)) => body(code, json!({ "data": null, "message": message })),
        Err(Fail::Params(errors)) => {
            let errors: Map<String, Value> = errors
                .into_iter()
                .map(|(name, message)| (name, Value::String(message)))
                .collect();
            let message = "Parameter verification failed.\n";
            body(
                400,
                json!({ "data": null, "message": message, "errors": errors }),
            )
        }
        Err(Fail::Bare(code, reason)) => bare(code, reason),
    }
}

// ---------------------------------------------------------------------------------------------
// TLS

struct Tls {
    config: rustls::ServerConfig,
    fingerprint: String,
    ca_pem: String,
    ca_der: CertificateDer<'static>,
}

impl Tls {
    fn generate(certificate: Certificate) -> Tls {
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
        let leaf_params = rcgen::CertificateParams::new(names).expect("leaf params");
        let (leaf, ca_pem, ca_der) = match certificate {
            Certificate::SelfSigned => {
                let leaf = leaf_params.self_signed(&leaf_key).expect("self-signed");
                let (pem, der) = (leaf.pem(), leaf.der().clone());
                (leaf, pem, der)
            }
            Certificate::SignedByCa => {
                let ca_key = rcgen::KeyPair::generate().expect("CA key");
                let mut ca_params =
                    rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
                ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
                ca_params
                    .distinguished_name
                    .push(rcgen::DnType::CommonName, "Proxmox test CA");
                let ca = ca_params.self_signed(&ca_key).expect("CA");
                let leaf = leaf_params
                    .signed_by(&leaf_key, &ca, &ca_key)
                    .expect("signed leaf");
                (leaf, ca.pem(), ca.der().clone())
            }
        };
        let der = leaf.der().clone();
        let fingerprint = Sha256::digest(&der)
            .iter()
            .map(|byte| format!("{byte:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        let key = PrivatePkcs8KeyDer::from(leaf_key.serialize_der());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![der], key.into())
        .expect("server certificate");
        Tls {
            config,
            fingerprint,
            ca_pem,
            ca_der,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// State

struct Token {
    secret: String,
    rights: Rights,
}

#[derive(Clone, Default)]
struct GroupRecord {
    comment: Option<String>,
    members: BTreeSet<String>,
}

#[derive(Clone)]
struct State {
    flavor: Flavor,
    users: BTreeMap<String, User>,
    groups: BTreeMap<String, GroupRecord>,
    acl: Vec<AclEntry>,
    realms: BTreeMap<String, Realm>,
    tokens: BTreeMap<String, Arc<Token>>,
    mode: Mode,
    log: Vec<Request>,
}

impl State {
    fn new(flavor: Flavor) -> State {
        let builtin = |realm: &str, comment: &str| {
            let mut options = Map::new();
            options.insert("comment".into(), comment.into());
            let realm = Realm {
                realm: realm.into(),
                kind: realm.into(),
                options,
            };
            (realm.realm.clone(), realm)
        };
        let realms = match flavor {
            Flavor::Pbs => [
                builtin("pam", "Linux PAM standard authentication"),
                builtin("pbs", "Proxmox Backup authentication server"),
            ],
            Flavor::Pve => [
                builtin("pam", "Linux PAM standard authentication"),
                builtin("pve", "Proxmox VE authentication server"),
            ],
        };
        let mut state = State {
            flavor,
            users: BTreeMap::new(),
            groups: BTreeMap::new(),
            acl: Vec::new(),
            realms: realms.into_iter().collect(),
            tokens: BTreeMap::new(),
            mode: Mode::Normal,
            log: Vec::new(),
        };
        let root = state.normalized(User::new("root@pam"));
        state.users.insert(root.userid.clone(), root);
        state
    }

    /// PVE keeps `enable` and `expire` always; PBS keeps what it was given.
    fn normalized(&self, mut user: User) -> User {
        if self.flavor == Flavor::Pve {
            user.enable = Some(user.enable.unwrap_or(true));
            user.expire = Some(user.expire.unwrap_or(0));
        }
        user.groups.clear();
        user
    }

    fn user(&self, userid: &str) -> User {
        let mut user = self.users[userid].clone();
        user.groups = self.groups_of(userid);
        user
    }

    fn groups_of(&self, userid: &str) -> Vec<String> {
        self.groups
            .iter()
            .filter(|(_, g)| g.members.contains(userid))
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn group(&self, groupid: &str) -> Group {
        let record = &self.groups[groupid];
        Group {
            groupid: groupid.to_string(),
            comment: record.comment.clone(),
            members: record.members.iter().cloned().collect(),
        }
    }

    fn grant(&mut self, entry: AclEntry) {
        self.acl.retain(|e| !e.same_grant(&entry));
        self.acl.push(entry);
    }

    fn delete_user(&mut self, userid: &str) {
        self.users.remove(userid);
        if self.flavor == Flavor::Pve {
            for group in self.groups.values_mut() {
                group.members.remove(userid);
            }
            self.acl
                .retain(|e| !(e.kind == UgKind::User && e.ugid == userid));
            self.tokens
                .retain(|id, _| id.split_once('!').map(|(u, _)| u) != Some(userid));
        }
    }

    /// Authenticates, routes and answers; returns the authenticated token too.
    fn answer(&mut self, call: &Call) -> (Reply, Option<String>) {
        match self.flavor {
            Flavor::Pbs => match self.authenticate_pbs(call) {
                Ok(token) => (pbs::route(self, &token, call), Some(token)),
                Err(fail) => (Err(fail), None),
            },
            Flavor::Pve => pve::answer(self, call),
        }
    }

    fn check_token(&self, token_id: &str, secret: &str) -> bool {
        let Some(token) = self.tokens.get(token_id) else {
            return false;
        };
        let owner = token_id.split_once('!').map(|(user, _)| user).unwrap_or("");
        let active = self.users.get(owner).is_some_and(|user| {
            let expire = user.expire.unwrap_or(0);
            user.enabled() && (expire == 0 || expire > now())
        });
        active && token.secret == secret
    }

    /// proxmox-auth-api: `PBSAPIToken` then `=` or a space, then `ID:SECRET` (percent-decoded).
    fn authenticate_pbs(&self, call: &Call) -> Result<String, Fail> {
        let refused = Fail::Unauthorized("authentication failed");
        let header = call.authorization.as_deref().unwrap_or("");
        let Some(rest) = header.strip_prefix("PBSAPIToken") else {
            return Err(refused);
        };
        let Some(value) = rest.strip_prefix('=').or_else(|| rest.strip_prefix(' ')) else {
            return Err(refused);
        };
        let Some((token_id, secret)) = value.split_once(':') else {
            return Err(refused);
        };
        if !pbs_is_token_id(token_id) || !self.check_token(token_id, &percent_decode(secret)) {
            return Err(refused);
        }
        Ok(token_id.to_string())
    }

    /// pve-http-server: `PVEAPIToken` (at the start or after a space), `=` or a space, the value
    /// up to `;`, URI-unescaped; then PVE::AccessControl::verify_token splits at the last `=`.
    fn authenticate_pve(&self, call: &Call) -> Result<String, Fail> {
        let header = call.authorization.as_deref().unwrap_or("");
        let Some(value) = pve_token_value(header) else {
            return Err(Fail::Unauthorized("No ticket"));
        };
        let refused = Fail::Unauthorized("Authentication failed!");
        let Some((token_id, secret)) = value.rsplit_once('=') else {
            return Err(refused);
        };
        if !pve_is_token_id(token_id) || !self.check_token(token_id, secret) {
            return Err(refused);
        }
        Ok(token_id.to_string())
    }

    /// The privileges `token` has on `path`: the roles of the deepest of its ACL paths that
    /// is `path` or above it (all propagate), as both products resolve them.
    fn privileges(&self, token: &str, path: &str) -> BTreeSet<String> {
        let Some(token) = self.tokens.get(token) else {
            return BTreeSet::new();
        };
        let entries = match &token.rights {
            Rights::Full => vec![("/".to_string(), self.admin_role().to_string())],
            Rights::ReadOnly => vec![("/".to_string(), self.audit_role().to_string())],
            Rights::Nothing => Vec::new(),
            Rights::Roles(roles) => roles.clone(),
        };
        let target = components(path);
        let covering = |p: &String| target.starts_with(&components(p));
        let Some(depth) = entries
            .iter()
            .filter(|(p, _)| covering(p))
            .map(|(p, _)| components(p).len())
            .max()
        else {
            return BTreeSet::new();
        };
        let roles = self.roles();
        entries
            .iter()
            .filter(|(p, _)| covering(p) && components(p).len() == depth)
            .filter_map(|(_, role)| roles.get(role))
            .flat_map(|privs| privs.iter().cloned())
            .collect()
    }

    fn has(&self, token: &str, path: &str, privilege: &str) -> bool {
        self.privileges(token, path).contains(privilege)
    }

    fn has_any(&self, token: &str, path: &str, privileges: &[&str]) -> bool {
        privileges.iter().any(|p| self.has(token, path, p))
    }

    fn admin_role(&self) -> &'static str {
        match self.flavor {
            Flavor::Pbs => "Admin",
            Flavor::Pve => "Administrator",
        }
    }

    fn audit_role(&self) -> &'static str {
        match self.flavor {
            Flavor::Pbs => "Audit",
            Flavor::Pve => "PVEAuditor",
        }
    }

    /// Role id -> privileges, each product's built-in roles.
    fn roles(&self) -> BTreeMap<String, Vec<String>> {
        match self.flavor {
            Flavor::Pbs => pbs::ROLES
                .iter()
                .map(|(id, privs, _)| (id.to_string(), pbs::privileges_of(privs)))
                .collect(),
            Flavor::Pve => pve::roles(),
        }
    }
}

fn components(path: &str) -> Vec<&str> {
    path.split('/').filter(|c| !c.is_empty()).collect()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn pve_token_value(header: &str) -> Option<String> {
    const KEY: &str = "PVEAPIToken";
    let mut search = 0;
    while let Some(found) = header[search..].find(KEY) {
        let start = search + found;
        let after = start + KEY.len();
        let at_word = start == 0 || header[..start].ends_with(char::is_whitespace);
        let separated = matches!(header.as_bytes().get(after), Some(b'=') | Some(b' '));
        if at_word && separated {
            let value = &header[after + 1..];
            let value = value.split(';').next().unwrap_or("");
            return Some(percent_decode(value)).filter(|v| !v.is_empty());
        }
        search = after;
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Parameters: schemas and their parsing, as proxmox-schema (PBS) and PVE::JSONSchema do it.

#[derive(Clone, Debug)]
enum Val {
    Str(String),
    Bool(bool),
    Int(i64),
    List(Vec<String>),
}

#[derive(Default, Debug)]
struct Params(BTreeMap<String, Val>);

impl Params {
    fn str(&self, name: &str) -> Option<&str> {
        match self.0.get(name) {
            Some(Val::Str(s)) => Some(s),
            _ => None,
        }
    }

    fn string(&self, name: &str) -> Option<String> {
        self.str(name).map(str::to_string)
    }

    fn bool(&self, name: &str) -> Option<bool> {
        match self.0.get(name) {
            Some(Val::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    fn int(&self, name: &str) -> Option<i64> {
        match self.0.get(name) {
            Some(Val::Int(i)) => Some(*i),
            _ => None,
        }
    }

    fn list(&self, name: &str) -> Vec<String> {
        match self.0.get(name) {
            Some(Val::List(items)) => items.clone(),
            _ => Vec::new(),
        }
    }
}

type Check = fn(&str) -> Result<(), String>;

#[derive(Clone, Copy)]
struct Text {
    min: usize,
    max: usize,
    check: Check,
}

#[derive(Clone, Copy)]
enum Kind {
    Str(Text),
    Bool,
    Int {
        min: i64,
    },
    /// A PBS array of strings (repeated form keys, or a JSON array).
    Array(Text),
}

#[derive(Clone, Copy)]
struct Field {
    name: &'static str,
    kind: Kind,
    required: bool,
}

const fn opt(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        required: false,
    }
}

const fn req(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        required: true,
    }
}

const fn text(min: usize, max: usize, check: Check) -> Kind {
    Kind::Str(Text { min, max, check })
}

fn any_text(_: &str) -> Result<(), String> {
    Ok(())
}

fn find<'a>(fields: &'a [Field], name: &str) -> Option<&'a Field> {
    fields.iter().find(|f| f.name == name)
}

fn is_safe_id(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c))
}

/// PBS (proxmox-auth-api) user name part: `[^\s:/[:cntrl:]]+`.
fn pbs_is_user_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| !c.is_whitespace() && c != ':' && c != '/' && !c.is_control())
}

/// `PROXMOX_USER_ID_REGEX`: the user name may itself hold `@`; the realm is a safe id.
fn pbs_is_userid(s: &str) -> bool {
    (1..s.len()).any(|at| {
        s.as_bytes()[at] == b'@' && pbs_is_user_name(&s[..at]) && is_safe_id(&s[at + 1..])
    })
}

fn pbs_is_token_id(s: &str) -> bool {
    s.rsplit_once('!')
        .is_some_and(|(user, name)| pbs_is_userid(user) && is_safe_id(name))
}

/// PVE: `[^\s:/]+` `@` `[A-Za-z][A-Za-z0-9.\-_]+`, the last `@` splitting.
fn pve_split_userid(s: &str) -> Option<(&str, &str)> {
    let (name, realm) = s.rsplit_once('@')?;
    let name_ok = !name.is_empty()
        && name
            .chars()
            .all(|c| !c.is_whitespace() && c != ':' && c != '/');
    (name_ok && pve_is_realm(realm)).then_some((name, realm))
}

fn pve_is_realm(s: &str) -> bool {
    let mut chars = s.chars();
    s.len() >= 2
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c))
}

fn pve_is_token_id(s: &str) -> bool {
    s.rsplit_once('!')
        .is_some_and(|(user, name)| pve_split_userid(user).is_some() && pve_is_realm(name))
}

fn pve_is_group_or_role(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c))
}

/// PVE::ParseUtils::split_list.
fn split_list(text: &str) -> Vec<String> {
    if text.contains('\0') {
        return text.split('\0').map(str::to_string).collect();
    }
    text.split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Proxmox Backup Server

mod pbs {
    use super::*;

    /// pbs-api-types `PRIVILEGES`, in their order.
    const PRIVILEGES: [&str; 20] = [
        "Sys.Audit",
        "Sys.Modify",
        "Sys.PowerManagement",
        "Datastore.Audit",
        "Datastore.Allocate",
        "Datastore.Modify",
        "Datastore.Read",
        "Datastore.Verify",
        "Datastore.Backup",
        "Datastore.Prune",
        "Permissions.Modify",
        "Remote.Audit",
        "Remote.Modify",
        "Remote.Read",
        "Sys.Console",
        "Tape.Audit",
        "Tape.Modify",
        "Tape.Write",
        "Tape.Read",
        "Realm.Allocate",
    ];

    /// pbs-api-types `Role`: id, privileges, comment.
    pub(super) const ROLES: &[(&str, &[&str], &str)] = &[
        ("Admin", &PRIVILEGES, "Administrator"),
        ("Audit", &["Sys.Audit", "Datastore.Audit"], "Auditor"),
        ("NoAccess", &[], "Disable Access"),
        (
            "DatastoreAdmin",
            &[
                "Datastore.Audit",
                "Datastore.Modify",
                "Datastore.Read",
                "Datastore.Verify",
                "Datastore.Backup",
                "Datastore.Prune",
            ],
            "Datastore Administrator",
        ),
        (
            "DatastoreReader",
            &["Datastore.Audit", "Datastore.Verify", "Datastore.Read"],
            "Datastore Reader (inspect datastore content and do restores)",
        ),
        (
            "DatastoreBackup",
            &["Datastore.Backup"],
            "Datastore Backup (backup and restore owned backups)",
        ),
        (
            "DatastorePowerUser",
            &["Datastore.Prune", "Datastore.Backup"],
            "Datastore PowerUser (backup, restore and prune owned backup)",
        ),
        ("DatastoreAudit", &["Datastore.Audit"], "Datastore Auditor"),
        ("RemoteAudit", &["Remote.Audit"], "Remote Auditor"),
        (
            "RemoteAdmin",
            &["Remote.Audit", "Remote.Modify", "Remote.Read"],
            "Remote Administrator",
        ),
        (
            "RemoteSyncOperator",
            &["Remote.Audit", "Remote.Read"],
            "Syncronisation Opertator",
        ),
        ("TapeAudit", &["Tape.Audit"], "Tape Auditor"),
        (
            "TapeAdmin",
            &["Tape.Audit", "Tape.Modify", "Tape.Read", "Tape.Write"],
            "Tape Administrator",
        ),
        (
            "TapeOperator",
            &["Tape.Audit", "Tape.Read", "Tape.Write"],
            "Tape Operator",
        ),
        ("TapeReader", &["Tape.Audit", "Tape.Read"], "Tape Reader"),
    ];

    pub(super) fn privileges_of(privs: &[&str]) -> Vec<String> {
        PRIVILEGES
            .iter()
            .filter(|p| privs.contains(p))
            .map(|p| p.to_string())
            .collect()
    }

    fn single_line(s: &str) -> Result<(), String> {
        if s.chars().any(char::is_control) {
            return Err("value does not match the regex pattern".into());
        }
        Ok(())
    }

    fn pattern(ok: bool) -> Result<(), String> {
        if ok {
            Ok(())
        } else {
            Err("value does not match the regex pattern".into())
        }
    }

    fn userid(s: &str) -> Result<(), String> {
        pattern(pbs_is_userid(s))
    }

    fn authid(s: &str) -> Result<(), String> {
        pattern(pbs_is_userid(s) || pbs_is_token_id(s))
    }

    fn safe_id(s: &str) -> Result<(), String> {
        pattern(is_safe_id(s))
    }

    fn group_id(s: &str) -> Result<(), String> {
        pattern(pbs_is_user_name(s))
    }

    /// `ACL_PATH_REGEX`: `/` or one or more `/SAFE_ID`.
    fn acl_path(s: &str) -> Result<(), String> {
        let parts = s.strip_prefix('/').map(|rest| rest.split('/'));
        let ok = s == "/" || parts.is_some_and(|mut p| p.all(is_safe_id));
        pattern(ok)
    }

    fn digest(s: &str) -> Result<(), String> {
        pattern(s.len() == 64 && s.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')))
    }

    fn enumeration(s: &str, values: &[&str]) -> Result<(), String> {
        if values.contains(&s) {
            Ok(())
        } else {
            Err(format!("value '{s}' is not defined in the enumeration."))
        }
    }

    fn role(s: &str) -> Result<(), String> {
        let ids: Vec<&str> = ROLES.iter().map(|(id, _, _)| *id).collect();
        enumeration(s, &ids)
    }

    /// A property string list: items split at `,`, `;` or white space.
    fn list_of(s: &str, item: fn(&str) -> bool) -> Result<(), String> {
        let items = s.split(|c: char| c == ',' || c == ';' || c.is_whitespace());
        pattern(items.filter(|i| !i.is_empty()).all(item))
    }

    fn scopes(s: &str) -> Result<(), String> {
        list_of(s, is_safe_id)
    }

    /// `GENERIC_URI_REGEX` items: no control characters, spaces or `<>#"`.
    fn acr_values(s: &str) -> Result<(), String> {
        list_of(s, |i| {
            !i.chars().any(|c| c.is_control() || "<>#\"".contains(c))
        })
    }

    fn user_deletable(s: &str) -> Result<(), String> {
        enumeration(s, &["comment", "firstname", "lastname", "email"])
    }

    fn realm_deletable(s: &str) -> Result<(), String> {
        let values = [
            "client-key",
            "comment",
            "autocreate",
            "scopes",
            "prompt",
            "acr-values",
        ];
        enumeration(s, &values)
    }

    const USERID: Kind = text(3, 64, userid);
    const COMMENT: Kind = text(0, 128, single_line);
    const NAME: Kind = text(2, 64, single_line);
    const DIGEST: Kind = text(0, usize::MAX, digest);
    const REALM: Kind = text(2, 32, safe_id);
    const ANY: Kind = text(0, usize::MAX, any_text);

    const USER_FIELDS: &[Field] = &[
        req("userid", USERID),
        opt("comment", COMMENT),
        opt("enable", Kind::Bool),
        opt("expire", Kind::Int { min: 0 }),
        opt("firstname", NAME),
        opt("lastname", NAME),
        opt("email", NAME),
    ];

    const USER_UPDATE_FIELDS: &[Field] = &[
        req("userid", USERID),
        opt("comment", COMMENT),
        opt("enable", Kind::Bool),
        opt("expire", Kind::Int { min: 0 }),
        opt("firstname", NAME),
        opt("lastname", NAME),
        opt("email", NAME),
        opt(
            "delete",
            Kind::Array(Text {
                min: 0,
                max: usize::MAX,
                check: user_deletable,
            }),
        ),
        opt("digest", DIGEST),
    ];

    const REALM_FIELDS: &[Field] = &[
        req("realm", REALM),
        req("issuer-url", ANY),
        req("client-id", ANY),
        opt("scopes", text(0, usize::MAX, scopes)),
        opt("acr-values", text(0, usize::MAX, acr_values)),
        opt("prompt", text(0, usize::MAX, safe_id)),
        opt("client-key", ANY),
        opt("comment", COMMENT),
        opt("autocreate", Kind::Bool),
        opt("username-claim", text(1, 64, safe_id)),
    ];

    /// The updater: no `username-claim` (it cannot change), everything optional.
    const REALM_UPDATE_FIELDS: &[Field] = &[
        req("realm", REALM),
        opt("issuer-url", ANY),
        opt("client-id", ANY),
        opt("scopes", text(0, usize::MAX, scopes)),
        opt("acr-values", text(0, usize::MAX, acr_values)),
        opt("prompt", text(0, usize::MAX, safe_id)),
        opt("client-key", ANY),
        opt("comment", COMMENT),
        opt("autocreate", Kind::Bool),
        opt(
            "delete",
            Kind::Array(Text {
                min: 0,
                max: usize::MAX,
                check: realm_deletable,
            }),
        ),
        opt("digest", DIGEST),
    ];

    const ACL_READ_FIELDS: &[Field] = &[
        opt("path", text(1, 128, acl_path)),
        opt("exact", Kind::Bool),
    ];

    const PERMISSIONS_FIELDS: &[Field] = &[
        opt("auth-id", text(3, 64, authid)),
        opt("path", text(1, 128, acl_path)),
    ];

    const ACL_UPDATE_FIELDS: &[Field] = &[
        req("path", text(1, 128, acl_path)),
        req("role", text(0, usize::MAX, role)),
        opt("propagate", Kind::Bool),
        opt("auth-id", text(3, 64, authid)),
        opt("group", text(3, 64, group_id)),
        opt("delete", Kind::Bool),
        opt("digest", DIGEST),
    ];

    const FORBIDDEN: &str = "permission check failed";

    fn forbidden() -> Fail {
        Fail::Status(403, FORBIDDEN.into())
    }

    fn bad(message: String) -> Fail {
        Fail::Status(400, message)
    }

    /// proxmox-rest-server: auth first (done), then the route, then the permission, then the
    /// parameters, then the handler.
    pub(super) fn route(state: &mut State, token: &str, call: &Call) -> Reply {
        let not_found = || Fail::Status(404, format!("Path '{}' not found.", call.raw_path));
        let Some(segments) = &call.segments else {
            return Err(not_found());
        };
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let method = call.method.as_str();
        match (method, segments.as_slice()) {
            ("GET", ["access", "users"]) => list_users(state, token, call),
            ("POST", ["access", "users"]) => create_user(state, token, call),
            ("GET", ["access", "users", id]) => read_user(state, token, call, id),
            ("PUT", ["access", "users", id]) => update_user(state, token, call, id),
            ("DELETE", ["access", "users", id]) => delete_user(state, token, call, id),
            ("GET", ["access", "acl"]) => read_acl(state, token, call),
            ("PUT", ["access", "acl"]) => update_acl(state, token, call),
            ("GET", ["access", "roles"]) => Ok(list_roles()),
            ("GET", ["access", "permissions"]) => list_permissions(state, token, call),
            ("GET", ["config", "access", "openid"]) => list_realms(state, token, call),
            ("POST", ["config", "access", "openid"]) => create_realm(state, token, call),
            ("GET", ["config", "access", "openid", realm]) => read_realm(state, token, call, realm),
            ("PUT", ["config", "access", "openid", realm]) => {
                update_realm(state, token, call, realm)
            }
            ("DELETE", ["config", "access", "openid", realm]) => {
                delete_realm(state, token, call, realm)
            }
            _ => Err(not_found()),
        }
    }

    /// `Permission::Privilege(path, privilege, false)`.
    fn require(state: &State, token: &str, path: &str, privilege: &str) -> Result<(), Fail> {
        if state.has(token, path, privilege) {
            Ok(())
        } else {
            Err(forbidden())
        }
    }

    fn user_json(user: &User) -> Value {
        let mut out = Map::new();
        out.insert("userid".into(), user.userid.clone().into());
        let mut put = |key: &str, value: Option<Value>| {
            if let Some(value) = value {
                out.insert(key.into(), value);
            }
        };
        put("comment", user.comment.clone().map(Value::from));
        put("enable", user.enable.map(Value::from));
        put("expire", user.expire.map(Value::from));
        put("firstname", user.firstname.clone().map(Value::from));
        put("lastname", user.lastname.clone().map(Value::from));
        put("email", user.email.clone().map(Value::from));
        Value::Object(out)
    }

    fn list_users(state: &mut State, token: &str, call: &Call) -> Reply {
        let fields = [opt("include_tokens", Kind::Bool)];
        let params = parse(call, &fields, &[])?;
        let all = state.has(token, "/access/users", "Sys.Audit");
        let owner = token.split_once('!').map(|(user, _)| user).unwrap_or("");
        let with_tokens = params.bool("include_tokens").unwrap_or(false);
        let list = state
            .users
            .values()
            .filter(|user| all || user.userid == owner)
            .map(|user| {
                let mut json = user_json(user);
                if with_tokens {
                    add_tokens(state, &mut json, &user.userid);
                }
                json
            })
            .collect();
        Ok(Value::Array(list))
    }

    fn add_tokens(state: &State, json: &mut Value, userid: &str) {
        let prefix = format!("{userid}!");
        let tokens: Vec<Value> = state
            .tokens
            .keys()
            .filter(|id| id.starts_with(&prefix))
            .map(|id| json!({ "tokenid": id }))
            .collect();
        if !tokens.is_empty() {
            json["tokens"] = Value::Array(tokens);
        }
    }

    fn create_user(state: &mut State, token: &str, call: &Call) -> Reply {
        require(state, token, "/access/users", "Permissions.Modify")?;
        let params = parse(call, USER_FIELDS, &[])?;
        let userid = params.string("userid").unwrap_or_default();
        if state.users.contains_key(&userid) {
            return Err(bad(format!("user '{userid}' already exists.")));
        }
        // "Fails if realm does not exist!"
        let realm = userid.rsplit_once('@').map(|(_, r)| r).unwrap_or("");
        if !state.realms.contains_key(realm) {
            return Err(bad(format!("unknown realm '{realm}'")));
        }
        let user = User {
            userid: userid.clone(),
            enable: params.bool("enable"),
            expire: params.int("expire"),
            firstname: params.string("firstname"),
            lastname: params.string("lastname"),
            email: params.string("email"),
            comment: params.string("comment"),
            groups: Vec::new(),
        };
        state.users.insert(userid, user);
        Ok(Value::Null)
    }

    /// `Permission::Or(Privilege(access/users, priv), UserParam("userid"))`: a token is never
    /// the user it names, so only the privilege counts.
    fn read_user(state: &mut State, token: &str, call: &Call, id: &str) -> Reply {
        require(state, token, "/access/users", "Sys.Audit")?;
        parse(call, &[req("userid", USERID)], &[("userid", id)])?;
        let user = state
            .users
            .get(id)
            .ok_or_else(|| bad(format!("no such user '{id}'")))?;
        Ok(user_json(user))
    }

    fn update_user(state: &mut State, token: &str, call: &Call, id: &str) -> Reply {
        require(state, token, "/access/users", "Permissions.Modify")?;
        let params = parse(call, USER_UPDATE_FIELDS, &[("userid", id)])?;
        let user = state
            .users
            .get_mut(id)
            .ok_or_else(|| bad(format!("no such user '{id}'")))?;
        for property in params.list("delete") {
            match property.as_str() {
                "comment" => user.comment = None,
                "firstname" => user.firstname = None,
                "lastname" => user.lastname = None,
                _ => user.email = None,
            }
        }
        if let Some(comment) = params.str("comment") {
            let comment = comment.trim();
            user.comment = (!comment.is_empty()).then(|| comment.to_string());
        }
        if let Some(enable) = params.bool("enable") {
            user.enable = if enable { None } else { Some(false) };
        }
        if let Some(expire) = params.int("expire") {
            user.expire = (expire > 0).then_some(expire);
        }
        let non_empty = |v: &str| (!v.is_empty()).then(|| v.to_string());
        if let Some(v) = params.str("firstname") {
            user.firstname = non_empty(v);
        }
        if let Some(v) = params.str("lastname") {
            user.lastname = non_empty(v);
        }
        if let Some(v) = params.str("email") {
            user.email = non_empty(v);
        }
        Ok(Value::Null)
    }

    /// PBS 3.x removes only the user's section: its ACL entries stay behind.
    fn delete_user(state: &mut State, token: &str, call: &Call, id: &str) -> Reply {
        require(state, token, "/access/users", "Permissions.Modify")?;
        let fields = [req("userid", USERID), opt("digest", DIGEST)];
        parse(call, &fields, &[("userid", id)])?;
        if state.users.remove(id).is_none() {
            return Err(bad(format!("user '{id}' does not exist.")));
        }
        Ok(Value::Null)
    }

    fn acl_json(entry: &AclEntry) -> Value {
        let ugid_type = match entry.kind {
            UgKind::Group => "group",
            UgKind::User | UgKind::Token => "user",
        };
        json!({
            "path": entry.path,
            "ugid": entry.ugid,
            "ugid_type": ugid_type,
            "propagate": entry.propagate,
            "roleid": entry.role,
        })
    }

    /// Without Sys.Audit on /access/acl a token sees nothing (tokens have no tokens).
    fn read_acl(state: &mut State, token: &str, call: &Call) -> Reply {
        let params = parse(call, ACL_READ_FIELDS, &[])?;
        if !state.has(token, "/access/acl", "Sys.Audit") {
            return Ok(json!([]));
        }
        let base = params.str("path").map(components).unwrap_or_default();
        let exact = params.bool("exact").unwrap_or(false);
        let mut entries: Vec<&AclEntry> = state
            .acl
            .iter()
            .filter(|e| {
                let path = components(&e.path);
                path.starts_with(&base) && (!exact || path.len() == base.len())
            })
            .collect();
        entries.sort();
        Ok(entries.into_iter().map(acl_json).collect())
    }

    fn update_acl(state: &mut State, token: &str, call: &Call) -> Reply {
        let params = parse(call, ACL_UPDATE_FIELDS, &[])?;
        let group = params.string("group");
        let auth_id = params.string("auth-id");
        if !state.has(token, "/access/acl", "Permissions.Modify") {
            let message = match (&group, &auth_id) {
                (Some(_), _) => "Unprivileged users are not allowed to create group ACL item.",
                (None, Some(_)) => "Unprivileged API tokens can't set ACL items.",
                (None, None) => "Unprivileged user needs to provide auth_id to update ACL item.",
            };
            return Err(bad(message.into()));
        }
        let path = params.string("path").unwrap_or_default();
        let role = params.string("role").unwrap_or_default();
        let propagate = params.bool("propagate").unwrap_or(true);
        let delete = params.bool("delete").unwrap_or(false);
        if group.is_some() {
            return Err(bad(
                "parameter 'group' - groups are currently not supported.".into(),
            ));
        }
        let Some(auth_id) = auth_id else {
            return Err(bad("missing 'userid' or 'group' parameter.".into()));
        };
        let is_token = auth_id.contains('!');
        // "we allow to delete non-existent users"
        if !delete && !known_auth_id(state, &auth_id) {
            let what = if is_token { "API token" } else { "user" };
            return Err(bad(format!("no such {what}.")));
        }
        if !delete {
            check_acl_path(&path)?;
        }
        let kind = if is_token {
            UgKind::Token
        } else {
            UgKind::User
        };
        let path = format!("/{}", components(&path).join("/"));
        let entry = AclEntry {
            path,
            kind,
            ugid: auth_id,
            role,
            propagate,
        };
        if delete {
            state.acl.retain(|e| !e.same_grant(&entry));
        } else {
            insert_role(state, entry);
        }
        Ok(Value::Null)
    }

    fn known_auth_id(state: &State, auth_id: &str) -> bool {
        state.users.contains_key(auth_id) || state.tokens.contains_key(auth_id)
    }

    /// pbs-config's AclTreeNode::insert_user_role; root@pam's entries are never saved.
    fn insert_role(state: &mut State, entry: AclEntry) {
        if entry.ugid == "root@pam" {
            return;
        }
        let same_holder =
            |e: &AclEntry| e.path == entry.path && e.kind == entry.kind && e.ugid == entry.ugid;
        if entry.role == "NoAccess" {
            state.acl.retain(|e| !same_holder(e));
        } else {
            state
                .acl
                .retain(|e| !(same_holder(e) && e.role == "NoAccess"));
        }
        state.grant(entry);
    }

    /// pbs-config's check_acl_path.
    fn check_acl_path(path: &str) -> Result<(), Fail> {
        let c = components(path);
        let n = c.len();
        let ok = match c.as_slice() {
            [] => true,
            ["access"] => true,
            ["access", "acl" | "users" | "domains"] => true,
            ["access", "openid", ..] => n <= 3,
            ["datastore", ..] => n <= 2 + 7,
            ["remote", ..] => n <= 3,
            ["system"] => true,
            ["system", sub] => [
                "certificates",
                "disks",
                "log",
                "notifications",
                "status",
                "tasks",
                "time",
                "services",
                "network",
            ]
            .contains(sub),
            ["system", "services", _] => true,
            ["system", "network", "dns"] => true,
            ["system", "network", "interfaces", ..] => n <= 4,
            ["tape"] => true,
            ["tape", "device" | "pool" | "job", ..] => n <= 3,
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(bad(format!("invalid acl path '{path}'.")))
        }
    }

    /// src/api2/access/mod.rs list_permissions: a map of path to (privilege to propagate bit)
    /// for the caller (or, with Sys.Audit on /access, another auth id); paths where it has no
    /// privilege are left out ("Don't leak ACL paths where we don't have any privileges").
    /// Only the `path` form is served here; the listing without a path is not needed.
    fn list_permissions(state: &mut State, token: &str, call: &Call) -> Reply {
        let params = parse(call, PERMISSIONS_FIELDS, &[])?;
        let auth_id = match params.str("auth-id") {
            Some(other) if other != token => {
                if !state.has(token, "/access", "Sys.Audit") {
                    return Err(bad(format!("not allowed to list permissions of {other}")));
                }
                other.to_string()
            }
            _ => token.to_string(),
        };
        let path = params.str("path").unwrap_or("/").to_string();
        let privileges = state.privileges(&auth_id, &path);
        let mut map = Map::new();
        if !privileges.is_empty() {
            let privs: Map<String, Value> = privileges
                .into_iter()
                .map(|p| (p, Value::Bool(true)))
                .collect();
            map.insert(path, Value::Object(privs));
        }
        Ok(Value::Object(map))
    }

    fn list_roles() -> Value {
        ROLES
            .iter()
            .map(|(id, privs, comment)| {
                json!({ "roleid": id, "privs": privileges_of(privs), "comment": comment })
            })
            .collect()
    }

    fn realm_json(realm: &Realm) -> Value {
        let mut out = realm.options.clone();
        out.insert("realm".into(), realm.realm.clone().into());
        Value::Object(out)
    }

    fn list_realms(state: &mut State, token: &str, call: &Call) -> Reply {
        require(state, token, "/access/domains", "Realm.Allocate")?;
        parse(call, &[], &[])?;
        let list = state
            .realms
            .values()
            .filter(|r| r.kind == "openid")
            .map(realm_json)
            .collect();
        Ok(Value::Array(list))
    }

    fn options(params: &Params, fields: &[Field]) -> Map<String, Value> {
        let mut options = Map::new();
        for field in fields
            .iter()
            .filter(|f| !["realm", "delete", "digest"].contains(&f.name))
        {
            let value = match params.0.get(field.name) {
                Some(Val::Str(s)) => Value::from(s.clone()),
                Some(Val::Bool(b)) => Value::from(*b),
                _ => continue,
            };
            options.insert(field.name.into(), value);
        }
        options
    }

    fn create_realm(state: &mut State, token: &str, call: &Call) -> Reply {
        require(state, token, "/access/domains", "Realm.Allocate")?;
        let params = parse(call, REALM_FIELDS, &[])?;
        let realm = params.string("realm").unwrap_or_default();
        if state.realms.contains_key(&realm) {
            let message = format!("realm '{realm}' already exists.");
            return Err(Fail::Params(vec![("realm".into(), message)]));
        }
        let options = options(&params, REALM_FIELDS);
        let kind = "openid".to_string();
        let record = Realm {
            realm: realm.clone(),
            kind,
            options,
        };
        state.realms.insert(realm, record);
        Ok(Value::Null)
    }

    fn openid_realm<'a>(state: &'a mut State, realm: &str) -> Result<&'a mut Realm, Fail> {
        match state.realms.get_mut(realm) {
            Some(r) if r.kind == "openid" => Ok(r),
            Some(r) if r.kind != "pam" && r.kind != "pbs" => Err(bad(format!(
                "got unexpected type '{}' for openid '{realm}'",
                r.kind
            ))),
            _ => Err(bad(format!("no such openid '{realm}'"))),
        }
    }

    fn read_realm(state: &mut State, token: &str, call: &Call, realm: &str) -> Reply {
        require(state, token, "/access/domains", "Sys.Audit")?;
        parse(call, &[req("realm", REALM)], &[("realm", realm)])?;
        Ok(realm_json(openid_realm(state, realm)?))
    }

    fn update_realm(state: &mut State, token: &str, call: &Call, realm: &str) -> Reply {
        require(state, token, "/access/domains", "Realm.Allocate")?;
        let params = parse(call, REALM_UPDATE_FIELDS, &[("realm", realm)])?;
        let record = openid_realm(state, realm)?;
        for property in params.list("delete") {
            record.options.remove(&property);
        }
        let mut updates = options(&params, REALM_UPDATE_FIELDS);
        if let Some(comment) = updates.remove("comment") {
            let comment = comment.as_str().unwrap_or("").trim().to_string();
            if comment.is_empty() {
                record.options.remove("comment");
            } else {
                record.options.insert("comment".into(), comment.into());
            }
        }
        record.options.extend(updates);
        Ok(Value::Null)
    }

    fn delete_realm(state: &mut State, token: &str, call: &Call, realm: &str) -> Reply {
        require(state, token, "/access/domains", "Realm.Allocate")?;
        let fields = [req("realm", REALM), opt("digest", DIGEST)];
        parse(call, &fields, &[("realm", realm)])?;
        let builtin = realm == "pam" || realm == "pbs";
        if builtin || state.realms.remove(realm).is_none() {
            return Err(Fail::Status(
                404,
                format!("realm '{realm}' does not exist."),
            ));
        }
        Ok(Value::Null)
    }

    // Parameter parsing: proxmox-rest-server's get_request_parameters with proxmox-schema.

    fn parse(call: &Call, fields: &[Field], uri: &[(&str, &str)]) -> Result<Params, Fail> {
        let content_type = call
            .content_type
            .as_deref()
            .map(|ct| ct.split(';').next().unwrap_or(""));
        match content_type {
            Some("application/json") => parse_json(call, fields, uri),
            None | Some("application/x-www-form-urlencoded") => parse_form(call, fields, uri),
            Some(other) => Err(bad(format!("unsupported content type Ok({other:?})"))),
        }
    }

    fn parse_form(call: &Call, fields: &[Field], uri: &[(&str, &str)]) -> Result<Params, Fail> {
        let mut pairs: Vec<(String, String)> = form_urlencoded::parse(call.body.as_bytes())
            .into_owned()
            .collect();
        pairs.extend(call.query_pairs());
        pairs.extend(uri.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut params = Params::default();
        let mut errors = Vec::new();
        for (key, value) in pairs {
            let Some(field) = find(fields, &key) else {
                let message = "schema does not allow additional properties.".to_string();
                errors.push((key, message));
                continue;
            };
            match (field.kind, params.0.get_mut(&key)) {
                (Kind::Array(t), slot) => match check_text(t, &value) {
                    Ok(()) => match slot {
                        Some(Val::List(items)) => items.push(value),
                        _ => {
                            params.0.insert(key, Val::List(vec![value]));
                        }
                    },
                    Err(message) => errors.push((key, message)),
                },
                (_, Some(_)) => errors.push((key, "duplicate parameter.".into())),
                (kind, None) => match parse_simple(kind, &value) {
                    Ok(v) => {
                        params.0.insert(key, v);
                    }
                    Err(message) => errors.push((key, message)),
                },
            }
        }
        if errors.is_empty() {
            for field in fields.iter().filter(|f| f.required) {
                if !params.0.contains_key(field.name) {
                    let message = "parameter is missing and it is not optional.".to_string();
                    errors.push((field.name.to_string(), message));
                }
            }
        }
        finish(params, errors)
    }

    fn parse_json(call: &Call, fields: &[Field], uri: &[(&str, &str)]) -> Result<Params, Fail> {
        let mut object = if call.body.is_empty() {
            Map::new()
        } else {
            match serde_json::from_str::<Value>(&call.body) {
                Ok(Value::Object(map)) => map,
                Ok(Value::Array(_)) => return Err(bad("Expected object - got array.".into())),
                Ok(_) => return Err(bad("Expected object - got scalar value.".into())),
                Err(error) => return Err(bad(error.to_string())),
            }
        };
        for (key, value) in uri {
            if let Some(field) = find(fields, key) {
                let parsed = parse_simple(field.kind, value).map_err(bad)?;
                object.insert(key.to_string(), to_json(&parsed));
            }
        }
        let mut params = Params::default();
        let mut errors = Vec::new();
        for (key, value) in &object {
            match find(fields, key) {
                None => errors.push((
                    key.clone(),
                    "schema does not allow additional properties".to_string(),
                )),
                Some(field) => match json_value(field.kind, value) {
                    Ok(v) => {
                        params.0.insert(key.clone(), v);
                    }
                    Err(message) => errors.push((key.clone(), message)),
                },
            }
        }
        for field in fields.iter().filter(|f| f.required) {
            if object.get(field.name).is_none_or(Value::is_null) {
                let message = "property is missing and it is not optional".to_string();
                errors.push((field.name.to_string(), message));
            }
        }
        finish(params, errors)
    }

    fn finish(params: Params, errors: Vec<(String, String)>) -> Result<Params, Fail> {
        if errors.is_empty() {
            Ok(params)
        } else {
            Err(Fail::Params(errors))
        }
    }

    fn to_json(value: &Val) -> Value {
        match value {
            Val::Str(s) => Value::from(s.clone()),
            Val::Bool(b) => Value::from(*b),
            Val::Int(i) => Value::from(*i),
            Val::List(items) => Value::from(items.clone()),
        }
    }

    /// StringSchema::check_constraints: lengths, then the format.
    fn check_text(t: Text, value: &str) -> Result<(), String> {
        let length = value.chars().count();
        if length < t.min {
            return Err(format!("value must be at least {} characters long", t.min));
        }
        if length > t.max {
            return Err(format!("value may only be {} characters long", t.max));
        }
        (t.check)(value)
    }

    fn check_min(min: i64, value: i64) -> Result<Val, String> {
        if value < min {
            return Err(format!(
                "value must have a minimum value of {min} (got {value})"
            ));
        }
        Ok(Val::Int(value))
    }

    /// Schema::parse_simple_value for a form or URI value.
    fn parse_simple(kind: Kind, value: &str) -> Result<Val, String> {
        match kind {
            Kind::Str(t) => check_text(t, value).map(|()| Val::Str(value.to_string())),
            Kind::Bool => match value.to_lowercase().as_str() {
                "1" | "on" | "yes" | "true" => Ok(Val::Bool(true)),
                "0" | "off" | "no" | "false" => Ok(Val::Bool(false)),
                _ => Err("Unable to parse boolean option.".into()),
            },
            Kind::Int { min } => {
                let parsed = value.parse::<i64>().map_err(|e| e.to_string())?;
                check_min(min, parsed)
            }
            Kind::Array(t) => check_text(t, value).map(|()| Val::List(vec![value.to_string()])),
        }
    }

    /// Schema::verify_json: JSON bodies need real booleans, numbers and strings.
    fn json_value(kind: Kind, value: &Value) -> Result<Val, String> {
        match (kind, value) {
            (Kind::Str(t), Value::String(s)) => check_text(t, s).map(|()| Val::Str(s.clone())),
            (Kind::Str(_), _) => Err("Expected string value.".into()),
            (Kind::Bool, Value::Bool(b)) => Ok(Val::Bool(*b)),
            (Kind::Bool, _) => Err("Expected boolean value.".into()),
            (Kind::Int { min }, Value::Number(n)) if n.is_i64() => {
                check_min(min, n.as_i64().unwrap_or_default())
            }
            (Kind::Int { .. }, _) => Err("Expected integer value.".into()),
            (Kind::Array(t), Value::Array(items)) => {
                let mut out = Vec::new();
                for item in items {
                    let item = item.as_str().ok_or("Expected string value.")?;
                    check_text(t, item)?;
                    out.push(item.to_string());
                }
                Ok(Val::List(out))
            }
            (Kind::Array(_), Value::Object(_)) => Err("Expected array - got object.".into()),
            (Kind::Array(_), _) => Err("Expected array - got scalar value.".into()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Proxmox VE

mod pve {
    use super::*;

    /// PVE::AccessControl's `$privgroups`: category, root, admin, user, audit privileges.
    type PrivGroup = (
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
        &'static [&'static str],
        &'static [&'static str],
    );

    const PRIV_GROUPS: &[PrivGroup] = &[
        (
            "VM",
            &[],
            &[
                "VM.Config.Disk",
                "VM.Config.CPU",
                "VM.Config.Memory",
                "VM.Config.Network",
                "VM.Config.HWType",
                "VM.Config.Options",
                "VM.Allocate",
                "VM.Clone",
                "VM.GuestAgent.Unrestricted",
                "VM.Migrate",
                "VM.Replicate",
                "VM.Snapshot",
                "VM.Snapshot.Rollback",
            ],
            &[
                "VM.Config.CDROM",
                "VM.Config.Cloudinit",
                "VM.Console",
                "VM.Backup",
                "VM.GuestAgent.FileRead",
                "VM.GuestAgent.FileSystemMgmt",
                "VM.GuestAgent.FileWrite",
                "VM.PowerMgmt",
            ],
            &["VM.Audit", "VM.GuestAgent.Audit"],
        ),
        (
            "Sys",
            &[
                "Sys.PowerMgmt",
                "Sys.Modify",
                "Sys.Incoming",
                "Sys.AccessNetwork",
            ],
            &["Sys.Console", "Sys.Syslog"],
            &[],
            &["Sys.Audit"],
        ),
        (
            "Datastore",
            &[],
            &["Datastore.Allocate", "Datastore.AllocateTemplate"],
            &["Datastore.AllocateSpace"],
            &["Datastore.Audit"],
        ),
        (
            "SDN",
            &[],
            &["SDN.Allocate", "SDN.Audit"],
            &["SDN.Use"],
            &["SDN.Audit"],
        ),
        (
            "User",
            &["Realm.Allocate"],
            &["User.Modify", "Group.Allocate", "Realm.AllocateUser"],
            &[],
            &[],
        ),
        (
            "Pool",
            &[],
            &["Pool.Allocate"],
            &["Pool.Audit"],
            &["Pool.Audit"],
        ),
        (
            "Mapping",
            &[],
            &["Mapping.Modify"],
            &["Mapping.Use"],
            &["Mapping.Audit"],
        ),
    ];

    const SPECIAL: &[&str] = &["NoAccess", "Administrator"];

    /// PVE::AccessControl::create_roles.
    pub(super) fn roles() -> BTreeMap<String, Vec<String>> {
        let mut roles: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
        let mut add = |role: String, privs: &[&'static str]| {
            roles.entry(role).or_default().extend(privs.iter().copied());
        };
        add("NoAccess".into(), &[]);
        add("Administrator".into(), &["Permissions.Modify"]);
        for (cat, root, admin, user, audit) in PRIV_GROUPS {
            for privs in [root, admin, user, audit] {
                add("Administrator".into(), privs);
            }
            for privs in [admin, user, audit] {
                add(format!("PVE{cat}Admin"), privs);
                add("PVEAdmin".into(), privs);
            }
            if !user.is_empty() {
                add(format!("PVE{cat}User"), user);
                add(format!("PVE{cat}User"), audit);
            }
            add("PVEAuditor".into(), audit);
        }
        add("PVETemplateUser".into(), &["VM.Clone", "VM.Audit"]);
        let mut roles: BTreeMap<String, Vec<String>> = roles
            .into_iter()
            .map(|(id, privs)| (id, privs.into_iter().map(str::to_string).collect()))
            .collect();
        if let Some(admin) = roles.get_mut("PVEAdmin") {
            admin.retain(|p| p != "Mapping.Modify");
        }
        roles
    }

    fn is_special(role: &str) -> bool {
        SPECIAL.contains(&role) || role.starts_with("PVE")
    }

    // Formats (PVE::JSONSchema formats and patterns) and their messages.

    fn format_error(message: String) -> Result<(), String> {
        Err(format!("invalid format - {message}\n"))
    }

    fn pattern(ok: bool) -> Result<(), String> {
        if ok {
            Ok(())
        } else {
            Err("value does not match the regex pattern".into())
        }
    }

    /// PVE::Auth::Plugin::verify_username's message, or None when valid.
    pub(super) fn username_error(name: &str) -> Option<String> {
        let length = name.chars().count();
        if length < 3 {
            return Some(format!("user name '{name}' is too short\n"));
        }
        if length > 64 {
            return Some(format!("user name '{name}' is too long ({length} > 64)\n"));
        }
        if pve_split_userid(name).is_none() {
            return Some(format!(
                "value '{name}' does not look like a valid user name\n"
            ));
        }
        None
    }

    fn userid(s: &str) -> Result<(), String> {
        username_error(s).map_or(Ok(()), |e| Err(format!("invalid format - {e}")))
    }

    fn list_of(s: &str, item: fn(&str) -> Option<String>) -> Result<(), String> {
        match split_list(s).iter().find_map(|i| item(i)) {
            Some(message) => format_error(message),
            None => Ok(()),
        }
    }

    fn group_error(name: &str) -> Option<String> {
        (!pve_is_group_or_role(name))
            .then(|| format!("group name '{name}' contains invalid characters"))
    }

    fn role_error(name: &str) -> Option<String> {
        (!pve_is_group_or_role(name))
            .then(|| format!("role name '{name}' contains invalid characters"))
    }

    fn token_error(name: &str) -> Option<String> {
        (!pve_is_token_id(name)).then(|| {
            format!(
                "'{name}' is not a valid token ID - not able to split into user and token parts"
            )
        })
    }

    fn userid_list(s: &str) -> Result<(), String> {
        match split_list(s).iter().find_map(|i| username_error(i)) {
            Some(message) => Err(format!("invalid format - {message}")),
            None => Ok(()),
        }
    }

    fn groupid(s: &str) -> Result<(), String> {
        group_error(s).map_or(Ok(()), format_error)
    }

    fn groupid_list(s: &str) -> Result<(), String> {
        list_of(s, group_error)
    }

    fn roleid_list(s: &str) -> Result<(), String> {
        list_of(s, role_error)
    }

    fn tokenid_list(s: &str) -> Result<(), String> {
        list_of(s, token_error)
    }

    fn realm(s: &str) -> Result<(), String> {
        if pve_is_realm(s) {
            Ok(())
        } else {
            format_error("value does not look like a valid realm".into())
        }
    }

    /// `email-opt` with ParseUtils' EMAIL_RE.
    fn email(s: &str) -> Result<(), String> {
        let word =
            |w: &str| !w.is_empty() && w.chars().all(|c| c.is_alphanumeric() || "_+-~".contains(c));
        let host =
            |w: &str| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        let valid = s
            .split_once('@')
            .is_some_and(|(user, domain)| user.split('.').all(word) && domain.split('.').all(host));
        if s.is_empty() || valid {
            Ok(())
        } else {
            format_error("value does not look like a valid email address".into())
        }
    }

    fn keys(s: &str) -> Result<(), String> {
        pattern(
            s.len() <= 4096
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '!' || c == '='),
        )
    }

    fn claim(s: &str) -> Result<(), String> {
        pattern(pve_is_group_or_role(s))
    }

    fn non_space(s: &str) -> Result<(), String> {
        pattern(!s.is_empty() && !s.chars().any(char::is_whitespace))
    }

    fn uri_safe(s: &str) -> Result<(), String> {
        pattern(!s.chars().any(|c| c.is_control() || " <>#\"".contains(c)))
    }

    fn realm_type(s: &str) -> Result<(), String> {
        let types = ["ad", "ldap", "openid", "pam", "pve"];
        if types.contains(&s) {
            Ok(())
        } else {
            let list = types.join(", ");
            Err(format!(
                "value '{s}' does not have a value in the enumeration '{list}'"
            ))
        }
    }

    fn configid_list(s: &str) -> Result<(), String> {
        let bad = split_list(s).into_iter().find(|i| !is_configid(i));
        match bad {
            Some(item) => format_error(format!("invalid configuration ID '{item}'")),
            None => Ok(()),
        }
    }

    fn is_configid(s: &str) -> bool {
        let mut chars = s.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
    }

    const MAX: usize = usize::MAX;
    const BOOL: Kind = Kind::Bool;
    const USERID: Kind = text(0, 64, userid);

    const USER_FIELDS: &[Field] = &[
        req("userid", USERID),
        opt("enable", BOOL),
        opt("expire", Kind::Int { min: 0 }),
        opt("firstname", text(0, 1024, any_text)),
        opt("lastname", text(0, 1024, any_text)),
        opt("email", text(0, 254, email)),
        opt("comment", text(0, 2048, any_text)),
        opt("keys", text(0, MAX, keys)),
        opt("password", text(8, 64, any_text)),
        opt("groups", text(0, MAX, groupid_list)),
    ];

    const USER_UPDATE_FIELDS: &[Field] = &[
        req("userid", USERID),
        opt("enable", BOOL),
        opt("expire", Kind::Int { min: 0 }),
        opt("firstname", text(0, 1024, any_text)),
        opt("lastname", text(0, 1024, any_text)),
        opt("email", text(0, 254, email)),
        opt("comment", text(0, 2048, any_text)),
        opt("keys", text(0, MAX, keys)),
        opt("groups", text(0, MAX, groupid_list)),
        opt("append", BOOL),
    ];

    const GROUP_FIELDS: &[Field] = &[
        req("groupid", text(0, MAX, groupid)),
        opt("comment", text(0, MAX, any_text)),
    ];

    const ACL_FIELDS: &[Field] = &[
        opt("propagate", BOOL),
        req("path", text(0, MAX, any_text)),
        opt("users", text(0, MAX, userid_list)),
        opt("groups", text(0, MAX, groupid_list)),
        opt("tokens", text(0, MAX, tokenid_list)),
        req("roles", text(0, MAX, roleid_list)),
        opt("delete", BOOL),
    ];

    /// The OpenID plugin's properties and the common ones (PVE::Auth::OpenId, Plugin).
    const REALM_FIELDS: &[Field] = &[
        req("realm", text(0, 32, realm)),
        req("type", text(0, MAX, realm_type)),
        opt("issuer-url", text(0, 256, any_text)),
        opt("client-id", text(0, 256, any_text)),
        opt("client-key", text(0, 256, any_text)),
        opt("autocreate", BOOL),
        opt("username-claim", text(0, MAX, any_text)),
        opt("groups-claim", text(0, 256, claim)),
        opt("groups-autocreate", BOOL),
        opt("groups-overwrite", BOOL),
        opt("prompt", text(0, MAX, non_space)),
        opt("scopes", text(0, MAX, any_text)),
        opt("acr-values", text(0, MAX, uri_safe)),
        opt("query-userinfo", BOOL),
        opt("audiences", text(0, MAX, uri_safe)),
        opt("default", BOOL),
        opt("comment", text(0, 4096, any_text)),
        opt("check-connection", BOOL),
    ];

    /// SectionConfig::updateSchema: fixed options (`username-claim`) and `type` are left out.
    const REALM_UPDATE_FIELDS: &[Field] = &[
        req("realm", text(0, 32, realm)),
        opt("issuer-url", text(0, 256, any_text)),
        opt("client-id", text(0, 256, any_text)),
        opt("client-key", text(0, 256, any_text)),
        opt("autocreate", BOOL),
        opt("groups-claim", text(0, 256, claim)),
        opt("groups-autocreate", BOOL),
        opt("groups-overwrite", BOOL),
        opt("prompt", text(0, MAX, non_space)),
        opt("scopes", text(0, MAX, any_text)),
        opt("acr-values", text(0, MAX, uri_safe)),
        opt("query-userinfo", BOOL),
        opt("audiences", text(0, MAX, uri_safe)),
        opt("default", BOOL),
        opt("comment", text(0, 4096, any_text)),
        opt("check-connection", BOOL),
        opt("digest", text(0, 64, any_text)),
        opt("delete", text(0, 4096, configid_list)),
    ];

    const REQUIRED_OPENID: [&str; 2] = ["issuer-url", "client-id"];

    fn perm(what: &str) -> Fail {
        let message = if what.is_empty() {
            "Permission check failed\n".to_string()
        } else {
            format!("Permission check failed ({what})\n")
        };
        Fail::Status(403, message)
    }

    fn error(message: String) -> Fail {
        Fail::Status(500, format!("{message}\n"))
    }

    /// A die inside `lock_user_config`/`lock_domain_config` with its prefix.
    fn failed(prefix: &str, message: String) -> Fail {
        error(format!("{prefix}: {message}"))
    }

    /// pve-http-server then PVE::HTTPServer: auth (except the world-readable realm list),
    /// content checks, the handler lookup, URI parameters, permissions, then the parameters.
    pub(super) fn answer(state: &mut State, call: &Call) -> (Reply, Option<String>) {
        let world = call.method == "GET"
            && call
                .segments
                .as_ref()
                .is_some_and(|s| s.len() == 2 && s[0] == "access" && s[1] == "domains");
        let token = if world {
            None
        } else {
            match state.authenticate_pve(call) {
                Ok(token) => Some(token),
                Err(fail) => return (Err(fail), None),
            }
        };
        let reply = content_check(call).and_then(|()| route(state, token.as_deref(), call));
        (reply, token)
    }

    fn content_check(call: &Call) -> Result<(), Fail> {
        let posting = call.method == "PUT" || call.method == "POST";
        if !call.body.is_empty() && !posting {
            return Err(Fail::Bare(501, "Unexpected content"));
        }
        let content_type = call
            .content_type
            .as_deref()
            .and_then(|ct| ct.split([';', ',']).next())
            .map(str::trim);
        match content_type {
            None | Some("application/x-www-form-urlencoded") | Some("application/json") => Ok(()),
            Some(_) if call.body.is_empty() => Ok(()),
            Some(_) => Err(Fail::Bare(506, "upload Content-Type not implemented")),
        }
    }

    fn route(state: &mut State, token: Option<&str>, call: &Call) -> Reply {
        let method = call.method.as_str();
        let segments: Vec<&str> = call.segments.iter().flatten().map(String::as_str).collect();
        let token = token.unwrap_or("");
        match (method, segments.as_slice()) {
            ("GET", ["access", "users"]) => list_users(state, token, call),
            ("POST", ["access", "users"]) => create_user(state, token, call),
            ("GET", ["access", "users", id]) => read_user(state, token, call, id),
            ("PUT", ["access", "users", id]) => update_user(state, token, call, id),
            ("DELETE", ["access", "users", id]) => delete_user(state, token, call, id),
            ("GET", ["access", "groups"]) => list_groups(state, token, call),
            ("POST", ["access", "groups"]) => create_group(state, token, call),
            ("GET", ["access", "groups", id]) => read_group(state, token, call, id),
            ("PUT", ["access", "groups", id]) => update_group(state, token, call, id),
            ("DELETE", ["access", "groups", id]) => delete_group(state, token, call, id),
            ("GET", ["access", "acl"]) => read_acl(state, token, call),
            ("PUT", ["access", "acl"]) => update_acl(state, token, call),
            ("GET", ["access", "roles"]) => list_roles(call),
            ("GET", ["access", "permissions"]) => list_permissions(state, token, call),
            ("GET", ["access", "domains"]) => list_realms(state, call),
            ("POST", ["access", "domains"]) => create_realm(state, token, call),
            ("GET", ["access", "domains", id]) => read_realm(state, token, call, id),
            ("PUT", ["access", "domains", id]) => update_realm(state, token, call, id),
            ("DELETE", ["access", "domains", id]) => delete_realm(state, token, call, id),
            _ => {
                let rel = format!("/{}", segments.join("/"));
                let message = format!("Method '{method} {rel}' not implemented");
                Err(Fail::Status(501, message))
            }
        }
    }

    // Raw parameters (PVE::APIServer::AnyEvent::extract_params, then rest_handler's URI merge)
    // and their validation (PVE::JSONSchema::validate).

    type Raw = BTreeMap<String, Value>;

    fn raw(call: &Call, uri: &[(&str, &str)]) -> Result<Raw, Fail> {
        let mut params = Raw::new();
        if call.method == "PUT" || call.method == "POST" {
            let json = call.content_type.as_deref().is_some_and(|ct| {
                ct.split([';', ',']).next().map(str::trim) == Some("application/json")
            });
            if json {
                let parsed: Value = serde_json::from_str(&call.body)
                    .map_err(|e| error(format!("malformed JSON string, {e}")))?;
                let Value::Object(map) = parsed else {
                    return Err(error("JSON body is not an object".into()));
                };
                params.extend(map);
            } else {
                add_form(&mut params, &call.body);
            }
        }
        add_form(&mut params, &call.query);
        params.remove("_dc");
        for (key, value) in uri {
            let conflict = params
                .get(*key)
                .is_some_and(|v| scalar(v).as_deref() != Some(*value));
            if conflict {
                let message =
                    "duplicate parameter (already defined in URI) with conflicting values!";
                return Err(Fail::Params(vec![(key.to_string(), message.into())]));
            }
            params.insert(key.to_string(), Value::from(*value));
        }
        Ok(params)
    }

    /// decode_urlencoded: a repeated key becomes an array.
    fn add_form(params: &mut Raw, text: &str) {
        let mut form = Raw::new();
        for (key, value) in form_urlencoded::parse(text.as_bytes()).into_owned() {
            let value = Value::from(value);
            match form.remove(&key) {
                Some(Value::Array(mut items)) => {
                    items.push(value);
                    form.insert(key, Value::Array(items));
                }
                Some(old) => {
                    form.insert(key, Value::Array(vec![old, value]));
                }
                None => {
                    form.insert(key, value);
                }
            }
        }
        params.extend(form);
    }

    fn scalar(value: &Value) -> Option<String> {
        match value {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    fn raw_str(raw: &Raw, key: &str) -> Option<String> {
        raw.get(key).and_then(scalar)
    }

    fn validate(raw: &Raw, fields: &[Field]) -> Result<Params, Fail> {
        let mut errors: BTreeMap<String, String> = BTreeMap::new();
        let mut params = Params::default();
        for key in raw.keys() {
            if find(fields, key).is_none() {
                let message = "property is not defined in schema and the schema does not allow additional properties";
                errors.insert(key.clone(), message.into());
            }
        }
        for field in fields {
            match raw.get(field.name) {
                None | Some(Value::Null) => {
                    if field.required {
                        let message = "property is missing and it is not optional";
                        errors.insert(field.name.into(), message.into());
                    }
                }
                Some(value) => match check(field.kind, value) {
                    Ok(v) => {
                        params.0.insert(field.name.into(), v);
                    }
                    Err(message) => {
                        errors.insert(field.name.into(), message);
                    }
                },
            }
        }
        if errors.is_empty() {
            Ok(params)
        } else {
            Err(Fail::Params(errors.into_iter().collect()))
        }
    }

    /// check_type, then format or pattern, maxLength, minLength, minimum.
    fn check(kind: Kind, value: &Value) -> Result<Val, String> {
        let type_name = match kind {
            Kind::Str(_) | Kind::Array(_) => "string",
            Kind::Bool => "boolean",
            Kind::Int { .. } => "integer",
        };
        let text = match value {
            Value::Array(_) => {
                return Err(format!("type check ('{type_name}') failed - got ARRAY"));
            }
            Value::Object(_) => {
                return Err(format!("type check ('{type_name}') failed - got HASH"));
            }
            Value::Bool(b) if matches!(kind, Kind::Bool) => return Ok(Val::Bool(*b)),
            Value::Bool(_) => {
                return Err(format!(
                    "type check ('{type_name}') failed - got JSON::PP::Boolean"
                ));
            }
            other => scalar(other).unwrap_or_default(),
        };
        match kind {
            Kind::Bool => match text.as_str() {
                "1" => Ok(Val::Bool(true)),
                "0" => Ok(Val::Bool(false)),
                _ => Err(format!("type check ('boolean') failed - got '{text}'")),
            },
            Kind::Int { min } => {
                let digits = text.strip_prefix(['+', '-']).unwrap_or(&text);
                if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
                    return Err(format!("type check ('integer') failed - got '{text}'"));
                }
                let number: i64 = text
                    .parse()
                    .map_err(|_| format!("type check ('integer') failed - got '{text}'"))?;
                if number < min {
                    return Err(format!("value must have a minimum value of {min}"));
                }
                Ok(Val::Int(number))
            }
            Kind::Str(t) | Kind::Array(t) => {
                (t.check)(&text)?;
                let length = text.chars().count();
                if length > t.max {
                    return Err(format!("value may only be {} characters long", t.max));
                }
                if length < t.min {
                    return Err(format!("value must be at least {} characters long", t.min));
                }
                Ok(Val::Str(text))
            }
        }
    }

    // Permission helpers (PVE::RPCEnvironment).

    /// `userid-param` with `Realm.AllocateUser`: the user id is verified first (a die: 500).
    fn check_realm_allocate_user(state: &State, token: &str, raw: &Raw) -> Result<(), Fail> {
        let userid = raw_str(raw, "userid").unwrap_or_default();
        if let Some(message) = username_error(&userid) {
            return Err(Fail::Status(500, message));
        }
        let (_, realm) = pve_split_userid(&userid).unwrap_or_default();
        let path = format!("/access/realm/{realm}");
        if state.has(token, &path, "Realm.AllocateUser") {
            Ok(())
        } else {
            Err(perm(&format!("{path}, Realm.AllocateUser")))
        }
    }

    /// The users in groups on which the token has any of `privs`.
    fn allowed_users(state: &State, token: &str, privs: &[&str]) -> BTreeSet<String> {
        state
            .groups
            .iter()
            .filter(|(id, _)| state.has_any(token, &format!("/access/groups/{id}"), privs))
            .flat_map(|(_, g)| g.members.iter().cloned())
            .collect()
    }

    /// `userid-group` with `groups_param` None, `create` or `update`.
    fn check_userid_group(
        state: &State,
        token: &str,
        raw: &Raw,
        privs: &[&str],
        groups_param: Option<&str>,
    ) -> Result<(), Fail> {
        let userid = raw_str(raw, "userid").unwrap_or_default();
        let existing = groups_param != Some("create");
        if existing {
            if let Some(message) = username_error(&userid) {
                return Err(Fail::Status(500, message));
            }
            if !state.users.contains_key(&userid) {
                return Err(error(format!("no such user ('{userid}')")));
            }
        }
        if state.has_any(token, "/access/groups", privs) {
            return Ok(());
        }
        let wanted = privs.join("|");
        if groups_param.is_some() {
            let groups = split_list(&raw_str(raw, "groups").unwrap_or_default());
            if groups.is_empty() {
                return Err(perm(&format!("/access/groups, {wanted}")));
            }
            for group in groups {
                if !state.has_any(token, &format!("/access/groups/{group}"), privs) {
                    return Err(perm(&format!("/access/groups/{group}, {wanted}")));
                }
            }
        }
        if existing && !allowed_users(state, token, privs).contains(&userid) {
            return Err(perm(""));
        }
        Ok(())
    }

    fn check_path_privs(
        state: &State,
        token: &str,
        path: &str,
        privs: &[&str],
    ) -> Result<(), Fail> {
        if state.has_any(token, path, privs) {
            Ok(())
        } else {
            Err(perm(&format!("{path}, {}", privs.join("|"))))
        }
    }

    // Users.

    fn user_json(state: &State, user: &User, full: bool) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("enable".into(), Value::from(u8::from(user.enabled())));
        out.insert("expire".into(), Value::from(user.expire.unwrap_or(0)));
        let texts = [
            ("firstname", &user.firstname),
            ("lastname", &user.lastname),
            ("email", &user.email),
            ("comment", &user.comment),
        ];
        for (key, value) in texts {
            if let Some(value) = value.as_ref().filter(|v| !v.is_empty()) {
                out.insert(key.into(), value.clone().into());
            }
        }
        if full {
            let prefix = format!("{}!", user.userid);
            let tokens: Vec<String> = state
                .tokens
                .keys()
                .filter_map(|id| id.strip_prefix(&prefix).map(str::to_string))
                .collect();
            out.insert("groups".into(), Value::from(state.groups_of(&user.userid)));
            out.insert("tokens".into(), Value::from(tokens));
        }
        out
    }

    fn list_users(state: &mut State, token: &str, call: &Call) -> Reply {
        let raw = raw(call, &[])?;
        let fields = [opt("enabled", BOOL), opt("full", BOOL)];
        let params = validate(&raw, &fields)?;
        let privs = ["User.Modify", "Sys.Audit"];
        let all = state.has_any(token, "/access/groups", &privs);
        let allowed = allowed_users(state, token, &privs);
        let full = params.bool("full").unwrap_or(false);
        let mut list = Vec::new();
        for user in state.users.values() {
            if !(all || allowed.contains(&user.userid)) {
                continue;
            }
            if params.bool("enabled").is_some_and(|e| e != user.enabled()) {
                continue;
            }
            let mut entry = user_json(state, user, full);
            if let Some(groups) = entry.get("groups").and_then(Value::as_array) {
                let joined: Vec<&str> = groups.iter().filter_map(Value::as_str).collect();
                entry.insert("groups".into(), joined.join(",").into());
            }
            if let Some(tokens) = entry.get("tokens").and_then(Value::as_array) {
                let listed: Vec<Value> = tokens.iter().map(|t| json!({ "tokenid": t })).collect();
                entry.insert("tokens".into(), listed.into());
            }
            let realm = user.userid.rsplit_once('@').map(|(_, r)| r).unwrap_or("");
            if let Some(r) = state.realms.get(realm) {
                entry.insert("realm-type".into(), r.kind.clone().into());
            }
            entry.insert("userid".into(), user.userid.clone().into());
            list.push(Value::Object(entry));
        }
        Ok(Value::Array(list))
    }

    fn create_user(state: &mut State, token: &str, call: &Call) -> Reply {
        let raw = raw(call, &[])?;
        check_realm_allocate_user(state, token, &raw)?;
        check_userid_group(state, token, &raw, &["User.Modify"], Some("create"))?;
        let params = validate(&raw, USER_FIELDS)?;
        let fail = |m| failed("create user failed", m);
        let userid = params.string("userid").unwrap_or_default();
        if state.users.contains_key(&userid) {
            return Err(fail(format!("user '{userid}' already exists")));
        }
        let groups = split_list(params.str("groups").unwrap_or(""));
        if let Some(missing) = groups.iter().find(|g| !state.groups.contains_key(*g)) {
            return Err(fail(format!("no such group '{missing}'")));
        }
        let truthy = |key| params.string(key).filter(|v| !v.is_empty() && v != "0");
        let user = User {
            userid: userid.clone(),
            enable: Some(params.bool("enable").unwrap_or(true)),
            expire: Some(params.int("expire").unwrap_or(0)),
            firstname: truthy("firstname"),
            lastname: truthy("lastname"),
            email: truthy("email"),
            comment: truthy("comment"),
            groups: Vec::new(),
        };
        state.users.insert(userid.clone(), user);
        for group in groups {
            if let Some(g) = state.groups.get_mut(&group) {
                g.members.insert(userid.clone());
            }
        }
        Ok(Value::Null)
    }

    fn read_user(state: &mut State, token: &str, call: &Call, id: &str) -> Reply {
        let raw = raw(call, &[("userid", id)])?;
        check_userid_group(state, token, &raw, &["User.Modify", "Sys.Audit"], None)?;
        validate(&raw, &[req("userid", USERID)])?;
        let user = &state.users[id];
        let mut out = user_json(state, user, true);
        let tokens = out.remove("tokens").unwrap_or_default();
        let tokens: Map<String, Value> = tokens
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|t| (t.to_string(), json!({})))
            .collect();
        let tokens = if tokens.is_empty() {
            Value::Null
        } else {
            Value::Object(tokens)
        };
        out.insert("tokens".into(), tokens);
        Ok(Value::Object(out))
    }

    fn update_user(state: &mut State, token: &str, call: &Call, id: &str) -> Reply {
        let raw = raw(call, &[("userid", id)])?;
        check_userid_group(state, token, &raw, &["User.Modify"], Some("update"))?;
        let params = validate(&raw, USER_UPDATE_FIELDS)?;
        if params.bool("append").is_some() && params.str("groups").is_none() {
            let message = "missing property required by 'append'".to_string();
            return Err(Fail::Params(vec![("groups".into(), message)]));
        }
        let fail = |m| failed("update user failed", m);
        let Some(user) = state.users.get(id) else {
            return Err(fail(format!("no such user ('{id}')")));
        };
        let mut user = user.clone();
        let groups = params.str("groups").map(split_list);
        if let Some(missing) = groups
            .iter()
            .flatten()
            .find(|g| !state.groups.contains_key(*g))
        {
            return Err(fail(format!("no such group '{missing}'")));
        }
        if let Some(enable) = params.bool("enable") {
            user.enable = Some(enable);
        }
        if let Some(expire) = params.int("expire") {
            user.expire = Some(expire);
        }
        for (key, slot) in [
            ("firstname", &mut user.firstname),
            ("lastname", &mut user.lastname),
            ("email", &mut user.email),
            ("comment", &mut user.comment),
        ] {
            if let Some(value) = params.str(key) {
                *slot = Some(value.to_string());
            }
        }
        if let Some(groups) = groups {
            if !params.bool("append").unwrap_or(false) {
                for g in state.groups.values_mut() {
                    g.members.remove(id);
                }
            }
            for group in groups {
                if let Some(g) = state.groups.get_mut(&group) {
                    g.members.insert(id.to_string());
                }
            }
        }
        state.users.insert(id.to_string(), user);
        Ok(Value::Null)
    }

    /// PVE removes the user's group memberships and ACL entries with it.
    fn delete_user(state: &mut State, token: &str, call: &Call, id: &str) -> Reply {
        let raw = raw(call, &[("userid", id)])?;
        check_realm_allocate_user(state, token, &raw)?;
        check_userid_group(state, token, &raw, &["User.Modify"], None)?;
        validate(&raw, &[req("userid", USERID)])?;
        state.delete_user(id);
        Ok(Value::Null)
    }

    // Groups.

    fn list_groups(state: &mut State, token: &str, call: &Call) -> Reply {
        validate(&raw(call, &[])?, &[])?;
        let privs = ["User.Modify", "Sys.Audit", "Group.Allocate"];
        let list = state
            .groups
            .iter()
            .filter(|(id, _)| state.has_any(token, &format!("/access/groups/{id}"), &privs))
            .map(|(id, g)| {
                let mut entry = json!({ "groupid": id });
                if let Some(comment) = &g.comment {
                    entry["comment"] = comment.clone().into();
                }
                let users: Vec<&str> = g.members.iter().map(String::as_str).collect();
                entry["users"] = users.join(",").into();
                entry
            })
            .collect();
        Ok(Value::Array(list))
    }

    fn create_group(state: &mut State, token: &str, call: &Call) -> Reply {
        let raw = raw(call, &[])?;
        check_path_privs(state, token, "/access/groups", &["Group.Allocate"])?;
        let params = validate(&raw, GROUP_FIELDS)?;
        let groupid = params.string("groupid").unwrap_or_default();
        if state.groups.contains_key(&groupid) {
            let message = format!("group '{groupid}' already exists");
            return Err(failed("create group failed", message));
        }
        let comment = params
            .string("comment")
            .filter(|c| !c.is_empty() && c != "0");
        let record = GroupRecord {
            comment,
            members: BTreeSet::new(),
        };
        state.groups.insert(groupid, record);
        Ok(Value::Null)
    }

    fn read_group(state: &mut State, token: &str, call: &Call, id: &str) -> Reply {
        let raw = raw(call, &[("groupid", id)])?;
        let privs = ["Sys.Audit", "Group.Allocate"];
        check_path_privs(state, token, "/access/groups", &privs)?;
        validate(&raw, &[req("groupid", text(0, MAX, groupid))])?;
        let Some(group) = state.groups.get(id) else {
            return Err(error(format!("group '{id}' does not exist")));
        };
        let mut out = json!({ "members": group.members.iter().collect::<Vec<_>>() });
        if let Some(comment) = &group.comment {
            out["comment"] = comment.clone().into();
        }
        Ok(out)
    }

    fn update_group(state: &mut State, token: &str, call: &Call, id: &str) -> Reply {
        let raw = raw(call, &[("groupid", id)])?;
        check_path_privs(state, token, "/access/groups", &["Group.Allocate"])?;
        let params = validate(&raw, GROUP_FIELDS)?;
        let Some(group) = state.groups.get_mut(id) else {
            let message = format!("group '{id}' does not exist");
            return Err(failed("update group failed", message));
        };
        if let Some(comment) = params.string("comment") {
            group.comment = Some(comment);
        }
        Ok(Value::Null)
    }

    fn delete_group(state: &mut State, token: &str, call: &Call, id: &str) -> Reply {
        let raw = raw(call, &[("groupid", id)])?;
        check_path_privs(state, token, "/access/groups", &["Group.Allocate"])?;
        validate(&raw, &[req("groupid", text(0, MAX, groupid))])?;
        if state.groups.remove(id).is_none() {
            let message = format!("group '{id}' does not exist");
            return Err(failed("delete group failed", message));
        }
        state
            .acl
            .retain(|e| !(e.kind == UgKind::Group && e.ugid == id));
        Ok(Value::Null)
    }

    // ACL.

    /// PVE::AccessControl::normalize_path.
    fn normalize_path(path: &str) -> Option<String> {
        if path.is_empty() {
            return None;
        }
        let mut path = path.to_string();
        while path.contains("//") {
            path = path.replace("//", "/");
        }
        if path.len() > 1 {
            path = path.trim_end_matches('/').to_string();
        }
        if path.is_empty() {
            path = "/".into();
        }
        if !path.starts_with('/') {
            path = format!("/{path}");
        }
        let ok = path
            .chars()
            .all(|c| c.is_alphanumeric() || "._-/".contains(c));
        ok.then_some(path)
    }

    /// PVE::AccessControl::check_path.
    fn check_path(path: &str) -> bool {
        let name = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        };
        let alnum = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric());
        let vmid = |s: &str| {
            s.len() >= 3 && !s.starts_with('0') && alnum(s) && s.chars().all(|c| c.is_ascii_digit())
        };
        let vlan = |s: &str| {
            (1..=4).contains(&s.len())
                && !s.starts_with('0')
                && s.chars().all(|c| c.is_ascii_digit())
        };
        let sdn_kinds = ["dns", "fabrics", "ipams", "prefix-lists", "route-maps"];
        let c = components(path);
        match c.as_slice() {
            [] => path == "/",
            ["access" | "nodes" | "pool" | "sdn" | "storage" | "vms" | "mapping"] => true,
            ["access", "groups" | "realm"] => true,
            ["access", "groups" | "realm", x] => name(x),
            ["nodes" | "storage" | "mapping", x] => name(x),
            ["mapping", x, y] => name(x) && name(y),
            ["pool", rest @ ..] => rest.len() <= 3 && rest.iter().all(|x| name(x)),
            ["sdn", "controllers" | "zones"] => true,
            ["sdn", kind] => sdn_kinds.contains(kind),
            ["sdn", "controllers", x] => {
                !x.is_empty()
                    && x.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
            }
            ["sdn", kind, x] if sdn_kinds.contains(kind) => alnum(x),
            ["sdn", "zones", x] => name(x),
            ["sdn", "zones", x, y] => name(x) && name(y),
            ["sdn", "zones", x, y, v] => name(x) && name(y) && vlan(v),
            ["vms", id] => vmid(id),
            _ => false,
        }
    }

    /// `perm-modify` on `{path}` (check_perm_modify).
    fn check_perm_modify(state: &State, token: &str, raw: &Raw) -> Result<(), Fail> {
        let Some(path) = raw_str(raw, "path").and_then(|p| normalize_path(&p)) else {
            return Ok(()); // "should already die in API2::ACL"
        };
        let mut privs = vec!["Permissions.Modify"];
        let extra = [
            ("/storage/", "Datastore.Allocate"),
            ("/vms/", "VM.Allocate"),
            ("/pool/", "Pool.Allocate"),
        ];
        for (prefix, privilege) in extra {
            if path.len() > prefix.len() && path.starts_with(prefix) {
                privs.push(privilege);
            }
        }
        check_path_privs(state, token, &path, &privs)
    }

    fn read_acl(state: &mut State, token: &str, call: &Call) -> Reply {
        validate(&raw(call, &[])?, &[])?;
        let audit = state.has(token, "/access", "Sys.Audit");
        let mut entries: Vec<&AclEntry> = state
            .acl
            .iter()
            .filter(|e| audit || state.has(token, &e.path, "Permissions.Modify"))
            .collect();
        entries.sort();
        let list = entries
            .into_iter()
            .map(|e| {
                let kind = match e.kind {
                    UgKind::User => "user",
                    UgKind::Group => "group",
                    UgKind::Token => "token",
                };
                json!({
                    "path": e.path,
                    "type": kind,
                    "ugid": e.ugid,
                    "roleid": e.role,
                    "propagate": u8::from(e.propagate),
                })
            })
            .collect();
        Ok(Value::Array(list))
    }

    fn update_acl(state: &mut State, token: &str, call: &Call) -> Reply {
        let raw = raw(call, &[])?;
        check_perm_modify(state, token, &raw)?;
        let params = validate(&raw, ACL_FIELDS)?;
        let listed = |key| params.str(key).is_some_and(|v| !v.is_empty() && v != "0");
        if !(listed("users") || listed("groups") || listed("tokens")) {
            let message = "either 'users', 'groups' or 'tokens' is required.";
            let errors =
                ["users", "groups", "tokens"].map(|k| (k.to_string(), message.to_string()));
            return Err(Fail::Params(errors.to_vec()));
        }
        let given = params.string("path").unwrap_or_default();
        let invalid = || Fail::Params(vec![("path".into(), format!("invalid ACL path '{given}'"))]);
        let path = normalize_path(&given).ok_or_else(invalid)?;
        let delete = params.bool("delete").unwrap_or(false);
        if !delete && !check_path(&path) {
            return Err(invalid());
        }
        let propagate = params.bool("propagate").unwrap_or(true);
        let mut next = state.clone();
        for role in split_list(params.str("roles").unwrap_or("")) {
            apply_role(
                &mut next, state, token, &params, &path, &role, propagate, delete,
            )?;
        }
        state.acl = next.acl;
        Ok(Value::Null)
    }

    #[allow(clippy::too_many_arguments)]
    fn apply_role(
        next: &mut State,
        state: &State,
        token: &str,
        params: &Params,
        path: &str,
        role: &str,
        propagate: bool,
        delete: bool,
    ) -> Result<(), Fail> {
        let fail = |m| failed("ACL update failed", m);
        let roles = state.roles();
        let Some(role_privs) = roles.get(role) else {
            return Err(fail(format!("role '{role}' does not exist")));
        };
        let held = state.privileges(token, path);
        if !held.contains("Permissions.Modify") {
            let verb = if delete { "remove" } else { "add" };
            let lacking = role_privs.iter().any(|p| !held.contains(p)) || role == "NoAccess";
            if lacking {
                let message = format!(
                    "Cannot {verb} role '{role}' - requires 'Permissions.Modify' or superset of privileges."
                );
                return Err(Fail::Params(vec![("role".into(), message)]));
            }
        }
        let mut targets = Vec::new();
        for group in split_list(params.str("groups").unwrap_or("")) {
            if !state.groups.contains_key(&group) {
                return Err(fail(format!("group '{group}' does not exist")));
            }
            targets.push((UgKind::Group, group));
        }
        for user in split_list(params.str("users").unwrap_or("")) {
            if !state.users.contains_key(&user) {
                return Err(fail(format!("user '{user}' does not exist")));
            }
            targets.push((UgKind::User, user));
        }
        for tokenid in split_list(params.str("tokens").unwrap_or("")) {
            let (user, name) = tokenid.rsplit_once('!').unwrap_or_default();
            if !state.users.contains_key(user) {
                return Err(fail(format!("no such user ('{user}')")));
            }
            if !state.tokens.contains_key(&tokenid) {
                return Err(fail(format!("no such token '{name}' for user '{user}'")));
            }
            targets.push((UgKind::Token, tokenid.clone()));
        }
        for (kind, ugid) in targets {
            let entry = AclEntry {
                path: path.to_string(),
                kind,
                ugid,
                role: role.to_string(),
                propagate,
            };
            if delete {
                next.acl.retain(|e| !e.same_grant(&entry));
            } else {
                next.grant(entry);
            }
        }
        Ok(())
    }

    /// PVE::API2::AccessControl permissions: "Map of path => (Map of privilege => propagate
    /// boolean)", for the caller or (with Sys.Audit on /access) another user or token; with a
    /// path, that path's entry, even when empty. All entries here propagate (1).
    fn list_permissions(state: &mut State, token: &str, call: &Call) -> Reply {
        let raw = raw(call, &[])?;
        let fields = [
            opt("userid", text(0, 64, any_text)),
            opt("path", text(0, 128, any_text)),
        ];
        let params = validate(&raw, &fields)?;
        let subject = match params.str("userid") {
            Some(other) if other != token => {
                if !state.has(token, "/access", "Sys.Audit") {
                    return Err(Fail::Status(403, "Permission check failed".into()));
                }
                other.to_string()
            }
            _ => token.to_string(),
        };
        let path = params.str("path").unwrap_or("/").to_string();
        let privs: Map<String, Value> = state
            .privileges(&subject, &path)
            .into_iter()
            .map(|p| (p, Value::from(1)))
            .collect();
        let mut map = Map::new();
        map.insert(path, Value::Object(privs));
        Ok(Value::Object(map))
    }

    fn list_roles(call: &Call) -> Reply {
        validate(&raw(call, &[])?, &[])?;
        let list = roles()
            .into_iter()
            .map(|(id, privs)| {
                json!({ "roleid": id, "privs": privs.join(","), "special": u8::from(is_special(&id)) })
            })
            .collect();
        Ok(Value::Array(list))
    }

    // Realms (PVE::API2::Domains with the OpenID plugin).

    fn list_realms(state: &mut State, call: &Call) -> Reply {
        validate(&raw(call, &[])?, &[])?;
        let list = state
            .realms
            .values()
            .map(|r| {
                let mut entry = json!({ "realm": r.realm, "type": r.kind });
                if let Some(comment) = r.options.get("comment").filter(|c| c.as_str() != Some("")) {
                    entry["comment"] = comment.clone();
                }
                if r.options.get("default") == Some(&Value::from(1)) {
                    entry["default"] = Value::from(1);
                }
                entry
            })
            .collect();
        Ok(Value::Array(list))
    }

    fn realm_options(params: &Params, fields: &[Field]) -> Map<String, Value> {
        let skip = ["realm", "check-connection", "delete", "digest"];
        let mut options = Map::new();
        for field in fields.iter().filter(|f| !skip.contains(&f.name)) {
            let value = match params.0.get(field.name) {
                Some(Val::Str(s)) => Value::from(s.clone()),
                Some(Val::Bool(b)) => Value::from(u8::from(*b)),
                _ => continue,
            };
            options.insert(field.name.into(), value);
        }
        options
    }

    fn clear_default(state: &mut State, options: &Map<String, Value>) {
        if options.get("default") == Some(&Value::from(1)) {
            for realm in state.realms.values_mut() {
                realm.options.remove("default");
            }
        }
    }

    fn create_realm(state: &mut State, token: &str, call: &Call) -> Reply {
        let raw = raw(call, &[])?;
        check_path_privs(state, token, "/access/realm", &["Realm.Allocate"])?;
        let params = validate(&raw, REALM_FIELDS)?;
        let fail = |m| failed("add auth server failed", m);
        let realm = params.string("realm").unwrap_or_default();
        let kind = params.string("type").unwrap_or_default();
        if state.realms.contains_key(&realm) {
            return Err(fail(format!("domain '{realm}' already exists")));
        }
        if realm == "pam" || realm == "pve" {
            return Err(fail(format!("unable to use reserved name '{realm}'")));
        }
        if kind == "pam" || kind == "pve" {
            return Err(fail(format!("unable to create builtin type '{kind}'")));
        }
        if params.bool("check-connection").is_some() {
            let message =
                "'check-connection' parameter can only be set for realms of type 'ldap' or 'ad'";
            return Err(fail(message.into()));
        }
        if kind != "openid" {
            return Err(fail(format!(
                "realms of type '{kind}' are not in this test server"
            )));
        }
        let mut options = realm_options(&params, REALM_FIELDS);
        if let Some(missing) = REQUIRED_OPENID.iter().find(|k| !options.contains_key(**k)) {
            return Err(fail(format!(
                "missing value for required option '{missing}'"
            )));
        }
        options.remove("type");
        clear_default(state, &options);
        let record = Realm {
            realm: realm.clone(),
            kind,
            options,
        };
        state.realms.insert(realm, record);
        Ok(Value::Null)
    }

    fn read_realm(state: &mut State, token: &str, call: &Call, id: &str) -> Reply {
        let raw = raw(call, &[("realm", id)])?;
        let privs = ["Realm.Allocate", "Sys.Audit"];
        check_path_privs(state, token, "/access/realm", &privs)?;
        validate(&raw, &[req("realm", text(0, 32, realm))])?;
        let Some(record) = state.realms.get(id) else {
            return Err(error(format!("domain '{id}' does not exist")));
        };
        let mut out = record.options.clone();
        out.insert("type".into(), record.kind.clone().into());
        Ok(Value::Object(out))
    }

    fn update_realm(state: &mut State, token: &str, call: &Call, id: &str) -> Reply {
        let raw = raw(call, &[("realm", id)])?;
        check_path_privs(state, token, "/access/realm", &["Realm.Allocate"])?;
        let params = validate(&raw, REALM_UPDATE_FIELDS)?;
        let fail = |m| failed("update auth server failed", m);
        let Some(kind) = state.realms.get(id).map(|r| r.kind.clone()) else {
            return Err(fail(format!("domain '{id}' does not exist")));
        };
        if params.bool("check-connection").is_some() {
            let message =
                "'check-connection' parameter can only be set for realms of type 'ldap' or 'ad'";
            return Err(fail(message.into()));
        }
        let options = realm_options(&params, REALM_UPDATE_FIELDS);
        let deletes = split_list(params.str("delete").unwrap_or(""));
        if deletes.is_empty() && options.is_empty() {
            return Err(fail("no options specified".into()));
        }
        if kind != "openid" && !options.is_empty() {
            return Err(fail(format!(
                "realms of type '{kind}' are not in this test server"
            )));
        }
        clear_default(state, &options);
        let record = state.realms.get_mut(id).expect("realm");
        for option in deletes {
            record.options.remove(&option);
        }
        record.options.extend(options);
        Ok(Value::Null)
    }

    fn delete_realm(state: &mut State, token: &str, call: &Call, id: &str) -> Reply {
        let raw = raw(call, &[("realm", id)])?;
        check_path_privs(state, token, "/access/realm", &["Realm.Allocate"])?;
        validate(&raw, &[req("realm", text(0, 32, realm))])?;
        if !state.realms.contains_key(id) {
            let message = format!("authentication domain '{id}' does not exist");
            return Err(failed("delete auth server failed", message));
        }
        // pam and pve are added back whenever domains.cfg is read.
        if id != "pam" && id != "pve" {
            state.realms.remove(id);
        }
        Ok(Value::Null)
    }
}
