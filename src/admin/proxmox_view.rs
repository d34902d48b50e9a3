//! What the Proxmox section of a client's page shows: the target and rules (or the forms to
//! set them), the sync status, and the commands that make a least-privilege API token on the
//! server. The changes themselves are `admin::proxmox`'s.

use crate::store::Db;

use super::access::AdminError;
use super::{read, when};
use crate::directory::DirectoryResult;
use crate::directory::groups as directory_groups;
use crate::directory::proxmox::{Configured, DEFAULT_REALM};
use crate::names::{ClientId, GroupName};
use crate::proxmox::target::{self, Product, Target, Trust};
use crate::state::State;
use crate::store::clients::Client;
use crate::store::proxmox::{self as stored, SyncStatus};

/// What the Proxmox section of a client page shows.
pub struct ProxmoxView {
    /// The client's target and rules, when it has one.
    pub configured: Option<Configured>,
    pub status: SyncStatus,
    /// Every group, for the rule form.
    pub groups: Vec<GroupName>,
    pub form: TargetForm,
    pub rule: RuleForm,
    pub guidance: Guidance,
    /// What the change just made wants the administrator to know.
    pub notices: Vec<String>,
}

impl ProxmoxView {
    /// How the target trusts the server's certificate, in words.
    pub fn trust(&self) -> String {
        match self.configured.as_ref().map(|c| &c.target.target.trust) {
            Some(Trust::Fingerprint(fingerprint)) => format!("SHA-256 fingerprint {fingerprint}"),
            Some(Trust::CaPem(_)) => "a CA certificate".to_string(),
            Some(Trust::SystemRoots) | None => "the system's CA certificates".to_string(),
        }
    }

    /// When the last run ended, and how many changes it applied.
    pub fn last_run(&self) -> String {
        let at = when(self.status.last_run_at, "never");
        match self.status.last_applied {
            Some(applied) if self.status.last_run_at.is_some() => {
                format!("{at}, {applied} change(s) applied")
            }
            _ => at,
        }
    }

    pub fn last_success(&self) -> String {
        when(self.status.last_success_at, "never")
    }

    /// The last error with its time, if a run failed since the target was set.
    pub fn last_error(&self) -> Option<String> {
        let error = self.status.last_error.as_ref()?;
        Some(format!(
            "{}: {error}",
            when(self.status.last_error_at, "unknown")
        ))
    }

    /// Whether a sync is waiting, and when it runs.
    pub fn pending(&self) -> String {
        let at = |due: i64| match due {
            0 => "as soon as possible".to_string(),
            due => format!("at {}", when(Some(due), "")),
        };
        match (self.status.due_at, self.status.attempts) {
            (None, _) => "No: in step".to_string(),
            (Some(due), 0) => format!("Yes, {}", at(due)),
            (Some(due), failed) => format!(
                "Yes, retrying after {failed} failed attempt{}; next try {}",
                if failed == 1 { "" } else { "s" },
                at(due)
            ),
        }
    }
}

/// What a handler shows beyond what is stored: a form as typed when it was refused (never the
/// token secret), and notices about the change it made.
#[derive(Default)]
pub struct Shown {
    pub target: Option<TargetForm>,
    pub rule: Option<RuleForm>,
    pub notices: Vec<String>,
}

/// The client's Proxmox section.
pub async fn view(state: &State, client: &Client, shown: Shown) -> Result<ProxmoxView, AdminError> {
    let id = client.client_id.clone();
    let (configured, status, groups) = read(state, move |conn| {
        let configured = configured(conn, &id)?;
        let status = stored::status(conn, &id)?.unwrap_or_default();
        let groups = directory_groups::list(conn)?;
        Ok((configured, status, groups))
    })
    .await?;
    let form = shown
        .target
        .unwrap_or_else(|| TargetForm::of(configured.as_ref().map(|c| &c.target.target)));
    Ok(ProxmoxView {
        guidance: Guidance::new(state.settings.issuer.as_str(), client, &form),
        form,
        rule: shown.rule.unwrap_or_default(),
        groups: groups.into_iter().map(|g| g.name).collect(),
        configured,
        status,
        notices: shown.notices,
    })
}

fn configured(conn: &Db, client_id: &ClientId) -> DirectoryResult<Option<Configured>> {
    Ok(match stored::target(conn, client_id)? {
        Some(target) => Some(Configured {
            rules: stored::rules(conn, client_id)?,
            target,
        }),
        None => None,
    })
}

/// The target form, as stored or as typed.
pub struct TargetForm {
    pub product: String,
    pub api_url: String,
    pub token_id: String,
    /// `fingerprint`, `ca` or `system`.
    pub trust: String,
    pub fingerprint: String,
    pub ca_pem: String,
    pub realm: String,
    pub leavers: String,
    pub manage_realm: bool,
}

impl TargetForm {
    fn of(target: Option<&Target>) -> TargetForm {
        let (trust, fingerprint, ca_pem) = match target.map(|t| &t.trust) {
            None => ("fingerprint", "", ""),
            Some(Trust::Fingerprint(value)) => ("fingerprint", value.as_str(), ""),
            Some(Trust::CaPem(pem)) => ("ca", "", pem.as_str()),
            Some(Trust::SystemRoots) => ("system", "", ""),
        };
        TargetForm {
            product: target.map_or("pbs", |t| t.product.as_str()).to_string(),
            api_url: target.map(|t| t.api_url.clone()).unwrap_or_default(),
            token_id: target.map(|t| t.token_id.clone()).unwrap_or_default(),
            trust: trust.to_string(),
            fingerprint: fingerprint.to_string(),
            ca_pem: ca_pem.to_string(),
            realm: target
                .map_or(DEFAULT_REALM, |t| t.realm.as_str())
                .to_string(),
            leavers: target.map_or("disable", |t| t.leavers.as_str()).to_string(),
            manage_realm: target.is_some_and(|t| t.manage_realm),
        }
    }
}

/// The rule form, as typed.
pub struct RuleForm {
    pub group: String,
    pub role: String,
    pub path: String,
    pub propagate: bool,
}

impl Default for RuleForm {
    fn default() -> RuleForm {
        RuleForm {
            group: String::new(),
            role: String::new(),
            path: "/".to_string(),
            propagate: true,
        }
    }
}

/// The commands that prepare a server, with what is known of this client filled in.
pub struct Guidance {
    pub pbs_token: String,
    pub pve_token: String,
    /// Reads the certificate's fingerprint from any machine.
    pub openssl: String,
    /// The realm step; `None` when Latchkey manages the realm.
    pub pbs_realm: Option<String>,
    pub pve_realm: Option<String>,
    pub realm: String,
    /// Whether the PVE guidance is the one to open first.
    pub pve_first: bool,
}

impl Guidance {
    fn new(issuer: &str, client: &Client, form: &TargetForm) -> Guidance {
        let auth_id = target::token_id(form.token_id.trim())
            .unwrap_or_else(|_| "root@pam!latchkey".to_string());
        let (user, token) = auth_id.split_once('!').unwrap_or(("root@pam", "latchkey"));
        let pve_first = form.product == Product::Pve.as_str();
        let realm = target::realm(form.realm.trim()).unwrap_or_else(|_| DEFAULT_REALM.into());
        let mut pve_privs = "Realm.AllocateUser User.Modify Group.Allocate Permissions.Modify \
                             Sys.Audit"
            .to_string();
        if form.manage_realm {
            pve_privs.push_str(" Realm.Allocate");
        }
        let key = if client.public {
            String::new()
        } else {
            " --client-key 'THE-CLIENT-SECRET'".to_string()
        };
        let realm_step = |command: &str| {
            (!form.manage_realm).then(|| {
                format!(
                    "{command} --issuer-url {issuer} \\\n  --client-id {}{key} \\\n  \
                     --username-claim username --scopes \"email profile groups\" --autocreate 0",
                    client.client_id
                )
            })
        };
        Guidance {
            pbs_token: format!(
                "# On the Proxmox Backup Server, as root: an API token for Latchkey\n\
                 proxmox-backup-manager user generate-token {user} {token}\n\
                 # Its rights: Admin on /access (users, ACL entries and realms)\n\
                 proxmox-backup-manager acl update /access Admin --auth-id '{auth_id}'\n\
                 # The certificate's SHA-256 fingerprint\n\
                 proxmox-backup-manager cert info | grep Fingerprint"
            ),
            pve_token: format!(
                "# On a Proxmox VE node, as root: a role with just what Latchkey needs\n\
                 pveum role add LatchkeySync --privs \"{pve_privs}\"\n\
                 # An API token for Latchkey, privilege-separated, with that role on /\n\
                 pveum user token add {user} {token} --privsep 1\n\
                 pveum acl modify / --tokens '{auth_id}' --roles LatchkeySync\n\
                 # The certificate's SHA-256 fingerprint (pveproxy-ssl.pem's when two are listed)\n\
                 pvenode cert info | grep -i fingerprint"
            ),
            openssl: format!(
                "openssl s_client -connect {} </dev/null 2>/dev/null \\\n  \
                 | openssl x509 -noout -fingerprint -sha256",
                host_port(&form.api_url, pve_first)
            ),
            pbs_realm: realm_step(&format!("proxmox-backup-manager openid create {realm}")),
            pve_realm: realm_step(&format!("pveum realm add {realm} --type openid")),
            realm,
            pve_first,
        }
    }
}

/// `host:port` of the API URL, or an example.
fn host_port(api_url: &str, pve: bool) -> String {
    let parsed = target::api_url(api_url.trim())
        .ok()
        .and_then(|url| url::Url::parse(&url).ok());
    match parsed
        .as_ref()
        .and_then(|u| Some((u.host_str()?, u.port_or_known_default()?)))
    {
        Some((host, port)) => format!("{host}:{port}"),
        None if pve => "pve.example.com:8006".to_string(),
        None => "pbs.example.com:8007".to_string(),
    }
}
