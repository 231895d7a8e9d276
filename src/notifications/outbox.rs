//! Writing events into the outbox.

use deadpool_postgres::GenericClient;

use serde_json::Value;

use crate::domain::{AgencyCode, EventId, PaymentId};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Paid,
    Expired,
    Cancelled,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Paid => "payment.paid",
            EventType::Expired => "payment.expired",
            EventType::Cancelled => "payment.cancelled",
        }
    }
}

/// Records that an agency's order changed, with the order as it now answers (`payment`); call it
/// inside the transaction that made the change, so the event exists exactly when the change does.
pub async fn record(
    client: &impl GenericClient,
    agency: &AgencyCode,
    payment_id: &PaymentId,
    event: EventType,
    payment: &Value,
) -> Result<(), tokio_postgres::Error> {
    let statement = client
        .prepare_cached(
            "INSERT INTO events (id, agency_code, payment_id, type, payment)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .await?;
    client
        .execute(
            &statement,
            &[
                &EventId::generate().as_str(),
                &agency.as_str(),
                &payment_id.as_str(),
                &event.as_str(),
                payment,
            ],
        )
        .await?;
    Ok(())
}
