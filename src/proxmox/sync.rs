// LOCAL STUB: replaced by the helper's sync.rs. Not committed.
use super::plan::{Change, Person};
use super::target::{Rule, Target};
pub struct Inputs<'a> {
    pub target: &'a Target,
    pub rules: &'a [Rule],
    pub people: &'a [Person],
    pub issuer: &'a str,
    pub realm_secret: Option<&'a str>,
}
pub struct Report {
    pub planned: Vec<Change>,
    pub applied: usize,
    pub realm_secret_written: bool,
}
#[derive(Debug, thiserror::Error)]
#[error("stub")]
pub struct SyncError;
pub async fn run(_inputs: &Inputs<'_>, _dry_run: bool) -> Result<Report, SyncError> {
    Err(SyncError)
}
pub async fn roles(_target: &Target) -> Result<Vec<String>, SyncError> {
    Err(SyncError)
}
pub async fn check(_target: &Target) -> Result<(), SyncError> {
    Err(SyncError)
}
