//! Scopes we understand. Unknown scopes are ignored, as RFC 6749 §3.3 allows; the granted
//! scope is returned with the tokens.

pub const OPENID: &str = "openid";
pub const PROFILE: &str = "profile";
pub const EMAIL: &str = "email";
pub const GROUPS: &str = "groups";
pub const OFFLINE_ACCESS: &str = "offline_access";

pub const SUPPORTED: &[&str] = &[OPENID, PROFILE, EMAIL, GROUPS, OFFLINE_ACCESS];

/// A set of granted scopes, in a stable order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scopes(Vec<&'static str>);

impl Scopes {
    /// The supported scopes among the space-separated `requested` ones.
    pub fn from_request(requested: &str) -> Scopes {
        let asked: Vec<&str> = requested.split(' ').collect();
        Scopes(
            SUPPORTED
                .iter()
                .copied()
                .filter(|s| asked.contains(s))
                .collect(),
        )
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.0.contains(&scope)
    }

    /// True when every scope of `self` is in `other`.
    pub fn is_subset_of(&self, other: &Scopes) -> bool {
        self.0.iter().all(|s| other.contains(s))
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.0.iter().copied()
    }

    pub fn joined(&self) -> String {
        self.0.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_scopes_are_dropped() {
        let scopes = Scopes::from_request("email openid   weird groups");
        assert_eq!(scopes.joined(), "openid email groups");
        assert!(Scopes::from_request("openid").is_subset_of(&scopes));
        assert!(!Scopes::from_request("openid profile").is_subset_of(&scopes));
    }
}
