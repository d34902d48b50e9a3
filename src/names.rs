//! What names, addresses and URIs may look like.

/// A name, address or URI that breaks its rule; the message says which value and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

pub type NameResult<T> = Result<T, Invalid>;

fn all_chars(value: &str, allowed: impl Fn(char) -> bool) -> bool {
    !value.is_empty() && value.len() <= 64 && value.chars().all(allowed)
}

fn invalid(message: String) -> Invalid {
    Invalid(message)
}

/// Usernames are lowercased, then must match `[a-z0-9._-]{1,64}`: they become Proxmox user
/// ids (`name@realm`), which allow no whitespace, `:` or `/`.
pub fn username(input: &str) -> NameResult<String> {
    let name = input.trim().to_lowercase();
    if all_chars(&name, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c)
    }) {
        Ok(name)
    } else {
        Err(invalid(format!(
            "invalid username {input:?}: use 1 to 64 of a-z, 0-9, '.', '_' and '-'"
        )))
    }
}

/// Group names must match `[A-Za-z0-9._-]{1,64}`, what Proxmox accepts in a groups claim.
pub fn group_name(input: &str) -> NameResult<String> {
    if all_chars(input, |c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
        Ok(input.to_string())
    } else {
        Err(invalid(format!(
            "invalid group name {input:?}: use 1 to 64 of A-Z, a-z, 0-9, '.', '_' and '-'"
        )))
    }
}

/// A string type made only by its rule (`parse`), printed and serialized as the string it is;
/// its `Debug` is quoted like a string's, so that `{:?}` in a message reads the same.
macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $rule:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn parse(input: &str) -> NameResult<$name> {
                $rule(input).map($name)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(&self.0, f)
            }
        }
    };
}

name_type!(
    /// A username that follows the username rule, lowercased: made once where a name is typed
    /// (the command line, a form, a URL), so the rules never see a malformed one.
    Username,
    username
);

name_type!(
    /// A group name that follows the group-name rule: made once where a name is typed or
    /// declared.
    GroupName,
    group_name
);

/// Client ids: `[A-Za-z0-9._-]{1,64}`, safe in URLs and HTTP Basic credentials.
pub fn client_id(input: &str) -> NameResult<String> {
    if all_chars(input, |c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
        Ok(input.to_string())
    } else {
        Err(invalid(format!(
            "invalid client id {input:?}: use 1 to 64 of A-Z, a-z, 0-9, '.', '_' and '-'"
        )))
    }
}

name_type!(
    /// A client id that follows the client-id rule: made once where a request names a client,
    /// so that nothing malformed is looked up or logged.
    ClientId,
    client_id
);

/// A user id: a UUID in its canonical text (hyphenated, lowercase), the `sub` claim. Made
/// new for a person (`generate`), or once where an id arrives from outside (a URL, a form, a
/// stored row), so that a malformed one is never looked up.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId {
    uuid: uuid::Uuid,
    text: String,
}

impl UserId {
    /// A new random (version 4) id.
    pub fn generate() -> UserId {
        UserId::from_uuid(uuid::Uuid::new_v4())
    }

    /// Only the canonical text of a UUID: any other spelling of one names no user.
    pub fn parse(input: &str) -> NameResult<UserId> {
        uuid::Uuid::try_parse(input)
            .ok()
            .map(UserId::from_uuid)
            .filter(|id| id.text == input)
            .ok_or_else(|| invalid(format!("invalid user id {input:?}: not a UUID")))
    }

    fn from_uuid(uuid: uuid::Uuid) -> UserId {
        UserId {
            uuid,
            text: uuid.hyphenated().to_string(),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The id as WebAuthn's user handle.
    pub fn uuid(&self) -> uuid::Uuid {
        self.uuid
    }
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::fmt::Debug for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.text, f)
    }
}

impl serde::Serialize for UserId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

/// Reads `$name` back from state the server wrote (a ceremony), by the same rule.
macro_rules! deserialize_by_rule {
    ($name:ident) => {
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                $name::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

deserialize_by_rule!(UserId);
deserialize_by_rule!(Username);

/// A plain e-mail shape check; delivery is not our business.
pub fn email(input: &str) -> NameResult<String> {
    let email = input.trim();
    let valid = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(email.split_once('@'), Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@'));
    if valid {
        Ok(email.to_string())
    } else {
        Err(invalid(format!("invalid email address {input:?}")))
    }
}

/// Display names: free text without control characters, at most 128 characters.
pub fn display_name(input: &str) -> NameResult<String> {
    let name = input.trim();
    if name.chars().count() <= 128 && !name.chars().any(char::is_control) {
        Ok(name.to_string())
    } else {
        Err(invalid(format!(
            "invalid display name {input:?}: at most 128 characters, no control characters"
        )))
    }
}

/// Whitespace and control characters have no place in a URI (RFC 3986 §2): refused at
/// registration and at authorization.
pub fn has_forbidden_chars(uri: &str) -> bool {
    uri.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Redirect URIs are kept exactly as given (they are matched as strings), so they must
/// already be absolute http(s) URLs without a fragment.
pub fn redirect_uri(input: &str) -> NameResult<String> {
    let fail = |why: &str| invalid(format!("invalid redirect URI {input:?}: {why}"));
    if input.is_empty() {
        return Err(fail("it must not be empty"));
    }
    if has_forbidden_chars(input) {
        return Err(fail("it must not contain spaces or control characters"));
    }
    let parsed = url::Url::parse(input).map_err(|_| fail("not an absolute URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(fail("the scheme must be https (or http)"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(fail("it has no host"));
    }
    if input.contains('#') {
        return Err(fail("a redirect URI has no fragment"));
    }
    if input.contains('*') {
        return Err(fail("wildcards are not allowed; list every URI"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(fail("a redirect URI has no user name or password"));
    }
    Ok(input.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_lowercased_and_checked() {
        assert_eq!(username("Alice").unwrap(), "alice");
        assert!(username("al ice").is_err());
        assert!(username("a/b").is_err());
        assert!(username("").is_err());
        assert!(username(&"a".repeat(65)).is_err());
    }

    #[test]
    fn group_names_follow_proxmox() {
        assert!(group_name("pve-admins").is_ok());
        assert!(group_name("Ops.Team_1").is_ok());
        assert!(group_name("a/b").is_err());
        assert!(group_name("with space").is_err());
    }

    #[test]
    fn a_username_is_made_only_from_a_valid_name_and_normalised() {
        assert_eq!(Username::parse(" Alice ").unwrap().as_str(), "alice");
        assert_eq!(
            Username::parse("Bob.Smith").unwrap().to_string(),
            "bob.smith"
        );
        for bad in ["", "al ice", "a/b", "a:b", "é", &"a".repeat(65)] {
            let refused = Username::parse(bad).unwrap_err().to_string();
            assert!(refused.starts_with("invalid username"), "{refused}");
        }
    }

    #[test]
    fn a_group_name_is_made_only_from_a_valid_name_and_kept_as_given() {
        assert_eq!(
            GroupName::parse("Ops.Team_1").unwrap().as_str(),
            "Ops.Team_1"
        );
        assert_eq!(
            GroupName::parse("pve-admins").unwrap().to_string(),
            "pve-admins"
        );
        for bad in ["", " ops", "with space", "a/b", "é", &"a".repeat(65)] {
            let refused = GroupName::parse(bad).unwrap_err().to_string();
            assert!(refused.starts_with("invalid group name"), "{refused}");
        }
    }

    #[test]
    fn names_serialize_as_plain_strings() {
        let name = Username::parse("Ada").unwrap();
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"ada\"");
        let group = GroupName::parse("Ops").unwrap();
        assert_eq!(serde_json::to_string(&group).unwrap(), "\"Ops\"");
    }

    #[test]
    fn a_user_id_is_only_the_canonical_text_of_a_uuid() {
        let made = UserId::generate();
        assert_eq!(UserId::parse(made.as_str()).unwrap(), made);
        assert_eq!(made.uuid().get_version_num(), 4);
        let text = "0b9a6a9e-3f4e-4d2a-9c1b-7e5f0a1d2c3b";
        assert_eq!(UserId::parse(text).unwrap().to_string(), text);
        assert_eq!(
            format!("{:?}", UserId::parse(text).unwrap()),
            format!("{text:?}")
        );
        for bad in [
            "",
            "u1",
            "0B9A6A9E-3F4E-4D2A-9C1B-7E5F0A1D2C3B",
            "0b9a6a9e3f4e4d2a9c1b7e5f0a1d2c3b",
            "{0b9a6a9e-3f4e-4d2a-9c1b-7e5f0a1d2c3b}",
            " 0b9a6a9e-3f4e-4d2a-9c1b-7e5f0a1d2c3b",
        ] {
            let refused = UserId::parse(bad).unwrap_err().to_string();
            assert!(refused.starts_with("invalid user id"), "{refused}");
        }
    }

    #[test]
    fn a_user_id_and_a_username_go_through_json_as_strings() {
        let id = UserId::generate();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<UserId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<UserId>("\"u1\"").is_err());
        let name = serde_json::from_str::<Username>("\"ada\"").unwrap();
        assert_eq!(name, Username::parse("ada").unwrap());
        assert!(serde_json::from_str::<Username>("\"a/b\"").is_err());
    }

    #[test]
    fn redirect_uris_are_kept_verbatim() {
        assert_eq!(
            redirect_uri("https://pve.example.com:8006").unwrap(),
            "https://pve.example.com:8006"
        );
        assert!(redirect_uri("https://x/cb#frag").is_err());
        assert!(redirect_uri("https://*.example.com").is_err());
        assert!(redirect_uri("javascript:alert(1)").is_err());
        assert!(redirect_uri("/relative").is_err());
        assert!(redirect_uri("http://127.0.0.1:5555/cb\n").is_err());
        assert!(redirect_uri("https://x/c b").is_err());
        assert!(redirect_uri("https://x/cb\t").is_err());
    }
}
