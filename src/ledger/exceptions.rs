//! Callbacks kept for investigation: money taken into suspense, and rejected callbacks.

use deadpool_postgres::{GenericClient, Pool};
use rust_decimal::Decimal;
use serde::Serialize;
use time::OffsetDateTime;
use tokio_postgres::types::ToSql;
use utoipa::ToSchema;

use crate::codes::BankCode;
use crate::http::error::ApiError;

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

/// One record for investigation.
pub struct NewException<'a> {
    pub bank: &'a BankCode,
    pub bank_txn_id: &'a str,
    pub payment_id: &'a str,
    pub amount: Decimal,
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
                &e.bank_txn_id,
                &e.payment_id,
                &e.amount,
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

#[derive(Debug, Default)]
pub struct ListFilter {
    pub bank: Option<BankCode>,
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
    pub before: Option<i64>,
    pub limit: i64,
}

/// Newest first, up to `limit + 1` rows.
pub async fn list(pool: &Pool, filter: &ListFilter) -> Result<Vec<ExceptionItem>, ApiError> {
    let bank = filter.bank.as_ref().map(BankCode::as_str);
    let fetch = filter.limit + 1;
    let params: [&(dyn ToSql + Sync); 5] =
        [&bank, &filter.from, &filter.to, &filter.before, &fetch];
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT id, reason, bank_code, bank_txn_id, payment_id, amount, currency, paid_at,
                    detail, created_at, callback_id IS NOT NULL
             FROM callback_exceptions
             WHERE ($1::text IS NULL OR bank_code = $1)
               AND ($2::timestamptz IS NULL OR created_at >= $2)
               AND ($3::timestamptz IS NULL OR created_at < $3)
               AND ($4::bigint IS NULL OR id < $4)
             ORDER BY id DESC LIMIT $5",
            &params,
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let id: i64 = row.get(0);
            let amount: Decimal = row.get(5);
            ExceptionItem {
                id: format!("exc_{id:016x}"),
                kind: if row.get(10) { "suspense" } else { "rejected" },
                reason: row.get(1),
                bank: row.get(2),
                bank_txn_id: row.get(3),
                payment_id: row.get(4),
                amount: amount.normalize().to_string(),
                currency: row.get(6),
                paid_at: row.get(7),
                detail: row.get(8),
                created_at: row.get(9),
                seq: id,
            }
        })
        .collect())
}
