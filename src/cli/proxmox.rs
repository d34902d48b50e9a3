//! `latchkey proxmox …`: a client's Proxmox target, its permission rules, syncs and status.

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::{ArgGroup, Args, Subcommand};
use serde_json::json;

use super::{CliError, CliResult, print_json};
use crate::clock;
use crate::config::Settings;
use crate::directory::clients as directory_clients;
use crate::directory::groups as directory_groups;
use crate::directory::proxmox::{self as rules, Configured};
use crate::names::ClientId;
use crate::proxmox::queue;
use crate::proxmox::sync;
use crate::proxmox::target::{self, CaPemError, Rule, Target, Trust};
use crate::store::Store;
use crate::store::audit::Origin;
use crate::store::proxmox::{self as stored, SyncStatus};

#[derive(Debug, Subcommand)]
pub enum ProxmoxCommand {
    /// Connect a client to its Proxmox VE or Backup Server (checks the token's rights first).
    #[command(group(ArgGroup::new("secret").required(true).args(["token_secret_file", "token_secret_stdin"])))]
    #[command(group(ArgGroup::new("trust").required(true).args(["fingerprint", "ca_file", "system_roots"])))]
    Set {
        client_id: String,
        /// pbs (Proxmox Backup Server) or pve (Proxmox VE).
        #[arg(long)]
        product: String,
        /// Such as https://pbs.example.com:8007.
        #[arg(long, value_name = "URL")]
        api_url: String,
        /// The API token's id, USER@REALM!TOKENID.
        #[arg(long, value_name = "ID")]
        token_id: String,
        /// A file holding the token's secret.
        #[arg(long, value_name = "FILE")]
        token_secret_file: Option<PathBuf>,
        /// Read the token's secret on standard input.
        #[arg(long)]
        token_secret_stdin: bool,
        /// The server certificate's SHA-256 fingerprint, as Proxmox shows it.
        #[arg(long, value_name = "FP")]
        fingerprint: Option<String>,
        /// A CA certificate (PEM) that signed the server's certificate.
        #[arg(long, value_name = "FILE")]
        ca_file: Option<PathBuf>,
        /// Trust the system's CA certificates.
        #[arg(long)]
        system_roots: bool,
        /// The realm people sign in through.
        #[arg(long, default_value = rules::DEFAULT_REALM)]
        realm: String,
        /// What happens to users no rule covers any more: disable or delete.
        #[arg(long, default_value = "disable")]
        leavers: String,
        /// Create and update the OpenID realm too (mints a new client secret for it).
        #[arg(long)]
        manage_realm: bool,
    },
    /// Give a group's members a role at a path.
    Allow {
        #[command(flatten)]
        rule: RuleArgs,
        /// Apply the role at the path only, not below it.
        #[arg(long)]
        no_propagate: bool,
    },
    /// Take a rule away.
    Deny {
        #[command(flatten)]
        rule: RuleArgs,
    },
    /// Stop managing a client's Proxmox server (the server keeps what it has).
    Unset { client_id: String },
    /// Bring servers in step now and print what changed.
    Sync {
        client_id: Option<String>,
        /// Print the plan; change nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Show targets, rules and the last sync.
    Status {
        client_id: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// Runs async work (the Proxmox API) from the command line.
fn block_on<T>(work: impl std::future::Future<Output = T>) -> T {
    actix_web::rt::System::new().block_on(work)
}

/// A permission rule as `allow` and `deny` take it.
#[derive(Debug, Args)]
pub struct RuleArgs {
    client_id: String,
    #[arg(long)]
    group: String,
    #[arg(long)]
    role: String,
    #[arg(long, default_value = "/")]
    path: String,
}

impl RuleArgs {
    /// The client's id and the rule, its role and path checked; an id or group name that
    /// breaks its rule names no client or group.
    fn parse(self, propagate: bool) -> CliResult<(ClientId, Rule)> {
        let rule = Rule {
            role: parse(target::role(&self.role))?,
            path: parse(target::acl_path(&self.path))?,
            group: directory_groups::named(&self.group)?,
            propagate,
        };
        Ok((directory_clients::named(&self.client_id)?, rule))
    }
}

fn parse<T>(value: Result<T, target::TargetError>) -> CliResult<T> {
    value.map_err(|e| CliError::Usage(e.0))
}

fn read_file(path: &Path, what: &str) -> CliResult<String> {
    std::fs::read_to_string(path).map_err(CliError::io(format!(
        "cannot read the {what} {}",
        path.display()
    )))
}

fn token_secret(file: Option<&Path>) -> CliResult<String> {
    let text = match file {
        Some(path) => read_file(path, "token secret file")?,
        None => {
            let mut input = String::new();
            std::io::stdin()
                .read_to_string(&mut input)
                .map_err(CliError::io(
                    "cannot read the token secret from standard input",
                ))?;
            input
        }
    };
    parse(target::token_secret(&text))
}

pub fn run(store: &Store, settings: &Settings, command: ProxmoxCommand) -> CliResult {
    let origin = Origin::cli();
    let now = clock::now();
    match command {
        command @ ProxmoxCommand::Set { .. } => set(store, command, &origin),
        ProxmoxCommand::Allow { rule, no_propagate } => {
            let (client_id, rule) = rule.parse(!no_propagate)?;
            let configured = store.read(|conn| rules::find(conn, &client_id))?;
            check_role(&configured.target.target, &rule.role)?;
            let added = store.write(|tx| rules::allow(tx, &client_id, &rule, &origin, now))?;
            let what = rules::describe_rule(&rule);
            match added {
                true => println!("{client_id} now allows {what}; the server follows shortly."),
                false => println!("{client_id} already allows {what}."),
            }
            Ok(())
        }
        ProxmoxCommand::Deny { rule } => {
            let (client_id, rule) = rule.parse(true)?;
            let removed = store.write(|tx| rules::deny(tx, &client_id, &rule, &origin, now))?;
            if !removed {
                return Err(CliError::Usage(format!(
                    "{client_id} has no rule giving {} the role {} on {}",
                    rule.group, rule.role, rule.path
                )));
            }
            println!("Removed the rule; the server follows shortly.");
            Ok(())
        }
        ProxmoxCommand::Unset { client_id } => {
            let client_id = directory_clients::named(&client_id)?;
            store.write(|tx| rules::unset(tx, &client_id, &origin, now))?;
            println!(
                "{client_id} is no longer managed; its Proxmox server keeps its users and ACLs."
            );
            Ok(())
        }
        ProxmoxCommand::Sync {
            client_id,
            dry_run,
            json,
        } => sync_now(store, settings, client_id, dry_run, json),
        ProxmoxCommand::Status { client_id, json } => status(store, client_id, json),
    }
}

/// A role must exist on the server. A server that does not answer does not block the change:
/// the next sync checks the role again.
fn check_role(target: &Target, role: &str) -> CliResult {
    match block_on(sync::roles(target)) {
        Ok(roles) if roles.iter().any(|r| r == role) => Ok(()),
        Ok(roles) => Err(CliError::Usage(format!(
            "the server has no role {role:?}; it has {}",
            roles.join(", ")
        ))),
        Err(error) => {
            eprintln!("warning: cannot check the role now ({error}); the next sync will");
            Ok(())
        }
    }
}

fn set(store: &Store, command: ProxmoxCommand, origin: &Origin) -> CliResult {
    let ProxmoxCommand::Set {
        client_id,
        product,
        api_url,
        token_id,
        token_secret_file,
        token_secret_stdin: _,
        fingerprint,
        ca_file,
        system_roots: _,
        realm,
        leavers,
        manage_realm,
    } = command
    else {
        return Ok(());
    };
    let client_id = directory_clients::named(&client_id)?;
    let trust = match (fingerprint, ca_file) {
        (Some(fingerprint), _) => Trust::Fingerprint(parse(target::fingerprint(&fingerprint))?),
        (None, Some(file)) => Trust::CaPem(ca_pem(&file)?),
        (None, None) => Trust::SystemRoots,
    };
    let target = Target {
        client_id: client_id.clone(),
        product: parse(target::product(&product))?,
        api_url: parse(target::api_url(&api_url))?,
        token_id: parse(target::token_id(&token_id))?,
        token_secret: token_secret(token_secret_file.as_deref())?,
        trust,
        realm: parse(target::realm(&realm))?,
        leavers: parse(target::leavers(&leavers))?,
        manage_realm,
    };
    store.read(|conn| directory_clients::find(conn, &client_id))?;
    check_token(&target)?;
    let minted = match store.read(|conn| rules::needs_new_secret(conn, &target))? {
        true => Some(directory_clients::new_secret()?),
        false => None,
    };
    let now = clock::now();
    let outcome = store.write(|tx| rules::set(tx, &target, minted.as_ref(), origin, now))?;
    let verb = if outcome.created {
        "Connected"
    } else {
        "Updated"
    };
    println!(
        "{verb} {client_id} to {} ({}); the server follows shortly.",
        target.api_url,
        target.product.as_str()
    );
    if outcome.realm_secret_minted {
        println!(
            "Latchkey manages the realm {} now: it minted a new client secret and writes it \
             into the realm; the old secret no longer works.",
            target.realm
        );
    }
    Ok(())
}

/// The token must be able to do its job; a server that does not answer only warns.
fn check_token(target: &Target) -> CliResult {
    match block_on(sync::check(target)) {
        Ok(()) => Ok(()),
        Err(error) if error.is_unreachable() => {
            eprintln!("warning: the server does not answer ({error}); saved anyway");
            Ok(())
        }
        Err(error) => Err(CliError::Usage(error.to_string())),
    }
}

fn ca_pem(file: &Path) -> CliResult<String> {
    let shown = file.display();
    target::ca_pem(&read_file(file, "CA file")?).map_err(|error| {
        CliError::Usage(match error {
            CaPemError::NoCertificate => format!("{shown} holds no PEM certificate"),
            error => format!("{shown}: {error}"),
        })
    })
}

fn chosen(store: &Store, client_id: Option<String>) -> CliResult<Vec<Configured>> {
    Ok(match client_id {
        Some(id) => {
            let id = directory_clients::named(&id)?;
            vec![store.read(|conn| rules::find(conn, &id))?]
        }
        None => store.read(rules::list)?,
    })
}

fn sync_now(
    store: &Store,
    settings: &Settings,
    client_id: Option<String>,
    dry_run: bool,
    json: bool,
) -> CliResult {
    let targets = chosen(store, client_id)?;
    let issuer = settings.issuer.as_str().to_string();
    let mut failures = 0;
    let mut answers = Vec::new();
    for configured in targets {
        let id = configured.target.target.client_id;
        let outcome = block_on(queue::run_one(
            store,
            &issuer,
            &id,
            dry_run,
            &Origin::cli(),
            clock::now,
        ));
        failures += usize::from(outcome.is_err());
        if json {
            answers.push(sync_json(&id, dry_run, &outcome));
        } else {
            print_sync(&id, dry_run, &outcome);
        }
    }
    if json {
        print_json(&answers)?;
    }
    if failures > 0 {
        return Err(CliError::Usage(format!("{failures} sync(s) failed")));
    }
    Ok(())
}

fn sync_json(
    client_id: &ClientId,
    dry_run: bool,
    outcome: &Result<sync::Report, queue::RunError>,
) -> serde_json::Value {
    match outcome {
        Ok(report) => json!({
            "client_id": client_id,
            "dry_run": dry_run,
            "planned": report.planned,
            "applied": report.applied,
        }),
        Err(error) => {
            json!({ "client_id": client_id, "dry_run": dry_run, "error": error.to_string() })
        }
    }
}

fn print_sync(
    client_id: &ClientId,
    dry_run: bool,
    outcome: &Result<sync::Report, queue::RunError>,
) {
    match outcome {
        Ok(report) if report.planned.is_empty() => println!("{client_id}: in step, nothing to do"),
        Ok(report) => {
            let verb = if dry_run { "would" } else { "did" };
            println!(
                "{client_id}: {verb} make {} change(s):",
                report.planned.len()
            );
            for change in &report.planned {
                println!("  {change}");
            }
            if !dry_run {
                println!("{client_id}: applied {}", report.applied);
            }
        }
        Err(error) => println!("{client_id}: failed: {error}"),
    }
}

fn status(store: &Store, client_id: Option<String>, json: bool) -> CliResult {
    let targets = chosen(store, client_id)?;
    let mut shown = Vec::new();
    for configured in targets {
        let id = configured.target.target.client_id.clone();
        let status = store
            .read(|conn| stored::status(conn, &id))?
            .unwrap_or_default();
        if json {
            shown.push(status_json(&configured, &status));
        } else {
            print_status(&configured, &status);
        }
    }
    if json {
        print_json(&shown)?;
    }
    Ok(())
}

fn trust_name(trust: &Trust) -> &'static str {
    match trust {
        Trust::Fingerprint(_) => "fingerprint",
        Trust::CaPem(_) => "ca",
        Trust::SystemRoots => "system",
    }
}

fn status_json(configured: &Configured, status: &SyncStatus) -> serde_json::Value {
    let target = &configured.target.target;
    json!({
        "client_id": target.client_id,
        "product": target.product.as_str(),
        "api_url": target.api_url,
        "token_id": target.token_id,
        "trust": trust_name(&target.trust),
        "realm": target.realm,
        "leavers": target.leavers.as_str(),
        "manage_realm": target.manage_realm,
        "declared": configured.target.declared,
        "rules": configured.rules.iter().map(|r| json!({
            "group": r.group, "role": r.role, "path": r.path, "propagate": r.propagate,
        })).collect::<Vec<_>>(),
        "pending": status.due_at.is_some(),
        "status": status,
    })
}

fn when(at: Option<clock::UnixTime>) -> String {
    at.map_or_else(|| "never".to_string(), clock::display)
}

fn print_status(configured: &Configured, status: &SyncStatus) {
    let target = &configured.target.target;
    println!(
        "{}: {} {} realm {} (token {}, trust {}, leavers {}{}{})",
        target.client_id,
        target.product.as_str(),
        target.api_url,
        target.realm,
        target.token_id,
        trust_name(&target.trust),
        target.leavers.as_str(),
        if target.manage_realm {
            ", realm managed"
        } else {
            ""
        },
        if configured.target.declared {
            ", config file"
        } else {
            ""
        },
    );
    for rule in &configured.rules {
        println!("  rule: {}", rules::describe_rule(rule));
    }
    println!("  last success: {}", when(status.last_success_at));
    if let Some(error) = &status.last_error {
        println!("  last error:   {} ({error})", when(status.last_error_at));
    }
    let pending = match status.due_at {
        None => "no".to_string(),
        Some(_) if status.attempts > 0 => format!("yes, retrying ({} failed)", status.attempts),
        Some(_) => "yes".to_string(),
    };
    println!("  pending:      {pending}");
}
