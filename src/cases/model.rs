//! The case object (see "Cases" in `docs/api-guide.md`), its kinds, statuses and resolutions,
//! and why a case request fails.

use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::audit::Actor;
use crate::db::DbError;

/// What a case is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseKind {
    /// A second payment of a paid order: the money is in suspense.
    DoublePayment,
    /// A payment of a cancelled or expired order: the money is in suspense.
    OrderClosed,
    /// A callback for an order that does not exist (kept, nothing posted).
    PaymentNotFound,
    /// A callback whose amount differs from the order's (kept, nothing posted).
    AmountMismatch,
    /// A statement line paygate has no record of.
    MissingInGateway,
    /// A payment paygate recorded that no statement carried.
    MissingInBank,
    /// A statement line that differs from paygate's record.
    Mismatch,
    /// Someone asks about a payment (a payer says they paid, the order is not paid).
    Inquiry,
}

impl CaseKind {
    pub const ALL: [CaseKind; 8] = [
        CaseKind::DoublePayment,
        CaseKind::OrderClosed,
        CaseKind::PaymentNotFound,
        CaseKind::AmountMismatch,
        CaseKind::MissingInGateway,
        CaseKind::MissingInBank,
        CaseKind::Mismatch,
        CaseKind::Inquiry,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CaseKind::DoublePayment => "double_payment",
            CaseKind::OrderClosed => "order_closed",
            CaseKind::PaymentNotFound => "payment_not_found",
            CaseKind::AmountMismatch => "amount_mismatch",
            CaseKind::MissingInGateway => "missing_in_gateway",
            CaseKind::MissingInBank => "missing_in_bank",
            CaseKind::Mismatch => "mismatch",
            CaseKind::Inquiry => "inquiry",
        }
    }

    pub fn parse(value: &str) -> Result<CaseKind, String> {
        CaseKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == value)
            .ok_or_else(|| {
                format!(
                    "must be one of {}",
                    CaseKind::ALL.map(CaseKind::as_str).join(", ")
                )
            })
    }

    /// Whether the case's money sits in `suspense:<BANK>` until a refund or an apply moves it.
    pub fn in_suspense(self) -> bool {
        matches!(self, CaseKind::DoublePayment | CaseKind::OrderClosed)
    }
}

/// Where a case stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseStatus {
    /// Waiting for someone to resolve it.
    Open,
    /// An `apply` waits for a second admin.
    PendingApproval,
    /// A refund is under way (waiting for approval or for the bank).
    Resolving,
    Resolved,
}

impl CaseStatus {
    pub const ALL: [CaseStatus; 4] = [
        CaseStatus::Open,
        CaseStatus::PendingApproval,
        CaseStatus::Resolving,
        CaseStatus::Resolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::Open => "open",
            CaseStatus::PendingApproval => "pending_approval",
            CaseStatus::Resolving => "resolving",
            CaseStatus::Resolved => "resolved",
        }
    }

    pub fn parse(value: &str) -> Result<CaseStatus, String> {
        CaseStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == value)
            .ok_or_else(|| "must be one of open, pending_approval, resolving, resolved".to_owned())
    }
}

/// What an admin may choose in `POST /v1/cases/{id}/resolve`. (`matched_later` and `paid` are
/// paygate's own resolutions.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// The money in suspense goes back to the payer (a `suspense` refund).
    Refund,
    /// The money in suspense pays another pending order of the same agency.
    Apply,
    /// Nothing to move: resolved with the note.
    NoAction,
}

impl Resolution {
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Refund => "refund",
            Resolution::Apply => "apply",
            Resolution::NoAction => "no_action",
        }
    }

    pub fn parse(value: &str) -> Result<Resolution, String> {
        match value {
            "refund" => Ok(Resolution::Refund),
            "apply" => Ok(Resolution::Apply),
            "no_action" => Ok(Resolution::NoAction),
            _ => Err("must be one of refund, apply, no_action".to_owned()),
        }
    }
}

/// The longest note or inquiry message, in characters.
pub const MESSAGE_MAX_CHARS: usize = 2000;
/// The longest reason of a rejection, and the longest note of a `refund` resolution (it becomes
/// the refund's reason, which the bank receives), in characters.
pub const REASON_MAX_CHARS: usize = 255;

/// A note on a case.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Note {
    #[serde(serialize_with = "crate::timefmt::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    #[schema(value_type = Actor)]
    pub by: Value,
    #[schema(example = "Người nộp đã gửi ủy nhiệm chi; đang đối chiếu với ngân hàng.")]
    pub message: String,
}

/// How a case was (or is being) resolved.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CaseResolution {
    /// refund, apply, no_action, matched_later (a later reconciliation run matched it) or paid
    /// (the inquiry's order was paid).
    #[schema(example = "refund")]
    pub kind: String,
    /// When the resolution took effect: when it was chosen, or for a refund when the bank
    /// completed it, for an apply when it was approved.
    #[serde(serialize_with = "crate::timefmt::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    /// Who chose it (paygate itself for matched_later and paid).
    #[schema(value_type = Actor)]
    pub by: Value,
    #[schema(required = true)]
    pub note: Option<String>,
    /// `apply`: the order that receives the money.
    #[schema(required = true)]
    pub payment_id: Option<String>,
    /// `refund`: the suspense refund.
    #[schema(required = true)]
    pub refund_id: Option<String>,
    /// The second admin of an `apply` or of the refund, once approved.
    #[schema(value_type = Option<Actor>, required = true)]
    pub approved_by: Option<Value>,
}

/// Something a person must look at.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "cas_5b0e6f1c2d3a4b5c6d7e8f90",
    "kind": "double_payment",
    "status": "open",
    "agency": "000.00.00.H12",
    "bank": "VCB",
    "bank_txn_id": "FT26327002",
    "payment_id": "pay_3b1f0c9a7d2e4f6a8b0c1d2e",
    "amount": "150000",
    "opened_at": "2026-11-23T03:05:00.123456Z",
    "opened_by": {"key_id": null, "role": "system", "agency": null, "label": null, "via": "system"},
    "notes": [],
    "resolution": null
}))]
pub struct Case {
    #[schema(example = "cas_5b0e6f1c2d3a4b5c6d7e8f90")]
    pub id: String,
    /// double_payment, order_closed, payment_not_found, amount_mismatch, missing_in_gateway,
    /// missing_in_bank, mismatch or inquiry.
    #[schema(example = "double_payment")]
    pub kind: String,
    /// open, pending_approval, resolving or resolved.
    #[schema(example = "open")]
    pub status: String,
    #[schema(required = true)]
    pub agency: Option<String>,
    #[schema(required = true)]
    pub bank: Option<String>,
    #[schema(required = true)]
    pub bank_txn_id: Option<String>,
    #[schema(required = true)]
    pub payment_id: Option<String>,
    #[schema(example = "150000", required = true)]
    pub amount: Option<String>,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub opened_at: OffsetDateTime,
    #[schema(value_type = Actor)]
    pub opened_by: Value,
    /// Oldest first; an inquiry's message is its first note.
    pub notes: Vec<Note>,
    #[schema(required = true)]
    pub resolution: Option<CaseResolution>,
    /// Position for keyset pagination; not part of the answer.
    #[serde(skip)]
    pub seq: i64,
}

/// The columns [`Case::from_row`] reads, in its order, of `cases c`.
pub const CASE_COLUMNS: &str = "c.id, c.kind, c.status, c.agency_code, c.bank_code, \
    c.bank_txn_id, c.payment_id, c.amount, c.opened_at, c.opened_by, c.message, c.resolution, \
    c.resolved_at, c.resolved_by, c.resolution_note, c.applied_payment_id, c.refund_id, \
    c.approved_by, c.seq";

impl Case {
    /// Reads a row selected with [`CASE_COLUMNS`]; the notes are added by the caller (an
    /// inquiry's message is already the first).
    pub fn from_row(row: &tokio_postgres::Row) -> Case {
        let opened_at: OffsetDateTime = row.get(8);
        let opened_by: Value = row.get(9);
        let message: Option<String> = row.get(10);
        let resolution: Option<String> = row.get(11);
        let notes = message
            .map(|message| Note {
                at: opened_at,
                by: opened_by.clone(),
                message,
            })
            .into_iter()
            .collect();
        Case {
            id: row.get(0),
            kind: row.get(1),
            status: row.get(2),
            agency: row.get(3),
            bank: row.get(4),
            bank_txn_id: row.get(5),
            payment_id: row.get(6),
            amount: row
                .get::<_, Option<Decimal>>(7)
                .map(|amount| amount.normalize().to_string()),
            opened_at,
            opened_by,
            notes,
            resolution: resolution.map(|kind| CaseResolution {
                kind,
                at: row
                    .get::<_, Option<OffsetDateTime>>(12)
                    .expect("a resolution has a time (cases_resolution_complete)"),
                by: row
                    .get::<_, Option<Value>>(13)
                    .expect("a resolution has an author (cases_resolution_complete)"),
                note: row.get(14),
                payment_id: row.get(15),
                refund_id: row.get(16),
                approved_by: row.get(17),
            }),
            seq: row.get(18),
        }
    }
}

/// An actor as the case columns store it.
pub fn actor_json(actor: &Actor) -> Value {
    serde_json::to_value(actor).expect("an actor serialises")
}

/// Why a case request was refused.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("no case {0}")]
    NotFound(String),
    #[error("no payment {0}")]
    PaymentNotFound(String),
    #[error("no bank with code {0}")]
    BankNotFound(String),
    #[error("the case is resolved")]
    Resolved,
    /// A resolution was chosen and is under way (an apply waiting for approval, a refund).
    #[error("the case is {0}: its resolution is under way")]
    InProgress(&'static str),
    #[error("the money of a {0} case is in suspense: resolve it by a refund or an apply")]
    MoneyInSuspense(&'static str),
    /// Approving or rejecting an apply that is not waiting for approval.
    #[error("{0}")]
    NotPending(String),
    #[error("the key that chose the resolution may not approve or reject it")]
    SameApprover,
    /// One field of the request is refused for what it names (not for its form).
    #[error("{field} {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Db(#[from] DbError),
}

crate::from_db_errors!(CaseError);

impl CaseError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> CaseError {
        CaseError::Invalid {
            field,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_status_and_resolution_reads_back_as_itself() {
        for kind in CaseKind::ALL {
            assert_eq!(CaseKind::parse(kind.as_str()), Ok(kind));
        }
        for status in CaseStatus::ALL {
            assert_eq!(CaseStatus::parse(status.as_str()), Ok(status));
        }
        for resolution in [Resolution::Refund, Resolution::Apply, Resolution::NoAction] {
            assert_eq!(Resolution::parse(resolution.as_str()), Ok(resolution));
        }
        for other in ["", "Inquiry", "inquiry ", "closed"] {
            assert!(CaseKind::parse(other).is_err(), "{other}");
            assert!(CaseStatus::parse(other).is_err(), "{other}");
            assert!(Resolution::parse(other).is_err(), "{other}");
        }
        assert!(Resolution::parse("matched_later").is_err());
    }

    #[test]
    fn only_double_payments_and_closed_orders_hold_money_in_suspense() {
        let in_suspense: Vec<&str> = CaseKind::ALL
            .into_iter()
            .filter(|kind| kind.in_suspense())
            .map(CaseKind::as_str)
            .collect();
        assert_eq!(in_suspense, ["double_payment", "order_closed"]);
    }
}
