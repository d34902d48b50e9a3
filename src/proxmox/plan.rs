//! What a Proxmox server should hold, and the ordered changes that bring it there. Pure: no
//! I/O. `api` reads the server's state into an [`Actual`] and applies each [`Change`].
//!
//! The plan only ever names the target's realm: users `<name>@<realm>`, (PVE) groups
//! `<group>-<realm>` and ACL entries on those. Everything else on the server is left alone.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Serialize, Serializer};

use super::target::{Leavers, Product, Rule, Target};
use crate::names::{ClientId, GroupName};

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
    pub groups: Vec<GroupName>,
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
    pub fn managed(product: Product, issuer: &str, client_id: &ClientId) -> RealmSettings {
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
pub fn group_id(group: &GroupName, realm: &str) -> String {
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
    let view = View::new(target, desired, actual);
    let mut changes = Vec::new();
    if target.manage_realm {
        let realm = realm_change(&target.realm, desired.realm.as_ref(), actual.realm.as_ref());
        changes.extend(realm);
    }
    changes.extend(view.new_groups(&actual.groups));
    changes.extend(view.user_changes());
    changes.extend(view.memberships());
    changes.extend(view.grants());
    changes.extend(view.revocations());
    changes.extend(view.departures());
    changes
}

/// The realm's part of both states: what the plan may touch.
struct View<'a> {
    target: &'a Target,
    /// Realm users on the server.
    users: BTreeMap<&'a str, &'a ActualUser>,
    /// Realm users wanted, with their names.
    wanted: BTreeMap<&'a str, &'a Names>,
    /// PVE: the ruled realm groups with their members.
    groups: BTreeMap<&'a str, &'a BTreeSet<String>>,
    /// Realm users on the server that no rule covers.
    leavers: Vec<&'a ActualUser>,
    /// Realm entries on the server.
    held: Vec<&'a AclEntry>,
    /// Realm entries wanted.
    granted: Vec<&'a AclEntry>,
}

impl<'a> View<'a> {
    fn new(target: &'a Target, desired: &'a Desired, actual: &'a Actual) -> View<'a> {
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
        let leavers = users
            .values()
            .filter(|user| !wanted.contains_key(user.userid.as_str()))
            .copied()
            .collect();
        View {
            target,
            groups: desired
                .groups
                .iter()
                .filter(|(groupid, _)| scope.group(groupid))
                .map(|(groupid, members)| (groupid.as_str(), members))
                .collect(),
            held: actual
                .acl
                .iter()
                .filter(|entry| scope.entry(entry))
                .collect(),
            granted: desired
                .acl
                .iter()
                .filter(|entry| scope.entry(entry))
                .collect(),
            users,
            wanted,
            leavers,
        }
    }

    /// PVE: the ruled groups the server lacks.
    fn new_groups(&self, existing: &BTreeSet<String>) -> Vec<Change> {
        let missing = self
            .groups
            .keys()
            .filter(|groupid| !existing.contains(**groupid));
        let groupid = |groupid: &&str| groupid.to_string();
        missing
            .map(|id| Change::CreateGroup {
                groupid: groupid(id),
            })
            .collect()
    }

    fn user_changes(&self) -> Vec<Change> {
        let changes = self.wanted.iter();
        changes
            .filter_map(|(userid, names)| user_change(userid, names, self.users.get(userid)))
            .collect()
    }

    /// PVE: memberships of the wanted users, and of the leavers that stay (disabled).
    fn memberships(&self) -> Vec<Change> {
        if self.target.product != Product::Pve {
            return Vec::new();
        }
        let staying = self
            .leavers
            .iter()
            .filter(|_| self.target.leavers == Leavers::Disable);
        let members = self
            .wanted
            .keys()
            .copied()
            .chain(staying.map(|user| user.userid.as_str()));
        members
            .filter_map(|userid| membership_change(userid, self.users.get(userid), &self.groups))
            .collect()
    }

    /// Entries wanted that the server lacks (or holds with another propagate flag).
    fn grants(&self) -> Vec<Change> {
        let missing = self
            .granted
            .iter()
            .filter(|entry| !self.held.contains(entry));
        missing
            .map(|entry| Change::AddAcl((*entry).clone()))
            .collect()
    }

    /// Entries held that no rule gives, except the leavers' (see `departures`).
    fn revocations(&self) -> Vec<Change> {
        let unwanted = self.held.iter().filter(|entry| {
            !self.belongs_to_leaver(entry)
                && !self.granted.iter().any(|want| want.key() == entry.key())
        });
        unwanted
            .map(|entry| Change::RemoveAcl((*entry).clone()))
            .collect()
    }

    fn belongs_to_leaver(&self, entry: &AclEntry) -> bool {
        entry.kind == UgidKind::User && self.leavers.iter().any(|user| user.userid == entry.ugid)
    }

    /// Each leaver's entries removed, then the leaver disabled (unless already) or deleted:
    /// PBS 3.x keeps a deleted user's entries, which a user made again would inherit.
    fn departures(&self) -> Vec<Change> {
        let mut changes = Vec::new();
        for leaver in &self.leavers {
            let theirs = self
                .held
                .iter()
                .filter(|entry| entry.kind == UgidKind::User && entry.ugid == leaver.userid);
            changes.extend(theirs.map(|entry| Change::RemoveAcl((*entry).clone())));
            let userid = leaver.userid.clone();
            match self.target.leavers {
                Leavers::Disable if leaver.enabled => changes.push(Change::DisableUser { userid }),
                Leavers::Disable => {}
                Leavers::Delete => changes.push(Change::DeleteUser { userid }),
            }
        }
        changes
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxmox::target::Trust;
    use proptest::prelude::*;

    const REALM: &str = "latchkey";

    fn target(product: Product) -> Target {
        Target {
            client_id: ClientId::parse("pbs").unwrap(),
            product,
            api_url: "https://pbs.example.com:8007".to_string(),
            token_id: "root@pam!latchkey".to_string(),
            token_secret: "token-secret".to_string(),
            trust: Trust::SystemRoots,
            realm: REALM.to_string(),
            leavers: Leavers::Disable,
            manage_realm: false,
        }
    }

    fn rule(group: &str, role: &str, path: &str) -> Rule {
        Rule {
            group: GroupName::parse(group).unwrap(),
            role: role.to_string(),
            path: path.to_string(),
            propagate: true,
        }
    }

    fn person(username: &str, groups: &[&str]) -> Person {
        Person {
            username: username.to_string(),
            display_name: format!("{} Example", username.to_uppercase()),
            given_name: None,
            family_name: None,
            email: Some(format!("{username}@example.com")),
            enabled: true,
            groups: groups
                .iter()
                .map(|group| GroupName::parse(group).unwrap())
                .collect(),
        }
    }

    fn user_entry(ugid: &str, role: &str, path: &str) -> AclEntry {
        AclEntry {
            path: path.to_string(),
            kind: UgidKind::User,
            ugid: ugid.to_string(),
            role: role.to_string(),
            propagate: true,
        }
    }

    fn group_entry(ugid: &str, role: &str, path: &str) -> AclEntry {
        AclEntry {
            kind: UgidKind::Group,
            ..user_entry(ugid, role, path)
        }
    }

    fn server_user(userid: &str, enabled: bool, groups: &[&str]) -> ActualUser {
        ActualUser {
            userid: userid.to_string(),
            enabled,
            names: Names::default(),
            groups: groups.iter().map(|group| group.to_string()).collect(),
        }
    }

    fn shown(changes: &[Change]) -> Vec<String> {
        changes.iter().map(Change::to_string).collect()
    }

    /// The server's behaviour for each change, as the sources describe it (PVE deletes a
    /// user's ACL entries and memberships with the user; PBS 3.x leaves the entries).
    fn simulate(product: Product, actual: &mut Actual, change: &Change) {
        let user = |actual: &mut Actual, userid: &str| -> usize {
            actual
                .users
                .iter()
                .position(|user| user.userid == userid)
                .expect("the user exists")
        };
        match change {
            Change::CreateRealm { settings, .. } => actual.realm = Some(settings.clone()),
            Change::UpdateRealm { settings, .. } => {
                let realm = actual.realm.as_mut().expect("the realm exists");
                let update = settings.clone();
                realm.issuer_url = update.issuer_url.or(realm.issuer_url.take());
                realm.client_id = update.client_id.or(realm.client_id.take());
                realm.scopes = update.scopes.or(realm.scopes.take());
                realm.autocreate = update.autocreate.or(realm.autocreate);
                realm.groups_claim = update.groups_claim.or(realm.groups_claim.take());
                realm.groups_autocreate = update.groups_autocreate.or(realm.groups_autocreate);
                realm.groups_overwrite = update.groups_overwrite.or(realm.groups_overwrite);
            }
            Change::CreateGroup { groupid } => assert!(actual.groups.insert(groupid.clone())),
            Change::CreateUser { userid, names } => {
                assert!(actual.users.iter().all(|user| &user.userid != userid));
                actual.users.push(ActualUser {
                    userid: userid.clone(),
                    enabled: true,
                    names: names.clone(),
                    groups: BTreeSet::new(),
                });
            }
            Change::UpdateUser {
                userid,
                firstname,
                lastname,
                email,
                enable,
            } => {
                let index = user(actual, userid);
                let names = &mut actual.users[index].names;
                for (field, edit) in [
                    (&mut names.firstname, firstname),
                    (&mut names.lastname, lastname),
                    (&mut names.email, email),
                ] {
                    match edit {
                        Some(Edit::Set(value)) => *field = Some(value.clone()),
                        Some(Edit::Clear) => *field = None,
                        None => {}
                    }
                }
                actual.users[index].enabled |= enable;
            }
            Change::SetUserGroups { userid, groups, .. } => {
                assert!(
                    groups.iter().all(|group| actual.groups.contains(group)),
                    "no such group"
                );
                let index = user(actual, userid);
                actual.users[index].groups = groups.iter().cloned().collect();
            }
            Change::AddAcl(entry) => {
                match entry.kind {
                    UgidKind::User => drop(user(actual, &entry.ugid)),
                    UgidKind::Group => {
                        assert!(actual.groups.contains(&entry.ugid), "no such group")
                    }
                    UgidKind::Token => panic!("tokens are never granted"),
                }
                actual.acl.retain(|held| held.key() != entry.key());
                actual.acl.push(entry.clone());
            }
            Change::RemoveAcl(entry) => actual.acl.retain(|held| held.key() != entry.key()),
            Change::DisableUser { userid } => {
                let index = user(actual, userid);
                actual.users[index].enabled = false;
            }
            Change::DeleteUser { userid } => {
                let index = user(actual, userid);
                actual.users.remove(index);
                if product == Product::Pve {
                    actual
                        .acl
                        .retain(|entry| !(entry.kind == UgidKind::User && &entry.ugid == userid));
                }
            }
        }
    }

    #[test]
    fn pbs_desired_gives_covered_people_one_entry_per_rule() {
        let rules = [
            rule("admins", "Admin", "/"),
            rule("backup", "DatastoreBackup", "/datastore/main"),
        ];
        let mut dave = person("dave", &["admins"]);
        dave.enabled = false;
        let people = [
            person("ada", &["admins", "backup"]),
            person("bob", &["backup"]),
            person("carol", &["other"]),
            dave,
        ];
        let desired = desired(&target(Product::Pbs), &rules, &people);
        assert_eq!(
            desired.users.keys().collect::<Vec<_>>(),
            ["ada@latchkey", "bob@latchkey"]
        );
        assert_eq!(
            desired.acl,
            [
                user_entry("ada@latchkey", "Admin", "/"),
                user_entry("ada@latchkey", "DatastoreBackup", "/datastore/main"),
                user_entry("bob@latchkey", "DatastoreBackup", "/datastore/main"),
            ]
        );
        assert!(desired.groups.is_empty());
        assert_eq!(desired.realm, None);
    }

    #[test]
    fn pve_desired_puts_members_in_realm_groups_that_carry_the_entries() {
        let rules = [
            rule("admins", "Administrator", "/"),
            rule("ops", "PVEVMUser", "/vms/100"),
        ];
        let people = [person("ada", &["admins"]), person("bob", &["misc"])];
        let desired = desired(&target(Product::Pve), &rules, &people);
        assert_eq!(desired.users.keys().collect::<Vec<_>>(), ["ada@latchkey"]);
        assert_eq!(
            desired.groups["admins-latchkey"],
            BTreeSet::from(["ada@latchkey".to_string()])
        );
        assert!(
            desired.groups["ops-latchkey"].is_empty(),
            "a ruled group exists even without members"
        );
        assert_eq!(
            desired.acl,
            [
                group_entry("admins-latchkey", "Administrator", "/"),
                group_entry("ops-latchkey", "PVEVMUser", "/vms/100")
            ]
        );
    }

    #[test]
    fn the_same_entry_from_two_rules_is_one_entry_that_propagates_if_either_does() {
        let mut narrow = rule("ops", "Admin", "/");
        narrow.propagate = false;
        let rules = [narrow, rule("admins", "Admin", "/")];
        let desired = desired(
            &target(Product::Pbs),
            &rules,
            &[person("ada", &["admins", "ops"])],
        );
        assert_eq!(desired.acl, [user_entry("ada@latchkey", "Admin", "/")]);
    }

    #[test]
    fn names_come_from_given_and_family_names_else_the_display_name() {
        let rules = [rule("admins", "Admin", "/")];
        let mut ada = person("ada", &["admins"]);
        ada.given_name = Some("Ada".to_string());
        ada.display_name = "Countess of Lovelace".to_string();
        let mut bob = person("bob", &["admins"]);
        bob.display_name = "  Bob van der Berg ".to_string();
        let mut cy = person("cy", &["admins"]);
        cy.display_name = "Cy".to_string();
        let desired = desired(&target(Product::Pbs), &rules, &[ada, bob, cy]);
        let names = |userid: &str| desired.users[userid].clone();
        assert_eq!(names("ada@latchkey").firstname.as_deref(), Some("Ada"));
        assert_eq!(
            names("ada@latchkey").lastname,
            None,
            "a known given name is not mixed with the display name"
        );
        assert_eq!(names("bob@latchkey").firstname.as_deref(), Some("Bob"));
        assert_eq!(
            names("bob@latchkey").lastname.as_deref(),
            Some("van der Berg")
        );
        assert_eq!(names("cy@latchkey").firstname.as_deref(), Some("Cy"));
        assert_eq!(
            names("cy@latchkey").email.as_deref(),
            Some("cy@example.com")
        );
    }

    #[test]
    fn values_pbs_would_refuse_are_left_out() {
        let rules = [rule("admins", "Admin", "/")];
        let mut ada = person("ada", &["admins"]);
        ada.given_name = Some("A".to_string());
        ada.family_name = Some("L".repeat(65));
        ada.email = Some(format!("{}@example.com", "a".repeat(60)));
        let mut bob = person("bob", &["admins"]);
        bob.given_name = Some("Bo\nb".to_string());
        bob.family_name = Some("Li".to_string());
        bob.email = Some("b".to_string());
        let pbs = desired(&target(Product::Pbs), &rules, &[ada.clone(), bob]);
        assert_eq!(pbs.users["ada@latchkey"], Names::default());
        assert_eq!(
            pbs.users["bob@latchkey"],
            Names {
                firstname: None,
                lastname: Some("Li".to_string()),
                email: None
            }
        );
        let pve = desired(&target(Product::Pve), &rules, &[ada]);
        assert_eq!(
            pve.users["ada@latchkey"].lastname.as_deref().map(str::len),
            Some(65)
        );
        assert!(pve.users["ada@latchkey"].email.is_some());
        assert_eq!(pve.users["ada@latchkey"].firstname, None);
    }

    #[test]
    fn people_whose_userid_proxmox_would_refuse_are_left_out() {
        let long = "a".repeat(64 - "@latchkey".len() + 1);
        let fits = "b".repeat(64 - "@latchkey".len());
        let rules = [rule("admins", "Admin", "/")];
        let desired = desired(
            &target(Product::Pbs),
            &rules,
            &[person(&long, &["admins"]), person(&fits, &["admins"])],
        );
        assert_eq!(
            desired.users.keys().collect::<Vec<_>>(),
            [&format!("{fits}@latchkey")]
        );
    }

    #[test]
    fn a_pbs_plan_on_an_empty_server_creates_users_before_their_entries() {
        let target = target(Product::Pbs);
        let rules = [rule("backup", "DatastoreBackup", "/datastore/main")];
        let desired = desired(&target, &rules, &[person("ada", &["backup"])]);
        let changes = plan(&target, &desired, &Actual::default());
        assert_eq!(
            shown(&changes),
            [
                "create user ada@latchkey",
                "grant DatastoreBackup on /datastore/main to ada@latchkey"
            ]
        );
        assert_eq!(
            changes[0],
            Change::CreateUser {
                userid: "ada@latchkey".to_string(),
                names: Names {
                    firstname: Some("ADA".to_string()),
                    lastname: Some("Example".to_string()),
                    email: Some("ada@example.com".to_string()),
                },
            }
        );
    }

    #[test]
    fn a_pve_plan_creates_groups_users_memberships_then_entries() {
        let target = target(Product::Pve);
        let rules = [rule("admins", "Administrator", "/")];
        let desired = desired(&target, &rules, &[person("ada", &["admins"])]);
        let changes = plan(&target, &desired, &Actual::default());
        assert_eq!(
            shown(&changes),
            [
                "create group admins-latchkey",
                "create user ada@latchkey",
                "add ada@latchkey to group admins-latchkey",
                "grant Administrator on / to group admins-latchkey",
            ]
        );
    }

    #[test]
    fn a_server_that_matches_gets_no_change() {
        for product in [Product::Pbs, Product::Pve] {
            let target = target(product);
            let rules = [
                rule("admins", "Admin", "/"),
                rule("backup", "DatastoreBackup", "/datastore/main"),
            ];
            let people = [
                person("ada", &["admins", "backup"]),
                person("bob", &["backup"]),
            ];
            let desired = desired(&target, &rules, &people);
            let mut actual = Actual::default();
            for change in plan(&target, &desired, &actual) {
                simulate(product, &mut actual, &change);
            }
            assert_eq!(plan(&target, &desired, &actual), [], "{product:?}");
        }
    }

    #[test]
    fn changed_names_and_a_disabled_user_are_one_update() {
        let target = target(Product::Pbs);
        let desired = desired(
            &target,
            &[rule("admins", "Admin", "/")],
            &[person("ada", &["admins"])],
        );
        let mut ada = server_user("ada@latchkey", false, &[]);
        ada.names = Names {
            firstname: Some("ADA".to_string()),
            lastname: Some("Lovelace".to_string()),
            email: None,
        };
        let actual = Actual {
            users: vec![ada],
            acl: vec![user_entry("ada@latchkey", "Admin", "/")],
            ..Actual::default()
        };
        let mut without_email = desired.clone();
        if let Some(names) = without_email.users.get_mut("ada@latchkey") {
            names.email = None;
        }
        assert_eq!(
            shown(&plan(&target, &desired, &actual)),
            [r#"update user ada@latchkey: lastname "Example", email "ada@example.com", enable"#]
        );
        let mut with_email = actual.clone();
        with_email.users[0].names.email = Some("old@example.com".to_string());
        with_email.users[0].enabled = true;
        assert_eq!(
            shown(&plan(&target, &without_email, &with_email)),
            [r#"update user ada@latchkey: lastname "Example", remove email"#]
        );
    }

    #[test]
    fn a_changed_propagate_flag_is_granted_again_not_revoked() {
        let target = target(Product::Pbs);
        let desired = desired(
            &target,
            &[rule("admins", "Admin", "/")],
            &[person("ada", &["admins"])],
        );
        let mut held = user_entry("ada@latchkey", "Admin", "/");
        held.propagate = false;
        let mut ada = server_user("ada@latchkey", true, &[]);
        ada.names = desired.users["ada@latchkey"].clone();
        let actual = Actual {
            users: vec![ada],
            acl: vec![held],
            ..Actual::default()
        };
        assert_eq!(
            shown(&plan(&target, &desired, &actual)),
            ["grant Admin on / to ada@latchkey"]
        );
    }

    #[test]
    fn leavers_lose_their_entries_before_they_are_disabled_or_deleted() {
        let mut target = target(Product::Pbs);
        let desired = desired(&target, &[rule("admins", "Admin", "/")], &[]);
        let actual = Actual {
            users: vec![
                server_user("ada@latchkey", true, &[]),
                server_user("bob@latchkey", false, &[]),
                server_user("cy@latchkey", false, &[]),
            ],
            acl: vec![
                user_entry("ada@latchkey", "Admin", "/"),
                user_entry("bob@latchkey", "Audit", "/"),
            ],
            ..Actual::default()
        };
        assert_eq!(
            shown(&plan(&target, &desired, &actual)),
            [
                "revoke Admin on / from ada@latchkey",
                "disable user ada@latchkey",
                "revoke Audit on / from bob@latchkey",
            ],
            "an already disabled leaver without entries needs nothing"
        );
        target.leavers = Leavers::Delete;
        assert_eq!(
            shown(&plan(&target, &desired, &actual)),
            [
                "revoke Admin on / from ada@latchkey",
                "delete user ada@latchkey",
                "revoke Audit on / from bob@latchkey",
                "delete user bob@latchkey",
                "delete user cy@latchkey",
            ]
        );
    }

    #[test]
    fn entries_no_rule_gives_are_revoked_after_the_grants() {
        let target = target(Product::Pbs);
        let desired = desired(
            &target,
            &[rule("backup", "DatastoreBackup", "/datastore/b")],
            &[person("ada", &["backup"])],
        );
        let mut ada = server_user("ada@latchkey", true, &[]);
        ada.names = desired.users["ada@latchkey"].clone();
        let actual = Actual {
            users: vec![ada],
            // Left behind by a PBS user deleted earlier: it no longer exists.
            acl: vec![
                user_entry("ada@latchkey", "Admin", "/"),
                user_entry("gone@latchkey", "Admin", "/"),
            ],
            ..Actual::default()
        };
        assert_eq!(
            shown(&plan(&target, &desired, &actual)),
            [
                "grant DatastoreBackup on /datastore/b to ada@latchkey",
                "revoke Admin on / from ada@latchkey",
                "revoke Admin on / from gone@latchkey",
            ]
        );
    }

    #[test]
    fn pve_memberships_keep_every_group_outside_the_ruled_ones() {
        let target = target(Product::Pve);
        let rules = [
            rule("admins", "Administrator", "/"),
            rule("ops", "PVEAuditor", "/"),
        ];
        let desired = desired(&target, &rules, &[person("ada", &["admins"])]);
        let mut ada = server_user(
            "ada@latchkey",
            true,
            &["ops-latchkey", "old-latchkey", "staff"],
        );
        ada.names = desired.users["ada@latchkey"].clone();
        let actual = Actual {
            users: vec![
                ada,
                server_user("bob@latchkey", true, &["admins-latchkey", "staff"]),
            ],
            groups: ["admins-latchkey", "ops-latchkey", "old-latchkey", "staff"]
                .map(String::from)
                .into(),
            acl: desired.acl.clone(),
            realm: None,
        };
        let changes = plan(&target, &desired, &actual);
        assert_eq!(
            shown(&changes),
            [
                "add ada@latchkey to group admins-latchkey; remove ada@latchkey from group ops-latchkey",
                "remove bob@latchkey from group admins-latchkey",
                "disable user bob@latchkey",
            ]
        );
        let Change::SetUserGroups { groups, .. } = &changes[0] else {
            panic!("{changes:?}")
        };
        assert_eq!(groups, &["admins-latchkey", "old-latchkey", "staff"]);
        let Change::SetUserGroups { groups, .. } = &changes[1] else {
            panic!("{changes:?}")
        };
        assert_eq!(groups, &["staff"]);
    }

    #[test]
    fn pve_entries_on_realm_users_and_unruled_realm_groups_are_revoked() {
        let target = target(Product::Pve);
        let desired = desired(&target, &[rule("admins", "Administrator", "/")], &[]);
        let actual = Actual {
            groups: ["admins-latchkey", "old-latchkey"].map(String::from).into(),
            acl: vec![
                group_entry("admins-latchkey", "Administrator", "/"),
                group_entry("old-latchkey", "PVEAuditor", "/"),
                user_entry("ghost@latchkey", "PVEAuditor", "/"),
                group_entry("admins", "Administrator", "/"),
            ],
            ..Actual::default()
        };
        assert_eq!(
            shown(&plan(&target, &desired, &actual)),
            [
                "revoke PVEAuditor on / from group old-latchkey",
                "revoke PVEAuditor on / from ghost@latchkey"
            ]
        );
    }

    #[test]
    fn nothing_outside_the_realm_is_named() {
        for product in [Product::Pbs, Product::Pve] {
            let target = target(product);
            let desired = desired(&target, &[rule("admins", "Admin", "/")], &[]);
            let actual = Actual {
                users: vec![
                    server_user("root@pam", true, &["admins"]),
                    server_user("ada@latchkey2", true, &[]),
                    server_user("ada@pbs", true, &[]),
                ],
                groups: ["admins", "admins-latchkey2", "latchkey"]
                    .map(String::from)
                    .into(),
                acl: vec![
                    user_entry("root@pam", "Admin", "/"),
                    user_entry("ada@latchkey!token", "Admin", "/"),
                    AclEntry {
                        kind: UgidKind::Token,
                        ..user_entry("ada@latchkey!t", "Admin", "/")
                    },
                    group_entry("admins", "Admin", "/"),
                    group_entry("admins-latchkey2", "Admin", "/"),
                    group_entry("latchkey", "Admin", "/"),
                ],
                realm: None,
            };
            let changes = plan(&target, &desired, &actual);
            let expected: Vec<&str> = match product {
                Product::Pbs => vec![],
                Product::Pve => vec![
                    "create group admins-latchkey",
                    "grant Admin on / to group admins-latchkey",
                ],
            };
            assert_eq!(shown(&changes), expected, "{product:?}");
        }
    }

    #[test]
    fn realm_membership_is_an_exact_suffix() {
        assert!(is_realm_user("ada@latchkey", REALM));
        assert!(!is_realm_user("ada@latchkey!token", REALM));
        assert!(!is_realm_user("ada@latchkey2", REALM));
        assert!(!is_realm_user("@latchkey", REALM));
        assert!(!is_realm_user("latchkey", REALM));
        assert!(is_realm_group("admins-latchkey", REALM));
        assert!(!is_realm_group("-latchkey", REALM));
        assert!(!is_realm_group("latchkey", REALM));
        assert!(!is_realm_group("admins_latchkey", REALM));
        assert!(!is_realm_group("admins-latchkey2", REALM));
    }

    fn managed(product: Product, secret: Option<&str>) -> (Target, Desired) {
        let mut target = target(product);
        target.manage_realm = true;
        let desired = Desired {
            realm: desired_realm(&target, "https://id.example.com", secret),
            ..Desired::default()
        };
        (target, desired)
    }

    #[test]
    fn a_managed_realm_is_created_first_with_its_secret_never_shown() {
        let (target, desired) = managed(Product::Pve, Some("s3cret-value"));
        let changes = plan(&target, &desired, &Actual::default());
        assert_eq!(
            shown(&changes),
            [concat!(
                r#"create OpenID realm latchkey (issuer-url "https://id.example.com", client-id "pbs", "#,
                r#"scopes "email profile groups", autocreate off, username-claim "username", "#,
                r#"groups-claim "groups", groups-autocreate off, groups-overwrite off, (new client secret))"#
            )]
        );
        let json = serde_json::to_string(&changes).unwrap();
        assert!(!json.contains("s3cret"), "{json}");
        assert!(
            json.contains(r#""client_key":"(new client secret)""#),
            "{json}"
        );
        assert!(!format!("{changes:?}").contains("s3cret"));
        let Change::CreateRealm {
            client_key: Some(key),
            ..
        } = &changes[0]
        else {
            panic!()
        };
        assert_eq!(key.expose(), "s3cret-value");
    }

    #[test]
    fn a_pbs_realm_gets_no_groups_claim_options() {
        let (target, desired) = managed(Product::Pbs, None);
        let settings = &desired.realm.as_ref().unwrap().settings;
        assert_eq!(settings.groups_claim, None);
        assert_eq!(settings.groups_overwrite, None);
        let changes = plan(&target, &desired, &Actual::default());
        assert!(matches!(
            &changes[..],
            [Change::CreateRealm {
                client_key: None,
                ..
            }]
        ));
    }

    #[test]
    fn a_realm_is_updated_only_where_it_differs() {
        let (target, desired) = managed(Product::Pbs, None);
        let mut actual = Actual {
            realm: Some(RealmSettings {
                issuer_url: Some("https://old.example.com".to_string()),
                client_id: Some("pbs".to_string()),
                scopes: Some("groups,profile email".to_string()),
                autocreate: None,
                username_claim: Some("username".to_string()),
                ..RealmSettings::default()
            }),
            ..Actual::default()
        };
        assert_eq!(
            shown(&plan(&target, &desired, &actual)),
            [r#"update OpenID realm latchkey: issuer-url "https://id.example.com""#]
        );
        actual.realm.as_mut().unwrap().issuer_url = Some("https://id.example.com".to_string());
        assert_eq!(plan(&target, &desired, &actual), []);
        actual.realm.as_mut().unwrap().scopes = None;
        actual.realm.as_mut().unwrap().autocreate = Some(true);
        assert_eq!(
            shown(&plan(&target, &desired, &actual)),
            [r#"update OpenID realm latchkey: scopes "email profile groups", autocreate off"#]
        );
        let (target, with_secret) = managed(Product::Pbs, Some("new"));
        actual.realm.as_mut().unwrap().scopes = Some("email profile groups".to_string());
        actual.realm.as_mut().unwrap().autocreate = None;
        assert_eq!(
            shown(&plan(&target, &with_secret, &actual)),
            ["update OpenID realm latchkey: (new client secret)"]
        );
    }

    #[test]
    fn an_unmanaged_realm_is_never_planned() {
        let (mut target, desired) = managed(Product::Pve, Some("x"));
        target.manage_realm = false;
        assert_eq!(plan(&target, &desired, &Actual::default()), []);
        assert_eq!(
            desired_realm(&target, "https://id.example.com", Some("x")),
            None
        );
    }

    #[test]
    fn changes_read_as_one_line_and_serialize_with_their_kind() {
        let mut narrow = user_entry("ada@latchkey", "DatastoreReader", "/datastore/main");
        narrow.propagate = false;
        assert_eq!(
            Change::AddAcl(narrow.clone()).to_string(),
            "grant DatastoreReader on /datastore/main to ada@latchkey (not propagated)"
        );
        assert_eq!(
            serde_json::to_value(Change::AddAcl(narrow)).unwrap(),
            serde_json::json!({
                "change": "add_acl", "path": "/datastore/main", "kind": "user",
                "ugid": "ada@latchkey", "role": "DatastoreReader", "propagate": false
            })
        );
        let update = Change::UpdateUser {
            userid: "ada@latchkey".to_string(),
            firstname: Some(Edit::Set("Ada".to_string())),
            lastname: None,
            email: Some(Edit::Clear),
            enable: false,
        };
        assert_eq!(
            serde_json::to_value(&update).unwrap(),
            serde_json::json!({"change": "update_user", "userid": "ada@latchkey", "firstname": {"set": "Ada"}, "email": "clear"})
        );
        let groups = Change::SetUserGroups {
            userid: "ada@latchkey".to_string(),
            join: vec!["a-latchkey".to_string()],
            leave: vec![],
            groups: vec!["a-latchkey".to_string(), "staff".to_string()],
        };
        assert_eq!(
            serde_json::to_value(&groups).unwrap(),
            serde_json::json!({"change": "set_user_groups", "userid": "ada@latchkey", "join": ["a-latchkey"]})
        );
        assert_eq!(
            Change::DeleteUser {
                userid: "ada@latchkey".to_string()
            }
            .to_string(),
            "delete user ada@latchkey"
        );
    }

    // ---- properties over random servers --------------------------------------------------

    const NAMES: [&str; 4] = ["ada", "bob", "cy", "dee"];
    const GROUPS: [&str; 3] = ["admins", "ops", "backup"];

    fn any_userid() -> impl Strategy<Value = String> {
        let realms = prop::sample::select(vec!["latchkey", "pam", "pbs", "latchkey2", "Latchkey"]);
        (prop::sample::select(NAMES.to_vec()), realms, any::<bool>()).prop_map(
            |(name, realm, token)| format!("{name}@{realm}{}", if token { "!tok" } else { "" }),
        )
    }

    fn any_groupid() -> impl Strategy<Value = String> {
        let suffixes =
            prop::sample::select(vec!["-latchkey", "-pve", "", "-latchkey2", "_latchkey"]);
        (prop::sample::select(GROUPS.to_vec()), suffixes)
            .prop_map(|(group, suffix)| format!("{group}{suffix}"))
    }

    fn any_name() -> impl Strategy<Value = Option<String>> {
        prop::option::of(
            prop::sample::select(vec!["A", "Ada", "Lovelace", "ada@example.com", ""])
                .prop_map(String::from),
        )
    }

    fn any_names() -> impl Strategy<Value = Names> {
        (any_name(), any_name(), any_name()).prop_map(|(firstname, lastname, email)| Names {
            firstname,
            lastname,
            email,
        })
    }

    fn any_entry() -> impl Strategy<Value = AclEntry> {
        let paths = prop::sample::select(vec!["/", "/datastore/main", "/vms/100"]);
        let roles = prop::sample::select(vec!["Admin", "Audit", "DatastoreBackup"]);
        let whom = prop_oneof![
            any_userid().prop_map(|ugid| {
                let kind = if ugid.contains('!') {
                    UgidKind::Token
                } else {
                    UgidKind::User
                };
                (kind, ugid)
            }),
            any_groupid().prop_map(|ugid| (UgidKind::Group, ugid)),
            // PBS lists tokens as users.
            any_userid().prop_map(|ugid| (UgidKind::User, ugid)),
        ];
        (paths, roles, whom, any::<bool>()).prop_map(|(path, role, (kind, ugid), propagate)| {
            AclEntry {
                path: path.to_string(),
                kind,
                ugid,
                role: role.to_string(),
                propagate,
            }
        })
    }

    fn any_actual() -> impl Strategy<Value = Actual> {
        let user = (
            any::<bool>(),
            any_names(),
            prop::collection::btree_set(any_groupid(), 0..4),
        );
        let users = prop::collection::btree_map(
            any_userid().prop_filter("users", |id| !id.contains('!')),
            user,
            0..8,
        );
        let acl = prop::collection::vec(any_entry(), 0..12);
        let groups = prop::collection::btree_set(any_groupid(), 0..8);
        (users, acl, groups).prop_map(|(users, acl, groups)| {
            let mut unique: BTreeMap<(String, UgidKind, String, String), AclEntry> =
                BTreeMap::new();
            for entry in acl {
                let key = (
                    entry.path.clone(),
                    entry.kind,
                    entry.ugid.clone(),
                    entry.role.clone(),
                );
                unique.insert(key, entry);
            }
            let users: Vec<ActualUser> = users
                .into_iter()
                .map(|(userid, (enabled, names, member_of))| ActualUser {
                    userid,
                    enabled,
                    names: Names {
                        firstname: names.firstname.filter(|name| !name.is_empty()),
                        lastname: names.lastname.filter(|name| !name.is_empty()),
                        email: names.email.filter(|name| !name.is_empty()),
                    },
                    groups: member_of,
                })
                .collect();
            // Every group a user is in exists.
            let groups = groups
                .into_iter()
                .chain(users.iter().flat_map(|user| user.groups.clone()))
                .collect();
            Actual {
                users,
                groups,
                acl: unique.into_values().collect(),
                realm: None,
            }
        })
    }

    fn any_people() -> impl Strategy<Value = Vec<Person>> {
        let one = (
            prop::sample::select(vec!["ada", "bob", "cy", "dee", "eve"]),
            any::<bool>(),
            prop::sample::subsequence(GROUPS.to_vec(), 0..=3),
            any_name(),
        );
        prop::collection::vec(one, 0..6).prop_map(|people| {
            let mut seen = BTreeSet::new();
            people
                .into_iter()
                .filter(|(username, ..)| seen.insert(*username))
                .map(|(username, enabled, groups, given)| Person {
                    given_name: given,
                    enabled,
                    ..person(username, &groups)
                })
                .collect()
        })
    }

    fn any_rules() -> impl Strategy<Value = Vec<Rule>> {
        let one = (
            prop::sample::select(GROUPS.to_vec()),
            prop::sample::select(vec!["Admin", "Audit", "DatastoreBackup"]),
            prop::sample::select(vec!["/", "/datastore/main"]),
            any::<bool>(),
        );
        prop::collection::vec(one, 0..4).prop_map(|rules| {
            rules
                .into_iter()
                .map(|(group, role, path, propagate)| Rule {
                    propagate,
                    ..rule(group, role, path)
                })
                .collect()
        })
    }

    fn any_target() -> impl Strategy<Value = Target> {
        let products = prop::sample::select(vec![Product::Pbs, Product::Pve]);
        let leavers = prop::sample::select(vec![Leavers::Disable, Leavers::Delete]);
        (products, leavers).prop_map(|(product, leavers)| Target {
            leavers,
            ..target(product)
        })
    }

    /// The realm, spelled out apart from the code under test.
    fn inside_user(userid: &str) -> bool {
        userid.len() > "@latchkey".len() && userid.ends_with("@latchkey") && !userid.contains('!')
    }

    fn inside_group(product: Product, groupid: &str) -> bool {
        product == Product::Pve
            && groupid.len() > "-latchkey".len()
            && groupid.ends_with("-latchkey")
    }

    fn inside_entry(product: Product, entry: &AclEntry) -> bool {
        match entry.kind {
            UgidKind::User => inside_user(&entry.ugid),
            UgidKind::Group => inside_group(product, &entry.ugid),
            UgidKind::Token => false,
        }
    }

    /// Every user, group and entry a change names, with whether it is in the realm.
    fn named(target: &Target, change: &Change) -> Vec<(String, bool)> {
        let user = |userid: &String| (userid.clone(), inside_user(userid));
        let group = |groupid: &String| (groupid.clone(), inside_group(target.product, groupid));
        match change {
            Change::CreateRealm { realm, .. } | Change::UpdateRealm { realm, .. } => {
                vec![(realm.clone(), realm == REALM)]
            }
            Change::CreateGroup { groupid } => vec![group(groupid)],
            Change::CreateUser { userid, .. }
            | Change::UpdateUser { userid, .. }
            | Change::DisableUser { userid }
            | Change::DeleteUser { userid } => vec![user(userid)],
            Change::SetUserGroups {
                userid,
                join,
                leave,
                ..
            } => std::iter::once(user(userid))
                .chain(join.iter().chain(leave).map(group))
                .collect(),
            Change::AddAcl(entry) | Change::RemoveAcl(entry) => {
                vec![(entry.ugid.clone(), inside_entry(target.product, entry))]
            }
        }
    }

    /// The part of a server outside the realm, and realm users' memberships outside it.
    #[derive(Debug, PartialEq)]
    struct Foreign {
        users: Vec<ActualUser>,
        groups: BTreeSet<String>,
        acl: BTreeSet<AclEntry>,
        memberships: BTreeMap<String, BTreeSet<String>>,
    }

    fn foreign(target: &Target, actual: &Actual) -> Foreign {
        let product = target.product;
        let outside = |user: &ActualUser| -> BTreeSet<String> {
            let groups = user.groups.iter();
            groups
                .filter(|group| !inside_group(product, group))
                .cloned()
                .collect()
        };
        let (realm_users, users): (Vec<&ActualUser>, Vec<&ActualUser>) = actual
            .users
            .iter()
            .partition(|user| inside_user(&user.userid));
        Foreign {
            users: users.into_iter().cloned().collect(),
            groups: actual
                .groups
                .iter()
                .filter(|group| !inside_group(product, group))
                .cloned()
                .collect(),
            acl: actual
                .acl
                .iter()
                .filter(|entry| !inside_entry(product, entry))
                .cloned()
                .collect(),
            memberships: realm_users
                .into_iter()
                .map(|user| (user.userid.clone(), outside(user)))
                .collect(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn no_change_names_anything_outside_the_realm(
            target in any_target(), actual in any_actual(), people in any_people(), rules in any_rules(),
        ) {
            let desired = desired(&target, &rules, &people);
            for change in plan(&target, &desired, &actual) {
                for (name, inside) in named(&target, &change) {
                    prop_assert!(inside, "{change} names {name}, outside the realm");
                }
            }
        }

        #[test]
        fn applying_the_plan_converges_and_keeps_everything_outside_the_realm(
            target in any_target(), actual in any_actual(), people in any_people(), rules in any_rules(),
        ) {
            let desired = desired(&target, &rules, &people);
            let mut after = actual.clone();
            for change in plan(&target, &desired, &actual) {
                simulate(target.product, &mut after, &change);
            }
            prop_assert_eq!(plan(&target, &desired, &after), vec![]);
            let before = foreign(&target, &actual);
            let after = foreign(&target, &after);
            prop_assert_eq!(&before.users, &after.users);
            prop_assert_eq!(&before.groups, &after.groups);
            prop_assert_eq!(&before.acl, &after.acl);
            // A realm user keeps every membership outside the realm (unless deleted).
            for (userid, outside) in &after.memberships {
                prop_assert_eq!(before.memberships.get(userid).cloned().unwrap_or_default(), outside.clone());
            }
        }

        #[test]
        fn leavers_end_disabled_or_deleted_without_entries(
            target in any_target(), actual in any_actual(), people in any_people(), rules in any_rules(),
        ) {
            let desired = desired(&target, &rules, &people);
            let mut after = actual.clone();
            for change in plan(&target, &desired, &actual) {
                simulate(target.product, &mut after, &change);
            }
            for user in after.users.iter().filter(|user| inside_user(&user.userid)) {
                let covered = desired.users.contains_key(&user.userid);
                prop_assert!(covered || !user.enabled, "{} should be disabled", user.userid);
                prop_assert!(covered || target.leavers == Leavers::Disable, "{} should be deleted", user.userid);
                if covered {
                    prop_assert_eq!(&user.names, &desired.users[&user.userid]);
                    prop_assert!(user.enabled);
                }
            }
            let realm_entries: BTreeSet<&AclEntry> = after
                .acl
                .iter()
                .filter(|entry| inside_entry(target.product, entry))
                .collect();
            prop_assert_eq!(realm_entries, desired.acl.iter().collect::<BTreeSet<_>>());
        }
    }
}
