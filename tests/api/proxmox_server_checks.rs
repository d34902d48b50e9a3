//! The Proxmox API test server answers as the products' sources say: token headers, error
//! shapes, refusals, realms, the failure switch and the request log.

use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::proxmox_server::{
    AclEntry, Certificate, Flavor, Group, Mode, ProxmoxServer, Realm, Rights, UgKind, User,
};

const TOKEN: &str = "root@pam!latchkey";
const SECRET: &str = "0b9f5c3e-2a41-4f7e-9d3a-6c1e8b2f7a90";

enum Body {
    Empty,
    Form(String),
    Json(Value),
}

fn form_body(text: &str) -> Body {
    Body::Form(text.to_string())
}

struct Answer {
    status: u16,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|_| panic!("not JSON: {}", self.text))
    }
}

fn header(flavor: Flavor) -> String {
    match flavor {
        Flavor::Pbs => format!("PBSAPIToken={TOKEN}:{SECRET}"),
        Flavor::Pve => format!("PVEAPIToken={TOKEN}={SECRET}"),
    }
}

fn server(flavor: Flavor, rights: Rights) -> ProxmoxServer {
    let server = ProxmoxServer::start(flavor);
    server.add_token(TOKEN, SECRET, rights);
    server
}

async fn send(
    server: &ProxmoxServer,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: Body,
) -> Answer {
    let url = format!("{}/api2/json{path}", server.url());
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = server.client().request(method, url);
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    request = match body {
        Body::Empty => request,
        Body::Form(text) => request
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(text),
        Body::Json(value) => request.json(&value),
    };
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    Answer { status, text }
}

/// A request with the product's own token header.
async fn api(server: &ProxmoxServer, method: &str, path: &str, body: Body) -> Answer {
    let authorization = header(server.flavor());
    send(server, method, path, Some(&authorization), body).await
}

#[tokio::test]
async fn pbs_takes_only_its_own_token_header() {
    let pbs = server(Flavor::Pbs, Rights::Full);
    let good = api(&pbs, "GET", "/access/users", Body::Empty).await;
    assert_eq!(good.status, 200, "{}", good.text);
    assert_eq!(good.json()["data"][0]["userid"], "root@pam");

    let refused = [
        format!("PVEAPIToken={TOKEN}={SECRET}"),
        format!("PBSAPIToken={TOKEN}={SECRET}"),
        format!("PBSAPIToken={TOKEN}:wrong"),
        format!("Bearer {SECRET}"),
    ];
    for authorization in refused {
        let answer = send(
            &pbs,
            "GET",
            "/access/users",
            Some(&authorization),
            Body::Empty,
        )
        .await;
        assert_eq!(answer.status, 401, "{authorization}");
        assert_eq!(answer.text, "authentication failed");
    }
    let anonymous = send(&pbs, "GET", "/access/users", None, Body::Empty).await;
    assert_eq!(
        (anonymous.status, anonymous.text.as_str()),
        (401, "authentication failed")
    );

    let log = pbs.requests();
    assert_eq!(log.len(), 6);
    assert_eq!(log[0].token.as_deref(), Some(TOKEN));
    assert_eq!(
        (
            log[0].path.as_str(),
            log[0].query.as_str(),
            log[0].body.as_str()
        ),
        ("/api2/json/access/users", "", "")
    );
    assert_eq!((log[0].method.as_str(), log[0].status), ("GET", Some(200)));
    assert!(
        log[1..]
            .iter()
            .all(|r| r.token.is_none() && r.status == Some(401))
    );
}

#[tokio::test]
async fn pve_takes_only_its_own_token_header_and_answers_401_with_no_body() {
    let pve = server(Flavor::Pve, Rights::Full);
    let good = api(&pve, "GET", "/access/users", Body::Empty).await;
    assert_eq!(good.status, 200, "{}", good.text);

    for authorization in [
        format!("PBSAPIToken={TOKEN}:{SECRET}"),
        format!("PVEAPIToken={TOKEN}:{SECRET}"),
        format!("PVEAPIToken={TOKEN}=wrong"),
    ] {
        let answer = send(
            &pve,
            "GET",
            "/access/users",
            Some(&authorization),
            Body::Empty,
        )
        .await;
        assert_eq!(
            (answer.status, answer.text.as_str()),
            (401, ""),
            "{authorization}"
        );
    }
}

#[tokio::test]
async fn an_acl_for_an_unknown_user_is_refused_400_by_pbs_and_500_by_pve() {
    let pbs = server(Flavor::Pbs, Rights::Full);
    let body = json!({"path": "/", "role": "Admin", "auth-id": "ghost@pbs", "propagate": true});
    let answer = api(&pbs, "PUT", "/access/acl", Body::Json(body)).await;
    assert_eq!(
        (answer.status, answer.text.as_str()),
        (400, "no such user.")
    );

    let pve = server(Flavor::Pve, Rights::Full);
    let form = "path=/&roles=Administrator&users=ghost@pve&propagate=1";
    let answer = api(&pve, "PUT", "/access/acl", form_body(form)).await;
    assert_eq!(answer.status, 500);
    assert_eq!(
        answer.json(),
        json!({"data": null, "message": "ACL update failed: user 'ghost@pve' does not exist\n"})
    );
    assert!(pbs.acl().is_empty() && pve.acl().is_empty());
}

#[tokio::test]
async fn an_unknown_role_is_refused() {
    let pbs = server(Flavor::Pbs, Rights::Full);
    let body = json!({"path": "/", "role": "Wizard", "auth-id": "root@pam"});
    let answer = api(&pbs, "PUT", "/access/acl", Body::Json(body)).await;
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.text,
        "parameter verification failed - 'role': value 'Wizard' is not defined in the enumeration."
    );

    let pve = server(Flavor::Pve, Rights::Full);
    let form = "path=/&roles=Wizard&users=root@pam";
    let answer = api(&pve, "PUT", "/access/acl", form_body(form)).await;
    assert_eq!(answer.status, 500);
    assert_eq!(
        answer.json()["message"],
        "ACL update failed: role 'Wizard' does not exist\n"
    );
}

#[tokio::test]
async fn pbs_wants_real_booleans_in_json_and_names_of_two_characters() {
    let pbs = server(Flavor::Pbs, Rights::Full);
    pbs.add_realm(Realm::openid("latchkey", "https://id.example", "pbs"));
    let body = json!({"userid": "alice@latchkey", "enable": 1, "firstname": "A"});
    let answer = api(&pbs, "POST", "/access/users", Body::Json(body)).await;
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.text,
        "parameter verification failed:\n- 'enable': Expected boolean value.\n- 'firstname': value must be at least 2 characters long"
    );
    // Form bodies are parsed too, with 1/true/yes/on booleans.
    let form = "userid=alice%40latchkey&enable=true&email=a%40example.com";
    let answer = api(&pbs, "POST", "/access/users", form_body(form)).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let user = pbs.user("alice@latchkey").expect("created");
    assert_eq!(
        (user.enable, user.email.as_deref()),
        (Some(true), Some("a@example.com"))
    );
}

#[tokio::test]
async fn pbs_needs_the_realm_before_its_users_and_pve_does_not_check() {
    let pbs = server(Flavor::Pbs, Rights::Full);
    let user = || Body::Json(json!({"userid": "alice@latchkey", "enable": true}));
    let answer = api(&pbs, "POST", "/access/users", user()).await;
    assert_eq!(
        (answer.status, answer.text.as_str()),
        (400, "unknown realm 'latchkey'")
    );

    let realm = json!({"realm": "latchkey", "issuer-url": "https://id.example", "client-id": "pbs",
        "username-claim": "username", "autocreate": false});
    let created = api(&pbs, "POST", "/config/access/openid", Body::Json(realm)).await;
    assert_eq!(created.status, 200, "{}", created.text);
    assert_eq!(api(&pbs, "POST", "/access/users", user()).await.status, 200);
    let duplicate = api(&pbs, "POST", "/access/users", user()).await;
    assert_eq!(
        (duplicate.status, duplicate.text.as_str()),
        (400, "user 'alice@latchkey' already exists.")
    );

    let pve = server(Flavor::Pve, Rights::Full);
    let answer = api(
        &pve,
        "POST",
        "/access/users",
        form_body("userid=alice@latchkey"),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(pve.user("alice@latchkey").map(|u| u.enabled()), Some(true));
}

#[tokio::test]
async fn the_username_claim_cannot_change_after_the_realm_is_made() {
    let pbs = server(Flavor::Pbs, Rights::Full);
    pbs.add_realm(Realm::openid("latchkey", "https://id.example", "pbs"));
    let change = json!({"username-claim": "email"});
    let answer = api(
        &pbs,
        "PUT",
        "/config/access/openid/latchkey",
        Body::Json(change),
    )
    .await;
    assert_eq!(
        (answer.status, answer.text.as_str()),
        (
            400,
            "parameter verification failed - 'username-claim': schema does not allow additional properties"
        )
    );
    let update = json!({"client-key": "s3cret", "issuer-url": "http://anything"});
    let answer = api(
        &pbs,
        "PUT",
        "/config/access/openid/latchkey",
        Body::Json(update),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let realm = pbs.realm("latchkey").expect("realm");
    assert_eq!(realm.options["client-key"], "s3cret");

    let pve = server(Flavor::Pve, Rights::Full);
    let form = "realm=latchkey&type=openid&issuer-url=https://id.example&client-id=pve&username-claim=username&groups-claim=groups&autocreate=0";
    let answer = api(&pve, "POST", "/access/domains", form_body(form)).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let answer = api(
        &pve,
        "PUT",
        "/access/domains/latchkey",
        form_body("username-claim=email"),
    )
    .await;
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.json()["errors"]["username-claim"],
        "property is not defined in schema and the schema does not allow additional properties"
    );
    let realm = pve.realm("latchkey").expect("realm");
    assert_eq!(
        (
            realm.options["username-claim"].clone(),
            realm.options["autocreate"].clone()
        ),
        (json!("username"), json!(0))
    );
    // The realm list needs no token on PVE.
    let listed = send(&pve, "GET", "/access/domains", None, Body::Empty).await;
    assert_eq!(listed.status, 200);
    pve.remove_realm("latchkey");
    assert_eq!(pve.realms().len(), 2);
}

#[tokio::test]
async fn deleting_a_pbs_user_leaves_its_acl_and_a_pve_user_takes_it_along() {
    let pbs = server(Flavor::Pbs, Rights::Full);
    pbs.add_realm(Realm::openid("latchkey", "https://id.example", "pbs"));
    pbs.put_user(User::new("alice@latchkey"));
    pbs.add_acl(AclEntry::user(
        "/datastore/main",
        "alice@latchkey",
        "DatastoreBackup",
    ));
    let answer = api(&pbs, "DELETE", "/access/users/alice@latchkey", Body::Empty).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    pbs.put_user(User::new("bob@latchkey"));
    pbs.add_acl(AclEntry::user("/", "bob@latchkey", "Audit"));
    pbs.remove_user("bob@latchkey");
    assert_eq!(pbs.users().len(), 1);
    assert_eq!(pbs.acl().len(), 2);
    let listed = api(&pbs, "GET", "/access/acl", Body::Empty).await.json();
    assert_eq!(listed["data"][1]["ugid"], "alice@latchkey");
    assert_eq!(listed["data"][1]["propagate"], true);

    let pve = server(Flavor::Pve, Rights::Full);
    pve.put_group(Group {
        groupid: "admins-latchkey".into(),
        ..Group::default()
    });
    let mut alice = User::new("alice@latchkey");
    alice.groups = vec!["admins-latchkey".into()];
    pve.put_user(alice);
    pve.add_acl(AclEntry::user("/", "alice@latchkey", "PVEAuditor"));
    pve.add_acl(AclEntry::group("/", "admins-latchkey", "Administrator"));
    let members = api(&pve, "GET", "/access/groups/admins-latchkey", Body::Empty)
        .await
        .json();
    assert_eq!(members["data"]["members"], json!(["alice@latchkey"]));
    let answer = api(&pve, "DELETE", "/access/users/alice@latchkey", Body::Empty).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(pve.groups()[0].members, Vec::<String>::new());
    assert_eq!(
        pve.acl().iter().map(|e| e.kind).collect::<Vec<_>>(),
        vec![UgKind::Group]
    );
    pve.remove_acl(&AclEntry::group("/", "admins-latchkey", "Administrator"));
    pve.remove_group("admins-latchkey");
    assert!(pve.acl().is_empty() && pve.groups().is_empty());
}

#[tokio::test]
async fn pve_users_join_groups_through_their_groups_list() {
    let pve = server(Flavor::Pve, Rights::Full);
    for group in ["a-latchkey", "b-latchkey"] {
        let form = format!("groupid={group}");
        let answer = send(
            &pve,
            "POST",
            "/access/groups",
            Some(&header(Flavor::Pve)),
            form_body(&form),
        )
        .await;
        assert_eq!(answer.status, 200, "{}", answer.text);
    }
    let create = "userid=bob@latchkey&groups=a-latchkey&enable=1&email=bob@example.com";
    assert_eq!(
        api(&pve, "POST", "/access/users", form_body(create))
            .await
            .status,
        200
    );
    let append = "groups=b-latchkey&append=1";
    assert_eq!(
        api(&pve, "PUT", "/access/users/bob@latchkey", form_body(append))
            .await
            .status,
        200
    );
    assert_eq!(
        pve.user("bob@latchkey").unwrap().groups,
        vec!["a-latchkey", "b-latchkey"]
    );
    let replace = "groups=b-latchkey&enable=0";
    assert_eq!(
        api(
            &pve,
            "PUT",
            "/access/users/bob@latchkey",
            form_body(replace)
        )
        .await
        .status,
        200
    );
    let bob = pve.user("bob@latchkey").unwrap();
    assert_eq!(
        (bob.enabled(), bob.groups),
        (false, vec!["b-latchkey".to_string()])
    );
    let wrong = api(
        &pve,
        "PUT",
        "/access/users/bob@latchkey",
        form_body("enable=false"),
    )
    .await;
    assert_eq!(
        wrong.json()["errors"]["enable"],
        "type check ('boolean') failed - got 'false'"
    );
    let listed = api(&pve, "GET", "/access/users?full=1", Body::Empty)
        .await
        .json();
    let bob = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["userid"] == "bob@latchkey")
        .cloned();
    assert_eq!(bob.map(|b| b["groups"].clone()), Some(json!("b-latchkey")));
}

#[tokio::test]
async fn a_token_without_rights_gets_each_products_refusal() {
    let pbs = server(Flavor::Pbs, Rights::ReadOnly);
    let body = json!({"userid": "carol@pbs"});
    let answer = api(&pbs, "POST", "/access/users", Body::Json(body)).await;
    assert_eq!(
        (answer.status, answer.text.as_str()),
        (403, "permission check failed")
    );
    // PUT /access/acl is open to anybody and refuses in the handler, with a 400.
    let body = json!({"path": "/", "role": "Admin", "auth-id": "root@pam"});
    let answer = api(&pbs, "PUT", "/access/acl", Body::Json(body)).await;
    assert_eq!(
        (answer.status, answer.text.as_str()),
        (400, "Unprivileged API tokens can't set ACL items.")
    );

    let pve = server(
        Flavor::Pve,
        Rights::Roles(vec![("/access".into(), "PVEUserAdmin".into())]),
    );
    let answer = api(
        &pve,
        "PUT",
        "/access/acl",
        form_body("path=/&roles=NoAccess&users=root@pam"),
    )
    .await;
    assert_eq!(answer.status, 403);
    assert_eq!(
        answer.json()["message"],
        "Permission check failed (/, Permissions.Modify)\n"
    );
    let answer = api(
        &pve,
        "POST",
        "/access/domains",
        form_body("realm=x1&type=openid"),
    )
    .await;
    assert_eq!(
        answer.json()["message"],
        "Permission check failed (/access/realm, Realm.Allocate)\n"
    );
    let nothing = server(Flavor::Pve, Rights::Nothing);
    let listed = api(&nothing, "GET", "/access/acl", Body::Empty).await;
    assert_eq!(listed.json(), json!({"data": []}));
}

#[tokio::test]
async fn the_failure_switch_fails_and_hangs_until_released() {
    let pbs = server(Flavor::Pbs, Rights::Full);
    pbs.set_mode(Mode::Fail500);
    let answer = api(&pbs, "GET", "/access/roles", Body::Empty).await;
    assert_eq!(answer.status, 500);

    pbs.set_mode(Mode::Hang);
    let url = format!("{}/api2/json/access/roles", pbs.url());
    let impatient = pbs
        .client()
        .get(&url)
        .header("Authorization", header(Flavor::Pbs));
    let timed_out = impatient
        .timeout(std::time::Duration::from_millis(300))
        .send()
        .await;
    assert!(timed_out.expect_err("held").is_timeout());

    pbs.clear_requests();
    let held = tokio::spawn(
        pbs.client()
            .get(&url)
            .header("Authorization", header(Flavor::Pbs))
            .send(),
    );
    while pbs.requests().is_empty() {
        tokio::task::yield_now().await;
    }
    pbs.set_mode(Mode::Normal);
    let released = held.await.expect("task").expect("answer");
    assert_eq!(released.status(), 200);
    let roles: Value = released.json().await.unwrap();
    assert!(
        roles["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["roleid"] == "DatastoreBackup")
    );
}

#[tokio::test]
async fn an_untrusted_certificate_means_no_request_reaches_the_server() {
    let pbs = ProxmoxServer::start_with(Flavor::Pbs, Certificate::SignedByCa);
    let other = ProxmoxServer::start(Flavor::Pbs);
    let url = format!("{}/api2/json/access/users", pbs.url());
    let refused = other.client().get(&url).send().await;
    assert!(refused.is_err());
    assert!(pbs.requests().is_empty());
    assert!(pbs.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(pbs.client().get(&url).send().await.unwrap().status(), 401);
}

#[tokio::test]
async fn the_fingerprint_is_the_certificates_as_proxmox_shows_it() {
    let pve = ProxmoxServer::start(Flavor::Pve);
    let base64: String = pve
        .ca_pem()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(base64)
        .unwrap();
    let expected: Vec<String> = Sha256::digest(&der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    assert_eq!(pve.fingerprint(), expected.join(":"));
    assert_eq!(pve.fingerprint().len(), 32 * 3 - 1);
}

#[tokio::test]
async fn a_stopped_server_refuses_connections_and_a_restart_keeps_its_state() {
    let pve = server(Flavor::Pve, Rights::Full);
    pve.put_user(User::new("dave@pve"));
    pve.stop();
    let url = format!("{}/api2/json/access/users", pve.url());
    assert!(
        pve.client()
            .get(&url)
            .send()
            .await
            .unwrap_err()
            .is_connect()
    );
    pve.restart();
    assert_eq!(
        pve.port(),
        url.split(':')
            .nth(2)
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .parse::<u16>()
            .unwrap()
    );
    let answer = api(&pve, "GET", "/access/users", Body::Empty).await;
    let ids: Vec<Value> = answer.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userid"].clone())
        .collect();
    assert_eq!(ids, vec![json!("dave@pve"), json!("root@pam")]);
}
