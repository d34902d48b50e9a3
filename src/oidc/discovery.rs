//! The discovery document (OpenID Connect Discovery 1.0 §3, RFC 8414).

use serde_json::{Value, json};

use super::scope;
use crate::config::Issuer;
use crate::store::signing_keys::SigningAlg;

pub fn document(issuer: &Issuer) -> Value {
    json!({
        "issuer": issuer.as_str(),
        "authorization_endpoint": issuer.endpoint("/authorize"),
        "token_endpoint": issuer.endpoint("/token"),
        "userinfo_endpoint": issuer.endpoint("/userinfo"),
        "jwks_uri": issuer.endpoint("/.well-known/jwks.json"),
        "end_session_endpoint": issuer.endpoint("/logout"),
        "revocation_endpoint": issuer.endpoint("/revoke"),
        "introspection_endpoint": issuer.endpoint("/introspect"),
        "scopes_supported": scope::SUPPORTED,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": SigningAlg::ALL.map(SigningAlg::as_str),
        "token_endpoint_auth_methods_supported":
            ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported":
            ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported":
            ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "display_values_supported": ["page"],
        "claims_supported": [
            "iss", "sub", "aud", "azp", "exp", "iat", "auth_time", "nonce", "amr", "at_hash",
            "name", "preferred_username", "given_name", "family_name", "updated_at",
            "email", "email_verified", "groups"
        ],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
    })
}

/// Discovery as JSON text, computed once at start: the issuer never changes while serving.
pub fn rendered(issuer: &Issuer) -> String {
    let document: Value = document(issuer);
    document.to_string()
}
