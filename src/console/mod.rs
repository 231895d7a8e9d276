//! The operator console: server-rendered HTML pages for administrators and auditors, signed in
//! with their API key, in Vietnamese or English.
//!
//! Every page reads with the same store functions the JSON API uses, and every change goes
//! through the same domain function with the signed-in key as the actor, so the console can
//! never do what the API would refuse (roles, four-eyes approval).

use actix_web::web;

pub mod assets;
pub mod audit_page;
pub mod cases;
pub mod format;
pub mod i18n;
pub mod layout;
pub mod notifications;
pub mod overview;
pub mod parties;
pub mod reconciliation;
pub mod session;

/// Registers every console route under `/console`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    assets::configure(cfg);
    session::configure(cfg);
    overview::configure(cfg);
    audit_page::configure(cfg);
    parties::configure(cfg);
    reconciliation::configure(cfg);
    cases::configure(cfg);
    notifications::configure(cfg);
    // Last, so that it only takes what no page above matched: an unknown console address is a
    // console page (sign-in first, then 404), not the API's JSON problem.
    cfg.route("/console/{rest:.*}", web::get().to(not_found));
}

async fn not_found(
    _console: session::Console,
) -> Result<actix_web::HttpResponse, session::ConsoleError> {
    Err(session::ConsoleError::NotFound)
}
