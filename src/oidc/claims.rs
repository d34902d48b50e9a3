//! Claims about a person, as the granted scopes allow, for ID tokens and userinfo alike.

use serde_json::{Map, Value, json};

use super::scope::{self, Scopes};
use crate::clock::UnixTime;
use crate::names::GroupName;
use crate::store::signing_keys::SigningAlg;
use crate::store::users::User;

/// `sub` and the claims the scopes ask for.
pub fn user_claims(user: &User, groups: &[GroupName], scopes: &Scopes) -> Map<String, Value> {
    let mut claims = Map::new();
    claims.insert("sub".into(), json!(user.id));
    if scopes.contains(scope::PROFILE) {
        let name = if user.display_name.is_empty() {
            user.username.as_str()
        } else {
            &user.display_name
        };
        claims.insert("name".into(), json!(name));
        claims.insert("preferred_username".into(), json!(user.username));
        if let Some(given) = &user.given_name {
            claims.insert("given_name".into(), json!(given));
        }
        if let Some(family) = &user.family_name {
            claims.insert("family_name".into(), json!(family));
        }
        claims.insert("updated_at".into(), json!(user.updated_at));
    }
    if scopes.contains(scope::EMAIL)
        && let Some(email) = &user.email
    {
        claims.insert("email".into(), json!(email));
        claims.insert("email_verified".into(), json!(user.email_verified));
    }
    if scopes.contains(scope::GROUPS) {
        claims.insert("groups".into(), json!(groups));
    }
    claims
}

/// The parts of an ID token that come from the authorization, not the person.
pub struct IdTokenContext<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    /// What the token is signed with, which also picks the hash of `at_hash`.
    pub alg: SigningAlg,
    pub auth_time: UnixTime,
    pub amr: &'a [String],
    pub nonce: Option<&'a str>,
    pub access_token: &'a str,
    pub now: UnixTime,
    pub ttl_secs: i64,
}

/// The full claim set of an ID token (OIDC Core §2, §3.1.3.6).
pub fn id_token(context: &IdTokenContext, mut claims: Map<String, Value>) -> Value {
    claims.insert("iss".into(), json!(context.issuer));
    claims.insert("aud".into(), json!(context.client_id));
    claims.insert("azp".into(), json!(context.client_id));
    claims.insert("iat".into(), json!(context.now));
    claims.insert("exp".into(), json!(context.now + context.ttl_secs));
    claims.insert("auth_time".into(), json!(context.auth_time));
    claims.insert("amr".into(), json!(context.amr));
    claims.insert(
        "at_hash".into(),
        json!(at_hash(context.alg, context.access_token)),
    );
    if let Some(nonce) = context.nonce {
        claims.insert("nonce".into(), json!(nonce));
    }
    Value::Object(claims)
}

/// OIDC Core §3.1.3.6: the left half of the access token's hash, base64url, with the hash
/// the ID token's `alg` uses: SHA-256 for RS256 and ES256, SHA-512 for EdDSA (Ed25519).
fn at_hash(alg: SigningAlg, access_token: &str) -> String {
    use base64::Engine;
    use sha2::{Digest, Sha256, Sha512};
    let digest = match alg {
        SigningAlg::Rs256 | SigningAlg::Es256 => Sha256::digest(access_token).to_vec(),
        SigningAlg::EdDsa => Sha512::digest(access_token).to_vec(),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::{UserId, Username};

    const ADA: &str = "0f1e6c1a-2b3d-4e5f-8a9b-0c1d2e3f4a5b";

    fn ada() -> User {
        User {
            id: UserId::parse(ADA).unwrap(),
            username: Username::parse("ada").unwrap(),
            display_name: "Ada Lovelace".into(),
            email: Some("ada@example.com".into()),
            email_verified: true,
            given_name: Some("Ada".into()),
            family_name: Some("Lovelace".into()),
            is_admin: false,
            disabled: false,
            created_at: 1,
            updated_at: 2,
        }
    }

    #[test]
    fn scopes_choose_claims() {
        let groups = vec![GroupName::parse("pve-admins").unwrap()];
        let only_openid = user_claims(&ada(), &groups, &Scopes::from_request("openid"));
        assert_eq!(Value::Object(only_openid), json!({"sub": ADA}));
        let all = user_claims(
            &ada(),
            &groups,
            &Scopes::from_request("openid profile email groups"),
        );
        assert_eq!(all["preferred_username"], "ada");
        assert_eq!(all["email_verified"], json!(true));
        assert_eq!(all["groups"], json!(["pve-admins"]));
        assert_eq!(all["given_name"], "Ada");
    }

    #[test]
    fn at_hash_matches_the_spec_example() {
        // OIDC Core A.3's access token and at_hash.
        assert_eq!(
            at_hash(
                SigningAlg::Rs256,
                "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"
            ),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
    }
}
