//! The refund object (see "Refunds" in `docs/api-guide.md`) and the bank's result.

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::domain::Amount;

/// The columns every query that returns a refund selects, in [`Refund::from_row`]'s order.
pub const REFUND_COLUMNS: &str = "r.id, r.kind, r.payment_id, r.case_id, r.agency_code, \
    r.bank_code, r.bank_txn_id, r.amount, r.reason, r.status, r.requested_by, r.approved_by, \
    r.created_at, r.approved_at, r.completed_at, r.bank_refund_id, r.failure_reason, r.seq";

/// Why money goes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RefundKind {
    /// An agency returns money for a paid order, in full or in part.
    Payment,
    /// A case's money in suspense goes back to the payer.
    Suspense,
}

impl RefundKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundKind::Payment => "payment",
            RefundKind::Suspense => "suspense",
        }
    }

    pub fn parse(value: &str) -> Result<RefundKind, String> {
        match value {
            "payment" => Ok(RefundKind::Payment),
            "suspense" => Ok(RefundKind::Suspense),
            _ => Err("must be payment or suspense".to_owned()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    /// Waiting for a second key.
    PendingApproval,
    /// The second key refused it; nothing moved.
    Rejected,
    /// Approved: the instruction goes to the bank, which has not answered yet.
    Approved,
    /// The bank returned the money; posted to the ledger.
    Completed,
    /// The bank could not return the money; nothing moved.
    Failed,
}

impl RefundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::PendingApproval => "pending_approval",
            RefundStatus::Rejected => "rejected",
            RefundStatus::Approved => "approved",
            RefundStatus::Completed => "completed",
            RefundStatus::Failed => "failed",
        }
    }

    pub fn parse(value: &str) -> Result<RefundStatus, String> {
        match value {
            "pending_approval" => Ok(RefundStatus::PendingApproval),
            "rejected" => Ok(RefundStatus::Rejected),
            "approved" => Ok(RefundStatus::Approved),
            "completed" => Ok(RefundStatus::Completed),
            "failed" => Ok(RefundStatus::Failed),
            _ => Err(
                "must be one of pending_approval, rejected, approved, completed, failed".to_owned(),
            ),
        }
    }
}

/// A refund as every answer returns it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "rfd_5b2e0c9a7d2e4f6a8b0c1d2e", "kind": "payment",
    "payment_id": "pay_3b1f0c9a7d2e4f6a8b0c1d2e", "case_id": null,
    "agency": "000.00.00.H12", "bank": "VCB", "bank_txn_id": "FT26327001",
    "amount": "50000", "reason": "Hồ sơ bị từ chối, hoàn lệ phí", "status": "approved",
    "requested_by": {"key_id": "key_7", "role": "agency", "agency": "000.00.00.H12", "label": "Cán bộ một cửa", "via": "api"},
    "approved_by": {"key_id": "key_8", "role": "agency", "agency": "000.00.00.H12", "label": "Lãnh đạo phòng", "via": "api"},
    "created_at": "2026-11-23T04:00:00Z", "approved_at": "2026-11-23T04:10:00Z",
    "completed_at": null, "bank_refund_id": null, "failure_reason": null
}))]
pub struct Refund {
    #[schema(example = "rfd_5b2e0c9a7d2e4f6a8b0c1d2e")]
    pub id: String,
    pub kind: RefundKind,
    pub payment_id: String,
    /// The case of a `suspense` refund; `null` for a `payment` refund.
    #[schema(required = true)]
    pub case_id: Option<String>,
    pub agency: String,
    /// The bank that collected the money, and gives it back.
    pub bank: String,
    /// The bank's transaction that collected the money.
    pub bank_txn_id: String,
    #[schema(value_type = String, pattern = "^[1-9][0-9]{0,14}$", example = "50000")]
    pub amount: Amount,
    pub reason: String,
    pub status: RefundStatus,
    /// The actor who asked for it.
    #[schema(value_type = crate::audit::Actor)]
    pub requested_by: Value,
    /// The second key that approved it; `null` before.
    #[schema(value_type = Option<crate::audit::Actor>, required = true)]
    pub approved_by: Option<Value>,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(serialize_with = "crate::timefmt::serialize_option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub approved_at: Option<OffsetDateTime>,
    /// When the bank says it returned the money.
    #[serde(serialize_with = "crate::timefmt::serialize_option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub completed_at: Option<OffsetDateTime>,
    /// The bank's own id of the refund, once completed.
    #[schema(required = true)]
    pub bank_refund_id: Option<String>,
    /// Why the bank could not return the money, when it says.
    #[schema(required = true)]
    pub failure_reason: Option<String>,
    /// Position for keyset pagination; not part of the answer.
    #[serde(skip)]
    pub seq: i64,
}

impl Refund {
    /// Reads a row selected with [`REFUND_COLUMNS`].
    pub fn from_row(row: &tokio_postgres::Row) -> Refund {
        Refund {
            id: row.get(0),
            kind: RefundKind::parse(row.get(1)).expect("the kind column is constrained"),
            payment_id: row.get(2),
            case_id: row.get(3),
            agency: row.get(4),
            bank: row.get(5),
            bank_txn_id: row.get(6),
            amount: Amount::from_decimal(row.get(7)).expect("the amount column is constrained"),
            reason: row.get(8),
            status: RefundStatus::parse(row.get(9)).expect("the status column is constrained"),
            requested_by: row.get(10),
            approved_by: row.get(11),
            created_at: row.get(12),
            approved_at: row.get(13),
            completed_at: row.get(14),
            bank_refund_id: row.get(15),
            failure_reason: row.get(16),
            seq: row.get(17),
        }
    }

    /// The key id of the requester, for the maker-checker rule.
    pub fn requester_key_id(&self) -> Option<&str> {
        self.requested_by.get("key_id").and_then(Value::as_str)
    }

    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("a refund serialises")
    }
}

/// What the bank reports about an approved refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BankResult {
    Completed {
        bank_refund_id: String,
        /// `None`: the time paygate records the result.
        completed_at: Option<OffsetDateTime>,
    },
    Failed {
        bank_refund_id: Option<String>,
        failure_reason: Option<String>,
    },
}

impl BankResult {
    pub fn status(&self) -> RefundStatus {
        match self {
            BankResult::Completed { .. } => RefundStatus::Completed,
            BankResult::Failed { .. } => RefundStatus::Failed,
        }
    }

    pub fn bank_refund_id(&self) -> Option<&str> {
        match self {
            BankResult::Completed { bank_refund_id, .. } => Some(bank_refund_id),
            BankResult::Failed { bank_refund_id, .. } => bank_refund_id.as_deref(),
        }
    }
}

/// A new payment refund that passed every rule of the request body.
#[derive(Debug, Clone)]
pub struct NewRefund {
    pub amount: Amount,
    pub reason: String,
}
