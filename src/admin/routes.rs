//! Routes of the administration area. Every handler checks access itself (through
//! `access`), so a route added here cannot forget it by being outside some scope.

use actix_web::web;

use super::{audit, clients, groups, keys, overview, proxmox, users};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin", web::get().to(overview::page))
        .route("/admin/users", web::get().to(users::list))
        .route("/admin/users", web::post().to(users::create))
        .route("/admin/users/{username}", web::get().to(users::page))
        .route("/admin/users/{username}/edit", web::post().to(users::edit))
        .route(
            "/admin/users/{username}/groups",
            web::post().to(users::set_groups),
        )
        .route(
            "/admin/users/{username}/disable",
            web::post().to(users::disable),
        )
        .route(
            "/admin/users/{username}/enable",
            web::post().to(users::enable),
        )
        .route(
            "/admin/users/{username}/delete",
            web::post().to(users::delete),
        )
        .route(
            "/admin/users/{username}/login-link",
            web::post().to(users::login_link),
        )
        .route(
            "/admin/users/{username}/passkeys/{id}/delete",
            web::post().to(users::delete_passkey),
        )
        .route(
            "/admin/users/{username}/sessions/{handle}/end",
            web::post().to(users::end_session),
        )
        .route(
            "/admin/users/{username}/sessions/end-all",
            web::post().to(users::end_all_sessions),
        )
        .route("/admin/clients", web::get().to(clients::list))
        .route("/admin/clients", web::post().to(clients::create))
        .route("/admin/clients/{id}", web::get().to(clients::page))
        .route("/admin/clients/{id}/edit", web::post().to(clients::edit))
        .route(
            "/admin/clients/{id}/rotate-secret",
            web::post().to(clients::rotate_secret),
        )
        .route(
            "/admin/clients/{id}/delete",
            web::post().to(clients::delete),
        )
        .route("/admin/clients/{id}/proxmox", web::post().to(proxmox::save))
        .route(
            "/admin/clients/{id}/proxmox/rules",
            web::post().to(proxmox::add_rule),
        )
        .route(
            "/admin/clients/{id}/proxmox/rules/remove",
            web::post().to(proxmox::remove_rule),
        )
        .route(
            "/admin/clients/{id}/proxmox/sync",
            web::post().to(proxmox::sync_now),
        )
        .route(
            "/admin/clients/{id}/proxmox/disconnect",
            web::post().to(proxmox::disconnect),
        )
        .route("/admin/groups", web::get().to(groups::list))
        .route("/admin/groups", web::post().to(groups::create))
        .route("/admin/groups/{name}", web::get().to(groups::page))
        .route(
            "/admin/groups/{name}/rename",
            web::post().to(groups::rename),
        )
        .route(
            "/admin/groups/{name}/delete",
            web::post().to(groups::delete),
        )
        .route(
            "/admin/groups/{name}/members",
            web::post().to(groups::add_member),
        )
        .route(
            "/admin/groups/{name}/members/{username}/remove",
            web::post().to(groups::remove_member),
        )
        .route("/admin/audit", web::get().to(audit::page))
        .route("/admin/keys", web::get().to(keys::page))
        .route("/admin/keys/rotate", web::post().to(keys::rotate));
}
