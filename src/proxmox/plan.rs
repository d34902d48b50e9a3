//! What a Proxmox server should hold, and the ordered changes that bring it there. Pure: no
//! I/O. `api` reads the server's state into an [`Actual`] and applies each [`Change`].
//!
//! The plan only ever names the target's realm: users `<name>@<realm>`, (PVE) groups
//! `<group>-<realm>` and ACL entries on those. Everything else on the server is left alone.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Serialize, Serializer};

use super::target::{Leavers, Product, Rule, Target};

/// A Latchkey user, as the sync sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// Becomes `<username>@<realm>`.
    pub username: String,
    pub display_name: String,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub email: Option<String>,
    pub enabled: bool,
    /// Latchkey group names.
    pub groups: Vec<String>,
}

/// The names and email a Proxmox user carries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Names {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub firstname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lastname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// Whom an ACL entry is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UgidKind {
    User,
    Group,
    /// An API token (`user@realm!token`): never touched.
    Token,
}

/// One ACL entry: `role` at `path` for `ugid`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct AclEntry {
    pub path: String,
    pub kind: UgidKind,
    pub ugid: String,
    pub role: String,
    pub propagate: bool,
}

impl AclEntry {
    /// What identifies an entry on the server: propagate is a property of it.
    fn key(&self) -> (&str, UgidKind, &str, &str) {
        (&self.path, self.kind, &self.ugid, &self.role)
    }
}

/// An OpenID realm's settings, as Proxmox names them. On a read, `None` is "not set"; in an
/// update, `None` is "leave as it is".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RealmSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autocreate: Option<bool>,
    /// Set at creation only: Proxmox cannot change it afterwards.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username_claim: Option<String>,
    /// PVE only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups_claim: Option<String>,
    /// PVE only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups_autocreate: Option<bool>,
    /// PVE only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups_overwrite: Option<bool>,
}

/// The scopes a managed realm asks for (`openid` is always added by Proxmox's client).
pub const REALM_SCOPES: &str = "email profile groups";
/// The claim a managed realm takes usernames from (falls back to `preferred_username`).
pub const USERNAME_CLAIM: &str = "username";
/// Proxmox's default when a realm sets no `username-claim`.
const DEFAULT_USERNAME_CLAIM: &str = "sub";
/// Proxmox's default when a realm sets no `scopes`.
const DEFAULT_SCOPES: &str = "email profile";

impl RealmSettings {
    /// What Latchkey writes into a realm it manages. On PVE the `groups` claim fills the
    /// `<group>-<realm>` groups at sign-in, without creating groups (Latchkey creates the ruled
    /// ones) and without overwriting (which would drop memberships outside the realm).
    pub fn managed(product: Product, issuer: &str, client_id: &str) -> RealmSettings {
        let pve = product == Product::Pve;
        RealmSettings {
            issuer_url: Some(issuer.to_string()),
            client_id: Some(client_id.to_string()),
            scopes: Some(REALM_SCOPES.to_string()),
            autocreate: Some(false),
            username_claim: Some(USERNAME_CLAIM.to_string()),
            groups_claim: pve.then(|| "groups".to_string()),
            groups_autocreate: pve.then_some(false),
            groups_overwrite: pve.then_some(false),
        }
    }

    /// The claim usernames come from, with Proxmox's default.
    pub fn effective_username_claim(&self) -> &str {
        self.username_claim
            .as_deref()
            .unwrap_or(DEFAULT_USERNAME_CLAIM)
    }

    /// The settings of `self` (wanted) that `actual` does not have yet, read with Proxmox's
    /// defaults; never `username-claim`.
    fn missing_from(&self, actual: &RealmSettings) -> RealmSettings {
        fn differs<T: PartialEq + Clone>(want: &Option<T>, have: Option<T>) -> Option<T> {
            want.clone().filter(|want| Some(want) != have.as_ref())
        }
        let scopes_differ = self.scopes.as_deref().is_some_and(|want| {
            scope_set(want) != scope_set(actual.scopes.as_deref().unwrap_or(DEFAULT_SCOPES))
        });
        RealmSettings {
            issuer_url: differs(&self.issuer_url, actual.issuer_url.clone()),
            client_id: differs(&self.client_id, actual.client_id.clone()),
            scopes: self.scopes.clone().filter(|_| scopes_differ),
            autocreate: differs(&self.autocreate, Some(actual.autocreate.unwrap_or(false))),
            username_claim: None,
            groups_claim: differs(&self.groups_claim, actual.groups_claim.clone()),
            groups_autocreate: differs(
                &self.groups_autocreate,
                Some(actual.groups_autocreate.unwrap_or(false)),
            ),
            groups_overwrite: differs(
                &self.groups_overwrite,
                Some(actual.groups_overwrite.unwrap_or(false)),
            ),
        }
    }

    fn is_empty(&self) -> bool {
        *self == RealmSettings::default()
    }

    /// `name value` for each setting, for a person to read.
    fn describe(&self) -> Vec<String> {
        let text = |name: &str, value: &Option<String>| {
            value.as_ref().map(|value| format!("{name} {value:?}"))
        };
        let flag = |name: &str, value: Option<bool>| {
            value.map(|value| format!("{name} {}", if value { "on" } else { "off" }))
        };
        [
            text("issuer-url", &self.issuer_url),
            text("client-id", &self.client_id),
            text("scopes", &self.scopes),
            flag("autocreate", self.autocreate),
            text("username-claim", &self.username_claim),
            text("groups-claim", &self.groups_claim),
            flag("groups-autocreate", self.groups_autocreate),
            flag("groups-overwrite", self.groups_overwrite),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// Proxmox splits scope lists on `,`, `;` and whitespace.
fn scope_set(scopes: &str) -> BTreeSet<&str> {
    scopes
        .split(|c: char| c == ',' || c == ';' || c.is_ascii_whitespace())
        .filter(|scope| !scope.is_empty())
        .collect()
}

/// A client secret on its way into a realm: never printed, never serialized.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientKey(String);

impl ClientKey {
    pub fn new(secret: &str) -> ClientKey {
        ClientKey(secret.to_string())
    }

    /// The secret itself, for the request that writes it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

const CLIENT_KEY_SHOWN: &str = "(new client secret)";

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(CLIENT_KEY_SHOWN)
    }
}

impl Serialize for ClientKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(CLIENT_KEY_SHOWN)
    }
}

/// The realm Latchkey manages (with `manage_realm`): its settings and, when one was minted,
/// the client secret to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealmWanted {
    pub settings: RealmSettings,
    pub client_key: Option<ClientKey>,
}

/// The realm a target wants, or `None` when the target does not manage it.
pub fn desired_realm(target: &Target, issuer: &str, secret: Option<&str>) -> Option<RealmWanted> {
    target.manage_realm.then(|| RealmWanted {
        settings: RealmSettings::managed(target.product, issuer, &target.client_id),
        client_key: secret.map(ClientKey::new),
    })
}

/// What the server should hold for the target's realm.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    /// Realm users, by userid.
    pub users: BTreeMap<String, Names>,
    /// PVE: realm groups (`<group>-<realm>`), each with exactly these member userids.
    pub groups: BTreeMap<String, BTreeSet<String>>,
    /// The ruled ACL entries, one per (path, ugid, role).
    pub acl: Vec<AclEntry>,
    /// With `manage_realm`: the realm (see [`desired_realm`]).
    pub realm: Option<RealmWanted>,
}

/// A user as the server holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActualUser {
    pub userid: String,
    pub enabled: bool,
    pub names: Names,
    /// PVE: every group the user is in (also those outside the realm).
    pub groups: BTreeSet<String>,
}

/// What the server holds (as `api` read it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actual {
    pub users: Vec<ActualUser>,
    /// PVE: the group ids that exist.
    pub groups: BTreeSet<String>,
    pub acl: Vec<AclEntry>,
    /// The realm's settings, when read (`manage_realm`) and it exists.
    pub realm: Option<RealmSettings>,
}

/// A change to one of the user's names: set it, or remove it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Edit {
    Set(String),
    Clear,
}

/// One API call's worth of change. `Display` is one line for people (dry run, CLI, audit
/// log); `Serialize` is for `--json`. Neither ever shows a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    CreateRealm {
        realm: String,
        settings: RealmSettings,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_key: Option<ClientKey>,
    },
    /// `settings` holds only what changes.
    UpdateRealm {
        realm: String,
        settings: RealmSettings,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_key: Option<ClientKey>,
    },
    CreateGroup {
        groupid: String,
    },
    CreateUser {
        userid: String,
        #[serde(flatten)]
        names: Names,
    },
    UpdateUser {
        userid: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        firstname: Option<Edit>,
        #[serde(skip_serializing_if = "Option::is_none")]
        lastname: Option<Edit>,
        #[serde(skip_serializing_if = "Option::is_none")]
        email: Option<Edit>,
        /// The user is disabled on the server and gets enabled.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        enable: bool,
    },
    /// PVE: the user joins and leaves realm groups. Proxmox takes the user's whole group
    /// list, so `groups` (sent, not shown) keeps every other group the user is in.
    SetUserGroups {
        userid: String,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        join: Vec<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        leave: Vec<String>,
        #[serde(skip)]
        groups: Vec<String>,
    },
    AddAcl(AclEntry),
    RemoveAcl(AclEntry),
    DisableUser {
        userid: String,
    },
    DeleteUser {
        userid: String,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::CreateRealm {
                realm,
                settings,
                client_key,
            } => {
                let details = realm_details(settings, client_key);
                write!(f, "create OpenID realm {realm} ({details})")
            }
            Change::UpdateRealm {
                realm,
                settings,
                client_key,
            } => {
                let details = realm_details(settings, client_key);
                write!(f, "update OpenID realm {realm}: {details}")
            }
            Change::CreateGroup { groupid } => write!(f, "create group {groupid}"),
            Change::CreateUser { userid, .. } => write!(f, "create user {userid}"),
            Change::UpdateUser {
                userid,
                firstname,
                lastname,
                email,
                enable,
            } => {
                let edits: Vec<String> = [
                    ("firstname", firstname),
                    ("lastname", lastname),
                    ("email", email),
                ]
                .into_iter()
                .filter_map(|(name, edit)| match edit {
                    Some(Edit::Set(value)) => Some(format!("{name} {value:?}")),
                    Some(Edit::Clear) => Some(format!("remove {name}")),
                    None => None,
                })
                .chain(enable.then(|| "enable".to_string()))
                .collect();
                write!(f, "update user {userid}: {}", edits.join(", "))
            }
            Change::SetUserGroups {
                userid,
                join,
                leave,
                ..
            } => {
                let moves: Vec<String> = [("add", "to", join), ("remove", "from", leave)]
                    .into_iter()
                    .filter(|(_, _, groups)| !groups.is_empty())
                    .map(|(verb, preposition, groups)| {
                        format!("{verb} {userid} {preposition} group {}", groups.join(", "))
                    })
                    .collect();
                f.write_str(&moves.join("; "))
            }
            Change::AddAcl(entry) => {
                let AclEntry { path, role, .. } = entry;
                let scope = if entry.propagate {
                    ""
                } else {
                    " (not propagated)"
                };
                write!(f, "grant {role} on {path} to {}{scope}", whom(entry))
            }
            Change::RemoveAcl(entry) => {
                let AclEntry { path, role, .. } = entry;
                write!(f, "revoke {role} on {path} from {}", whom(entry))
            }
            Change::DisableUser { userid } => write!(f, "disable user {userid}"),
            Change::DeleteUser { userid } => write!(f, "delete user {userid}"),
        }
    }
}

fn realm_details(settings: &RealmSettings, client_key: &Option<ClientKey>) -> String {
    let mut details = settings.describe();
    if client_key.is_some() {
        details.push(CLIENT_KEY_SHOWN.to_string());
    }
    details.join(", ")
}

fn whom(entry: &AclEntry) -> String {
    match entry.kind {
        UgidKind::User => entry.ugid.clone(),
        UgidKind::Group => format!("group {}", entry.ugid),
        UgidKind::Token => format!("token {}", entry.ugid),
    }
}

/// Proxmox's limit on a userid's length (PBS and PVE).
const MAX_USERID: usize = 64;

/// `<username>@<realm>`, or `None` when Proxmox would refuse it as too long.
pub fn userid(username: &str, realm: &str) -> Option<String> {
    let userid = format!("{username}@{realm}");
    (userid.chars().count() <= MAX_USERID).then_some(userid)
}

/// The PVE group for a Latchkey group: `<group>-<realm>`, as PVE's own groups claim names it.
pub fn group_id(group: &str, realm: &str) -> String {
    format!("{group}-{realm}")
}

/// A user of the realm: `<name>@<realm>` (not an API token).
pub fn is_realm_user(userid: &str, realm: &str) -> bool {
    userid.rsplit_once('@').is_some_and(|(name, user_realm)| {
        user_realm == realm && !name.is_empty() && !name.contains('!')
    })
}

/// A group of the realm: `<group>-<realm>`.
pub fn is_realm_group(groupid: &str, realm: &str) -> bool {
    groupid
        .strip_suffix(realm)
        .and_then(|rest| rest.strip_suffix('-'))
        .is_some_and(|group| !group.is_empty())
}

/// What the plan may touch: the realm's users, (PVE) its groups and ACL entries on those.
struct Scope<'a> {
    realm: &'a str,
    product: Product,
}

impl Scope<'_> {
    fn user(&self, userid: &str) -> bool {
        is_realm_user(userid, self.realm)
    }

    fn group(&self, groupid: &str) -> bool {
        self.product == Product::Pve && is_realm_group(groupid, self.realm)
    }

    fn entry(&self, entry: &AclEntry) -> bool {
        match entry.kind {
            UgidKind::User => self.user(&entry.ugid),
            UgidKind::Group => self.group(&entry.ugid),
            UgidKind::Token => false,
        }
    }
}

/// The users, (PVE) groups and ACL entries the rules give: enabled people in at least one
/// ruled group become `<username>@<realm>`; PBS gets one entry per (user, rule) on the user,
/// PVE gets the groups `<group>-<realm>` for every ruled group, holding exactly the covered
/// members, and the entries on the groups. People whose userid would exceed Proxmox's 64
/// characters cannot exist there and are left out. The realm is set apart (`desired_realm`).
pub fn desired(target: &Target, rules: &[Rule], people: &[Person]) -> Desired {
    let realm = target.realm.as_str();
    let mut desired = Desired::default();
    let mut acl = BTreeMap::new();
    let mut grant = |path: &str, kind, ugid: &str, role: &str, propagate: bool| {
        let key = (path.to_string(), kind, ugid.to_string(), role.to_string());
        *acl.entry(key).or_insert(false) |= propagate;
    };
    if target.product == Product::Pve {
        for rule in rules {
            let groupid = group_id(&rule.group, realm);
            grant(
                &rule.path,
                UgidKind::Group,
                &groupid,
                &rule.role,
                rule.propagate,
            );
            desired.groups.entry(groupid).or_default();
        }
    }
    for person in people.iter().filter(|person| person.enabled) {
        let theirs: Vec<&Rule> = rules
            .iter()
            .filter(|rule| person.groups.contains(&rule.group))
            .collect();
        let Some(userid) = userid(&person.username, realm).filter(|_| !theirs.is_empty()) else {
            continue;
        };
        for rule in theirs {
            match target.product {
                Product::Pbs => grant(
                    &rule.path,
                    UgidKind::User,
                    &userid,
                    &rule.role,
                    rule.propagate,
                ),
                Product::Pve => {
                    let members = desired
                        .groups
                        .entry(group_id(&rule.group, realm))
                        .or_default();
                    members.insert(userid.clone());
                }
            }
        }
        desired.users.insert(userid, names(target.product, person));
    }
    desired.acl = acl
        .into_iter()
        .map(|((path, kind, ugid, role), propagate)| AclEntry {
            path,
            kind,
            ugid,
            role,
            propagate,
        })
        .collect();
    desired
}

/// A person's names and email, as far as the product accepts them: the given and family
/// names when Latchkey knows either, else the display name split at its first space.
fn names(product: Product, person: &Person) -> Names {
    let (first, last) = if person.given_name.is_some() || person.family_name.is_some() {
        (person.given_name.clone(), person.family_name.clone())
    } else {
        split_display_name(&person.display_name)
    };
    Names {
        firstname: first.and_then(|name| acceptable(product, name, Field::Name)),
        lastname: last.and_then(|name| acceptable(product, name, Field::Name)),
        email: person
            .email
            .clone()
            .and_then(|email| acceptable(product, email, Field::Email)),
    }
}

fn split_display_name(display_name: &str) -> (Option<String>, Option<String>) {
    let trimmed = display_name.trim();
    match trimmed.split_once(char::is_whitespace) {
        Some((first, rest)) => (Some(first.to_string()), Some(rest.trim().to_string())),
        None => (Some(trimmed.to_string()), None),
    }
}

enum Field {
    Name,
    Email,
}

/// A value the product stores as given, or `None`: PBS wants 2 to 64 characters on one line
/// for first name, last name and email; PVE allows 1024 for names and 254 for an email. Values
/// under 2 characters are left out on both, as they carry nothing.
fn acceptable(product: Product, value: String, field: Field) -> Option<String> {
    let value = value.trim().to_string();
    let max = match (product, field) {
        (Product::Pbs, _) => 64,
        (Product::Pve, Field::Name) => 1024,
        (Product::Pve, Field::Email) => 254,
    };
    let length = value.chars().count();
    let valid = (2..=max).contains(&length) && !value.chars().any(char::is_control);
    valid.then_some(value)
}

/// The ordered changes that take the server from `actual` to `desired`: the realm (when
/// managed), groups (PVE), users created, updated and enabled, memberships (PVE), ACL entries
/// added, ACL entries removed, then each leaver (a realm user no rule covers): its ACL entries
/// removed, then disabled or deleted. Nothing outside the realm is ever named, and a server
/// that already matches gets no change.
pub fn plan(target: &Target, desired: &Desired, actual: &Actual) -> Vec<Change> {
    let scope = Scope {
        realm: &target.realm,
        product: target.product,
    };
    let users: BTreeMap<&str, &ActualUser> = actual
        .users
        .iter()
        .filter(|user| scope.user(&user.userid))
        .map(|user| (user.userid.as_str(), user))
        .collect();
    let wanted: BTreeMap<&str, &Names> = desired
        .users
        .iter()
        .filter(|(userid, _)| scope.user(userid))
        .map(|(userid, names)| (userid.as_str(), names))
        .collect();
    let groups: BTreeMap<&str, &BTreeSet<String>> = desired
        .groups
        .iter()
        .filter(|(groupid, _)| scope.group(groupid))
        .map(|(groupid, members)| (groupid.as_str(), members))
        .collect();
    let leavers: Vec<&ActualUser> = users
        .values()
        .filter(|user| !wanted.contains_key(user.userid.as_str()))
        .copied()
        .collect();
    let held: Vec<&AclEntry> = actual
        .acl
        .iter()
        .filter(|entry| scope.entry(entry))
        .collect();
    let granted: Vec<&AclEntry> = desired
        .acl
        .iter()
        .filter(|entry| scope.entry(entry))
        .collect();

    let mut changes = Vec::new();
    if target.manage_realm {
        changes.extend(realm_change(
            &target.realm,
            desired.realm.as_ref(),
            actual.realm.as_ref(),
        ));
    }
    changes.extend(
        groups
            .keys()
            .filter(|groupid| !actual.groups.contains(**groupid))
            .map(|groupid| Change::CreateGroup {
                groupid: groupid.to_string(),
            }),
    );
    changes.extend(
        wanted
            .iter()
            .filter_map(|(userid, names)| user_change(userid, names, users.get(userid))),
    );
    if target.product == Product::Pve {
        let members: Vec<&str> = wanted
            .keys()
            .copied()
            .chain(
                leavers
                    .iter()
                    .filter(|_| target.leavers == Leavers::Disable)
                    .map(|user| user.userid.as_str()),
            )
            .collect();
        changes.extend(
            members
                .into_iter()
                .filter_map(|userid| membership_change(userid, users.get(userid), &groups)),
        );
    }
    changes.extend(
        granted
            .iter()
            .filter(|entry| !held.contains(entry))
            .map(|entry| Change::AddAcl((*entry).clone())),
    );
    let is_leaver = |ugid: &str| leavers.iter().any(|user| user.userid == ugid);
    changes.extend(
        held.iter()
            .filter(|entry| {
                let leaver = entry.kind == UgidKind::User && is_leaver(&entry.ugid);
                !leaver && !granted.iter().any(|want| want.key() == entry.key())
            })
            .map(|entry| Change::RemoveAcl((*entry).clone())),
    );
    for leaver in leavers {
        changes.extend(
            held.iter()
                .filter(|entry| entry.kind == UgidKind::User && entry.ugid == leaver.userid)
                .map(|entry| Change::RemoveAcl((*entry).clone())),
        );
        let userid = leaver.userid.clone();
        match target.leavers {
            Leavers::Disable if leaver.enabled => changes.push(Change::DisableUser { userid }),
            Leavers::Disable => {}
            Leavers::Delete => changes.push(Change::DeleteUser { userid }),
        }
    }
    changes
}

fn realm_change(
    realm: &str,
    wanted: Option<&RealmWanted>,
    actual: Option<&RealmSettings>,
) -> Option<Change> {
    let wanted = wanted?;
    let realm = realm.to_string();
    let client_key = wanted.client_key.clone();
    match actual {
        None => Some(Change::CreateRealm {
            realm,
            settings: wanted.settings.clone(),
            client_key,
        }),
        Some(actual) => {
            let settings = wanted.settings.missing_from(actual);
            (!settings.is_empty() || client_key.is_some()).then_some(Change::UpdateRealm {
                realm,
                settings,
                client_key,
            })
        }
    }
}

fn user_change(userid: &str, names: &Names, actual: Option<&&ActualUser>) -> Option<Change> {
    let Some(actual) = actual else {
        return Some(Change::CreateUser {
            userid: userid.to_string(),
            names: names.clone(),
        });
    };
    let edit = |want: &Option<String>, have: &Option<String>| match (want, have) {
        (want, have) if want == have => None,
        (Some(value), _) => Some(Edit::Set(value.clone())),
        (None, Some(_)) => Some(Edit::Clear),
        (None, None) => None,
    };
    let change = Change::UpdateUser {
        userid: userid.to_string(),
        firstname: edit(&names.firstname, &actual.names.firstname),
        lastname: edit(&names.lastname, &actual.names.lastname),
        email: edit(&names.email, &actual.names.email),
        enable: !actual.enabled,
    };
    let unchanged = Change::UpdateUser {
        userid: userid.to_string(),
        firstname: None,
        lastname: None,
        email: None,
        enable: false,
    };
    (change != unchanged).then_some(change)
}

/// PVE: the user's membership in the ruled realm groups, made equal to the rules; every other
/// group the user is in stays.
fn membership_change(
    userid: &str,
    actual: Option<&&ActualUser>,
    groups: &BTreeMap<&str, &BTreeSet<String>>,
) -> Option<Change> {
    let empty = BTreeSet::new();
    let current = actual.map_or(&empty, |user| &user.groups);
    let join: Vec<String> = groups
        .iter()
        .filter(|(groupid, members)| members.contains(userid) && !current.contains(**groupid))
        .map(|(groupid, _)| groupid.to_string())
        .collect();
    let leave: Vec<String> = current
        .iter()
        .filter(|groupid| {
            groups
                .get(groupid.as_str())
                .is_some_and(|members| !members.contains(userid))
        })
        .cloned()
        .collect();
    if join.is_empty() && leave.is_empty() {
        return None;
    }
    let groups = current
        .iter()
        .filter(|groupid| !leave.contains(groupid))
        .chain(&join)
        .cloned()
        .collect::<BTreeSet<String>>()
        .into_iter()
        .collect();
    Some(Change::SetUserGroups {
        userid: userid.to_string(),
        join,
        leave,
        groups,
    })
}
