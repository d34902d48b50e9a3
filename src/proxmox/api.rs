//! The Proxmox API of one target, over HTTPS: its certificate trusted as the target says, its
//! token in each product's header, its state read into a [`plan::Actual`], and one
//! [`plan::Change`] applied per call, with each product's parameter names and encodings:
//!
//! - PBS (proxmox-backup `src/api2/access/{user,acl,role,mod}.rs`,
//!   `src/api2/config/access/openid.rs`): JSON bodies with real booleans and arrays; errors
//!   are plain text, mostly 400.
//! - PVE (pve-access-control `src/PVE/API2/{User,ACL,Group,Role,Domains,AccessControl}.pm`):
//!   form bodies with `0`/`1` and comma-separated lists; errors are
//!   `{"data":null,"message":…,"errors":…}`, and a refused token gets a 401 with no body.

use std::collections::BTreeSet;
use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer};
use sha2::{Digest, Sha256};

use super::plan::{
    self, AclEntry, Actual, ActualUser, Change, ClientKey, Edit, Names, RealmSettings, UgidKind,
};
use super::target::{self, CaPemError, Product, Target, Trust};

/// Time to open the TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for a whole request, answer included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// Why a call to the Proxmox API failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{host}: the certificate's fingerprint is {seen}, not the configured {expected}")]
    FingerprintMismatch {
        host: String,
        seen: String,
        expected: String,
    },
    #[error("{host}: the server's certificate is not trusted: {source}")]
    Untrusted {
        host: String,
        #[source]
        source: rustls::Error,
    },
    #[error("{host}: the TLS handshake failed: {source}")]
    Handshake {
        host: String,
        #[source]
        source: rustls::Error,
    },
    #[error("the CA certificate is not a PEM certificate: {0}")]
    CaCertificate(#[source] rustls::pki_types::pem::Error),
    #[error("the CA certificate is not usable: {0}")]
    CaUnusable(#[source] rustls::Error),
    #[error("none of the system's CA certificates could be loaded")]
    NoSystemRoots,
    #[error("cannot set up TLS: {0}")]
    TlsSetup(#[source] rustls::Error),
    #[error("the API token id or secret has characters an HTTP header cannot carry")]
    TokenFormat(#[source] reqwest::header::InvalidHeaderValue),
    #[error("cannot set up the HTTPS client: {0}")]
    ClientSetup(#[source] reqwest::Error),
    #[error("{host}: no answer within {seconds} seconds")]
    Timeout {
        host: String,
        seconds: u64,
        #[source]
        source: reqwest::Error,
    },
    #[error("{host}: cannot connect: {detail}")]
    Connect {
        host: String,
        detail: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{host}: {product} refused the API token (401{}): check the token id and secret", colon(.message))]
    TokenRefused {
        host: String,
        product: &'static str,
        message: String,
    },
    #[error("{host}: the API token lacks {needs} ({product} answered 403: {message})")]
    Forbidden {
        host: String,
        product: &'static str,
        needs: String,
        message: String,
    },
    #[error("{host}: {method} {path}: {product} answered {status}: {message}")]
    Status {
        host: String,
        product: &'static str,
        method: Method,
        path: String,
        status: u16,
        message: String,
    },
    #[error("{host}: unexpected answer to {method} {path}: {source}")]
    Decode {
        host: String,
        method: Method,
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{host}: the realm {realm} exists but is of type {kind}, not an OpenID realm")]
    RealmNotOpenId {
        host: String,
        realm: String,
        kind: String,
    },
}

fn colon(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

fn product_name(product: Product) -> &'static str {
    match product {
        Product::Pbs => "PBS",
        Product::Pve => "PVE",
    }
}

// ---------------------------------------------------------------------------------------
// Certificate trust

/// A SHA-256 fingerprint as Proxmox shows it: upper-case hex bytes joined by `:`.
pub fn fingerprint_of(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    digest
        .iter()
        .map(|byte| format!("{byte:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The certificate seen was not the pinned one; carried inside rustls' error.
#[derive(Debug, thiserror::Error)]
#[error("the certificate's fingerprint is {seen}, not the configured {expected}")]
pub struct FingerprintMismatch {
    pub seen: String,
    pub expected: String,
}

/// Trusts exactly the end-entity certificate with the pinned SHA-256 fingerprint, as Proxmox
/// itself pins fingerprints: no chain and no hostname check, but the handshake signatures
/// are still verified with the provider's algorithms.
#[derive(Debug)]
pub struct PinnedCertificate {
    expected: String,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedCertificate {
    /// `expected` as `target::fingerprint` keeps it (`AB:CD:…`, upper case).
    pub fn new(expected: &str, provider: &CryptoProvider) -> PinnedCertificate {
        PinnedCertificate {
            expected: expected.to_ascii_uppercase(),
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen = fingerprint_of(end_entity.as_ref());
        if seen == self.expected {
            return Ok(ServerCertVerified::assertion());
        }
        let mismatch = FingerprintMismatch {
            seen,
            expected: self.expected.clone(),
        };
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(
            OtherError(Arc::new(mismatch)),
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The TLS client configuration for a trust setting, on the `ring` provider (never the
/// process-wide default).
pub fn tls_config(trust: &Trust) -> Result<rustls::ClientConfig, ApiError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(ApiError::TlsSetup)?;
    let config = match trust {
        Trust::Fingerprint(expected) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedCertificate::new(expected, &provider)))
            .with_no_client_auth(),
        Trust::CaPem(pem) => builder
            .with_root_certificates(ca_roots(pem)?)
            .with_no_client_auth(),
        Trust::SystemRoots => builder
            .with_root_certificates(system_roots()?)
            .with_no_client_auth(),
    };
    Ok(config)
}

fn ca_roots(pem: &str) -> Result<RootCertStore, ApiError> {
    target::ca_roots(pem).map_err(|error| match error {
        CaPemError::NoCertificate => ApiError::CaCertificate(pem::Error::NoItemsFound),
        CaPemError::Malformed(error) => ApiError::CaCertificate(error),
        CaPemError::Unusable(error) => ApiError::CaUnusable(error),
    })
}

fn system_roots() -> Result<RootCertStore, ApiError> {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if roots.is_empty() {
        return Err(ApiError::NoSystemRoots);
    }
    Ok(roots)
}

// ---------------------------------------------------------------------------------------
// Calls and their encoding

/// A parameter value, encoded per product: PBS JSON (booleans, arrays), PVE forms (`0`/`1`,
/// comma-separated lists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    Text(String),
    Flag(bool),
    List(Vec<String>),
}

/// One API call: method, path under `/api2/json`, parameters, and the right it takes (said
/// when the server answers 403).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub method: Method,
    pub path: Vec<String>,
    pub params: Vec<(&'static str, Param)>,
    pub needs: String,
}

impl Call {
    fn new(method: Method, path: &[&str], needs: impl Into<String>) -> Call {
        Call {
            method,
            path: path.iter().map(|segment| segment.to_string()).collect(),
            params: Vec::new(),
            needs: needs.into(),
        }
    }

    fn param(mut self, name: &'static str, value: Param) -> Call {
        self.params.push((name, value));
        self
    }

    fn text(self, name: &'static str, value: &str) -> Call {
        self.param(name, Param::Text(value.to_string()))
    }

    fn flag(self, name: &'static str, value: bool) -> Call {
        self.param(name, Param::Flag(value))
    }

    fn maybe_text(self, name: &'static str, value: &Option<String>) -> Call {
        match value {
            Some(value) => self.text(name, value),
            None => self,
        }
    }

    fn maybe_flag(self, name: &'static str, value: Option<bool>) -> Call {
        match value {
            Some(value) => self.flag(name, value),
            None => self,
        }
    }

    /// `/a/b` as shown in messages.
    pub fn shown_path(&self) -> String {
        format!("/{}", self.path.join("/"))
    }
}

/// A call as it goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub method: Method,
    /// Path and query, relative to the API URL.
    pub url: String,
    /// Content type and bytes, for POST and PUT.
    pub body: Option<(&'static str, Vec<u8>)>,
}

/// Encodes a call for a product: GET and DELETE carry their parameters in the query; POST
/// and PUT in a JSON body (PBS) or a form body (PVE).
pub fn encode(product: Product, api_url: &str, call: &Call) -> Encoded {
    let mut url = url::Url::parse(api_url).expect("target::api_url gives an absolute URL");
    url.path_segments_mut()
        .expect("an https URL has path segments")
        .pop_if_empty()
        .extend(["api2", "json"])
        .extend(&call.path);
    let in_query = call.method == Method::GET || call.method == Method::DELETE;
    if in_query && !call.params.is_empty() {
        let mut query = url.query_pairs_mut();
        for (name, value) in &call.params {
            query.append_pair(name, &form_value(product, value));
        }
    }
    let body = (!in_query).then(|| match product {
        Product::Pbs => ("application/json", json_body(&call.params)),
        Product::Pve => (
            "application/x-www-form-urlencoded",
            form_body(product, &call.params),
        ),
    });
    Encoded {
        method: call.method.clone(),
        url: url.to_string(),
        body,
    }
}

fn form_value(product: Product, value: &Param) -> String {
    match (product, value) {
        (_, Param::Text(text)) => text.clone(),
        (Product::Pbs, Param::Flag(flag)) => flag.to_string(),
        (Product::Pve, Param::Flag(flag)) => if *flag { "1" } else { "0" }.to_string(),
        (_, Param::List(items)) => items.join(","),
    }
}

fn form_body(product: Product, params: &[(&'static str, Param)]) -> Vec<u8> {
    let mut form = form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        form.append_pair(name, &form_value(product, value));
    }
    form.finish().into_bytes()
}

fn json_body(params: &[(&'static str, Param)]) -> Vec<u8> {
    let object: serde_json::Map<String, serde_json::Value> = params
        .iter()
        .map(|(name, value)| {
            let value = match value {
                Param::Text(text) => serde_json::Value::from(text.as_str()),
                Param::Flag(flag) => serde_json::Value::from(*flag),
                Param::List(items) => serde_json::Value::from(items.clone()),
            };
            (name.to_string(), value)
        })
        .collect();
    serde_json::to_vec(&object).expect("a JSON map serializes")
}

/// The rights each endpoint takes, as the sources check them.
mod needs {
    pub const PBS_USERS_READ: &str = "Sys.Audit on /access/users";
    pub const PBS_USERS_WRITE: &str = "Permissions.Modify on /access/users";
    pub const PBS_ACL_READ: &str = "Sys.Audit on /access/acl";
    pub const PBS_ACL_WRITE: &str = "Permissions.Modify on /access/acl";
    pub const PBS_REALM: &str = "Realm.Allocate on /access/domains";
    pub const PVE_USERS_READ: &str = "User.Modify or Sys.Audit on /access/groups";
    pub const PVE_USERS_WRITE: &str = "User.Modify on /access/groups";
    pub const PVE_GROUPS_READ: &str = "Group.Allocate, User.Modify or Sys.Audit on /access/groups";
    pub const PVE_GROUPS_WRITE: &str = "Group.Allocate on /access/groups";
    pub const PVE_ACL_READ: &str = "Sys.Audit on /access (or Permissions.Modify on each path)";
    pub const PVE_REALM: &str = "Realm.Allocate on /access/realm";
    pub const NONE: &str = "no particular right";
}

fn realm_of(userid: &str) -> &str {
    userid.rsplit_once('@').map_or("", |(_, realm)| realm)
}

/// PVE: creating and deleting users takes Realm.AllocateUser on the user's realm.
fn pve_user_lifecycle(userid: &str) -> String {
    format!(
        "Realm.AllocateUser on /access/realm/{} and User.Modify on /access/groups",
        realm_of(userid)
    )
}

/// The call that applies a change on a product.
pub fn call_for(product: Product, change: &Change) -> Call {
    match change {
        Change::CreateRealm {
            realm,
            settings,
            client_key,
        } => {
            let call = match product {
                Product::Pbs => Call::new(
                    Method::POST,
                    &["config", "access", "openid"],
                    needs::PBS_REALM,
                ),
                Product::Pve => Call::new(Method::POST, &["access", "domains"], needs::PVE_REALM)
                    .text("type", "openid"),
            };
            realm_params(call.text("realm", realm), settings, client_key)
        }
        Change::UpdateRealm {
            realm,
            settings,
            client_key,
        } => {
            let call = match product {
                Product::Pbs => Call::new(
                    Method::PUT,
                    &["config", "access", "openid", realm],
                    needs::PBS_REALM,
                ),
                Product::Pve => {
                    Call::new(Method::PUT, &["access", "domains", realm], needs::PVE_REALM)
                }
            };
            realm_params(call, settings, client_key)
        }
        Change::CreateGroup { groupid } => {
            Call::new(Method::POST, &["access", "groups"], needs::PVE_GROUPS_WRITE)
                .text("groupid", groupid)
        }
        Change::CreateUser { userid, names } => create_user(product, userid, names),
        Change::UpdateUser {
            userid,
            firstname,
            lastname,
            email,
            enable,
        } => {
            let edits = [
                ("firstname", firstname),
                ("lastname", lastname),
                ("email", email),
            ];
            update_user(product, userid, edits, *enable)
        }
        Change::SetUserGroups { userid, groups, .. } => {
            user_update(product, userid).param("groups", Param::List(groups.clone()))
        }
        Change::AddAcl(entry) => acl_call(product, entry).flag("propagate", entry.propagate),
        Change::RemoveAcl(entry) => acl_call(product, entry).flag("delete", true),
        Change::DisableUser { userid } => user_update(product, userid).flag("enable", false),
        Change::DeleteUser { userid } => Call::new(
            Method::DELETE,
            &["access", "users", userid],
            user_lifecycle(product, userid),
        ),
    }
}

/// What creating or deleting `userid` needs on `product`.
fn user_lifecycle(product: Product, userid: &str) -> String {
    match product {
        Product::Pbs => needs::PBS_USERS_WRITE.to_string(),
        Product::Pve => pve_user_lifecycle(userid),
    }
}

fn create_user(product: Product, userid: &str, names: &Names) -> Call {
    let Names {
        firstname,
        lastname,
        email,
    } = names;
    Call::new(
        Method::POST,
        &["access", "users"],
        user_lifecycle(product, userid),
    )
    .text("userid", userid)
    .maybe_text("firstname", firstname)
    .maybe_text("lastname", lastname)
    .maybe_text("email", email)
}

fn update_user(
    product: Product,
    userid: &str,
    edits: [(&'static str, &Option<Edit>); 3],
    enable: bool,
) -> Call {
    let mut call = user_update(product, userid);
    let mut cleared = Vec::new();
    for (name, edit) in edits {
        match (edit, product) {
            (Some(Edit::Set(value)), _) => call = call.text(name, value),
            // PBS refuses empty values (2 characters at least) and takes `delete`.
            (Some(Edit::Clear), Product::Pbs) => cleared.push(name.to_string()),
            // PVE stores an empty value as none.
            (Some(Edit::Clear), Product::Pve) => call = call.text(name, ""),
            (None, _) => {}
        }
    }
    if !cleared.is_empty() {
        call = call.param("delete", Param::List(cleared));
    }
    if enable {
        call = call.flag("enable", true);
    }
    call
}

fn user_update(product: Product, userid: &str) -> Call {
    let needs = match product {
        Product::Pbs => needs::PBS_USERS_WRITE,
        Product::Pve => needs::PVE_USERS_WRITE,
    };
    Call::new(Method::PUT, &["access", "users", userid], needs)
}

/// PBS: `role` and `auth-id` (or `group`); PVE: `roles` and `users` or `groups`.
fn acl_call(product: Product, entry: &AclEntry) -> Call {
    let call = match product {
        Product::Pbs => Call::new(Method::PUT, &["access", "acl"], needs::PBS_ACL_WRITE)
            .text("role", &entry.role),
        Product::Pve => Call::new(
            Method::PUT,
            &["access", "acl"],
            format!("Permissions.Modify on {}", entry.path),
        )
        .text("roles", &entry.role),
    };
    let whom = match (product, entry.kind) {
        (Product::Pbs, UgidKind::Group) => "group",
        (Product::Pbs, _) => "auth-id",
        (Product::Pve, UgidKind::User) => "users",
        (Product::Pve, UgidKind::Group) => "groups",
        (Product::Pve, UgidKind::Token) => "tokens",
    };
    call.text("path", &entry.path).text(whom, &entry.ugid)
}

/// The realm's settings under the names both products use (`issuer-url`, `client-id`,
/// `client-key`, `scopes`, `autocreate`, `username-claim`; PVE also `groups-claim`,
/// `groups-autocreate`, `groups-overwrite`).
fn realm_params(call: Call, settings: &RealmSettings, client_key: &Option<ClientKey>) -> Call {
    let call = call
        .maybe_text("issuer-url", &settings.issuer_url)
        .maybe_text("client-id", &settings.client_id)
        .maybe_text("scopes", &settings.scopes)
        .maybe_flag("autocreate", settings.autocreate)
        .maybe_text("username-claim", &settings.username_claim)
        .maybe_text("groups-claim", &settings.groups_claim)
        .maybe_flag("groups-autocreate", settings.groups_autocreate)
        .maybe_flag("groups-overwrite", settings.groups_overwrite);
    match client_key {
        Some(key) => call.text("client-key", key.expose()),
        None => call,
    }
}

// ---------------------------------------------------------------------------------------
// Answers

/// The server's message in an error answer: PBS sends plain text; PVE sends JSON with
/// `message` and per-parameter `errors`, and its 401 has no body (the status line's reason
/// is all there is).
pub fn error_message(product: Product, status: reqwest::StatusCode, body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct PveError {
        message: Option<String>,
        #[serde(default)]
        errors: Option<serde_json::Map<String, serde_json::Value>>,
    }
    let text = String::from_utf8_lossy(body).trim().to_string();
    let parsed = (product == Product::Pve)
        .then(|| serde_json::from_slice::<PveError>(body).ok())
        .flatten();
    let message = match parsed {
        Some(PveError { message, errors }) => {
            let mut parts: Vec<String> =
                message.map(|m| m.trim().to_string()).into_iter().collect();
            parts.extend(errors.unwrap_or_default().into_iter().map(|(name, error)| {
                let error = error
                    .as_str()
                    .map_or_else(|| error.to_string(), str::to_string);
                format!("{name}: {}", error.trim())
            }));
            parts.retain(|part| !part.is_empty());
            parts.join("; ")
        }
        None => text,
    };
    if message.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("no message")
            .to_string()
    } else {
        message
    }
}

/// A boolean as either product writes it: `true`, `1`, `"1"`…
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Flag(bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Flag, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Number(i64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Bool(flag) => Ok(Flag(flag)),
            Raw::Number(number) => Ok(Flag(number != 0)),
            Raw::Text(text) => match text.as_str() {
                "1" | "true" | "yes" | "on" => Ok(Flag(true)),
                "0" | "false" | "no" | "off" | "" => Ok(Flag(false)),
                other => Err(de::Error::custom(format!("not a boolean: {other:?}"))),
            },
        }
    }
}

/// A list as either a JSON array or a comma-separated string (PVE's `groups`, `users`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct List(Vec<String>);

impl<'de> Deserialize<'de> for List {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<List, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Items(Vec<String>),
            Text(String),
        }
        Ok(List(match Raw::deserialize(deserializer)? {
            Raw::Items(items) => items,
            Raw::Text(text) => text
                .split(',')
                .filter(|item| !item.is_empty())
                .map(str::to_string)
                .collect(),
        }))
    }
}

#[derive(Deserialize)]
struct Data<T> {
    data: T,
}

#[derive(Deserialize)]
struct WireUser {
    userid: String,
    enable: Option<Flag>,
    firstname: Option<String>,
    lastname: Option<String>,
    email: Option<String>,
    #[serde(default)]
    groups: List,
}

impl WireUser {
    fn into_user(self) -> ActualUser {
        let text = |value: Option<String>| value.filter(|value| !value.is_empty());
        ActualUser {
            userid: self.userid,
            // Both products default to enabled.
            enabled: self.enable.is_none_or(|Flag(enabled)| enabled),
            names: Names {
                firstname: text(self.firstname),
                lastname: text(self.lastname),
                email: text(self.email),
            },
            groups: self.groups.0.into_iter().collect(),
        }
    }
}

#[derive(Deserialize)]
struct WireAcl {
    path: String,
    ugid: String,
    roleid: String,
    propagate: Flag,
    /// PBS `ugid_type`, PVE `type`.
    #[serde(rename = "type", alias = "ugid_type")]
    kind: String,
}

impl WireAcl {
    fn into_entry(self) -> AclEntry {
        // PBS lists API tokens as users; PVE as "token".
        let kind = match self.kind.as_str() {
            "group" => UgidKind::Group,
            "user" if !self.ugid.contains('!') => UgidKind::User,
            _ => UgidKind::Token,
        };
        AclEntry {
            path: self.path,
            kind,
            ugid: self.ugid,
            role: self.roleid,
            propagate: self.propagate.0,
        }
    }
}

#[derive(Deserialize)]
struct WireRole {
    roleid: String,
}

#[derive(Deserialize)]
struct WireGroup {
    groupid: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct WireRealm {
    realm: Option<String>,
    issuer_url: Option<String>,
    client_id: Option<String>,
    scopes: Option<String>,
    autocreate: Option<Flag>,
    username_claim: Option<String>,
    groups_claim: Option<String>,
    groups_autocreate: Option<Flag>,
    groups_overwrite: Option<Flag>,
    // `client-key` is read by neither: Latchkey never needs the stored secret.
}

impl WireRealm {
    fn into_settings(self) -> RealmSettings {
        RealmSettings {
            issuer_url: self.issuer_url,
            client_id: self.client_id,
            scopes: self.scopes,
            autocreate: self.autocreate.map(|Flag(flag)| flag),
            username_claim: self.username_claim,
            groups_claim: self.groups_claim,
            groups_autocreate: self.groups_autocreate.map(|Flag(flag)| flag),
            groups_overwrite: self.groups_overwrite.map(|Flag(flag)| flag),
        }
    }
}

#[derive(Deserialize)]
struct WireDomain {
    realm: String,
    #[serde(rename = "type")]
    kind: String,
}

// ---------------------------------------------------------------------------------------
// The client

/// The API of one target.
pub struct Client {
    http: reqwest::Client,
    api_url: String,
    product: Product,
    authorization: HeaderValue,
    host: String,
}

impl Client {
    /// A client that trusts the server's certificate as the target says, sends the product's
    /// token header, follows no redirect, and gives up after 5 s connecting or 20 s in all.
    pub fn new(target: &Target) -> Result<Client, ApiError> {
        let token = match target.product {
            Product::Pbs => format!("PBSAPIToken={}:{}", target.token_id, target.token_secret),
            Product::Pve => format!("PVEAPIToken={}={}", target.token_id, target.token_secret),
        };
        let mut authorization = HeaderValue::from_str(&token).map_err(ApiError::TokenFormat)?;
        authorization.set_sensitive(true);
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls_config(&target.trust)?)
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(ApiError::ClientSetup)?;
        Ok(Client {
            http,
            api_url: target.api_url.clone(),
            product: target.product,
            authorization,
            host: host_of(&target.api_url),
        })
    }

    /// `host:port`, for messages.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// What the server holds for `realm`: its users, the whole ACL, (PVE) the groups, and
    /// when `with_realm` the realm's settings.
    pub async fn actual(&self, realm: &str, with_realm: bool) -> Result<Actual, ApiError> {
        let users = self
            .users()
            .await?
            .into_iter()
            .filter(|user| plan::is_realm_user(&user.userid, realm))
            .collect();
        let acl = self.acl().await?;
        let groups = match self.product {
            Product::Pbs => BTreeSet::new(),
            Product::Pve => self.groups().await?,
        };
        let realm = if with_realm {
            self.realm(realm).await?
        } else {
            None
        };
        Ok(Actual {
            users,
            groups,
            acl,
            realm,
        })
    }

    /// Every user the token can see (PVE with their groups).
    pub async fn users(&self) -> Result<Vec<ActualUser>, ApiError> {
        let call = match self.product {
            Product::Pbs => Call::new(Method::GET, &["access", "users"], needs::PBS_USERS_READ),
            Product::Pve => Call::new(Method::GET, &["access", "users"], needs::PVE_USERS_READ)
                .flag("full", true),
        };
        let users: Vec<WireUser> = self.read(&call).await?;
        Ok(users.into_iter().map(WireUser::into_user).collect())
    }

    /// The ACL entries the token can see.
    pub async fn acl(&self) -> Result<Vec<AclEntry>, ApiError> {
        let needs = match self.product {
            Product::Pbs => needs::PBS_ACL_READ,
            Product::Pve => needs::PVE_ACL_READ,
        };
        let entries: Vec<WireAcl> = self
            .read(&Call::new(Method::GET, &["access", "acl"], needs))
            .await?;
        Ok(entries.into_iter().map(WireAcl::into_entry).collect())
    }

    /// The server's role ids, sorted.
    pub async fn roles(&self) -> Result<Vec<String>, ApiError> {
        let roles: Vec<WireRole> = self
            .read(&Call::new(Method::GET, &["access", "roles"], needs::NONE))
            .await?;
        let mut roles: Vec<String> = roles.into_iter().map(|role| role.roleid).collect();
        roles.sort();
        Ok(roles)
    }

    /// PVE: the group ids.
    pub async fn groups(&self) -> Result<BTreeSet<String>, ApiError> {
        let call = Call::new(Method::GET, &["access", "groups"], needs::PVE_GROUPS_READ);
        let groups: Vec<WireGroup> = self.read(&call).await?;
        Ok(groups.into_iter().map(|group| group.groupid).collect())
    }

    /// The OpenID realm's settings, or `None` when it does not exist (PBS lists its OpenID
    /// realms; PVE lists all realms and is then asked for the one).
    pub async fn realm(&self, realm: &str) -> Result<Option<RealmSettings>, ApiError> {
        match self.product {
            Product::Pbs => {
                let call = Call::new(
                    Method::GET,
                    &["config", "access", "openid"],
                    needs::PBS_REALM,
                );
                let realms: Vec<WireRealm> = self.read(&call).await?;
                let found = realms
                    .into_iter()
                    .find(|found| found.realm.as_deref() == Some(realm));
                Ok(found.map(WireRealm::into_settings))
            }
            Product::Pve => {
                let call = Call::new(Method::GET, &["access", "domains"], needs::NONE);
                let domains: Vec<WireDomain> = self.read(&call).await?;
                let Some(domain) = domains.into_iter().find(|domain| domain.realm == realm) else {
                    return Ok(None);
                };
                if domain.kind != "openid" {
                    let host = self.host.clone();
                    return Err(ApiError::RealmNotOpenId {
                        host,
                        realm: realm.to_string(),
                        kind: domain.kind,
                    });
                }
                let call = Call::new(Method::GET, &["access", "domains", realm], needs::PVE_REALM);
                let settings: WireRealm = self.read(&call).await?;
                Ok(Some(settings.into_settings()))
            }
        }
    }

    /// The token's own privileges at `path` (both products: `GET /access/permissions`).
    pub async fn privileges(&self, path: &str) -> Result<BTreeSet<String>, ApiError> {
        let call =
            Call::new(Method::GET, &["access", "permissions"], needs::NONE).text("path", path);
        let map: std::collections::BTreeMap<
            String,
            std::collections::BTreeMap<String, serde_json::Value>,
        > = self.read(&call).await?;
        Ok(map
            .into_values()
            .flat_map(|privileges| privileges.into_keys())
            .collect())
    }

    /// Applies one change.
    pub async fn apply(&self, change: &Change) -> Result<(), ApiError> {
        self.send(&call_for(self.product, change)).await.map(drop)
    }

    async fn read<T: DeserializeOwned>(&self, call: &Call) -> Result<T, ApiError> {
        let body = self.send(call).await?;
        let data: Data<T> = serde_json::from_slice(&body).map_err(|source| ApiError::Decode {
            host: self.host.clone(),
            method: call.method.clone(),
            path: call.shown_path(),
            source,
        })?;
        Ok(data.data)
    }

    async fn send(&self, call: &Call) -> Result<Vec<u8>, ApiError> {
        let encoded = encode(self.product, &self.api_url, call);
        let mut request = self
            .http
            .request(encoded.method, &encoded.url)
            .header(AUTHORIZATION, self.authorization.clone());
        if let Some((content_type, body)) = encoded.body {
            request = request.header(CONTENT_TYPE, content_type).body(body);
        }
        let response = request
            .send()
            .await
            .map_err(|error| self.transport_error(error))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|error| self.transport_error(error))?;
        if status.is_success() {
            return Ok(body.to_vec());
        }
        Err(self.status_error(call, status, &body))
    }

    fn status_error(&self, call: &Call, status: reqwest::StatusCode, body: &[u8]) -> ApiError {
        let host = self.host.clone();
        let product = product_name(self.product);
        let message = error_message(self.product, status, body);
        match status.as_u16() {
            401 => ApiError::TokenRefused {
                host,
                product,
                message,
            },
            403 => ApiError::Forbidden {
                host,
                product,
                needs: call.needs.clone(),
                message,
            },
            code => ApiError::Status {
                host,
                product,
                method: call.method.clone(),
                path: call.shown_path(),
                status: code,
                message,
            },
        }
    }

    fn transport_error(&self, error: reqwest::Error) -> ApiError {
        let host = self.host.clone();
        if let Some(tls) = rustls_error(&error) {
            return match tls {
                rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(other))) => {
                    match other.downcast_ref::<FingerprintMismatch>() {
                        Some(mismatch) => ApiError::FingerprintMismatch {
                            host,
                            seen: mismatch.seen.clone(),
                            expected: mismatch.expected.clone(),
                        },
                        None => ApiError::Untrusted {
                            host,
                            source: tls.clone(),
                        },
                    }
                }
                rustls::Error::InvalidCertificate(_) => ApiError::Untrusted {
                    host,
                    source: tls.clone(),
                },
                _ => ApiError::Handshake {
                    host,
                    source: tls.clone(),
                },
            };
        }
        if error.is_timeout() {
            return ApiError::Timeout {
                host,
                seconds: REQUEST_TIMEOUT.as_secs(),
                source: error,
            };
        }
        let detail = deepest_message(&error);
        ApiError::Connect {
            host,
            detail,
            source: error,
        }
    }
}

/// `host:port` of an API URL.
fn host_of(api_url: &str) -> String {
    match url::Url::parse(api_url) {
        Ok(url) => match (url.host_str(), url.port_or_known_default()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_string(),
            _ => api_url.to_string(),
        },
        Err(_) => api_url.to_string(),
    }
}

/// The rustls error under a failed request, if TLS failed. The TLS layer wraps it in an
/// `io::Error`, whose `source` skips it, so each `io::Error` is opened by hand.
fn rustls_error<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        let inner = error
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref());
        if let Some(found) = inner.and_then(|inner| rustls_error(inner)) {
            return Some(found);
        }
        current = error.source();
    }
    None
}

/// The innermost cause's message ("Connection refused"), which says more than reqwest's.
fn deepest_message(error: &(dyn StdError + 'static)) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// A tiny HTTPS server for tests: self-signed certificates, one answer per request.
#[cfg(test)]
pub(crate) mod test_server {
    use super::*;
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    use rustls::sign::{CertifiedKey, SingleCertAndKey};
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::Mutex;

    // ---- certificates ---------------------------------------------------------------------

    pub(crate) struct Issued {
        pub(crate) cert: CertificateDer<'static>,
        pub(crate) pem: String,
        pub(crate) key: PrivateKeyDer<'static>,
    }

    pub(crate) fn issue(names: &[&str]) -> Issued {
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        let rcgen::CertifiedKey { cert, key_pair } =
            rcgen::generate_simple_self_signed(names).unwrap();
        Issued {
            cert: cert.der().clone(),
            pem: cert.pem(),
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pair.serialize_der())),
        }
    }

    // ---- a tiny HTTPS server ----------------------------------------------------------------

    /// A request as the test server received it.
    #[derive(Debug, Clone)]
    pub(crate) struct Received {
        pub(crate) method: String,
        pub(crate) target: String,
        pub(crate) authorization: Option<String>,
        pub(crate) body: String,
    }

    pub(crate) struct Server {
        pub(crate) port: u16,
        pub(crate) fingerprint: String,
        pub(crate) pem: String,
        received: Arc<Mutex<Vec<Received>>>,
    }

    impl Server {
        pub(crate) fn url(&self, host: &str) -> String {
            format!("https://{host}:{}", self.port)
        }

        pub(crate) fn received(&self) -> Vec<Received> {
            self.received.lock().unwrap().clone()
        }
    }

    pub(crate) type Answer = (u16, String);

    /// Serves TLS with `issued`'s certificate, signing the handshake with `signer`'s key.
    pub(crate) fn serve(
        issued: &Issued,
        signer: &Issued,
        answer: impl Fn(&Received) -> Answer + Send + 'static,
    ) -> Server {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = provider
            .key_provider
            .load_private_key(signer.key.clone_key())
            .unwrap();
        let resolver = SingleCertAndKey::from(CertifiedKey::new(vec![issued.cert.clone()], key));
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(resolver)),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let connection = rustls::ServerConnection::new(config.clone()).unwrap();
                let mut tls = rustls::StreamOwned::new(connection, stream.unwrap());
                let Some(request) = read_request(&mut tls) else {
                    continue;
                };
                log.lock().unwrap().push(request.clone());
                let (status, body) = answer(&request);
                let head = format!(
                    "HTTP/1.1 {status} Answer\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = tls
                    .write_all(head.as_bytes())
                    .and_then(|()| tls.write_all(body.as_bytes()));
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        });
        Server {
            port,
            fingerprint: fingerprint_of(issued.cert.as_ref()),
            pem: issued.pem.clone(),
            received,
        }
    }

    /// Reads one HTTP/1.1 request; `None` when the handshake or the read fails.
    fn read_request(stream: &mut impl Read) -> Option<Received> {
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(end) = bytes.windows(4).position(|window| window == b"\r\n\r\n") {
                break end;
            }
            let read = stream.read(&mut chunk).ok().filter(|read| *read > 0)?;
            bytes.extend_from_slice(&chunk[..read]);
        };
        let head = String::from_utf8_lossy(&bytes[..head_end]).to_string();
        let header = |name: &str| {
            head.lines()
                .filter_map(|line| line.split_once(':'))
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.trim().to_string())
        };
        let length: usize = header("content-length").map_or(0, |length| length.parse().unwrap());
        while bytes.len() < head_end + 4 + length {
            let read = stream.read(&mut chunk).ok().filter(|read| *read > 0)?;
            bytes.extend_from_slice(&chunk[..read]);
        }
        let mut request_line = head.lines().next()?.split(' ');
        Some(Received {
            method: request_line.next()?.to_string(),
            target: request_line.next()?.to_string(),
            authorization: header("authorization"),
            body: String::from_utf8_lossy(&bytes[head_end + 4..]).to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::test_server::{Answer, Received, Server, issue, serve};
    use super::*;
    use crate::names::ClientId;
    use crate::proxmox::target::Leavers;
    use std::net::TcpListener;

    const SECRET: &str = "5e1f0a2b-token-secret";

    fn target(product: Product, api_url: &str, trust: Trust) -> Target {
        Target {
            client_id: ClientId::parse("pbs").unwrap(),
            product,
            api_url: api_url.to_string(),
            token_id: "root@pam!latchkey".to_string(),
            token_secret: SECRET.to_string(),
            trust,
            realm: "latchkey".to_string(),
            leavers: Leavers::Disable,
            manage_realm: false,
        }
    }

    fn entry(kind: UgidKind, ugid: &str, propagate: bool) -> AclEntry {
        AclEntry {
            path: "/datastore/main".to_string(),
            kind,
            ugid: ugid.to_string(),
            role: "DatastoreBackup".to_string(),
            propagate,
        }
    }

    fn json(body: &Option<(&'static str, Vec<u8>)>) -> serde_json::Value {
        let (content_type, bytes) = body.as_ref().expect("a body");
        assert_eq!(*content_type, "application/json");
        serde_json::from_slice(bytes).unwrap()
    }

    fn form(body: &Option<(&'static str, Vec<u8>)>) -> String {
        let (content_type, bytes) = body.as_ref().expect("a body");
        assert_eq!(*content_type, "application/x-www-form-urlencoded");
        String::from_utf8(bytes.clone()).unwrap()
    }

    fn encoded(product: Product, change: &Change) -> Encoded {
        encode(
            product,
            "https://pve.example.com:8006",
            &call_for(product, change),
        )
    }

    // ---- encodings ------------------------------------------------------------------------

    #[test]
    fn acl_entries_are_granted_with_each_products_names_and_booleans() {
        let grant = Change::AddAcl(entry(UgidKind::User, "ada@latchkey", true));
        let pbs = encoded(Product::Pbs, &grant);
        assert_eq!(pbs.method, Method::PUT);
        assert_eq!(pbs.url, "https://pve.example.com:8006/api2/json/access/acl");
        assert_eq!(
            json(&pbs.body),
            serde_json::json!({"role": "DatastoreBackup", "path": "/datastore/main", "auth-id": "ada@latchkey", "propagate": true})
        );
        let grant = Change::AddAcl(entry(UgidKind::Group, "backup-latchkey", false));
        assert_eq!(
            form(&encoded(Product::Pve, &grant).body),
            "roles=DatastoreBackup&path=%2Fdatastore%2Fmain&groups=backup-latchkey&propagate=0"
        );
        let revoke = Change::RemoveAcl(entry(UgidKind::User, "ada@latchkey", true));
        assert_eq!(
            json(&encoded(Product::Pbs, &revoke).body),
            serde_json::json!({"role": "DatastoreBackup", "path": "/datastore/main", "auth-id": "ada@latchkey", "delete": true})
        );
        assert_eq!(
            form(&encoded(Product::Pve, &revoke).body),
            "roles=DatastoreBackup&path=%2Fdatastore%2Fmain&users=ada%40latchkey&delete=1"
        );
    }

    #[test]
    fn users_are_created_updated_disabled_and_deleted_per_product() {
        let names = Names {
            firstname: Some("Ada".to_string()),
            lastname: None,
            email: Some("ada@example.com".to_string()),
        };
        let create = Change::CreateUser {
            userid: "ada@latchkey".to_string(),
            names,
        };
        let pbs = encoded(Product::Pbs, &create);
        assert_eq!(
            (pbs.method.clone(), pbs.url.as_str()),
            (
                Method::POST,
                "https://pve.example.com:8006/api2/json/access/users"
            )
        );
        assert_eq!(
            json(&pbs.body),
            serde_json::json!({"userid": "ada@latchkey", "firstname": "Ada", "email": "ada@example.com"})
        );
        assert_eq!(
            form(&encoded(Product::Pve, &create).body),
            "userid=ada%40latchkey&firstname=Ada&email=ada%40example.com"
        );

        let update = Change::UpdateUser {
            userid: "ada@latchkey".to_string(),
            firstname: Some(Edit::Set("Ada".to_string())),
            lastname: Some(Edit::Clear),
            email: Some(Edit::Clear),
            enable: true,
        };
        let pbs = encoded(Product::Pbs, &update);
        assert_eq!(
            pbs.url,
            "https://pve.example.com:8006/api2/json/access/users/ada@latchkey"
        );
        assert_eq!(
            json(&pbs.body),
            serde_json::json!({"firstname": "Ada", "delete": ["lastname", "email"], "enable": true})
        );
        assert_eq!(
            form(&encoded(Product::Pve, &update).body),
            "firstname=Ada&lastname=&email=&enable=1"
        );

        let disable = Change::DisableUser {
            userid: "ada@latchkey".to_string(),
        };
        assert_eq!(
            json(&encoded(Product::Pbs, &disable).body),
            serde_json::json!({"enable": false})
        );
        assert_eq!(form(&encoded(Product::Pve, &disable).body), "enable=0");

        let delete = encoded(
            Product::Pbs,
            &Change::DeleteUser {
                userid: "ada@latchkey".to_string(),
            },
        );
        assert_eq!((delete.method, delete.body), (Method::DELETE, None));
        assert_eq!(
            delete.url,
            "https://pve.example.com:8006/api2/json/access/users/ada@latchkey"
        );
    }

    #[test]
    fn pve_group_membership_sends_the_whole_list_even_when_empty() {
        let set = |groups: &[&str]| Change::SetUserGroups {
            userid: "ada@latchkey".to_string(),
            join: vec![],
            leave: vec!["admins-latchkey".to_string()],
            groups: groups.iter().map(|group| group.to_string()).collect(),
        };
        assert_eq!(
            form(&encoded(Product::Pve, &set(&["ops-latchkey", "staff"])).body),
            "groups=ops-latchkey%2Cstaff"
        );
        assert_eq!(form(&encoded(Product::Pve, &set(&[])).body), "groups=");
        let create = encoded(
            Product::Pve,
            &Change::CreateGroup {
                groupid: "admins-latchkey".to_string(),
            },
        );
        assert_eq!(
            create.url,
            "https://pve.example.com:8006/api2/json/access/groups"
        );
        assert_eq!(form(&create.body), "groupid=admins-latchkey");
    }

    #[test]
    fn realms_are_written_with_their_settings_and_the_secret_only_on_the_wire() {
        let settings = plan::RealmSettings::managed(
            Product::Pve,
            "https://id.example.com",
            &ClientId::parse("pve").unwrap(),
        );
        let create = Change::CreateRealm {
            realm: "latchkey".to_string(),
            settings,
            client_key: Some(ClientKey::new("s3cret")),
        };
        let pve = encoded(Product::Pve, &create);
        assert_eq!(
            pve.url,
            "https://pve.example.com:8006/api2/json/access/domains"
        );
        assert_eq!(
            form(&pve.body),
            concat!(
                "type=openid&realm=latchkey&issuer-url=https%3A%2F%2Fid.example.com&client-id=pve",
                "&scopes=email+profile+groups&autocreate=0&username-claim=username&groups-claim=groups",
                "&groups-autocreate=0&groups-overwrite=0&client-key=s3cret"
            )
        );
        let settings = plan::RealmSettings::managed(
            Product::Pbs,
            "https://id.example.com",
            &ClientId::parse("pbs").unwrap(),
        );
        let create = Change::CreateRealm {
            realm: "latchkey".to_string(),
            settings,
            client_key: None,
        };
        let pbs = encoded(Product::Pbs, &create);
        assert_eq!(
            pbs.url,
            "https://pve.example.com:8006/api2/json/config/access/openid"
        );
        assert_eq!(
            json(&pbs.body),
            serde_json::json!({
                "realm": "latchkey", "issuer-url": "https://id.example.com", "client-id": "pbs",
                "scopes": "email profile groups", "autocreate": false, "username-claim": "username"
            })
        );
        let update = Change::UpdateRealm {
            realm: "latchkey".to_string(),
            settings: plan::RealmSettings {
                client_id: Some("pbs".to_string()),
                ..Default::default()
            },
            client_key: Some(ClientKey::new("n3w")),
        };
        let pbs = encoded(Product::Pbs, &update);
        assert_eq!(
            (pbs.method.clone(), pbs.url.as_str()),
            (
                Method::PUT,
                "https://pve.example.com:8006/api2/json/config/access/openid/latchkey"
            )
        );
        assert_eq!(
            json(&pbs.body),
            serde_json::json!({"client-id": "pbs", "client-key": "n3w"})
        );
        assert_eq!(
            encoded(Product::Pve, &update).url,
            "https://pve.example.com:8006/api2/json/access/domains/latchkey"
        );
    }

    #[test]
    fn reads_carry_their_parameters_in_the_query() {
        let call = Call::new(Method::GET, &["access", "users"], needs::NONE).flag("full", true);
        assert_eq!(
            encode(Product::Pve, "https://pve:8006", &call).url,
            "https://pve:8006/api2/json/access/users?full=1"
        );
        let call = Call::new(Method::GET, &["access", "permissions"], needs::NONE)
            .text("path", "/access/acl");
        let pbs = encode(Product::Pbs, "https://pbs:8007", &call);
        assert_eq!(
            pbs.url,
            "https://pbs:8007/api2/json/access/permissions?path=%2Faccess%2Facl"
        );
        assert_eq!(pbs.body, None);
    }

    // ---- answers --------------------------------------------------------------------------

    #[test]
    fn error_messages_are_read_from_each_products_shape() {
        use reqwest::StatusCode;
        assert_eq!(
            error_message(Product::Pbs, StatusCode::BAD_REQUEST, b"no such user.\n"),
            "no such user."
        );
        let pve = br#"{"data":null,"message":"Parameter verification failed.\n","errors":{"path":"invalid ACL path '/x y'\n"}}"#;
        assert_eq!(
            error_message(Product::Pve, StatusCode::BAD_REQUEST, pve),
            "Parameter verification failed.; path: invalid ACL path '/x y'"
        );
        let pve =
            br#"{"data":null,"message":"ACL update failed: user 'x@latchkey' does not exist\n"}"#;
        assert_eq!(
            error_message(Product::Pve, StatusCode::INTERNAL_SERVER_ERROR, pve),
            "ACL update failed: user 'x@latchkey' does not exist"
        );
        assert_eq!(
            error_message(Product::Pve, StatusCode::UNAUTHORIZED, b""),
            "Unauthorized"
        );
    }

    #[test]
    fn lists_read_booleans_and_lists_as_either_product_writes_them() {
        let pve: Data<Vec<WireUser>> = serde_json::from_str(
            r#"{"data":[{"userid":"ada@latchkey","enable":0,"groups":"a-latchkey,staff","firstname":""},
                        {"userid":"bob@latchkey"}]}"#,
        )
        .unwrap();
        let users: Vec<ActualUser> = pve.data.into_iter().map(WireUser::into_user).collect();
        assert!(!users[0].enabled);
        assert_eq!(
            users[0].groups,
            ["a-latchkey", "staff"].map(String::from).into()
        );
        assert_eq!(users[0].names.firstname, None);
        assert!(users[1].enabled, "absent means enabled");
        let acl: Data<Vec<WireAcl>> = serde_json::from_str(
            r#"{"data":[{"path":"/","ugid":"ada@latchkey","ugid_type":"user","roleid":"Admin","propagate":true},
                        {"path":"/","ugid":"ada@latchkey!t","ugid_type":"user","roleid":"Admin","propagate":false},
                        {"path":"/vms","ugid":"a-latchkey","type":"group","roleid":"PVEAdmin","propagate":1},
                        {"path":"/vms","ugid":"root@pam!t","type":"token","roleid":"PVEAdmin","propagate":"0"}]}"#,
        )
        .unwrap();
        let kinds: Vec<(UgidKind, bool)> = acl
            .data
            .into_iter()
            .map(WireAcl::into_entry)
            .map(|entry| (entry.kind, entry.propagate))
            .collect();
        assert_eq!(
            kinds,
            [
                (UgidKind::User, true),
                (UgidKind::Token, false),
                (UgidKind::Group, true),
                (UgidKind::Token, false)
            ]
        );
    }

    #[test]
    fn the_pinned_certificate_is_accepted_and_no_other() {
        let provider = rustls::crypto::ring::default_provider();
        let issued = issue(&["pbs.example.com"]);
        let other = issue(&["pbs.example.com"]);
        let pinned = fingerprint_of(issued.cert.as_ref());
        let verifier = PinnedCertificate::new(&pinned.to_lowercase(), &provider);
        let name = ServerName::try_from("anything.example").unwrap();
        assert!(
            verifier
                .verify_server_cert(&issued.cert, &[], &name, &[], UnixTime::now())
                .is_ok()
        );
        let refused = verifier
            .verify_server_cert(&other.cert, &[], &name, &[], UnixTime::now())
            .unwrap_err();
        let rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) = refused
        else {
            panic!("{refused:?}")
        };
        let mismatch = inner.downcast_ref::<FingerprintMismatch>().unwrap();
        assert_eq!(mismatch.seen, fingerprint_of(other.cert.as_ref()));
        assert_eq!(mismatch.expected, pinned);
        assert_eq!(pinned.len(), 32 * 3 - 1);
        assert!(!verifier.supported_verify_schemes().is_empty());
    }

    fn roles_answer(_: &Received) -> Answer {
        (
            200,
            r#"{"data":[{"roleid":"NoAccess"},{"roleid":"Admin"},{"roleid":"DatastoreBackup"}]}"#
                .to_string(),
        )
    }

    #[tokio::test]
    async fn a_wrong_fingerprint_fails_the_handshake_before_any_request() {
        let issued = issue(&["localhost"]);
        let server = serve(&issued, &issued, roles_answer);
        let configured = fingerprint_of(issue(&["localhost"]).cert.as_ref());
        let client = Client::new(&target(
            Product::Pbs,
            &server.url("127.0.0.1"),
            Trust::Fingerprint(configured.clone()),
        ))
        .unwrap();
        let error = client.roles().await.unwrap_err();
        let ApiError::FingerprintMismatch { seen, expected, .. } = &error else {
            panic!("{error:?}")
        };
        assert_eq!((seen, expected), (&server.fingerprint, &configured));
        assert_eq!(
            error.to_string(),
            format!(
                "127.0.0.1:{}: the certificate's fingerprint is {}, not the configured {configured}",
                server.port, server.fingerprint
            )
        );
        assert!(
            server.received().is_empty(),
            "nothing is sent before the certificate check"
        );
    }

    #[tokio::test]
    async fn the_pinned_certificate_is_trusted_whatever_the_host_name() {
        let issued = issue(&["pbs.example.com"]);
        let server = serve(&issued, &issued, roles_answer);
        let client = Client::new(&target(
            Product::Pbs,
            &server.url("127.0.0.1"),
            Trust::Fingerprint(server.fingerprint.clone()),
        ))
        .unwrap();
        assert_eq!(
            client.roles().await.unwrap(),
            ["Admin", "DatastoreBackup", "NoAccess"]
        );
        let received = server.received();
        assert_eq!(received[0].method, "GET");
        assert_eq!(received[0].target, "/api2/json/access/roles");
        assert_eq!(
            received[0].authorization.as_deref(),
            Some(format!("PBSAPIToken=root@pam!latchkey:{SECRET}").as_str())
        );
    }

    #[tokio::test]
    async fn a_server_with_the_pinned_certificate_but_not_its_key_is_refused() {
        let issued = issue(&["localhost"]);
        let impostor = issue(&["localhost"]);
        let server = serve(&issued, &impostor, roles_answer);
        let client = Client::new(&target(
            Product::Pbs,
            &server.url("127.0.0.1"),
            Trust::Fingerprint(server.fingerprint.clone()),
        ))
        .unwrap();
        let error = client.roles().await.unwrap_err();
        // rustls reports the handshake signature made with another key as a bad certificate.
        let ApiError::Untrusted { source, .. } = &error else {
            panic!("{error:?}")
        };
        assert_eq!(
            source,
            &rustls::Error::InvalidCertificate(CertificateError::BadSignature)
        );
        assert!(server.received().is_empty());
    }

    #[tokio::test]
    async fn a_ca_certificate_is_trusted_for_the_names_it_signed() {
        let issued = issue(&["localhost"]);
        let server = serve(&issued, &issued, roles_answer);
        let trust = Trust::CaPem(server.pem.clone());
        let client = Client::new(&target(
            Product::Pve,
            &server.url("localhost"),
            trust.clone(),
        ))
        .unwrap();
        assert_eq!(client.roles().await.unwrap().len(), 3);
        let received = server.received();
        assert_eq!(
            received[0].authorization.as_deref(),
            Some(format!("PVEAPIToken=root@pam!latchkey={SECRET}").as_str())
        );
        let wrong_name =
            Client::new(&target(Product::Pve, &server.url("127.0.0.1"), trust)).unwrap();
        let error = wrong_name.roles().await.unwrap_err();
        assert!(matches!(error, ApiError::Untrusted { .. }), "{error:?}");
        let stranger = Trust::CaPem(issue(&["localhost"]).pem);
        let error = Client::new(&target(Product::Pve, &server.url("localhost"), stranger))
            .unwrap()
            .roles()
            .await
            .unwrap_err();
        assert!(error.to_string().contains("not trusted"), "{error}");
        assert_eq!(server.received().len(), 1);
    }

    #[test]
    fn a_ca_file_without_a_certificate_is_refused() {
        let error = tls_config(&Trust::CaPem("not a certificate".to_string())).unwrap_err();
        assert!(matches!(error, ApiError::CaCertificate(_)), "{error:?}");
    }

    fn pinned(server: &Server, product: Product) -> Client {
        let trust = Trust::Fingerprint(server.fingerprint.clone());
        Client::new(&target(product, &server.url("127.0.0.1"), trust)).unwrap()
    }

    #[tokio::test]
    async fn refusals_say_what_the_token_lacks() {
        let issued = issue(&["localhost"]);
        let server = serve(&issued, &issued, |request| match request.method.as_str() {
            "GET" => (401, String::new()),
            _ => (403, "permission check failed".to_string()),
        });
        let error = pinned(&server, Product::Pve).roles().await.unwrap_err();
        assert!(matches!(error, ApiError::TokenRefused { .. }), "{error:?}");
        assert!(
            error
                .to_string()
                .contains("PVE refused the API token (401: Unauthorized)"),
            "{error}"
        );
        let grant = Change::AddAcl(entry(UgidKind::User, "ada@latchkey", true));
        let error = pinned(&server, Product::Pbs)
            .apply(&grant)
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "127.0.0.1:{}: the API token lacks Permissions.Modify on /access/acl (PBS answered 403: permission check failed)",
                server.port
            )
        );
    }

    #[tokio::test]
    async fn a_change_is_sent_as_encoded_and_a_refusal_carries_the_servers_message() {
        let issued = issue(&["localhost"]);
        let server = serve(&issued, &issued, |_| {
            (500, r#"{"data":null,"message":"ACL update failed: user 'ada@latchkey' does not exist\n"}"#.to_string())
        });
        let grant = Change::AddAcl(entry(UgidKind::User, "ada@latchkey", true));
        let error = pinned(&server, Product::Pve)
            .apply(&grant)
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "127.0.0.1:{}: PUT /access/acl: PVE answered 500: ACL update failed: user 'ada@latchkey' does not exist",
                server.port
            )
        );
        let received = server.received();
        assert_eq!(
            (received[0].method.as_str(), received[0].target.as_str()),
            ("PUT", "/api2/json/access/acl")
        );
        assert_eq!(
            received[0].body,
            "roles=DatastoreBackup&path=%2Fdatastore%2Fmain&users=ada%40latchkey&propagate=1"
        );
    }

    #[tokio::test]
    async fn the_state_is_read_and_filtered_to_the_realm() {
        let issued = issue(&["localhost"]);
        let server = serve(&issued, &issued, |request| {
            let body = match request.target.as_str() {
                "/api2/json/access/users?full=1" => {
                    r#"[{"userid":"ada@latchkey","enable":1,"groups":"admins-latchkey,staff"},{"userid":"root@pam","enable":1}]"#
                }
                "/api2/json/access/acl" => {
                    r#"[{"path":"/","type":"group","ugid":"admins-latchkey","roleid":"Administrator","propagate":1}]"#
                }
                "/api2/json/access/groups" => {
                    r#"[{"groupid":"admins-latchkey","users":"ada@latchkey"},{"groupid":"staff"}]"#
                }
                "/api2/json/access/domains" => {
                    r#"[{"realm":"pam","type":"pam"},{"realm":"latchkey","type":"openid"}]"#
                }
                "/api2/json/access/domains/latchkey" => {
                    r#"{"type":"openid","issuer-url":"https://id.example.com","client-id":"pve","client-key":"x","autocreate":0,"username-claim":"username","digest":"d"}"#
                }
                _ => return (404, String::new()),
            };
            (200, format!(r#"{{"data":{body}}}"#))
        });
        let actual = pinned(&server, Product::Pve)
            .actual("latchkey", true)
            .await
            .unwrap();
        assert_eq!(actual.users.len(), 1);
        assert_eq!(
            actual.users[0].groups,
            ["admins-latchkey", "staff"].map(String::from).into()
        );
        assert_eq!(
            actual.groups,
            ["admins-latchkey", "staff"].map(String::from).into()
        );
        assert_eq!(actual.acl.len(), 1);
        let realm = actual.realm.unwrap();
        assert_eq!(realm.issuer_url.as_deref(), Some("https://id.example.com"));
        assert_eq!(realm.autocreate, Some(false));
        assert_eq!(realm.effective_username_claim(), "username");
    }

    #[tokio::test]
    async fn a_closed_port_is_a_connection_error() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let trust = Trust::Fingerprint(fingerprint_of(b"x"));
        let client = Client::new(&target(
            Product::Pbs,
            &format!("https://127.0.0.1:{port}"),
            trust,
        ))
        .unwrap();
        let error = client.roles().await.unwrap_err();
        assert!(matches!(error, ApiError::Connect { .. }), "{error:?}");
        assert!(
            error
                .to_string()
                .starts_with(&format!("127.0.0.1:{port}: cannot connect: ")),
            "{error}"
        );
    }
}
