//! Serving https directly, without a reverse proxy. The certificate chain and its key come
//! from PEM files and are reloaded without a restart, on SIGHUP and when the files change, so
//! that renewals by certbot, acme.sh or a homelab CA just work: new handshakes get the new
//! certificate, and files that do not load keep the previous one. Optionally, plain http is
//! answered with a redirect to the https issuer.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::http::header;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ParsedCertificate, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

use crate::config::{Issuer, TlsFiles};

/// How often the files are looked at for a change.
const POLL_EVERY: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a PEM certificate chain: {source}", path.display())]
    Certificate { path: PathBuf, source: pem::Error },
    #[error("{} holds no PEM certificate", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{} holds no PEM private key: {source}", path.display())]
    Key { path: PathBuf, source: pem::Error },
    #[error(
        "the key in {} does not fit the certificate in {}: {source}",
        key.display(),
        cert.display()
    )]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error("cannot set up TLS: {0}")]
    Setup(#[from] rustls::Error),
    #[error("cannot listen for SIGHUP: {0}")]
    Signal(std::io::Error),
}

/// The two files as read.
struct Pem {
    cert: Vec<u8>,
    key: Vec<u8>,
}

impl Pem {
    fn read(files: &TlsFiles) -> Result<Pem, TlsError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                path: path.to_path_buf(),
                source,
            })
        };
        Ok(Pem {
            cert: read(&files.cert)?,
            key: read(&files.key)?,
        })
    }

    /// What tells one version of the files from another.
    fn digest(&self) -> [u8; 32] {
        let mut hash = Sha256::new();
        hash.update(Sha256::digest(&self.cert));
        hash.update(Sha256::digest(&self.key));
        hash.finalize().into()
    }

    /// The chain and its key, checked to belong together.
    fn certified_key(
        &self,
        files: &TlsFiles,
        provider: &CryptoProvider,
    ) -> Result<CertifiedKey, TlsError> {
        let chain = CertificateDer::pem_slice_iter(&self.cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| TlsError::Certificate {
                path: files.cert.clone(),
                source,
            })?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate {
                path: files.cert.clone(),
            });
        }
        let key = PrivateKeyDer::from_pem_slice(&self.key).map_err(|source| TlsError::Key {
            path: files.key.clone(),
            source,
        })?;
        CertifiedKey::from_der(chain, key, provider).map_err(|source| TlsError::Pair {
            cert: files.cert.clone(),
            key: files.key.clone(),
            source,
        })
    }
}

/// Whether `cert` is valid for `host` (a DNS name or an IP address, as a URL has it: IPv6 in
/// brackets), by its subject alternative names, as clients check them.
pub fn covers(cert: &CertificateDer<'_>, host: &str) -> bool {
    let host = host
        .strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(host);
    let Ok(name) = ServerName::try_from(host) else {
        return false;
    };
    ParsedCertificate::try_from(cert)
        .is_ok_and(|parsed| rustls::client::verify_server_name(&parsed, &name).is_ok())
}

/// What made a reload happen.
#[derive(Debug, Clone, Copy)]
enum Trigger {
    Hangup,
    Change,
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Trigger::Hangup => "on SIGHUP",
            Trigger::Change => "after the files changed",
        })
    }
}

/// The certificate new handshakes get, replaced when the files change.
#[derive(Debug)]
pub struct Certificates {
    files: TlsFiles,
    /// The issuer's host, which the certificate should cover.
    host: String,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// The digest of the files as last looked at; `None` when they could not be read.
    seen: Mutex<Option<[u8; 32]>>,
}

impl Certificates {
    /// Loads the files at start, where an error is fatal: nothing has been served yet.
    pub fn load(files: &TlsFiles, issuer: &Issuer) -> Result<Arc<Certificates>, TlsError> {
        if !issuer.is_https() {
            tracing::warn!(
                "TLS is on but the issuer {issuer} is http: clients are sent to http URLs; \
                 make the issuer https://"
            );
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let pem = Pem::read(files)?;
        let key = pem.certified_key(files, &provider)?;
        let certificates = Certificates {
            files: files.clone(),
            host: issuer.host().to_string(),
            provider,
            current: RwLock::new(Arc::new(key)),
            seen: Mutex::new(Some(pem.digest())),
        };
        certificates.check_names();
        Ok(Arc::new(certificates))
    }

    /// The TLS configuration of the listener: each handshake asks `self` for the certificate.
    fn server_config(self: &Arc<Self>) -> Result<rustls::ServerConfig, TlsError> {
        Ok(
            rustls::ServerConfig::builder_with_provider(self.provider.clone())
                .with_safe_default_protocol_versions()?
                .with_no_client_auth()
                .with_cert_resolver(self.clone()),
        )
    }

    fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Warns when the certificate does not cover the issuer's host.
    fn check_names(&self) {
        let key = self.current();
        if let Ok(cert) = key.end_entity_cert()
            && !covers(cert, &self.host)
        {
            tracing::warn!(
                "TLS: the certificate in {} does not cover {}, the issuer's host: browsers and \
                 clients will refuse it",
                self.files.cert.display(),
                self.host
            );
        }
    }

    /// Loads the files again on SIGHUP, or when they changed since they were last looked at.
    /// Files that do not load leave the current certificate in place.
    fn reload(&self, trigger: Trigger) {
        let read = Pem::read(&self.files);
        let digest = read.as_ref().ok().map(Pem::digest);
        {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            if matches!(trigger, Trigger::Change) && *seen == digest {
                return;
            }
            *seen = digest;
        }
        match read.and_then(|pem| pem.certified_key(&self.files, &self.provider)) {
            Ok(key) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(key);
                tracing::info!(
                    "TLS: loaded the certificate in {} {trigger}",
                    self.files.cert.display()
                );
                self.check_names();
            }
            Err(error) => tracing::error!(
                "TLS: cannot load the certificate {trigger}, still serving the previous one: \
                 {error}"
            ),
        }
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// Starts reloading on SIGHUP and on change, for as long as the server runs, and returns the
/// listener's TLS configuration. Call it inside the runtime: from here on SIGHUP is caught
/// (its default action would end the process).
pub fn start(certificates: Arc<Certificates>) -> Result<rustls::ServerConfig, TlsError> {
    use actix_web::rt::signal::unix::{SignalKind, signal};
    let config = certificates.server_config()?;
    let mut hangups = signal(SignalKind::hangup()).map_err(TlsError::Signal)?;
    let on_hangup = certificates.clone();
    actix_web::rt::spawn(async move {
        while hangups.recv().await.is_some() {
            reload(on_hangup.clone(), Trigger::Hangup).await;
        }
    });
    actix_web::rt::spawn(async move {
        let mut ticks = actix_web::rt::time::interval(POLL_EVERY);
        loop {
            ticks.tick().await;
            reload(certificates.clone(), Trigger::Change).await;
        }
    });
    Ok(config)
}

/// Without TLS there is nothing to reload, but a SIGHUP (`systemctl kill -s HUP`, a habit from
/// other daemons) must not end the server: it is caught and said so.
pub fn ignore_hangups() -> Result<(), TlsError> {
    use actix_web::rt::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup()).map_err(TlsError::Signal)?;
    actix_web::rt::spawn(async move {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: nothing to reload (no tls_cert)");
        }
    });
    Ok(())
}

/// Reloads off the runtime's thread: reading files blocks.
async fn reload(certificates: Arc<Certificates>, trigger: Trigger) {
    if web::block(move || certificates.reload(trigger))
        .await
        .is_err()
    {
        tracing::error!("TLS: the certificate could not be reloaded {trigger}");
    }
}

/// The https origin plain http is redirected to.
struct HttpsOrigin(String);

/// Answers plain http on `listener` with a permanent redirect to the same path and query at
/// the issuer's origin.
pub fn redirect_server(listener: TcpListener, issuer: &Issuer) -> std::io::Result<Server> {
    let origin = web::Data::new(HttpsOrigin(issuer.origin().to_string()));
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(origin.clone())
            .default_service(web::to(redirect))
    })
    .workers(1)
    .listen(listener)?
    .shutdown_timeout(1)
    .run())
}

async fn redirect(req: HttpRequest, origin: web::Data<HttpsOrigin>) -> HttpResponse {
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, format!("{}{target}", origin.0)))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::covers;
    use rcgen::{CertificateParams, KeyPair, SanType};

    fn certificate(names: &[&str]) -> rustls::pki_types::CertificateDer<'static> {
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("params");
        params
            .self_signed(&KeyPair::generate().expect("key"))
            .expect("certificate")
            .der()
            .clone()
    }

    #[test]
    fn dns_names_cover_exactly_their_host() {
        let cert = certificate(&["id.example.com", "auth.example.com"]);
        assert!(covers(&cert, "id.example.com"));
        assert!(covers(&cert, "auth.example.com"));
        assert!(!covers(&cert, "example.com"));
        assert!(!covers(&cert, "pve.example.com"));
        assert!(!covers(&cert, "192.168.1.10"));
    }

    #[test]
    fn a_wildcard_covers_one_label() {
        let cert = certificate(&["*.home.arpa"]);
        assert!(covers(&cert, "id.home.arpa"));
        assert!(!covers(&cert, "home.arpa"));
        assert!(!covers(&cert, "a.id.home.arpa"));
    }

    #[test]
    fn ip_addresses_cover_themselves_also_in_brackets() {
        let cert = certificate(&["192.168.1.10", "fd00::10"]);
        assert!(covers(&cert, "192.168.1.10"));
        assert!(covers(&cert, "[fd00::10]"));
        assert!(!covers(&cert, "192.168.1.11"));
        assert!(!covers(&cert, "localhost"));
    }

    #[test]
    fn a_common_name_alone_covers_nothing() {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "id.example.com");
        params.subject_alt_names = Vec::<SanType>::new();
        let cert = params
            .self_signed(&KeyPair::generate().expect("key"))
            .expect("certificate");
        assert!(!covers(cert.der(), "id.example.com"));
    }
}
