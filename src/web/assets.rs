//! Stylesheets, scripts and images, embedded in the binary.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use rust_embed::RustEmbed;

use super::error::PageError;

#[derive(RustEmbed)]
#[folder = "static/"]
struct Assets;

pub async fn serve(path: web::Path<String>) -> Result<HttpResponse, PageError> {
    let file = Assets::get(&path).ok_or_else(PageError::not_found)?;
    Ok(HttpResponse::Ok()
        .content_type(file.metadata.mimetype())
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(file.data.into_owned()))
}
