//! `/admin/groups`: groups and their members. Group names reach apps in the `groups` claim.

use crate::store::Db;
use actix_web::HttpRequest;
use actix_web::web::Bytes;
use askama::Template;
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};

use super::access::{self, Admin, AdminResult};
use super::{
    Applied, Change, Frame, Refusal, Section, admin_url, apply, change, read, render, see_other,
    segment,
};
use crate::clock::UnixTime;
use crate::directory::groups as directory_groups;
use crate::directory::users as directory_users;
use crate::directory::{DirectoryError, DirectoryResult};
use crate::names::GroupName;
use crate::names::Username;
use crate::state::State;
use crate::store::groups::Group;
use crate::store::users as stored_users;
use crate::web::pages::Base;

/// The admin path of a group's page.
fn group_path(name: &GroupName) -> String {
    format!("/groups/{name}")
}

#[derive(Template)]
#[template(path = "admin/groups.html")]
struct GroupsPage {
    base: Base,
    frame: Frame,
    groups: Vec<Group>,
    /// What was typed in the "add a group" form, kept when it is refused.
    new_name: String,
}

pub async fn list(req: HttpRequest, state: State) -> AdminResult {
    let admin = access::require(&req, &state).await?;
    list_page(&req, &state, &admin, String::new(), None).await
}

async fn list_page(
    req: &HttpRequest,
    state: &State,
    admin: &Admin,
    new_name: String,
    refusal: Option<Refusal>,
) -> AdminResult {
    let groups = read(state, directory_groups::list).await?;
    let page = GroupsPage {
        base: Base::of(&state.settings.issuer),
        frame: Frame::new(req, state, admin, Section::Groups).refused(refusal),
        groups,
        new_name,
    };
    render(&page, &page.frame)
}

#[derive(Debug, Deserialize)]
struct NameForm {
    #[serde(default)]
    name: String,
}

pub async fn create(req: HttpRequest, state: State, body: Bytes) -> AdminResult {
    let (admin, form): (_, NameForm) = access::form(&req, &state, &body).await?;
    let origin = state.origin(&req).by(&admin.user.username);
    let name = form.name.clone();
    match change(&state, move |tx, now| {
        let name = GroupName::parse(&name)?;
        directory_groups::add(tx, &name, &origin, now)?;
        Ok(name)
    })
    .await?
    {
        Ok(name) => Ok(see_other(admin_url(&state, &group_path(&name)))),
        Err(refusal) => list_page(&req, &state, &admin, form.name, Some(refusal)).await,
    }
}

#[derive(Template)]
#[template(path = "admin/group.html")]
struct GroupPage {
    base: Base,
    frame: Frame,
    group: Group,
    /// People who could be added: everyone not yet a member.
    candidates: Vec<Username>,
}

pub async fn page(req: HttpRequest, state: State) -> AdminResult {
    let admin = access::require(&req, &state).await?;
    group_page(&req, &state, &admin, &segment(&req, "name"), None).await
}

async fn group_page(
    req: &HttpRequest,
    state: &State,
    admin: &Admin,
    name: &str,
    refusal: Option<Refusal>,
) -> AdminResult {
    let name = name.to_string();
    let (group, everyone) = read(state, move |conn| {
        Ok((
            directory_groups::get(conn, &directory_groups::named(&name)?)?,
            stored_users::list(conn)?,
        ))
    })
    .await?;
    let candidates = everyone
        .into_iter()
        .map(|user| user.username)
        .filter(|username| !group.members.contains(username))
        .collect();
    let page = GroupPage {
        base: Base::of(&state.settings.issuer),
        frame: Frame::new(req, state, admin, Section::Groups).refused(refusal),
        group,
        candidates,
    };
    render(&page, &page.frame)
}

/// Handles a posted change to the group at this URL, then shows its page again when the
/// change was refused.
async fn change_group<F: DeserializeOwned + Send + 'static>(
    req: &HttpRequest,
    state: &State,
    body: &[u8],
    work: impl FnOnce(&Db, Change<F, GroupName>, UnixTime) -> DirectoryResult<String> + Send + 'static,
) -> AdminResult {
    match apply(req, state, body, "name", directory_groups::named, work).await? {
        Applied::Done(response) => Ok(response),
        Applied::Refused(admin, name, refusal) => {
            group_page(req, state, &admin, &name, Some(refusal)).await
        }
    }
}

pub async fn rename(req: HttpRequest, state: State, body: Bytes) -> AdminResult {
    change_group(&req, &state, &body, |tx, c: Change<NameForm, _>, now| {
        let new_name = GroupName::parse(&c.form.name)?;
        directory_groups::rename(tx, &c.subject, &new_name, &c.origin, now)?;
        Ok(group_path(&new_name))
    })
    .await
}

#[derive(Debug, Deserialize)]
struct DeleteForm {
    /// A checkbox that must be ticked: members lose the group in every app.
    confirm: Option<String>,
}

pub async fn delete(req: HttpRequest, state: State, body: Bytes) -> AdminResult {
    change_group(&req, &state, &body, |tx, c: Change<DeleteForm, _>, now| {
        directory_groups::ensure_editable(tx, &c.subject)?;
        if c.form.confirm.as_deref() != Some("yes") {
            return Err(DirectoryError::Invalid(
                "Tick the confirmation to delete this group.".into(),
            ));
        }
        directory_groups::remove(tx, &c.subject, &c.origin, now)?;
        Ok("/groups".to_string())
    })
    .await
}

#[derive(Debug, Deserialize)]
struct MemberForm {
    #[serde(default)]
    username: String,
}

pub async fn add_member(req: HttpRequest, state: State, body: Bytes) -> AdminResult {
    change_group(&req, &state, &body, |tx, c: Change<MemberForm, _>, now| {
        let username = directory_users::named(&c.form.username)?;
        directory_groups::add_member(tx, &c.subject, &username, &c.origin, now)?;
        Ok(group_path(&c.subject))
    })
    .await
}

pub async fn remove_member(req: HttpRequest, state: State, body: Bytes) -> AdminResult {
    let username = segment(&req, "username");
    change_group(
        &req,
        &state,
        &body,
        move |tx, c: Change<IgnoredAny, _>, now| {
            let username = directory_users::named(&username)?;
            directory_groups::remove_member(tx, &c.subject, &username, &c.origin, now)?;
            Ok(group_path(&c.subject))
        },
    )
    .await
}
