//! `latchkey keys …`

use clap::Subcommand;

use super::CliResult;
use crate::clock;
use crate::keys;
use crate::oidc::KEY_PUBLISH_AFTER_RETIREMENT_SECS;
use crate::store::Store;
use crate::store::audit::{self, Event, EventKind, Origin};
use crate::store::signing_keys;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List signing keys.
    List,
    /// Start signing with a new key of every algorithm; the old ones stay published until
    /// their tokens expire.
    Rotate,
}

pub fn run(store: &Store, command: KeysCommand) -> CliResult {
    let now = clock::now();
    match command {
        KeysCommand::List => {
            let all = store.read(signing_keys::list)?;
            if all.is_empty() {
                println!("No signing keys yet: `latchkey serve` creates them at start.");
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
            let kids = store.write(|tx| {
                let kids = keys::rotate(tx, now, KEY_PUBLISH_AFTER_RETIREMENT_SECS)?;
                audit::record(
                    tx,
                    &Event::new(EventKind::KeysRotated).detail(kids.join(" ")),
                    &Origin::cli(),
                    now,
                )?;
                Ok::<_, keys::KeyError>(kids)
            })?;
            println!("New signing keys are active: {}.", kids.join(" "));
        }
    }
    Ok(())
}
