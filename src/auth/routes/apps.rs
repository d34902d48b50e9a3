//! `/`: the landing page of a signed-in person, listing the apps they may open.

use actix_web::{HttpRequest, HttpResponse, web};

use super::{see_other, signed_in};
use crate::directory::clients::admits;
use crate::state::{State, blocking};
use crate::store::{StoreError, clients, users};
use crate::web::error::PageError;
use crate::web::pages::{self, AppLink, AppsPage, Base};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(landing_page));
}

async fn landing_page(req: HttpRequest, state: State) -> Result<HttpResponse, PageError> {
    let Some((_, user)) = signed_in(&req, &state).await? else {
        return Ok(see_other(format!("{}/login", state.settings.issuer.path())));
    };
    let user_id = user.id.clone();
    let apps = blocking(&state, move |state| {
        state
            .store
            .read(|conn| {
                let groups = users::group_names(conn, &user_id)?;
                Ok::<_, StoreError>(
                    clients::list(conn)?
                        .into_iter()
                        .filter(|client| admits(client, &groups))
                        .filter_map(|client| {
                            client.launch_url.map(|url| AppLink {
                                name: client.name,
                                url,
                            })
                        })
                        .collect::<Vec<_>>(),
                )
            })
            .map_err(PageError::from)
    })
    .await?;
    let name = if user.display_name.is_empty() {
        user.username.to_string()
    } else {
        user.display_name
    };
    pages::render(
        &AppsPage {
            base: Base::of(&state.settings.issuer),
            name,
            is_admin: user.is_admin,
            apps,
        },
        [],
    )
}
