// LOCAL STUB: replaced by the helper's plan.rs. Not committed.
pub struct Person {
    pub username: String,
    pub display_name: String,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub email: Option<String>,
    pub enabled: bool,
    pub groups: Vec<String>,
}
#[derive(Debug, Clone, serde::Serialize)]
pub enum Change {
    Stub,
}
impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stub")
    }
}
