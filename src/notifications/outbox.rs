//! Writing events into the outbox.

use deadpool_postgres::GenericClient;

use serde_json::Value;

use crate::domain::{AgencyCode, EventId, PaymentId};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Paid,
    Expired,
    Cancelled,
    /// The bank returned the money of an agency's payment refund.
    RefundCompleted,
    /// The bank could not return the money of an agency's payment refund.
    RefundFailed,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Paid => "payment.paid",
            EventType::Expired => "payment.expired",
            EventType::Cancelled => "payment.cancelled",
            EventType::RefundCompleted => "refund.completed",
            EventType::RefundFailed => "refund.failed",
        }
    }

    /// The member of the delivered body that holds the event's object: the refund for refund
    /// events, the order otherwise.
    pub fn object_key(event_type: &str) -> &'static str {
        if event_type.starts_with("refund.") {
            "refund"
        } else {
            "payment"
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

/// Records one event of `event` type per `(agency, payment_id, payment)`, in one statement: for
/// a batch of changes made in one transaction, as [`record`] records one.
pub async fn record_many(
    client: &impl GenericClient,
    event: EventType,
    events: &[(&AgencyCode, &PaymentId, Value)],
) -> Result<(), tokio_postgres::Error> {
    let ids: Vec<EventId> = events.iter().map(|_| EventId::generate()).collect();
    let ids: Vec<&str> = ids.iter().map(EventId::as_str).collect();
    let agencies: Vec<&str> = events
        .iter()
        .map(|(agency, _, _)| agency.as_str())
        .collect();
    let payments: Vec<&str> = events.iter().map(|(_, id, _)| id.as_str()).collect();
    let bodies: Vec<&Value> = events.iter().map(|(_, _, body)| body).collect();
    let statement = client
        .prepare_cached(
            "INSERT INTO events (id, agency_code, payment_id, type, payment)
             SELECT e.id, e.agency_code, e.payment_id, $4, e.payment
             FROM unnest($1::text[], $2::text[], $3::text[], $5::json[])
                 AS e(id, agency_code, payment_id, payment)",
        )
        .await?;
    client
        .execute(
            &statement,
            &[&ids, &agencies, &payments, &event.as_str(), &bodies],
        )
        .await?;
    Ok(())
}

/// Records that an agency's payment refund ended (`refund.completed` or `refund.failed`), with
/// the refund as it now answers; in the transaction that recorded the bank's result, so that
/// the event exists exactly when the result does (once per refund: `events_once_per_refund`).
pub async fn record_refund(
    client: &impl GenericClient,
    agency: &str,
    payment_id: &str,
    refund_id: &str,
    event: EventType,
    refund: &Value,
) -> Result<(), tokio_postgres::Error> {
    debug_assert!(matches!(
        event,
        EventType::RefundCompleted | EventType::RefundFailed
    ));
    let statement = client
        .prepare_cached(
            "INSERT INTO events (id, agency_code, payment_id, type, payment, refund_id)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .await?;
    client
        .execute(
            &statement,
            &[
                &EventId::generate().as_str(),
                &agency,
                &payment_id,
                &event.as_str(),
                refund,
                &refund_id,
            ],
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refund_events_carry_the_refund_and_payment_events_the_order() {
        assert_eq!(
            EventType::object_key(EventType::RefundCompleted.as_str()),
            "refund"
        );
        assert_eq!(
            EventType::object_key(EventType::RefundFailed.as_str()),
            "refund"
        );
        for event in [EventType::Paid, EventType::Expired, EventType::Cancelled] {
            assert_eq!(EventType::object_key(event.as_str()), "payment");
        }
    }
}
