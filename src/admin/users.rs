//! `/admin/users`: people, and for each their account, groups, login links, passkeys and
//! sessions.

use crate::store::Db;
use actix_web::HttpRequest;
use actix_web::web::Bytes;
use askama::Template;
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};

use super::access::{self, Admin, AdminResult};
use super::{
    Applied, Change, Frame, Refusal, Section, admin_url, apply, change, read, render, see_other,
    segment, when,
};
use crate::auth::login_link;
use crate::clock::{self, UnixTime};
use crate::directory::groups as directory_groups;
use crate::directory::users::{self as directory_users, AccountEdit, NewUser};
use crate::directory::{DirectoryError, DirectoryResult};
use crate::names::GroupName;
use crate::names::Username;
use crate::state::State;
use crate::store::passkeys as stored_passkeys;
use crate::store::sessions;
use crate::store::users::User;
use crate::web::pages::{Base, PasskeyRow};

/// How long a login link may live, as offered on the page.
const LINK_LIFETIMES: &[(i64, &str)] = &[
    (login_link::DEFAULT_TTL_SECS, "15 minutes"),
    (3600, "1 hour"),
    (24 * 3600, "24 hours"),
    (login_link::MAX_TTL_SECS, "7 days"),
];

/// The admin path of a person's page.
fn user_path(username: &Username) -> String {
    format!("/users/{username}")
}

#[derive(Template)]
#[template(path = "admin/users.html")]
struct UsersPage {
    base: Base,
    frame: Frame,
    query: String,
    users: Vec<User>,
    new: NewUserForm,
}

#[derive(Debug, Default, Deserialize)]
struct Search {
    #[serde(default)]
    q: String,
}

/// The "add a person" form, also shown again with what was typed when it is refused.
#[derive(Debug, Default, Deserialize)]
struct NewUserForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    email: String,
    /// A checkbox: present when ticked.
    is_admin: Option<String>,
    /// A checkbox: give a username someone deleted or renamed had, on purpose.
    reuse_username: Option<String>,
}

pub async fn list(req: HttpRequest, state: State) -> AdminResult {
    let admin = access::require(&req, &state).await?;
    let Search { q } = access::query(&req)?;
    list_page(&req, &state, &admin, q, NewUserForm::default(), None).await
}

async fn list_page(
    req: &HttpRequest,
    state: &State,
    admin: &Admin,
    query: String,
    new: NewUserForm,
    refusal: Option<Refusal>,
) -> AdminResult {
    let search = query.clone();
    let users = read(state, move |conn| directory_users::search(conn, &search)).await?;
    let page = UsersPage {
        base: Base::of(&state.settings.issuer),
        frame: Frame::new(req, state, admin, Section::Users).refused(refusal),
        query,
        users,
        new,
    };
    render(&page, &page.frame)
}

pub async fn create(req: HttpRequest, state: State, body: Bytes) -> AdminResult {
    let (admin, form): (_, NewUserForm) = access::form(&req, &state, &body).await?;
    let origin = state.origin(&req).by(&admin.user.username);
    let filled = |value: &str| Some(value.to_string()).filter(|v| !v.trim().is_empty());
    // A username that breaks the rule is refused like any other part of the form.
    let new = Username::parse(&form.username).map(|username| NewUser {
        id: None,
        username,
        display_name: filled(&form.display_name),
        email: filled(&form.email),
        is_admin: form.is_admin.is_some(),
        reuse_username: form.reuse_username.is_some(),
    });
    match change(&state, move |tx, now| {
        directory_users::add(tx, &new?, &origin, now)
    })
    .await?
    {
        Ok(user) => Ok(see_other(admin_url(&state, &user_path(&user.username)))),
        Err(refusal) => list_page(&req, &state, &admin, String::new(), form, Some(refusal)).await,
    }
}

#[derive(Template)]
#[template(path = "admin/user.html")]
struct UserPage {
    base: Base,
    frame: Frame,
    user: User,
    /// The administrator is looking at their own account.
    is_self: bool,
    created: String,
    updated: String,
    groups: Vec<GroupChoice>,
    passkeys: Vec<PasskeyRow>,
    sessions: Vec<SessionRow>,
    lifetimes: &'static [(i64, &'static str)],
}

struct GroupChoice {
    name: GroupName,
    member: bool,
}

struct SessionRow {
    handle: String,
    ip: String,
    user_agent: String,
    signed_in: String,
    last_seen: String,
}

pub async fn page(req: HttpRequest, state: State) -> AdminResult {
    let admin = access::require(&req, &state).await?;
    user_page(&req, &state, &admin, &segment(&req, "username"), None).await
}

async fn user_page(
    req: &HttpRequest,
    state: &State,
    admin: &Admin,
    username: &str,
    refusal: Option<Refusal>,
) -> AdminResult {
    let username = username.to_string();
    let (user, groups, keys, live) = read(state, move |conn| {
        let user = directory_users::find(conn, &directory_users::named(&username)?)?;
        let groups = directory_groups::list(conn)?;
        let keys = stored_passkeys::for_user(conn, &user.id)?;
        let live = sessions::for_user(conn, &user.id, clock::now())?;
        Ok((user, groups, keys, live))
    })
    .await?;
    let page = UserPage {
        base: Base::of(&state.settings.issuer),
        frame: Frame::new(req, state, admin, Section::Users).refused(refusal),
        is_self: user.id == admin.user.id,
        created: clock::display(user.created_at),
        updated: clock::display(user.updated_at),
        groups: groups
            .into_iter()
            .map(|group| GroupChoice {
                member: group.members.contains(&user.username),
                name: group.name,
            })
            .collect(),
        passkeys: keys
            .into_iter()
            .map(|key| PasskeyRow {
                id: key.id,
                name: key.name,
                created: clock::display(key.created_at),
                last_used: when(key.last_used_at, "never"),
            })
            .collect(),
        sessions: live
            .iter()
            .map(|session| SessionRow {
                handle: sessions::handle(session).to_string(),
                ip: session.ip.clone().unwrap_or_else(|| "unknown".into()),
                user_agent: session.user_agent.clone().unwrap_or_default(),
                signed_in: clock::display(session.auth_time),
                last_seen: clock::display(session.last_seen_at),
            })
            .collect(),
        user,
        lifetimes: LINK_LIFETIMES,
    };
    render(&page, &page.frame)
}

/// Handles a posted change to the person at this URL, then shows their page again when the
/// change was refused.
async fn change_user<F: DeserializeOwned + Send + 'static>(
    req: &HttpRequest,
    state: &State,
    body: &[u8],
    work: impl FnOnce(&Db, Change<F, Username>, UnixTime) -> DirectoryResult<String> + Send + 'static,
) -> AdminResult {
    match apply(req, state, body, "username", directory_users::named, work).await? {
        Applied::Done(response) => Ok(response),
        Applied::Refused(admin, username, refusal) => {
            user_page(req, state, &admin, &username, Some(refusal)).await
        }
    }
}

#[derive(Debug, Deserialize)]
struct EditForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    email: String,
    is_admin: Option<String>,
}

pub async fn edit(req: HttpRequest, state: State, body: Bytes) -> AdminResult {
    change_user(&req, &state, &body, |tx, c: Change<EditForm, _>, now| {
        let edit = AccountEdit {
            username: Username::parse(&c.form.username)?,
            display_name: c.form.display_name,
            email: c.form.email,
            is_admin: c.form.is_admin.is_some(),
        };
        let user = directory_users::edit(tx, &c.actor, &c.subject, &edit, &c.origin, now)?;
        Ok(user_path(&user.username))
    })
    .await
}

pub async fn set_groups(req: HttpRequest, state: State, body: Bytes) -> AdminResult {
    // Checkboxes named `group`, one per ticked group: a repeated field.
    change_user(
        &req,
        &state,
        &body,
        |tx, c: Change<Vec<(String, String)>, _>, now| {
            let wanted = c
                .form
                .into_iter()
                .filter(|(field, _)| field == "group")
                .map(|(_, group)| directory_groups::named(&group))
                .collect::<DirectoryResult<Vec<_>>>()?;
            directory_groups::set_memberships(tx, &c.subject, &wanted, &c.origin, now)?;
            Ok(user_path(&c.subject))
        },
    )
    .await
}

pub async fn disable(req: HttpRequest, state: State, body: Bytes) -> AdminResult {
    change_user(&req, &state, &body, |tx, c: Change<IgnoredAny, _>, now| {
        directory_users::disable_by(tx, &c.actor, &c.subject, &c.origin, now)?;
        Ok(user_path(&c.subject))
    })
    .await
}

pub async fn enable(req: HttpRequest, state: State, body: Bytes) -> AdminResult {
    change_user(&req, &state, &body, |tx, c: Change<IgnoredAny, _>, now| {
        directory_users::enable(tx, &c.subject, &c.origin, now)?;
        Ok(user_path(&c.subject))
    })
    .await
}

#[derive(Debug, Deserialize)]
struct DeleteForm {
    /// A checkbox that must be ticked: deleting cannot be undone.
    confirm: Option<String>,
}

pub async fn delete(req: HttpRequest, state: State, body: Bytes) -> AdminResult {
    change_user(&req, &state, &body, |tx, c: Change<DeleteForm, _>, now| {
        if c.form.confirm.as_deref() != Some("yes") {
            return Err(DirectoryError::Invalid(
                "Tick the confirmation to delete this person.".into(),
            ));
        }
        directory_users::remove_by(tx, &c.actor, &c.subject, &c.origin, now)?;
        Ok("/users".to_string())
    })
    .await
}

pub async fn delete_passkey(req: HttpRequest, state: State, body: Bytes) -> AdminResult {
    // SQLite never hands out a negative id: an id that does not parse names no passkey, and
    // is answered like one deleted already.
    let id = segment(&req, "id").parse::<i64>().unwrap_or(-1);
    change_user(
        &req,
        &state,
        &body,
        move |tx, c: Change<IgnoredAny, _>, now| {
            directory_users::remove_passkey(tx, &c.subject, id, &c.origin, now)?;
            Ok(user_path(&c.subject))
        },
    )
    .await
}

pub async fn end_session(req: HttpRequest, state: State, body: Bytes) -> AdminResult {
    let handle = segment(&req, "handle");
    change_user(
        &req,
        &state,
        &body,
        move |tx, c: Change<IgnoredAny, _>, now| {
            // Already ended (or never there) is as good as ended.
            directory_users::end_session(tx, &c.subject, &handle, &c.origin, now)?;
            Ok(user_path(&c.subject))
        },
    )
    .await
}

pub async fn end_all_sessions(req: HttpRequest, state: State, body: Bytes) -> AdminResult {
    change_user(&req, &state, &body, |tx, c: Change<IgnoredAny, _>, now| {
        directory_users::end_all_sessions(tx, &c.subject, &c.origin, now)?;
        Ok(user_path(&c.subject))
    })
    .await
}

#[derive(Template)]
#[template(path = "admin/login_link.html")]
struct LinkPage {
    base: Base,
    frame: Frame,
    username: Username,
    url: String,
    expires: String,
}

#[derive(Debug, Deserialize)]
struct LinkForm {
    #[serde(default = "default_lifetime")]
    ttl: i64,
}

fn default_lifetime() -> i64 {
    login_link::DEFAULT_TTL_SECS
}

/// Issues a login link and shows it, once: only its hash is stored, so this response is the
/// only place it ever appears (and it is not cached).
pub async fn login_link(req: HttpRequest, state: State, body: Bytes) -> AdminResult {
    let (admin, form): (_, LinkForm) = access::form(&req, &state, &body).await?;
    let username = segment(&req, "username");
    let origin = state.origin(&req).by(&admin.user.username);
    let name = username.clone();
    let ttl = form.ttl;
    let issued = change(&state, move |tx, now| {
        let named = directory_users::named(&name)?;
        let (user, token) = login_link::issue(tx, &named, ttl, &origin, now)?;
        Ok((user, token, now + ttl))
    })
    .await?;
    match issued {
        Ok((user, token, expires_at)) => {
            let page = LinkPage {
                base: Base::of(&state.settings.issuer),
                frame: Frame::new(&req, &state, &admin, Section::Users),
                username: user.username,
                url: format!(
                    "{}{}{token}",
                    state.settings.issuer.as_str(),
                    login_link::ROUTE
                ),
                expires: clock::display(expires_at),
            };
            render(&page, &page.frame)
        }
        Err(refusal) => user_page(&req, &state, &admin, &username, Some(refusal)).await,
    }
}
