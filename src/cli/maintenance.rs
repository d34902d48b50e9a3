//! `latchkey login-link`, `backup` and `hash-secret`.

use std::io::Read;
use std::path::Path;

use super::{CliError, CliResult};
use crate::auth::login_link;
use crate::clock;
use crate::config::{Issuer, Settings, parse_duration};
use crate::directory::users;
use crate::secrets;
use crate::store::audit::Origin;
use crate::store::{Store, meta};

pub fn login_link(store: &Store, settings: &Settings, username: &str, ttl: &str) -> CliResult {
    let ttl = parse_duration(ttl).ok_or_else(|| {
        CliError::Usage(format!(
            "invalid --ttl {ttl:?}: use a number with s, m, h or d, such as 15m"
        ))
    })?;
    let now = clock::now();
    let (user, token, served) = store.write(|tx| {
        let named = users::named(username)?;
        let (user, token) = login_link::issue(tx, &named, ttl, &Origin::cli(), now)?;
        let served = meta::get(tx, meta::SERVED_ISSUER)?;
        Ok::<_, CliError>((user, token, served))
    })?;
    let issuer = link_issuer(settings, served)?;
    println!(
        "Login link for {} (works once, until {}):",
        user.username,
        clock::display(now + ttl)
    );
    println!("{}{}{token}", issuer.as_str(), login_link::ROUTE);
    Ok(())
}

/// The issuer links are printed under. Links must match what `serve` publishes
/// (`served`); without an explicit issuer, use that one.
pub(super) fn link_issuer(settings: &Settings, served: Option<String>) -> CliResult<Issuer> {
    Ok(match served {
        Some(served) if !settings.issuer_explicit => Issuer::parse(&served)?,
        _ => settings.issuer.clone(),
    })
}

pub fn backup(store: &Store, file: &Path) -> CliResult {
    if file.exists() {
        return Err(CliError::Usage(format!(
            "{} already exists; choose a new file name",
            file.display()
        )));
    }
    store.backup(file)?;
    println!("Backed up to {}.", file.display());
    Ok(())
}

pub fn hash_secret() -> CliResult {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(CliError::io("cannot read the secret from standard input"))?;
    let secret = input.strip_suffix('\n').unwrap_or(&input);
    let secret = secret.strip_suffix('\r').unwrap_or(secret);
    if secret.is_empty() {
        return Err(CliError::Usage(
            "no secret on standard input (try: echo -n SECRET | latchkey hash-secret)".into(),
        ));
    }
    let phc = secrets::hash_secret(secret).map_err(|e| CliError::Usage(e.to_string()))?;
    println!("{phc}");
    Ok(())
}
