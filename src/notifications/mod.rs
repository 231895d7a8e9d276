//! Notifications to agencies (contract section 7). Events are written to an outbox in the same
//! transaction as the change they report; a worker delivers them.

pub mod outbox;
