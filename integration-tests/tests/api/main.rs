//! paygate end to end: the real app over real HTTP against real PostgreSQL.

mod admin;
mod auth;
mod bodies;
mod migrations;
mod ops;
mod payments;
