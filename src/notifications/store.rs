//! Events as the API reads them, and redelivery: the SQL behind `http`.

use deadpool_postgres::Pool;
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;
use tokio_postgres::types::ToSql;
use utoipa::ToSchema;

use crate::audit::{self, Action, Actor};
use crate::checklist::{self, AgencyStep};
use crate::db::DbError;
use crate::domain::{AgencyCode, EventId, PaymentId};
use crate::http::pagination::{Page, PageRequest};

/// Where an event stands in its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    /// Waiting for its next attempt (or for the agency to set a notify URL).
    Pending,
    /// An attempt was answered 2xx.
    Delivered,
    /// Every attempt of the schedule failed; only a redelivery sends it again.
    Dead,
}

impl EventStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Pending => "pending",
            EventStatus::Delivered => "delivered",
            EventStatus::Dead => "dead",
        }
    }

    /// The status named `value` (`pending`, `delivered` or `dead`).
    pub fn parse(value: &str) -> Option<EventStatus> {
        match value {
            "pending" => Some(EventStatus::Pending),
            "delivered" => Some(EventStatus::Delivered),
            "dead" => Some(EventStatus::Dead),
            _ => None,
        }
    }

    pub(crate) fn from_db(value: &str) -> EventStatus {
        EventStatus::parse(value).expect("the status column is constrained")
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventItem {
    #[schema(value_type = String, example = "evt_5f0c2a9e1b3d4c6e8a7b9d0f")]
    pub id: EventId,
    /// payment.paid, payment.expired or payment.cancelled.
    #[serde(rename = "type")]
    #[schema(example = "payment.paid")]
    pub event_type: String,
    #[schema(value_type = String)]
    pub payment_id: PaymentId,
    /// pending, delivered or dead.
    #[schema(value_type = String, example = "delivered")]
    pub status: EventStatus,
    /// Every attempt made, the successful one included.
    pub attempts: i32,
    pub last_error: Option<String>,
    #[serde(serialize_with = "crate::timefmt::serialize_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_attempt_at: Option<OffsetDateTime>,
    #[serde(serialize_with = "crate::timefmt::serialize_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub delivered_at: Option<OffsetDateTime>,
    #[serde(skip)]
    pub seq: i64,
}

/// Which events to list.
#[derive(Debug, Default)]
pub struct EventFilter<'a> {
    /// Only this agency's events: set for an agency's key, whatever it asked.
    pub agency: Option<&'a AgencyCode>,
    /// Only this order's events. An id that names no order finds none.
    pub payment_id: Option<&'a str>,
    pub status: Option<EventStatus>,
}

/// Why a redelivery did not happen.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// No such event, or it belongs to another agency than the caller's.
    #[error("no event {0}")]
    NotFound(EventId),
    #[error(transparent)]
    Db(#[from] DbError),
}

crate::from_db_errors!(EventError);

/// One page of events, newest first.
pub async fn list(
    pool: &Pool,
    filter: &EventFilter<'_>,
    page: PageRequest,
) -> Result<Page<EventItem>, DbError> {
    let agency = filter.agency.map(AgencyCode::as_str);
    let status = filter.status.map(EventStatus::as_str);
    let fetch = page.limit + 1;
    let params: [&(dyn ToSql + Sync); 5] =
        [&agency, &filter.payment_id, &status, &page.cursor, &fetch];
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT id, type, payment_id, status, attempts, last_error,
                    CASE WHEN status = 'pending' THEN next_attempt_at END, delivered_at, seq
             FROM events
             WHERE ($1::text IS NULL OR agency_code = $1)
               AND ($2::text IS NULL OR payment_id = $2)
               AND ($3::text IS NULL OR status = $3)
               AND ($4::bigint IS NULL OR seq < $4)
             ORDER BY seq DESC LIMIT $5",
            &params,
        )
        .await?;
    let items = rows
        .iter()
        .map(|row| EventItem {
            id: EventId::from_trusted(row.get(0)),
            event_type: row.get(1),
            payment_id: PaymentId::from_trusted(row.get(2)),
            status: EventStatus::from_db(row.get(3)),
            attempts: row.get(4),
            last_error: row.get(5),
            next_attempt_at: row.get(6),
            delivered_at: row.get(7),
            seq: row.get(8),
        })
        .collect();
    Ok(Page::from_rows(items, page.limit, |e: &EventItem| e.seq))
}

/// Makes the event pending again with a fresh schedule, due now. An attempt in flight loses its
/// lease (it is voided here), so its outcome is counted but does not end the redelivery.
/// `agency` limits the event to that agency's. With `audit`, the redelivery is recorded in the
/// audit trail in the same transaction.
pub async fn redeliver(
    pool: &Pool,
    id: &EventId,
    agency: Option<&AgencyCode>,
    audit: Option<&Actor>,
) -> Result<(), EventError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    // The status before the update, read from the row the update locks.
    let before = transaction
        .query_opt(
            "WITH before AS (
                 SELECT id, type, payment_id, status, attempts FROM events
                 WHERE id = $1 AND ($2::text IS NULL OR agency_code = $2) FOR UPDATE
             )
             UPDATE events e SET status = 'pending', schedule_attempts = 0,
                 next_attempt_at = now(), delivered_at = NULL, locked_until = NULL
             FROM before WHERE e.id = before.id
             RETURNING before.type, before.payment_id, before.status, before.attempts",
            &[&id.as_str(), &agency.map(AgencyCode::as_str)],
        )
        .await?
        .ok_or_else(|| EventError::NotFound(id.clone()))?;
    // An agency's own request is a step of its checklist.
    if let Some(agency) = agency {
        let step = AgencyStep::RedeliveryRequested;
        checklist::mark_agency(&transaction, agency.as_str(), step).await?;
    }
    if let Some(actor) = audit {
        let detail = json!({
            "type": before.get::<_, String>(0),
            "payment_id": before.get::<_, String>(1),
            "status_before": before.get::<_, String>(2),
            "attempts": before.get::<_, i32>(3),
        });
        let target = format!("event:{id}");
        audit::record(&transaction, actor, Action::EventRedeliver, &target, detail).await?;
    }
    transaction.commit().await?;
    tracing::info!(event_id = %id, "event scheduled for redelivery");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_reads_back_as_itself_and_nothing_else_is_a_status() {
        for status in [
            EventStatus::Pending,
            EventStatus::Delivered,
            EventStatus::Dead,
        ] {
            assert_eq!(EventStatus::parse(status.as_str()), Some(status));
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
        }
        for other in ["", "Pending", "failed", "dead "] {
            assert_eq!(EventStatus::parse(other), None, "{other}");
        }
    }
}
