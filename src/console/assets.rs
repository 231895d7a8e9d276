//! The console's stylesheet and script, built into the binary and served by it: no CDN, no
//! external font, nothing fetched from elsewhere.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

pub const CSS_PATH: &str = "/console/assets/console.css";
pub const JS_PATH: &str = "/console/assets/console.js";

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// The files change only with a release; an hour of caching spares the reloads of a working
/// day without keeping an old file for long after an upgrade.
const CACHE_CONTROL: &str = "public, max-age=3600";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(CSS_PATH, web::get().to(css))
        .route(JS_PATH, web::get().to(js));
}

async fn css() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, CACHE_CONTROL))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(CSS)
}

async fn js() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, CACHE_CONTROL))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(JS)
}
