//! paygate: the payment broker between the agencies of Vietnam's national public-service
//! portal and the banks that collect their payments.
//!
//! `main.rs` only parses the command line; everything else lives here, so that the integration
//! tests drive exactly what production runs.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod banks;
pub mod cases;
pub mod catalog;
pub mod checklist;
pub mod cli;
pub mod config;
pub mod console;
pub mod db;
pub mod domain;
pub mod http;
pub mod ledger;
pub mod notifications;
pub mod openapi;
pub mod payments;
pub mod reconciliation;
pub mod refunds;
pub mod sandbox;
pub mod signature;
pub mod startup;
pub mod statements;
pub mod telemetry;
pub mod timefmt;
pub mod workers;
