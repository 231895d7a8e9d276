//! Callbacks kept for investigation: money taken into suspense, and rejected callbacks.

use deadpool_postgres::GenericClient;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::domain::{Amount, BankCode, BankTxnId, PaymentId};

/// Why a callback is listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    DoublePayment,
    OrderClosed,
    PaymentNotFound,
    AmountMismatch,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::DoublePayment => "double_payment",
            Reason::OrderClosed => "order_closed",
            Reason::PaymentNotFound => "payment_not_found",
            Reason::AmountMismatch => "amount_mismatch",
        }
    }
}

/// One record for investigation, as the callback code builds it.
pub struct NewException<'a> {
    pub bank: &'a BankCode,
    pub bank_txn_id: &'a BankTxnId,
    pub payment_id: &'a PaymentId,
    pub amount: Amount,
    pub currency: &'a str,
    pub paid_at: Option<OffsetDateTime>,
    pub reason: Reason,
    /// The callback whose money went to suspense, if any.
    pub callback_id: Option<i64>,
    pub detail: Option<String>,
}

pub async fn record(
    client: &impl GenericClient,
    e: &NewException<'_>,
) -> Result<(), tokio_postgres::Error> {
    let statement = client
        .prepare_cached(
            "INSERT INTO callback_exceptions
                 (bank_code, bank_txn_id, payment_id, amount, currency, paid_at, reason, callback_id, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .await?;
    client
        .execute(
            &statement,
            &[
                &e.bank.as_str(),
                &e.bank_txn_id.as_str(),
                &e.payment_id.as_str(),
                &e.amount.decimal(),
                &e.currency,
                &e.paid_at,
                &e.reason.as_str(),
                &e.callback_id,
                &e.detail,
            ],
        )
        .await?;
    Ok(())
}

/// A listed exception.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExceptionItem {
    #[schema(example = "exc_000000000000002a")]
    pub id: String,
    /// `suspense` (the money is in and must be refunded) or `rejected` (nothing was posted).
    #[schema(example = "suspense")]
    pub kind: &'static str,
    /// double_payment, order_closed, payment_not_found or amount_mismatch.
    #[schema(example = "double_payment")]
    pub reason: String,
    #[schema(example = "VCB")]
    pub bank: String,
    #[schema(example = "FT26327001")]
    pub bank_txn_id: String,
    pub payment_id: String,
    #[schema(example = "150000")]
    pub amount: String,
    #[schema(example = "VND")]
    pub currency: String,
    #[serde(serialize_with = "crate::timefmt::serialize_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub paid_at: Option<OffsetDateTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(skip)]
    pub seq: i64,
}

/// Which exceptions to list: newest first, up to `limit`, below the cursor `before`.
#[derive(Debug)]
pub struct ListFilter {
    pub bank: Option<BankCode>,
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
    pub before: Option<i64>,
    pub limit: i64,
}
