//! Writing events into the outbox.

use deadpool_postgres::GenericClient;

use crate::auth::keys;
use crate::payments::model::Payment;

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

/// Records that `payment` changed; call it inside the transaction that made the change, so the
/// event exists exactly when the change does.
pub async fn record(
    client: &impl GenericClient,
    payment: &Payment,
    event: EventType,
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
                &keys::random_id("evt", 12),
                &payment.agency,
                &payment.id,
                &event.as_str(),
                &payment.to_json(),
            ],
        )
        .await?;
    Ok(())
}
