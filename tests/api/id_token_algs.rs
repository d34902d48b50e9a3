//! Per-client ID token algorithms: RS256 (the default), ES256 and EdDSA, each with its own
//! key, published in the JWKS, rotated together, and checked by an independent library.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::CoreJwsSigningAlgorithm;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::admin::{Browser, admin_app, text};
use crate::helpers::*;

const LOGGED_OUT: &str = "https://pve.example.com:8006/logged-out";

/// One algorithm: the CLI flag that picks it (none for the default), its JOSE name, and the
/// key type, curve and algorithm an independent relying party expects.
struct Algorithm {
    flag: Option<&'static str>,
    name: &'static str,
    kty: &'static str,
    crv: Option<&'static str>,
    library: CoreJwsSigningAlgorithm,
}

const ALGORITHMS: [Algorithm; 3] = [
    Algorithm {
        flag: None,
        name: "RS256",
        kty: "RSA",
        crv: None,
        library: CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    },
    Algorithm {
        flag: Some("ES256"),
        name: "ES256",
        kty: "EC",
        crv: Some("P-256"),
        library: CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    },
    Algorithm {
        flag: Some("EdDSA"),
        name: "EdDSA",
        kty: "OKP",
        crv: Some("Ed25519"),
        library: CoreJwsSigningAlgorithm::EdDsa,
    },
];

impl Algorithm {
    /// The id of a client made for this algorithm.
    fn client_id(&self) -> String {
        format!("app-{}", self.name.to_lowercase())
    }
}

fn kids(keys: &[Value]) -> Vec<String> {
    keys.iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

/// A compact JWS's protected header.
fn header_of(jwt: &str) -> Value {
    let header = jwt.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap()
}

/// RFC 7638: the SHA-256 of the key's required members, in lexicographic order, base64url.
fn thumbprint(jwk: &Value) -> String {
    let required: &[&str] = match jwk["kty"].as_str().unwrap() {
        "RSA" => &["e", "kty", "n"],
        "EC" => &["crv", "kty", "x", "y"],
        "OKP" => &["crv", "kty", "x"],
        other => panic!("unexpected kty {other}"),
    };
    let members: Vec<String> = required
        .iter()
        .map(|name| format!("\"{name}\":{}", jwk[*name]))
        .collect();
    URL_SAFE_NO_PAD.encode(Sha256::digest(format!("{{{}}}", members.join(","))))
}

/// Registers a confidential client on the CLI, with `--id-token-alg` when given; returns its
/// secret.
fn add_client(app: &TestApp, client_id: &str, alg: Option<&str>) -> String {
    let mut args = vec![
        "client",
        "add",
        client_id,
        "--redirect-uri",
        PVE_REDIRECT,
        "--post-logout-redirect-uri",
        LOGGED_OUT,
        "--json",
    ];
    if let Some(alg) = alg {
        args.extend(["--id-token-alg", alg]);
    }
    let out: Value = serde_json::from_str(app.cli_ok(&args).trim()).unwrap();
    out["client_secret"].as_str().unwrap().to_string()
}

/// Signs alice in to `client_id`, accepting only `alg` (`None`: the library's default).
async fn sign_in(
    app: &TestApp,
    browser: &reqwest::Client,
    client_id: &str,
    secret: &str,
    alg: Option<CoreJwsSigningAlgorithm>,
) -> SignIn {
    sign_in_accepting(app, browser, client_id, secret, &["email"], alg)
        .await
        .unwrap_or_else(|e| panic!("{client_id} signs in: {e}"))
}

fn alice(app: &TestApp) {
    app.cli_ok(&["user", "add", "alice", "--email", "alice@example.com"]);
}

#[tokio::test]
async fn discovery_lists_the_three_and_the_jwks_has_a_key_for_each() {
    let app = spawn_app();
    let doc: Value = reqwest::get(app.url("/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        json!(["RS256", "ES256", "EdDSA"])
    );
    let keys = jwks(&app).await;
    assert_eq!(keys.len(), 3, "{keys:?}");
    for (key, alg) in keys.iter().zip(ALGORITHMS) {
        assert_eq!(key["alg"], alg.name, "RS256 first, then ES256 and EdDSA");
        assert_eq!(key["kty"], alg.kty);
        assert_eq!(key["crv"].as_str(), alg.crv);
        assert_eq!(key["use"], "sig");
        assert_eq!(
            key["kid"],
            thumbprint(key),
            "the kid is the RFC 7638 thumbprint"
        );
        assert!(key.get("d").is_none(), "no private part");
    }
}

#[tokio::test]
async fn each_client_gets_id_tokens_signed_with_its_algorithm() {
    let app = spawn_app();
    alice(&app);
    let browser = app.signed_in_browser("alice").await;
    let keys = jwks(&app).await;
    for alg in ALGORITHMS {
        let client_id = alg.client_id();
        let secret = add_client(&app, &client_id, alg.flag);
        // The default client is checked with the library's defaults, as Proxmox does.
        let accepting = alg.flag.map(|_| alg.library);
        let signed_in = sign_in(&app, &browser, &client_id, &secret, accepting).await;
        let header = header_of(&signed_in.id_token_raw);
        assert_eq!(header["alg"], alg.name, "{client_id}");
        assert_eq!(header["typ"], "JWT");
        let key = keys
            .iter()
            .find(|k| k["kid"] == header["kid"])
            .unwrap_or_else(|| panic!("{client_id}'s kid is in the JWKS"));
        assert_eq!(key["alg"], alg.name);
        assert_eq!(key["kty"], alg.kty);

        // A refreshed ID token is signed the same way.
        let scope = "openid offline_access";
        let code_sign_in = refresh_token_for(&app, &browser, &client_id, &secret, scope).await;
        let (status, _, refreshed) = post_form(
            &app,
            "/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &code_sign_in),
            ],
            Some((&client_id, &secret)),
        )
        .await;
        assert_eq!(status, 200, "{refreshed}");
        let header = header_of(refreshed["id_token"].as_str().unwrap());
        assert_eq!(header["alg"], alg.name);
        assert_eq!(header["kid"], key["kid"]);
    }
    assert_eq!(
        app.cli_ok(&["client", "show", "app-es256"])
            .lines()
            .find(|l| l.starts_with("ID token alg"))
            .unwrap(),
        "ID token alg:   ES256"
    );
    let listed: Value = serde_json::from_str(&app.cli_ok(&["client", "list", "--json"])).unwrap();
    let algs: Vec<&Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["id_token_signed_response_alg"])
        .collect();
    assert_eq!(algs, [&json!("EdDSA"), &json!("ES256"), &json!("RS256")]);
}

/// A refresh token for `client_id`, from a code flow run by hand.
async fn refresh_token_for(
    app: &TestApp,
    browser: &reqwest::Client,
    client_id: &str,
    secret: &str,
    scope: &str,
) -> String {
    let pkce = pkce();
    let params = with_param(
        &with_param(&proxmox_params(&pkce), "client_id", client_id),
        "scope",
        scope,
    );
    let code = code_for(app, browser, &params).await;
    let (status, _, tokens) = post_form(
        app,
        "/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", PVE_REDIRECT),
            ("code_verifier", &pkce.verifier),
        ],
        Some((client_id, secret)),
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    tokens["refresh_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn rotation_replaces_the_key_of_every_algorithm() {
    let app = spawn_app();
    alice(&app);
    let before = jwks(&app).await;
    let out = app.cli_ok(&["keys", "rotate"]);
    let after = jwks(&app).await;
    assert_eq!(after.len(), 6, "each old key stays published: {after:?}");
    let listed = app.cli_ok(&["keys", "list"]);
    assert_eq!(listed.matches("\tactive").count(), 3, "{listed}");
    assert_eq!(listed.matches("\tretired").count(), 3, "{listed}");
    for alg in ALGORITHMS {
        let name = alg.name;
        let of_alg: Vec<&Value> = after.iter().filter(|k| k["alg"] == name).collect();
        assert_eq!(of_alg.len(), 2, "{name}");
        let old = before.iter().find(|k| k["alg"] == name).unwrap();
        let new = of_alg.iter().find(|k| k["kid"] != old["kid"]).unwrap();
        assert!(of_alg.contains(&old), "{name}'s old key is still published");
        assert!(out.contains(new["kid"].as_str().unwrap()), "{out}");

        // The running server signs with the new key at once.
        let client_id = alg.client_id();
        let secret = add_client(&app, &client_id, alg.flag);
        let browser = app.signed_in_browser("alice").await;
        let signed_in = sign_in(&app, &browser, &client_id, &secret, Some(alg.library)).await;
        assert_eq!(header_of(&signed_in.id_token_raw)["kid"], new["kid"]);
    }
}

#[tokio::test]
async fn the_admin_page_rotates_every_algorithm() {
    let (app, ada) = admin_app().await;
    let before = kids(&jwks(&app).await);
    let (_, page) = ada.get(&app, "/admin/keys").await;
    assert_eq!(page.matches("Active: signs new tokens").count(), 3);
    for alg in ["RS256", "ES256", "EdDSA"] {
        assert!(page.contains(&format!("<td>{alg}</td>")), "{alg} on {page}");
    }
    let rotated = ada.post(&app, "/admin/keys/rotate", &[]).await;
    assert_eq!(rotated.status(), 303);
    let after = kids(&jwks(&app).await);
    assert_eq!(after.len(), 6);
    assert!(before.iter().all(|kid| after.contains(kid)));
    let (_, page) = ada.get(&app, "/admin/keys").await;
    assert_eq!(page.matches("Active: signs new tokens").count(), 3);
    let (_, audit) = ada.get(&app, "/admin/audit?event=keys.rotated").await;
    for kid in after.iter().filter(|kid| !before.contains(kid)) {
        assert!(audit.contains(kid.as_str()), "{kid} in the audit log");
    }
}

#[tokio::test]
async fn logout_takes_an_id_token_hint_of_every_algorithm() {
    let app = spawn_app();
    alice(&app);
    for alg in ALGORITHMS {
        let name = alg.name;
        let client_id = alg.client_id();
        let secret = add_client(&app, &client_id, alg.flag);
        let browser = app.signed_in_browser("alice").await;
        let signed_in = sign_in(&app, &browser, &client_id, &secret, Some(alg.library)).await;
        let hint = signed_in.id_token_raw;

        // The same token claiming another algorithm is not ours.
        let mut forged_header = header_of(&hint);
        forged_header["alg"] = json!(if name == "RS256" { "ES256" } else { "RS256" });
        let forged = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(forged_header.to_string()),
            hint.split_once('.').unwrap().1
        );
        let logout = |hint: String| {
            browser
                .get(app.url("/logout"))
                .query(&[
                    ("id_token_hint", hint.as_str()),
                    ("post_logout_redirect_uri", LOGGED_OUT),
                    ("state", "s1"),
                ])
                .send()
        };
        let refused = logout(forged).await.unwrap();
        assert_eq!(refused.status(), 400, "{name}: a forged header is refused");
        assert!(text(refused).await.contains("not issued here"));

        let out = logout(hint.clone()).await.unwrap();
        assert_eq!(out.status(), 303, "{name}");
        assert_eq!(location(&out), format!("{LOGGED_OUT}?state=s1"));
        let account = browser.get(app.url("/account")).send().await.unwrap();
        assert_eq!(location(&account), "/login", "{name}: signed out");
    }
}

/// Asserts a CLI failure of one line that names the bad value and the choices.
fn assert_refused_alg(out: &std::process::Output, value: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{value} should be refused");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.starts_with("latchkey: ")
            && stderr.contains(&format!("{value:?}"))
            && stderr.contains("RS256, ES256 or EdDSA"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_cli_sets_and_changes_the_algorithm_and_refuses_others() {
    let app = spawn_app();
    for bad in ["HS256", "none", "es256", "PS256", ""] {
        let out = app.cli(&[
            "client",
            "add",
            "web",
            "--redirect-uri",
            PVE_REDIRECT,
            "--id-token-alg",
            bad,
        ]);
        assert_refused_alg(&out, bad);
    }
    assert_eq!(app.cli_ok(&["client", "list"]), "", "nothing was created");

    add_client(&app, "web", Some("ES256"));
    let shown = || app.cli_ok(&["client", "show", "web"]);
    assert!(shown().contains("ID token alg:   ES256"), "{}", shown());
    assert_refused_alg(
        &app.cli(&["client", "update", "web", "--id-token-alg", "RS384"]),
        "RS384",
    );
    assert!(shown().contains("ID token alg:   ES256"), "unchanged");
    let out = app.cli_ok(&["client", "update", "web", "--id-token-alg", "EdDSA"]);
    assert!(out.contains("EdDSA"), "{out}");
    assert!(shown().contains("ID token alg:   EdDSA"), "{}", shown());
    let missing = app.cli(&["client", "update", "ghost", "--id-token-alg", "EdDSA"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("ghost"));
}

#[tokio::test]
async fn the_admin_form_offers_the_three_and_refuses_others() {
    let (app, ada) = admin_app().await;
    let (_, blank) = ada.get(&app, "/admin/clients").await;
    assert!(
        blank.contains(r#"<option value="RS256" selected>"#),
        "RS256 is the default: {blank}"
    );
    let form = |alg: &'static str| {
        [
            ("client_id", "web"),
            ("name", "Wiki"),
            ("redirect_uris", "https://wiki.example.com/cb"),
            ("id_token_signed_response_alg", alg),
        ]
    };
    let refused = ada.post(&app, "/admin/clients", &form("HS256")).await;
    assert_eq!(refused.status(), 400);
    let page = text(refused).await;
    assert!(
        page.contains(r#"Invalid ID token algorithm "HS256": use RS256, ES256 or EdDSA"#),
        "{page}"
    );
    assert!(page.contains("value=\"Wiki\""), "what was typed is kept");
    assert_eq!(app.cli_ok(&["client", "list"]), "", "nothing was created");

    let created = ada.post(&app, "/admin/clients", &form("ES256")).await;
    assert_eq!(created.status(), 200);
    let (_, page) = ada.get(&app, "/admin/clients/web").await;
    assert!(
        page.contains(r#"<option value="ES256" selected>"#),
        "{page}"
    );
    assert!(!page.contains(r#"<option value="RS256" selected>"#));

    let mut edit = form("EdDSA").to_vec();
    edit.remove(0);
    let edited = ada.post(&app, "/admin/clients/web/edit", &edit).await;
    assert_eq!(edited.status(), 303);
    assert!(
        app.cli_ok(&["client", "show", "web"])
            .contains("ID token alg:   EdDSA")
    );
    let refused = ada
        .post(
            &app,
            "/admin/clients/web/edit",
            &[
                ("redirect_uris", "https://wiki.example.com/cb"),
                ("id_token_signed_response_alg", "RS512"),
            ],
        )
        .await;
    assert_eq!(refused.status(), 400);
    assert!(
        app.cli_ok(&["client", "show", "web"])
            .contains("ID token alg:   EdDSA"),
        "unchanged"
    );
}

#[tokio::test]
async fn a_declared_client_takes_its_algorithm_from_the_file() {
    let app = spawn_app_with_config(&format!(
        "[[clients]]\nclient_id = \"web\"\nsecret = \"declared-secret\"\n\
         redirect_uris = [\"{PVE_REDIRECT}\"]\nid_token_signed_response_alg = \"EdDSA\"\n"
    ));
    alice(&app);
    let browser = app.signed_in_browser("alice").await;
    let signed_in = sign_in(
        &app,
        &browser,
        "web",
        "declared-secret",
        Some(CoreJwsSigningAlgorithm::EdDsa),
    )
    .await;
    assert_eq!(header_of(&signed_in.id_token_raw)["alg"], "EdDSA");
    app.cli_ok(&["user", "add", "ada", "--admin"]);
    let ada = Browser::signed_in(&app, "ada").await;
    let (_, page) = ada.get(&app, "/admin/clients/web").await;
    assert!(
        page.contains("<dt>ID token algorithm</dt><dd>EdDSA</dd>"),
        "{page}"
    );
}

#[test]
fn a_database_with_only_an_rsa_key_gets_the_others_at_start() {
    use latchkey::store::signing_keys::{self, SigningAlg};
    let dir = tempfile::tempdir().unwrap();
    let store = latchkey::store::Store::open(dir.path()).unwrap();
    let now = latchkey::clock::now();
    let rsa = latchkey::keys::generate(SigningAlg::Rs256, now - 60).unwrap();
    store.write(|tx| signing_keys::insert(tx, &rsa)).unwrap();
    let settings = latchkey::config::Settings::resolve(latchkey::config::Overrides {
        data_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    })
    .unwrap();
    let prepared = latchkey::server::prepare(&store, &settings).unwrap();
    assert!(prepared.new_signing_key);
    let keys = store.read(signing_keys::list).unwrap();
    let mut active: Vec<SigningAlg> = keys
        .iter()
        .filter(|k| k.retired_at.is_none())
        .map(|k| k.alg)
        .collect();
    active.sort();
    assert_eq!(active, SigningAlg::ALL);
    assert!(keys.contains(&rsa), "the RSA key still signs");
    let again = latchkey::server::prepare(&store, &settings).unwrap();
    assert!(!again.new_signing_key, "nothing more at the next start");
}
