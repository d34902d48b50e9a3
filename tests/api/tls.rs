//! `serve` speaking https itself: the real binary with certificates from a test CA, renewed
//! under it (on SIGHUP and on change), a broken renewal, the plain-http redirect, and the
//! warnings and errors an operator gets.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use tempfile::TempDir;

use crate::process::{free_port, latchkey_under_umask};

/// Every wait below gives up after this long.
const LIMIT: Duration = Duration::from_secs(20);

/// A homelab CA, and the certificates it signs.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A server certificate with its key, as PEM, and the certificate's DER.
struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

impl Ca {
    fn new() -> Ca {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Test homelab CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).expect("CA certificate");
        Ca { cert, key }
    }

    fn leaf(&self, names: &[&str]) -> Leaf {
        let key = KeyPair::generate().expect("key");
        let names = names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let cert = CertificateParams::new(names)
            .expect("params")
            .signed_by(&key, &self.cert, &self.key)
            .expect("certificate");
        Leaf {
            cert_pem: format!("{}{}", cert.pem(), self.cert.pem()),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }

    /// A client that trusts this CA only.
    fn client_config(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert.der().clone()).expect("trust the CA");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("protocol versions")
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }
}

/// The certificate and key files of a data dir, as a renewal tool would write them.
struct Files {
    cert: PathBuf,
    key: PathBuf,
}

impl Files {
    fn in_dir(dir: &Path) -> Files {
        Files {
            cert: dir.join("fullchain.pem"),
            key: dir.join("privkey.pem"),
        }
    }

    /// `serve --tls-cert … --tls-key …`.
    fn as_flags<'c>(&self, command: &'c mut Command) -> &'c mut Command {
        command
            .arg("--tls-cert")
            .arg(&self.cert)
            .arg("--tls-key")
            .arg(&self.key)
    }

    fn write(&self, leaf: &Leaf) {
        std::fs::write(&self.key, &leaf.key_pem).expect("write key");
        std::fs::write(&self.cert, &leaf.cert_pem).expect("write certificate");
    }
}

/// A running `latchkey serve` with the issuer `https://localhost:PORT`, its output read line
/// by line.
struct Served {
    child: Child,
    port: u16,
    lines: Receiver<String>,
    seen: Vec<String>,
    client: Arc<ClientConfig>,
}

impl Served {
    /// Starts `serve` with `configure` adding its TLS settings; waits for nothing.
    fn spawn(
        data_dir: &Path,
        ca: &Ca,
        configure: impl FnOnce(&mut Command) -> &mut Command,
    ) -> Served {
        Served::spawn_as("https", data_dir, ca, configure)
    }

    /// `spawn` with the issuer `SCHEME://localhost:PORT`.
    fn spawn_as(
        scheme: &str,
        data_dir: &Path,
        ca: &Ca,
        configure: impl FnOnce(&mut Command) -> &mut Command,
    ) -> Served {
        let port = free_port();
        let mut command = latchkey();
        command
            .arg("--data-dir")
            .arg(data_dir)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--issuer")
            .arg(format!("{scheme}://localhost:{port}"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = configure(&mut command)
            .spawn()
            .expect("start latchkey serve");
        let (sender, lines) = channel();
        forward(child.stdout.take().expect("stdout"), sender.clone());
        forward(child.stderr.take().expect("stderr"), sender);
        Served {
            child,
            port,
            lines,
            seen: Vec::new(),
            client: ca.client_config(),
        }
    }

    /// Starts `serve` and waits until `/healthz` answers over https.
    fn start(
        data_dir: &Path,
        ca: &Ca,
        configure: impl FnOnce(&mut Command) -> &mut Command,
    ) -> Served {
        let mut served = Served::spawn(data_dir, ca, configure);
        served.wait_healthy();
        served
    }

    fn wait_healthy(&mut self) {
        self.until("answers /healthz over https", |served| {
            served
                .https_get("/healthz")
                .is_ok_and(|answer| answer.starts_with("HTTP/1.1 200"))
        });
    }

    /// Bounded polling of `done`; panics if the server exits or `done` never holds.
    fn until(&mut self, what: &str, mut done: impl FnMut(&mut Served) -> bool) {
        let deadline = Instant::now() + LIMIT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("poll serve") {
                self.drain();
                panic!("latchkey serve exited ({status}); output: {:#?}", self.seen);
            }
            if done(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.drain();
        panic!(
            "serve never {what} within {LIMIT:?}; output: {:#?}",
            self.seen
        );
    }

    /// Waits for an output line containing `needle` and returns it.
    fn line_with(&mut self, needle: &str) -> String {
        if let Some(line) = self.seen.iter().find(|line| line.contains(needle)) {
            return line.clone();
        }
        let deadline = Instant::now() + LIMIT;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no output line with {needle:?}; output: {:#?}", self.seen);
    }

    fn drain(&mut self) {
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(line);
        }
    }

    fn hangup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("kill -HUP");
        assert!(status.success());
    }

    fn connect(&self) -> std::io::Result<StreamOwned<ClientConnection, TcpStream>> {
        let name = ServerName::try_from("localhost").expect("server name");
        let connection =
            ClientConnection::new(self.client.clone(), name).map_err(std::io::Error::other)?;
        let socket = TcpStream::connect(("127.0.0.1", self.port))?;
        socket.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut stream = StreamOwned::new(connection, socket);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        Ok(stream)
    }

    /// The certificate a new TLS connection is shown.
    fn presented(&self) -> std::io::Result<CertificateDer<'static>> {
        let stream = self.connect()?;
        let chain = stream.conn.peer_certificates().unwrap_or_default();
        chain
            .first()
            .cloned()
            .ok_or_else(|| std::io::Error::other("no certificate presented"))
    }

    /// A raw HTTP/1.1 GET over a new TLS connection; the whole answer.
    fn https_get(&self, path: &str) -> std::io::Result<String> {
        let mut stream = self.connect()?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n\r\n",
            self.port
        );
        stream.write_all(request.as_bytes())?;
        let mut answer = Vec::new();
        match stream.read_to_end(&mut answer) {
            Ok(_) => {}
            // actix closes without close_notify; the answer is complete all the same
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
            Err(e) => return Err(e),
        }
        Ok(String::from_utf8_lossy(&answer).into_owned())
    }

    /// Waits until new connections are shown `leaf`.
    fn until_presented(&mut self, leaf: &Leaf) {
        self.until("presents the new certificate", |served| {
            served.presented().is_ok_and(|der| der == leaf.der)
        });
    }

    /// A reqwest client trusting the test CA, with `localhost` at 127.0.0.1.
    fn browser(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .use_preconfigured_tls((*self.client).clone())
            .resolve("localhost", ([127, 0, 0, 1], self.port).into())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("https client")
    }

    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary, without TLS settings from the test's environment.
fn latchkey() -> Command {
    let mut command = latchkey_under_umask("077");
    command
        .env_remove("LATCHKEY_TLS_CERT")
        .env_remove("LATCHKEY_TLS_KEY")
        .env_remove("LATCHKEY_HTTP_REDIRECT_LISTEN");
    command
}

/// Sends every line of `output` to `lines`, from a thread of its own.
fn forward(output: impl Read + Send + 'static, lines: Sender<String>) {
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines() {
            let Ok(line) = line else { return };
            if lines.send(line).is_err() {
                return;
            }
        }
    });
}

/// The files of `leaf` in a fresh data dir.
fn data_dir_with(leaf: &Leaf) -> (TempDir, Files) {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = Files::in_dir(dir.path());
    files.write(leaf);
    (dir, files)
}

#[tokio::test]
async fn serves_https_and_the_sign_in_page() {
    let ca = Ca::new();
    let leaf = ca.leaf(&["localhost"]);
    let (dir, files) = data_dir_with(&leaf);
    let served = Served::start(dir.path(), &ca, |c| files.as_flags(c));
    assert_eq!(served.presented().expect("handshake"), leaf.der);
    let browser = served.browser();
    let health = browser.get(served.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "ok");
    let page = browser.get(served.url("/login")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers().contains_key("strict-transport-security"));
    let html = page.text().await.unwrap();
    assert!(html.contains("<h1>Sign in</h1>"), "{html}");
}

#[test]
fn the_healthcheck_speaks_https_to_a_server_that_does() {
    let ca = Ca::new();
    let leaf = ca.leaf(&["localhost"]);
    let (dir, files) = data_dir_with(&leaf);
    let served = Served::start(dir.path(), &ca, |c| files.as_flags(c));
    let check = |cert: &Path| {
        latchkey()
            .arg("--data-dir")
            .arg(dir.path())
            .args([
                "healthcheck",
                "--listen",
                &format!("127.0.0.1:{}", served.port),
            ])
            .arg("--issuer")
            .arg(format!("https://localhost:{}", served.port))
            .env("LATCHKEY_TLS_CERT", cert)
            .env("LATCHKEY_TLS_KEY", &files.key)
            .output()
            .unwrap()
    };
    let out = check(&files.cert);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Another certificate than the one served: the healthcheck trusts only its own.
    let other = dir.path().join("other.pem");
    std::fs::write(&other, &ca.leaf(&["localhost"]).cert_pem).unwrap();
    let out = check(&other);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim().lines().count(),
        1
    );
}

#[test]
fn a_renewed_certificate_is_served_after_sighup() {
    let ca = Ca::new();
    let first = ca.leaf(&["localhost"]);
    let (dir, files) = data_dir_with(&first);
    let mut served = Served::start(dir.path(), &ca, |c| {
        c.env("LATCHKEY_TLS_CERT", &files.cert)
            .env("LATCHKEY_TLS_KEY", &files.key)
    });
    assert_eq!(served.presented().expect("handshake"), first.der);
    let renewed = ca.leaf(&["localhost"]);
    assert_ne!(renewed.der, first.der);
    files.write(&renewed);
    served.hangup();
    served.line_with("loaded the certificate in");
    served.line_with("on SIGHUP");
    served.until_presented(&renewed);
    assert!(
        served
            .https_get("/healthz")
            .unwrap()
            .starts_with("HTTP/1.1 200")
    );
}

#[test]
fn changed_files_are_picked_up_without_a_signal() {
    let ca = Ca::new();
    let first = ca.leaf(&["localhost"]);
    let (dir, files) = data_dir_with(&first);
    let config = dir.path().join("latchkey.toml");
    std::fs::write(
        &config,
        format!(
            "tls_cert = {:?}\ntls_key = {:?}\n",
            files.cert.display().to_string(),
            files.key.display().to_string()
        ),
    )
    .unwrap();
    let mut served = Served::start(dir.path(), &ca, |c| c.arg("--config").arg(&config));
    assert_eq!(served.presented().expect("handshake"), first.der);
    let renewed = ca.leaf(&["localhost"]);
    files.write(&renewed);
    served.until_presented(&renewed);
    served.line_with("after the files changed");
}

#[test]
fn a_broken_renewal_keeps_the_previous_certificate() {
    let ca = Ca::new();
    let first = ca.leaf(&["localhost"]);
    let (dir, files) = data_dir_with(&first);
    let mut served = Served::start(dir.path(), &ca, |c| files.as_flags(c));
    // A key that belongs to another certificate, as when a renewal was written halfway.
    let other = ca.leaf(&["localhost"]);
    std::fs::write(&files.key, &other.key_pem).unwrap();
    served.hangup();
    let error = served.line_with("still serving the previous one");
    assert!(error.contains("does not fit"), "{error}");
    assert!(!error.contains("PRIVATE KEY"), "{error}");
    assert_eq!(served.presented().expect("handshake"), first.der);
    // Garbage instead of a certificate: the same.
    std::fs::write(&files.cert, "not a certificate").unwrap();
    served.hangup();
    served.line_with("holds no PEM certificate");
    assert_eq!(served.presented().expect("handshake"), first.der);
    assert!(
        served
            .https_get("/healthz")
            .unwrap()
            .starts_with("HTTP/1.1 200")
    );
    // A good pair again is taken.
    files.write(&other);
    served.hangup();
    served.until_presented(&other);
}

#[tokio::test]
async fn plain_http_is_redirected_to_the_https_issuer() {
    let ca = Ca::new();
    let leaf = ca.leaf(&["localhost"]);
    let (dir, files) = data_dir_with(&leaf);
    let redirect_port = free_port();
    let config = dir.path().join("latchkey.toml");
    std::fs::write(
        &config,
        format!(
            "tls_cert = {:?}\ntls_key = {:?}\nhttp_redirect_listen = \"127.0.0.1:{redirect_port}\"\n",
            files.cert.display().to_string(),
            files.key.display().to_string()
        ),
    )
    .unwrap();
    let mut served = Served::start(dir.path(), &ca, |c| c.arg("--config").arg(&config));
    served.line_with(&format!(
        "Redirecting plain http on 127.0.0.1:{redirect_port}"
    ));
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = plain
        .get(format!(
            "http://127.0.0.1:{redirect_port}/authorize?client_id=pve&state=a%20b"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 308);
    assert_eq!(
        answer.headers()["location"],
        served.url("/authorize?client_id=pve&state=a%20b").as_str()
    );
    // The redirect's target answers.
    let page = served
        .browser()
        .get(served.url("/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
}

#[test]
fn a_certificate_for_other_names_gets_a_warning() {
    let ca = Ca::new();
    let leaf = ca.leaf(&["id.example.com"]);
    let (dir, files) = data_dir_with(&leaf);
    let mut served = Served::spawn(dir.path(), &ca, |c| {
        c.arg("--tls-cert")
            .arg(&files.cert)
            .arg("--tls-key")
            .arg(&files.key)
    });
    let warning = served.line_with("does not cover localhost");
    assert!(warning.contains("fullchain.pem"), "{warning}");
    // It still serves: the warning is for the operator, not a refusal.
    served.line_with("Latchkey serving https://localhost:");
    // And a renewal that fixes the names is taken without a warning about it.
    let fixed = ca.leaf(&["localhost"]);
    files.write(&fixed);
    served.hangup();
    served.until_presented(&fixed);
}

#[test]
fn an_http_issuer_with_tls_gets_a_warning() {
    let ca = Ca::new();
    let leaf = ca.leaf(&["localhost"]);
    let (dir, files) = data_dir_with(&leaf);
    let mut served = Served::spawn_as("http", dir.path(), &ca, |c| {
        c.arg("--tls-cert")
            .arg(&files.cert)
            .arg("--tls-key")
            .arg(&files.key)
    });
    served.line_with("TLS is on but the issuer http://localhost:");
    served.wait_healthy();
}

/// `latchkey serve ARGS` expected to fail at start: its one-line error.
fn refused(dir: &Path, args: &[&str]) -> String {
    let output = latchkey()
        .arg("--data-dir")
        .arg(dir)
        .arg("serve")
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run latchkey serve");
    assert!(!output.status.success(), "serve started with {args:?}");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    stderr
}

#[test]
fn unusable_tls_settings_are_one_line_errors() {
    let ca = Ca::new();
    let leaf = ca.leaf(&["localhost"]);
    let (dir, files) = data_dir_with(&leaf);
    let cert = files.cert.to_str().unwrap();
    let key = files.key.to_str().unwrap();
    let https = ["--issuer", "https://localhost:8443"];
    let error = refused(dir.path(), &[&https[..], &["--tls-cert", cert]].concat());
    assert!(error.contains("tls_cert is set without tls_key"), "{error}");
    let missing = dir.path().join("missing.pem");
    let error = refused(
        dir.path(),
        &[
            &https[..],
            &["--tls-cert", missing.to_str().unwrap(), "--tls-key", key],
        ]
        .concat(),
    );
    assert!(
        error.contains("cannot read") && error.contains("missing.pem"),
        "{error}"
    );
    std::fs::write(&files.key, ca.leaf(&["localhost"]).key_pem).unwrap();
    let error = refused(
        dir.path(),
        &[&https[..], &["--tls-cert", cert, "--tls-key", key]].concat(),
    );
    assert!(error.contains("does not fit the certificate"), "{error}");
    let error = refused(
        dir.path(),
        &[
            "--issuer",
            "http://localhost:8080",
            "--http-redirect-listen",
            "127.0.0.1:0",
        ],
    );
    assert!(error.contains("the issuer must be https"), "{error}");
}

#[test]
fn without_tls_a_sighup_does_not_end_the_server() {
    let ca = Ca::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut served = Served::spawn_as("http", dir.path(), &ca, |c| c);
    served.until("answers /healthz", |served| {
        crate::process::healthz(served.port)
    });
    served.hangup();
    served.line_with("nothing to reload");
    assert!(crate::process::healthz(served.port), "still serving");
}
