//! `latchkey keys …`

use clap::Subcommand;

use super::CliResult;
use crate::clock;
use crate::keys;
use crate::oidc::KEY_PUBLISH_AFTER_RETIREMENT_SECS;
use crate::store::Store;
use crate::store::audit::{self, Event, Origin};
use crate::store::signing_keys;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List signing keys.
    List,
    /// Start signing with a new key; the old one stays published until its tokens expire.
    Rotate,
}

pub fn run(store: &Store, command: KeysCommand) -> CliResult {
    let now = clock::now();
    match command {
        KeysCommand::List => {
            let all = store.read(signing_keys::list)?;
            if all.is_empty() {
                println!("No signing keys yet: `latchkey serve` creates one at start.");
            }
            for key in all {
                let status = match key.retired_at {
                    None => "active".to_string(),
                    Some(at) if at + KEY_PUBLISH_AFTER_RETIREMENT_SECS > now => format!(
                        "retired, published until {}",
                        clock::display(at + KEY_PUBLISH_AFTER_RETIREMENT_SECS)
                    ),
                    Some(_) => "retired".to_string(),
                };
                println!(
                    "{}\t{}\tcreated {}\t{status}",
                    key.kid,
                    key.alg,
                    clock::display(key.created_at)
                );
            }
        }
        KeysCommand::Rotate => {
            let kid = store.write(|tx| {
                let kid = keys::rotate(tx, now, KEY_PUBLISH_AFTER_RETIREMENT_SECS)?;
                audit::record(
                    tx,
                    &Event::new("keys.rotated").detail(kid.clone()),
                    &Origin::cli(),
                    now,
                )?;
                Ok::<_, keys::KeyError>(kid)
            })?;
            println!("New signing key {kid} is active.");
        }
    }
    Ok(())
}
