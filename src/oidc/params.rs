//! Request parameters from a query string or a form body.
//!
//! RFC 6749 §3.1: a parameter sent without a value is treated as omitted, and a parameter
//! must not appear more than once.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    /// Parses `application/x-www-form-urlencoded` text; `Err` names a repeated parameter.
    pub fn parse(raw: &str) -> Result<Params, String> {
        let mut map = BTreeMap::new();
        for (name, value) in form_urlencoded::parse(raw.as_bytes()) {
            if value.is_empty() {
                continue;
            }
            if map.insert(name.to_string(), value.to_string()).is_some() {
                return Err(name.to_string());
            }
        }
        Ok(Params(map))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Only the parameters named in `names`.
    pub fn only(&self, names: &[&str]) -> Params {
        Params(
            self.0
                .iter()
                .filter(|(name, _)| names.contains(&name.as_str()))
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_are_omitted_and_repeats_refused() {
        let params = Params::parse("a=1&b=&c=%7B%22x%22%3A1%7D").unwrap();
        assert_eq!(params.get("a"), Some("1"));
        assert_eq!(params.get("b"), None);
        assert_eq!(params.get("c"), Some(r#"{"x":1}"#));
        assert_eq!(Params::parse("a=1&a=2"), Err("a".to_string()));
    }
}
