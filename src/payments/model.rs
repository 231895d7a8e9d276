//! The payment object (see "Payment orders" in `docs/api-guide.md`), and the validated input
//! that creates one.

use serde::Serialize;
use serde_json::Value;
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;

use super::domain::Details;
use crate::domain::{AgencyCode, Amount, BankCode, BankTxnId, ObligationCode, PaymentId};

/// An order expires this long after creation unless `expires_at` says otherwise.
pub const DEFAULT_EXPIRY: Duration = Duration::hours(24);
/// `expires_at` may lie at most this far ahead.
pub const MAX_EXPIRY: Duration = Duration::days(30);

/// The columns every query that returns a payment selects, in [`Payment::from_row`]'s order.
/// `status` is the effective one: a pending order past its `expires_at` reads as expired even
/// before the sweep records it, like every decision treats it.
pub const PAYMENT_COLUMNS: &str = "p.id, p.agency_code, p.obligation, p.reference, p.amount, \
    p.currency, p.description, p.payer_name, p.payer_id_number, p.details, \
    CASE WHEN p.status = 'pending' AND p.expires_at <= now() THEN 'expired' ELSE p.status END, \
    p.created_at, p.expires_at, p.paid_at, p.bank_code, p.bank_txn_id, p.seq, p.refunded_amount, \
    p.sandbox";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Pending,
    Paid,
    Expired,
    Cancelled,
}

impl PaymentStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Paid => "paid",
            PaymentStatus::Expired => "expired",
            PaymentStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(value: &str) -> Result<PaymentStatus, String> {
        match value {
            "pending" => Ok(PaymentStatus::Pending),
            "paid" => Ok(PaymentStatus::Paid),
            "expired" => Ok(PaymentStatus::Expired),
            "cancelled" => Ok(PaymentStatus::Cancelled),
            _ => Err("must be one of pending, paid, expired, cancelled".to_owned()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Payer {
    #[schema(example = "Nguyễn Văn A")]
    pub name: String,
    /// Never written to logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "001099012345")]
    pub id_number: Option<String>,
}

/// A payment order as every answer returns it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "pay_3b1f0c9a7d2e4f6a8b0c1d2e",
    "agency": "000.00.00.H12",
    "obligation": "fee",
    "reference": "H12.99-261122-0001",
    "amount": "150000",
    "currency": "VND",
    "description": "Lệ phí cấp đổi giấy phép lái xe",
    "payer": {"name": "Nguyễn Văn A", "id_number": "001099012345"},
    "details": {"procedure_code": "1.002804", "dossier_code": "H12.99-261122-0001"},
    "status": "pending",
    "created_at": "2026-11-23T03:00:00.123456Z",
    "expires_at": "2026-11-24T03:00:00.123456Z",
    "paid_at": null, "bank": null, "bank_txn_id": null, "refunded_amount": "0",
    "sandbox": false
}))]
pub struct Payment {
    #[schema(value_type = String)]
    pub id: PaymentId,
    #[schema(value_type = String)]
    pub agency: AgencyCode,
    /// The code of an obligation of the catalog (`GET /v1/obligations`), `^[a-z][a-z0-9_]{1,31}$`:
    /// a built-in one (fee, tax, social_insurance, fine, electricity, court_advance) or one an
    /// admin added (e.g. hospital_fee).
    #[schema(value_type = String, pattern = "^[a-z][a-z0-9_]{1,31}$", example = "fee")]
    pub obligation: ObligationCode,
    pub reference: String,
    #[schema(value_type = String, pattern = "^[1-9][0-9]{0,14}$", example = "150000")]
    pub amount: Amount,
    #[schema(example = "VND")]
    pub currency: String,
    pub description: String,
    pub payer: Payer,
    /// The obligation's details: an object that satisfied the obligation's `details_schema` in
    /// the catalog when the order was created (see the create request's examples).
    #[schema(value_type = Object)]
    pub details: Details,
    pub status: PaymentStatus,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
    /// `null` until paid.
    #[serde(serialize_with = "crate::timefmt::serialize_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub paid_at: Option<OffsetDateTime>,
    /// `null` until paid.
    #[schema(value_type = Option<String>)]
    pub bank: Option<BankCode>,
    /// `null` until paid.
    #[schema(value_type = Option<String>)]
    pub bank_txn_id: Option<BankTxnId>,
    /// Whole VND given back by completed refunds; `"0"` until a refund completes.
    #[schema(value_type = String, example = "0")]
    pub refunded_amount: String,
    /// Whether this is a sandbox order (its agency is a sandbox agency): payable only by
    /// sandbox banks, and its money kept in the sandbox's ledger accounts.
    pub sandbox: bool,
    /// Position for keyset pagination; not part of the answer.
    #[serde(skip)]
    pub seq: i64,
}

impl Payment {
    /// Reads a row selected with [`PAYMENT_COLUMNS`].
    pub fn from_row(row: &tokio_postgres::Row) -> Payment {
        let agency: &str = row.get(1);
        let obligation: &str = row.get(2);
        // The column references the catalog, whose codes have the code syntax.
        let obligation = ObligationCode::from_trusted(obligation);
        let details: Value = row.get(9);
        let status: &str = row.get(10);
        let bank: Option<&str> = row.get(14);
        Payment {
            id: PaymentId::from_trusted(row.get(0)),
            agency: AgencyCode::parse(agency).expect("the agency_code column is constrained"),
            reference: row.get(3),
            amount: Amount::from_decimal(row.get(4)).expect("the amount column is constrained"),
            currency: row.get(5),
            description: row.get(6),
            payer: Payer {
                name: row.get(7),
                id_number: row.get(8),
            },
            // Stored only after they passed these very rules, in their canonical form.
            details: Details::parse(obligation.as_str(), &details)
                .expect("stored details were validated when the order was created"),
            obligation,
            status: PaymentStatus::parse(status).expect("the status column is constrained"),
            created_at: row.get(11),
            expires_at: row.get(12),
            paid_at: row.get(13),
            bank: bank.map(|code| BankCode::parse(code).expect("bank codes are constrained")),
            bank_txn_id: row
                .get::<_, Option<String>>(15)
                .map(BankTxnId::from_trusted),
            seq: row.get(16),
            refunded_amount: row
                .get::<_, rust_decimal::Decimal>(17)
                .normalize()
                .to_string(),
            sandbox: row.get(18),
        }
    }

    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("a payment serialises")
    }
}

/// A create request that passed every rule of a new order.
#[derive(Debug, Clone)]
pub struct NewPayment {
    pub agency: AgencyCode,
    pub reference: String,
    pub amount: Amount,
    pub description: String,
    pub payer: Payer,
    pub obligation: ObligationCode,
    pub details: Details,
    /// `None`: the default, 24 hours after creation (by the database clock).
    pub expires_at: Option<OffsetDateTime>,
}
