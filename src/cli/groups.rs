//! `latchkey group …`

use clap::Subcommand;

use super::{CliResult, print_json};
use crate::clock;
use crate::directory::{groups, users};
use crate::names::GroupName;
use crate::names::Username;
use crate::store::Store;
use crate::store::audit::Origin;

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Add a group.
    Add { name: String },
    /// List groups and their members.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a group.
    Remove { name: String },
    /// Add a person to a group.
    AddMember { group: String, user: String },
    /// Remove a person from a group.
    RemoveMember { group: String, user: String },
}

pub fn run(store: &Store, command: GroupCommand) -> CliResult {
    let origin = Origin::cli();
    let now = clock::now();
    match command {
        GroupCommand::Add { name } => {
            let name = GroupName::parse(&name)?;
            store.write(|tx| groups::add(tx, &name, &origin, now))?;
            println!("Created group {name}.");
        }
        GroupCommand::List { json } => {
            let all = store.read(groups::list)?;
            if json {
                return print_json(&all);
            }
            for group in all {
                let members: Vec<&str> = group.members.iter().map(Username::as_str).collect();
                println!("{}\t{}", group.name, members.join(","));
            }
        }
        GroupCommand::Remove { name } => {
            let name = groups::named(&name)?;
            store.write(|tx| groups::remove(tx, &name, &origin, now))?;
            println!("Removed group {name}.");
        }
        GroupCommand::AddMember { group, user } => {
            let (named, member) = (groups::named(&group)?, users::named(&user)?);
            let added = store.write(|tx| groups::add_member(tx, &named, &member, &origin, now))?;
            if added {
                println!("Added {user} to {group}.");
            } else {
                println!("{user} is already in {group}.");
            }
        }
        GroupCommand::RemoveMember { group, user } => {
            let (named, member) = (groups::named(&group)?, users::named(&user)?);
            let removed =
                store.write(|tx| groups::remove_member(tx, &named, &member, &origin, now))?;
            if removed {
                println!("Removed {user} from {group}.");
            } else {
                println!("{user} was not in {group}.");
            }
        }
    }
    Ok(())
}
