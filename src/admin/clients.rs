//! `/admin/clients`: the apps people sign in to. Each page shows the issuer and ready-to-paste
//! settings for Proxmox VE, Proxmox Backup Server and any other OpenID Connect app.

use std::collections::BTreeMap;

use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use askama::Template;
use serde::Deserialize;

use super::access::{self, Admin, AdminResult};
use super::proxmox_view::{self, ProxmoxView, Shown};
use super::{Frame, Refusal, Section, admin_url, change, read, render, see_other, segment};
use crate::directory::clients::{self as directory_clients, ClientSettings, NewClient};
use crate::directory::groups as directory_groups;
use crate::directory::{DirectoryError, DirectoryResult};
use crate::names::{ClientId, GroupName};
use crate::state::State;
use crate::store::clients::{self as stored_clients, Client};
use crate::store::signing_keys::SigningAlg;
use crate::web::error::PageError;
use crate::web::pages::Base;

/// The admin path of a client's page.
pub(super) fn client_path(id: &str) -> String {
    format!("/clients/{id}")
}

/// The client the page's URL names; an id no client can have names none (404).
pub(super) fn client_in_path(req: &HttpRequest) -> Result<ClientId, PageError> {
    directory_clients::named(&segment(req, "id")).map_err(|_| PageError::not_found())
}

/// What the settings form shows: a client's settings, or what was typed and refused.
struct SettingsForm {
    name: String,
    redirect_uris: String,
    post_logout_redirect_uris: String,
    /// Every group, and whether this client admits it.
    groups: Vec<(GroupName, bool)>,
    public: bool,
    require_pkce: bool,
    ask_consent: bool,
    launch_url: String,
    access_token_ttl: String,
    refresh_token_ttl: String,
    /// Every ID token algorithm, and whether it is the one chosen.
    id_token_algs: Vec<(&'static str, bool)>,
}

/// The algorithm choices, with `chosen` selected (none when it names no algorithm).
fn alg_choices(chosen: &str) -> Vec<(&'static str, bool)> {
    SigningAlg::ALL
        .iter()
        .map(|alg| (alg.as_str(), alg.as_str() == chosen))
        .collect()
}

impl SettingsForm {
    fn of(client: Option<&Client>, all_groups: Vec<GroupName>) -> SettingsForm {
        let allowed = client.map(|c| c.allowed_groups.clone()).unwrap_or_default();
        let seconds = |ttl: Option<i64>| ttl.map(|s| s.to_string()).unwrap_or_default();
        SettingsForm {
            name: client.map(|c| c.name.clone()).unwrap_or_default(),
            redirect_uris: client
                .map(|c| c.redirect_uris.join("\n"))
                .unwrap_or_default(),
            post_logout_redirect_uris: client
                .map(|c| c.post_logout_redirect_uris.join("\n"))
                .unwrap_or_default(),
            groups: all_groups
                .into_iter()
                .map(|g| {
                    let on = allowed.contains(&g);
                    (g, on)
                })
                .collect(),
            public: client.is_some_and(|c| c.public),
            require_pkce: client.is_some_and(|c| c.require_pkce),
            // New clients made in the browser ask people first; untick for a trusted app.
            ask_consent: client.is_none_or(|c| c.ask_consent),
            launch_url: client
                .and_then(|c| c.launch_url.clone())
                .unwrap_or_default(),
            access_token_ttl: seconds(client.and_then(|c| c.access_token_ttl)),
            refresh_token_ttl: seconds(client.and_then(|c| c.refresh_token_ttl)),
            id_token_algs: alg_choices(
                client
                    .map(|c| c.id_token_signed_response_alg)
                    .unwrap_or_default()
                    .as_str(),
            ),
        }
    }

    fn from_posted(posted: &PostedSettings, all_groups: Vec<GroupName>) -> SettingsForm {
        let allowed: Vec<&str> = posted.allowed_groups().collect();
        SettingsForm {
            name: posted.name.clone(),
            redirect_uris: posted.redirect_uris.clone(),
            post_logout_redirect_uris: posted.post_logout_redirect_uris.clone(),
            groups: all_groups
                .into_iter()
                .map(|g| {
                    let on = allowed.contains(&g.as_str());
                    (g, on)
                })
                .collect(),
            public: posted.public.is_some(),
            require_pkce: posted.require_pkce.is_some(),
            ask_consent: posted.ask_consent.is_some(),
            launch_url: posted.launch_url.clone(),
            access_token_ttl: posted.access_token_ttl.clone(),
            refresh_token_ttl: posted.refresh_token_ttl.clone(),
            id_token_algs: alg_choices(
                posted
                    .id_token_signed_response_alg
                    .as_deref()
                    .unwrap_or(SigningAlg::default().as_str()),
            ),
        }
    }
}

/// The settings form as posted. Allowed groups arrive as one checkbox each, named
/// `group:NAME`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct PostedSettings {
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    redirect_uris: String,
    #[serde(default)]
    post_logout_redirect_uris: String,
    public: Option<String>,
    require_pkce: Option<String>,
    ask_consent: Option<String>,
    #[serde(default)]
    launch_url: String,
    #[serde(default)]
    access_token_ttl: String,
    #[serde(default)]
    refresh_token_ttl: String,
    /// Absent (a form from before the choice existed): RS256.
    id_token_signed_response_alg: Option<String>,
    #[serde(flatten)]
    rest: BTreeMap<String, String>,
}

impl PostedSettings {
    /// The names of the ticked groups, as posted.
    fn allowed_groups(&self) -> impl Iterator<Item = &str> {
        self.rest
            .keys()
            .filter_map(|key| key.strip_prefix("group:"))
    }

    fn settings(&self) -> DirectoryResult<ClientSettings> {
        let lines = |text: &str| {
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        let seconds = |what: &str, text: &str| -> DirectoryResult<Option<i64>> {
            let text = text.trim();
            if text.is_empty() {
                return Ok(None);
            }
            text.parse()
                .map(Some)
                .map_err(|_| DirectoryError::Invalid(format!("{what} is a number of seconds")))
        };
        Ok(ClientSettings {
            name: Some(self.name.clone()),
            redirect_uris: lines(&self.redirect_uris),
            post_logout_redirect_uris: lines(&self.post_logout_redirect_uris),
            allowed_groups: self
                .allowed_groups()
                .map(directory_groups::named)
                .collect::<DirectoryResult<_>>()?,
            public: self.public.is_some(),
            require_pkce: self.require_pkce.is_some(),
            ask_consent: self.ask_consent.is_some(),
            launch_url: Some(self.launch_url.clone()),
            access_token_ttl: seconds("the access token lifetime", &self.access_token_ttl)?,
            refresh_token_ttl: seconds("the refresh token lifetime", &self.refresh_token_ttl)?,
            id_token_signed_response_alg: directory_clients::id_token_alg(
                self.id_token_signed_response_alg.as_deref(),
            )?,
        })
    }
}

async fn group_names(state: &State) -> Result<Vec<GroupName>, access::AdminError> {
    let groups = read(state, directory_groups::list).await?;
    Ok(groups.into_iter().map(|g| g.name).collect())
}

#[derive(Template)]
#[template(path = "admin/clients.html")]
struct ClientsPage {
    base: Base,
    frame: Frame,
    clients: Vec<Client>,
    client_id: String,
    form: SettingsForm,
}

pub async fn list(req: HttpRequest, state: State) -> AdminResult {
    let admin = access::require(&req, &state).await?;
    let groups = group_names(&state).await?;
    let page = ClientsPage {
        base: Base::of(&state.settings.issuer),
        frame: Frame::new(&req, &state, &admin, Section::Clients),
        clients: read(&state, |conn| Ok(stored_clients::list(conn)?)).await?,
        client_id: String::new(),
        form: SettingsForm::of(None, groups),
    };
    render(&page, &page.frame)
}

/// Ready-to-paste settings for the apps people use most.
struct Snippets {
    issuer: String,
    discovery: String,
    pve: String,
    pbs: String,
}

impl Snippets {
    fn new(state: &State, client_id: &ClientId, secret: Option<&str>) -> Snippets {
        let issuer = state.settings.issuer.as_str().to_string();
        let secret = secret.unwrap_or("THE-CLIENT-SECRET");
        Snippets {
            discovery: state
                .settings
                .issuer
                .endpoint("/.well-known/openid-configuration"),
            pve: format!(
                "pveum realm add latchkey --type openid --issuer-url {issuer} \\\n  \
                 --client-id {client_id} --client-key '{secret}' \\\n  \
                 --username-claim username --scopes \"email profile groups\" \\\n  \
                 --autocreate 1 --groups-claim groups --groups-autocreate 1"
            ),
            pbs: format!(
                "proxmox-backup-manager openid create latchkey --issuer-url {issuer} \\\n  \
                 --client-id {client_id} --client-key '{secret}' \\\n  \
                 --username-claim username --scopes \"email profile groups\" --autocreate 1"
            ),
            issuer,
        }
    }
}

#[derive(Template)]
#[template(path = "admin/client_secret.html")]
struct SecretPage {
    base: Base,
    frame: Frame,
    client: Client,
    secret: Option<String>,
    snippets: Snippets,
}

pub async fn create(req: HttpRequest, state: State, body: Bytes) -> AdminResult {
    let (admin, posted): (_, PostedSettings) = access::form(&req, &state, &body).await?;
    let origin = state.origin(&req).by(&admin.user.username);
    let secret = match posted.public {
        Some(_) => None,
        None => Some(
            directory_clients::new_secret()
                .map_err(|e| access::AdminError::Page(PageError::internal(&e)))?,
        ),
    };
    let client_id = match posted.client_id.trim() {
        "" => uuid::Uuid::new_v4().simple().to_string(),
        typed => typed.to_string(),
    };
    let settings = posted.settings();
    let hash = secret.as_ref().map(|s| s.hash.clone());
    let made = change(&state, move |tx, now| {
        let settings = settings?;
        let new = NewClient {
            client_id: ClientId::parse(&client_id)?,
            settings,
        };
        directory_clients::add(tx, &new, hash, &origin, now)
    })
    .await?;
    match made {
        Ok(client) => {
            let page = SecretPage {
                base: Base::of(&state.settings.issuer),
                frame: Frame::new(&req, &state, &admin, Section::Clients),
                snippets: Snippets::new(
                    &state,
                    &client.client_id,
                    secret.as_ref().map(|s| s.secret.as_str()),
                ),
                secret: secret.map(|s| s.secret),
                client,
            };
            render(&page, &page.frame)
        }
        Err(refusal) => {
            let groups = group_names(&state).await?;
            let page = ClientsPage {
                base: Base::of(&state.settings.issuer),
                frame: Frame::new(&req, &state, &admin, Section::Clients).refused(Some(refusal)),
                clients: read(&state, |conn| Ok(stored_clients::list(conn)?)).await?,
                client_id: posted.client_id.clone(),
                form: SettingsForm::from_posted(&posted, groups),
            };
            render(&page, &page.frame)
        }
    }
}

#[derive(Template)]
#[template(path = "admin/client.html")]
struct ClientPage {
    base: Base,
    frame: Frame,
    client: Client,
    form: SettingsForm,
    snippets: Snippets,
    /// Redirect URIs that send codes over plain http to another machine.
    plain_http: Vec<String>,
    proxmox: ProxmoxView,
}

pub async fn page(req: HttpRequest, state: State) -> AdminResult {
    let admin = access::require(&req, &state).await?;
    client_page(&req, &state, &admin, None, None).await
}

async fn client_page(
    req: &HttpRequest,
    state: &State,
    admin: &Admin,
    posted: Option<&PostedSettings>,
    refusal: Option<Refusal>,
) -> AdminResult {
    client_page_with(req, state, admin, posted, refusal, Shown::default()).await
}

/// The client's page, its Proxmox section showing `shown` too.
pub(super) async fn client_page_with(
    req: &HttpRequest,
    state: &State,
    admin: &Admin,
    posted: Option<&PostedSettings>,
    refusal: Option<Refusal>,
    shown: Shown,
) -> AdminResult {
    let found = client_in_path(req)?;
    let client = read(state, move |conn| directory_clients::find(conn, &found))
        .await
        .map_err(|_| PageError::not_found())?;
    let groups = group_names(state).await?;
    let form = match posted {
        Some(posted) => SettingsForm::from_posted(posted, groups),
        None => SettingsForm::of(Some(&client), groups),
    };
    let plain_http = client
        .redirect_uris
        .iter()
        .filter(|uri| crate::oidc::redirect::is_plain_http(uri))
        .cloned()
        .collect();
    let proxmox = proxmox_view::view(state, &client, shown).await?;
    let page = ClientPage {
        base: Base::of(&state.settings.issuer),
        frame: Frame::new(req, state, admin, Section::Clients).refused(refusal),
        snippets: Snippets::new(state, &client.client_id, None),
        client,
        form,
        plain_http,
        proxmox,
    };
    render(&page, &page.frame)
}

pub async fn edit(req: HttpRequest, state: State, body: Bytes) -> AdminResult {
    let (admin, posted): (_, PostedSettings) = access::form(&req, &state, &body).await?;
    let origin = state.origin(&req).by(&admin.user.username);
    let id = segment(&req, "id");
    let target = client_in_path(&req)?;
    let settings = posted.settings();
    // A public client made confidential needs a secret: the new one is shown once.
    let secret = match posted.public {
        Some(_) => None,
        None => Some(
            directory_clients::new_secret()
                .map_err(|e| access::AdminError::Page(PageError::internal(&e)))?,
        ),
    };
    let hash = secret.as_ref().map(|s| s.hash.clone());
    let updated = change(&state, move |tx, now| {
        let was_public = directory_clients::find(tx, &target)?.public;
        let hash = if was_public { hash } else { None };
        let client = directory_clients::update(tx, &target, &settings?, hash, &origin, now)?;
        Ok((client, was_public))
    })
    .await?;
    match updated {
        Ok((client, was_public)) if was_public && !client.public => {
            let page = SecretPage {
                base: Base::of(&state.settings.issuer),
                frame: Frame::new(&req, &state, &admin, Section::Clients),
                snippets: Snippets::new(
                    &state,
                    &client.client_id,
                    secret.as_ref().map(|s| s.secret.as_str()),
                ),
                secret: secret.map(|s| s.secret),
                client,
            };
            render(&page, &page.frame)
        }
        Ok(_) => Ok(see_other(admin_url(&state, &client_path(&id)))),
        Err(refusal) => client_page(&req, &state, &admin, Some(&posted), Some(refusal)).await,
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct Nothing {}

pub async fn rotate_secret(req: HttpRequest, state: State, body: Bytes) -> AdminResult {
    let (admin, _): (_, Nothing) = access::form(&req, &state, &body).await?;
    let origin = state.origin(&req).by(&admin.user.username);
    let target = client_in_path(&req)?;
    let secret = directory_clients::new_secret()
        .map_err(|e| access::AdminError::Page(PageError::internal(&e)))?;
    let minted = secret.clone();
    let rotated = change(&state, move |tx, now| {
        directory_clients::rotate_secret(tx, &target, &minted, &origin, now)?;
        directory_clients::find(tx, &target)
    })
    .await?;
    match rotated {
        Ok(client) => {
            let page = SecretPage {
                base: Base::of(&state.settings.issuer),
                frame: Frame::new(&req, &state, &admin, Section::Clients),
                snippets: Snippets::new(&state, &client.client_id, Some(&secret.secret)),
                secret: Some(secret.secret),
                client,
            };
            render(&page, &page.frame)
        }
        Err(refusal) => client_page(&req, &state, &admin, None, Some(refusal)).await,
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct DeleteForm {
    pub(super) confirm: Option<String>,
}

pub async fn delete(req: HttpRequest, state: State, body: Bytes) -> AdminResult {
    let (admin, form): (_, DeleteForm) = access::form(&req, &state, &body).await?;
    if form.confirm.as_deref() != Some("yes") {
        let refusal = Refusal::new(
            StatusCode::BAD_REQUEST,
            "Tick the confirmation to delete this client.",
        );
        return client_page(&req, &state, &admin, None, Some(refusal)).await;
    }
    let origin = state.origin(&req).by(&admin.user.username);
    let target = client_in_path(&req)?;
    match change(&state, move |tx, now| {
        directory_clients::remove(tx, &target, &origin, now)
    })
    .await?
    {
        Ok(()) => Ok(see_other(admin_url(&state, "/clients"))),
        Err(refusal) => client_page(&req, &state, &admin, None, Some(refusal)).await,
    }
}
