//! `latchkey client …`

use clap::Subcommand;
use serde_json::json;

use super::{CliResult, print_json};
use crate::clock::{self, UnixTime};
use crate::directory::clients::{self, ClientSettings, NewClient};
use crate::directory::groups;
use crate::names::ClientId;
use crate::store::Store;
use crate::store::audit::Origin;
use crate::store::clients::{self as stored_clients, Client};

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register an application.
    Add {
        client_id: String,
        /// Where the application receives the sign-in; repeat for several. Matched exactly.
        #[arg(long = "redirect-uri", value_name = "URI", required = true)]
        redirect_uris: Vec<String>,
        /// A friendly name shown to people.
        #[arg(long)]
        name: Option<String>,
        /// Where the application may send people after signing out; repeat for several.
        #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
        post_logout_redirect_uris: Vec<String>,
        /// A public client (single-page or native app): no secret, PKCE required.
        #[arg(long)]
        public: bool,
        /// Only members of this group may sign in; repeat for several.
        #[arg(long = "allowed-group", value_name = "GROUP")]
        allowed_groups: Vec<String>,
        /// Ask people to consent before their details are shared (else the client is trusted).
        #[arg(long)]
        ask_consent: bool,
        /// Where people open the app; lists it on their landing page.
        #[arg(long, value_name = "URL")]
        launch_url: Option<String>,
        /// What its ID tokens are signed with: RS256 (the default), ES256 or EdDSA.
        #[arg(long, value_name = "ALG")]
        id_token_alg: Option<String>,
        /// Print one JSON object with client_id and client_secret.
        #[arg(long)]
        json: bool,
    },
    /// Change an application's settings.
    Update {
        id: String,
        /// What its ID tokens are signed with: RS256, ES256 or EdDSA.
        #[arg(long, value_name = "ALG")]
        id_token_alg: String,
    },
    /// List applications.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one application.
    Show { id: String },
    /// Remove an application.
    Remove { id: String },
    /// Replace an application's secret; the old one stops working at once.
    RotateSecret {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(store: &Store, command: ClientCommand) -> CliResult {
    let origin = Origin::cli();
    let now = clock::now();
    match command {
        ClientCommand::Add {
            client_id,
            redirect_uris,
            name,
            post_logout_redirect_uris,
            public,
            allowed_groups,
            ask_consent,
            launch_url,
            id_token_alg,
            json,
        } => {
            let new = NewClient {
                client_id: ClientId::parse(&client_id)?,
                settings: ClientSettings {
                    name,
                    redirect_uris,
                    post_logout_redirect_uris,
                    allowed_groups: allowed_groups
                        .iter()
                        .map(|group| groups::named(group))
                        .collect::<Result<_, _>>()?,
                    public,
                    ask_consent,
                    launch_url,
                    id_token_signed_response_alg: clients::id_token_alg(id_token_alg.as_deref())?,
                    ..ClientSettings::default()
                },
            };
            add(store, &new, json, &origin, now)
        }
        ClientCommand::Update { id, id_token_alg } => {
            update(store, &clients::named(&id)?, &id_token_alg, &origin, now)
        }
        ClientCommand::List { json } => list(store, json),
        ClientCommand::Show { id } => show(store, &clients::named(&id)?),
        ClientCommand::Remove { id } => {
            let id = clients::named(&id)?;
            store.write(|tx| clients::remove(tx, &id, &origin, now))?;
            println!("Removed client {id}.");
            Ok(())
        }
        ClientCommand::RotateSecret { id, json } => {
            rotate_secret(store, &clients::named(&id)?, json, &origin, now)
        }
    }
}

fn add(store: &Store, new: &NewClient, json: bool, origin: &Origin, now: UnixTime) -> CliResult {
    let secret = (!new.settings.public)
        .then(clients::new_secret)
        .transpose()?;
    let hash = secret.as_ref().map(|s| s.hash.clone());
    let client = store.write(|tx| clients::add(tx, new, hash, origin, now))?;
    let secret = secret.map(|s| s.secret);
    if json {
        let mut out = json!({ "client_id": client.client_id });
        if let Some(secret) = &secret {
            out["client_secret"] = json!(secret);
        }
        return print_json(&out);
    }
    println!("Created client {}.", client.client_id);
    println!("client_id:     {}", client.client_id);
    match secret {
        Some(secret) => {
            println!("client_secret: {secret}");
            println!("The secret is shown only now: store it in the application.");
        }
        None => println!("Public client: no secret; it must use PKCE (S256)."),
    }
    for uri in client
        .redirect_uris
        .iter()
        .filter(|u| crate::oidc::redirect::is_plain_http(u))
    {
        eprintln!(
            "warning: {uri} is plain http: codes travel unencrypted; use https outside a lab."
        );
    }
    Ok(())
}

fn update(store: &Store, id: &ClientId, alg: &str, origin: &Origin, now: UnixTime) -> CliResult {
    let alg = clients::id_token_alg(Some(alg))?;
    let client = store.write(|tx| {
        let mut settings = ClientSettings::from(&clients::find(tx, id)?);
        settings.id_token_signed_response_alg = alg;
        clients::update(tx, id, &settings, None, origin, now)
    })?;
    println!(
        "Updated client {}: ID tokens are signed with {}.",
        client.client_id, client.id_token_signed_response_alg
    );
    Ok(())
}

fn kind(client: &Client) -> &'static str {
    if client.public {
        "public"
    } else {
        "confidential"
    }
}

fn list(store: &Store, json: bool) -> CliResult {
    let all = store.read(stored_clients::list)?;
    if json {
        return print_json(&all);
    }
    for client in all {
        println!(
            "{}\t{}\t{}\t{}",
            client.client_id,
            client.name,
            kind(&client),
            client.redirect_uris.join(" ")
        );
    }
    Ok(())
}

fn show(store: &Store, id: &ClientId) -> CliResult {
    let client = store.read(|conn| clients::find(conn, id))?;
    println!("client_id:      {}", client.client_id);
    println!("name:           {}", client.name);
    println!("type:           {}", kind(&client));
    println!("redirect URIs:  {}", client.redirect_uris.join(" "));
    println!(
        "post-logout:    {}",
        client.post_logout_redirect_uris.join(" ")
    );
    let allowed = if client.allowed_groups.is_empty() {
        "(every user)".to_string()
    } else {
        client.allowed_groups.join(", ")
    };
    println!("allowed groups: {allowed}");
    println!("ID token alg:   {}", client.id_token_signed_response_alg);
    Ok(())
}

fn rotate_secret(
    store: &Store,
    id: &ClientId,
    json: bool,
    origin: &Origin,
    now: UnixTime,
) -> CliResult {
    let secret = clients::new_secret()?;
    store.write(|tx| clients::rotate_secret(tx, id, &secret, origin, now))?;
    if json {
        return print_json(&json!({ "client_id": id, "client_secret": secret.secret }));
    }
    println!("New secret for {id}: {}", secret.secret);
    println!("The old secret no longer works. This one is shown only now.");
    Ok(())
}
