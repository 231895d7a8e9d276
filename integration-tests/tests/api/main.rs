//! paygate end to end: the real app over real HTTP against real PostgreSQL.

mod admin;
mod audit;
mod auth;
mod banks;
mod bodies;
mod cases;
mod catalog;
mod console;
mod faults;
mod generated;
mod migrations;
mod notifications;
mod obligation_data;
mod ops;
mod outgoing;
mod payments;
mod reconciliation;
mod refunds;
mod sandbox;
mod seals;
mod statements;
