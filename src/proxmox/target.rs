//! A client's Proxmox target and permission rules, as the CLI, the admin page and the config
//! file give them: parsed once here, so that the rest of the module takes only valid values.
//! The types themselves are records of the store's.

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

pub use crate::store::proxmox::{Leavers, Product, Rule, Target, Trust};

/// A value that is not a valid part of a target or rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TargetError(pub String);

pub fn product(input: &str) -> Result<Product, TargetError> {
    Product::from_name(input).ok_or_else(|| {
        invalid(
            "product",
            input,
            "use pbs (Proxmox Backup Server) or pve (Proxmox VE)",
        )
    })
}

pub fn leavers(input: &str) -> Result<Leavers, TargetError> {
    Leavers::from_name(input).ok_or_else(|| invalid("leavers", input, "use disable or delete"))
}

fn invalid(what: &str, input: &str, why: &str) -> TargetError {
    TargetError(format!("invalid {what} {input:?}: {why}"))
}

/// Why a CA certificate was refused.
#[derive(Debug, thiserror::Error)]
pub enum CaPemError {
    #[error("paste the CA certificate in PEM form, from -----BEGIN CERTIFICATE----- on")]
    NoCertificate,
    #[error("the CA certificate is not valid PEM: {0}")]
    Malformed(#[source] rustls::pki_types::pem::Error),
    #[error("the CA certificate cannot be used: {0}")]
    Unusable(#[source] rustls::Error),
}

impl From<CaPemError> for TargetError {
    fn from(error: CaPemError) -> TargetError {
        TargetError(error.to_string())
    }
}

/// A CA certificate (or several) in PEM form, as pasted or read from a file: kept with Unix
/// line ends, and only when every certificate in it can be a trust anchor, so that a bad one
/// is refused where it is given rather than at the next sync.
pub fn ca_pem(text: &str) -> Result<String, CaPemError> {
    let pem = text.replace("\r\n", "\n").trim().to_string() + "\n";
    ca_roots(&pem)?;
    Ok(pem)
}

/// The trust anchors a CA certificate (or several) in PEM form makes.
pub fn ca_roots(pem: &str) -> Result<rustls::RootCertStore, CaPemError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        roots
            .add(cert.map_err(CaPemError::Malformed)?)
            .map_err(CaPemError::Unusable)?;
    }
    if roots.is_empty() {
        return Err(CaPemError::NoCertificate);
    }
    Ok(roots)
}

/// The API's base URL: `https://host[:port]`, kept without a trailing slash.
pub fn api_url(input: &str) -> Result<String, TargetError> {
    let fail = |why| invalid("API URL", input, why);
    let trimmed = input.trim_end_matches('/');
    let parsed = url::Url::parse(trimmed).map_err(|_| fail("not an absolute URL"))?;
    if parsed.scheme() != "https" {
        return Err(fail("the Proxmox API is served over https"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(fail("it has no host"));
    }
    if parsed.path() != "/" || parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(fail(
            "give only scheme, host and port, such as https://pbs.example.com:8007",
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(fail(
            "the token goes in token_id and the secret, not the URL",
        ));
    }
    Ok(trimmed.to_string())
}

/// Proxmox's realm ids: a letter, then letters, digits, `.`, `-` and `_`; at most 32.
pub fn realm(input: &str) -> Result<String, TargetError> {
    let mut chars = input.chars();
    let valid = (2..=32).contains(&input.len())
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c));
    if valid {
        Ok(input.to_string())
    } else {
        Err(invalid(
            "realm",
            input,
            "use 2 to 32 of A-Z, a-z, 0-9, '.', '-' and '_', starting with a letter",
        ))
    }
}

/// An API token id, `USER@REALM!TOKENID`, as Proxmox prints it.
pub fn token_id(input: &str) -> Result<String, TargetError> {
    let fail = || {
        invalid(
            "API token id",
            input,
            "expected USER@REALM!TOKENID, such as root@pam!latchkey",
        )
    };
    let (user, token) = input.split_once('!').ok_or_else(fail)?;
    let (name, user_realm) = user.rsplit_once('@').ok_or_else(fail)?;
    let token_ok = token
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && token.len() <= 64
        && token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c));
    let name_ok = !name.is_empty()
        && name.len() <= 64
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || ":!@/".contains(c));
    if token_ok && name_ok && realm(user_realm).is_ok() {
        Ok(input.to_string())
    } else {
        Err(fail())
    }
}

/// An API token's secret as pasted or read from a file: one line without spaces.
pub fn token_secret(input: &str) -> Result<String, TargetError> {
    let secret = input.trim();
    if secret.is_empty() || secret.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(TargetError(
            "the token secret must be one line without spaces".into(),
        ));
    }
    Ok(secret.to_string())
}

/// A SHA-256 certificate fingerprint, with or without colons, in any case; kept as Proxmox
/// shows it (`AB:CD:…`, 32 bytes).
pub fn fingerprint(input: &str) -> Result<String, TargetError> {
    let hex: String = input.chars().filter(|c| *c != ':').collect();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(invalid(
            "fingerprint",
            input,
            "expected the SHA-256 fingerprint, 32 hex bytes such as AB:CD:…",
        ));
    }
    let upper = hex.to_ascii_uppercase();
    let bytes: Vec<&str> = (0..32).map(|i| &upper[2 * i..2 * i + 2]).collect();
    Ok(bytes.join(":"))
}

/// A role id: letters, digits, `.`, `-` and `_` (checked against the server's list later).
pub fn role(input: &str) -> Result<String, TargetError> {
    let valid = !input.is_empty()
        && input.len() <= 64
        && input
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c));
    if valid {
        Ok(input.to_string())
    } else {
        Err(invalid(
            "role",
            input,
            "use a role name such as Admin or DatastoreBackup",
        ))
    }
}

/// An ACL path: `/`, or `/` followed by segments of letters, digits, `.`, `-`, `_` and `:`.
pub fn acl_path(input: &str) -> Result<String, TargetError> {
    let path = if input.len() > 1 {
        input.trim_end_matches('/')
    } else {
        input
    };
    let valid = path.starts_with('/')
        && path.len() <= 128
        && (path == "/"
            || path[1..].split('/').all(|segment| {
                !segment.is_empty()
                    && segment != "."
                    && segment != ".."
                    && segment
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || ".-_:".contains(c))
            }));
    if valid {
        Ok(path.to_string())
    } else {
        Err(invalid(
            "ACL path",
            input,
            "use / or a path such as /datastore/main or /vms/100",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_urls_are_https_origins() {
        assert_eq!(
            api_url("https://pbs.example.com:8007/").unwrap(),
            "https://pbs.example.com:8007"
        );
        assert!(api_url("http://pbs:8007").is_err());
        assert!(api_url("https://pbs:8007/api2/json").is_err());
        assert!(api_url("https://u:p@pbs:8007").is_err());
        assert!(api_url("pbs:8007").is_err());
    }

    #[test]
    fn fingerprints_are_kept_as_proxmox_shows_them() {
        let shown = (0..32)
            .map(|i| format!("{i:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(fingerprint(&shown.to_lowercase()).unwrap(), shown);
        assert_eq!(fingerprint(&shown.replace(':', "")).unwrap(), shown);
        assert!(fingerprint("AB:CD").is_err());
        assert!(fingerprint(&"G".repeat(64)).is_err());
    }

    #[test]
    fn token_ids_realms_roles_and_paths() {
        assert!(token_id("root@pam!latchkey").is_ok());
        assert!(token_id("sync@pbs!a-b.c_1").is_ok());
        assert!(token_id("root@pam").is_err());
        assert!(token_id("root!x").is_err());
        assert!(token_id("root@pam!1x").is_err());
        assert!(realm("latchkey").is_ok());
        assert!(realm("1x").is_err());
        assert!(realm("a b").is_err());
        assert!(role("DatastoreBackup").is_ok());
        assert!(role("Admin Role").is_err());
        assert_eq!(acl_path("/").unwrap(), "/");
        assert_eq!(acl_path("/datastore/main/").unwrap(), "/datastore/main");
        assert!(acl_path("/datastore/../x").is_err());
        assert!(acl_path("datastore").is_err());
        assert!(acl_path("/a b").is_err());
    }
}
