//! `latchkey user …`

use crate::store::Db;
use clap::Subcommand;

use super::{CliError, CliResult, print_json};
use crate::clock;
use crate::directory::users::{self, NewUser};
use crate::names::Username;
use crate::store::Store;
use crate::store::audit::Origin;
use crate::store::users as stored_users;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a person.
    Add {
        name: String,
        #[arg(long)]
        email: Option<String>,
        /// Display name, such as "Ada Lovelace".
        #[arg(long = "name", value_name = "DISPLAY NAME")]
        display_name: Option<String>,
        /// Make them an administrator.
        #[arg(long)]
        admin: bool,
        /// Give them a username someone deleted or renamed had: apps that key accounts on
        /// usernames (Proxmox) will give them that person's account.
        #[arg(long)]
        reuse_username: bool,
    },
    /// List people.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one person.
    Show { name: String },
    /// Disable a person: ends their sessions and revokes their tokens.
    Disable {
        name: String,
        /// Even the last enabled administrator.
        #[arg(long)]
        force: bool,
    },
    /// Remove a person for good.
    Remove {
        name: String,
        /// Even the last enabled administrator.
        #[arg(long)]
        force: bool,
    },
}

/// Refuses to take away the last enabled administrator, unless `force`d: then it warns.
fn keeps_an_administrator(conn: &Db, name: &Username, force: bool) -> CliResult {
    let user = users::find(conn, name)?;
    match users::not_the_last_administrator(conn, &user) {
        Err(refusal) if force => {
            eprintln!(
                "latchkey: warning: {refusal} Going ahead (--force): until someone is made \
                 an administrator with `latchkey user add NAME --admin`, nobody can manage \
                 Latchkey in the browser."
            );
            Ok(())
        }
        Err(refusal) => Err(CliError::Usage(format!(
            "{refusal} (`--force` does it anyway.)"
        ))),
        Ok(()) => Ok(()),
    }
}

pub fn run(store: &Store, command: UserCommand) -> CliResult {
    let origin = Origin::cli();
    let now = clock::now();
    match command {
        UserCommand::Add {
            name,
            email,
            display_name,
            admin,
            reuse_username,
        } => {
            let new = NewUser {
                id: None,
                username: Username::parse(&name)?,
                display_name,
                email,
                is_admin: admin,
                reuse_username,
            };
            let user = store.write(|tx| users::add(tx, &new, &origin, now))?;
            let role = if user.is_admin {
                "administrator"
            } else {
                "user"
            };
            println!("Created {role} {} (id {}).", user.username, user.id);
            println!(
                "Next: `latchkey login-link {}` prints a link to sign them in.",
                user.username
            );
        }
        UserCommand::List { json } => {
            let all = store.read(stored_users::list)?;
            if json {
                return print_json(&all);
            }
            for user in all {
                let mut flags = Vec::new();
                if user.is_admin {
                    flags.push("admin");
                }
                if user.disabled {
                    flags.push("disabled");
                }
                println!(
                    "{}\t{}\t{}\t{}",
                    user.username,
                    user.display_name,
                    user.email.as_deref().unwrap_or("-"),
                    flags.join(",")
                );
            }
        }
        UserCommand::Show { name } => {
            let (user, groups) = store.read(|conn| {
                let user = users::find(conn, &users::named(&name)?)?;
                let groups = stored_users::group_names(conn, &user.id)?;
                Ok::<_, super::CliError>((user, groups))
            })?;
            println!("username:     {}", user.username);
            println!("id (sub):     {}", user.id);
            println!("display name: {}", user.display_name);
            println!("email:        {}", user.email.as_deref().unwrap_or("-"));
            println!("groups:       {}", groups.join(", "));
            println!("administrator: {}", user.is_admin);
            println!("disabled:     {}", user.disabled);
            println!("created:      {}", clock::display(user.created_at));
        }
        UserCommand::Disable { name, force } => {
            let name = users::named(&name)?;
            let user = store.write(|tx| {
                keeps_an_administrator(tx, &name, force)?;
                Ok::<_, CliError>(users::disable(tx, &name, &origin, now)?)
            })?;
            println!(
                "Disabled {}; their sessions and tokens are revoked.",
                user.username
            );
        }
        UserCommand::Remove { name, force } => {
            let name = users::named(&name)?;
            let user = store.write(|tx| {
                keeps_an_administrator(tx, &name, force)?;
                Ok::<_, CliError>(users::remove(tx, &name, &origin, now)?)
            })?;
            println!("Removed {}.", user.username);
        }
    }
    Ok(())
}
