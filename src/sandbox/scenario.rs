//! The sandbox bank's scenarios: the callbacks each one sends for an order.

use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

use crate::domain::ids::random_id;
use crate::payments::model::{Payment, PaymentStatus};

/// What the sandbox bank does with an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// The payer pays: one `succeeded` callback.
    Succeeded,
    /// The payment fails at the bank: one `failed` callback.
    Failed,
    /// The same `succeeded` callback twice.
    Redelivered,
    /// A second payment with another `bank_txn_id` (after a first one, when the order is still
    /// pending).
    DoublePayment,
    /// A `succeeded` callback for another amount.
    AmountMismatch,
    /// Paid after the order expired, at a `paid_at` after its `expires_at`.
    Late,
    /// Reported after the order expired, with a `paid_at` before its `expires_at`.
    PaidInTime,
}

impl Scenario {
    pub const NAMES: &'static str =
        "succeeded, failed, redelivered, double_payment, amount_mismatch, late or paid_in_time";

    pub fn parse(name: &str) -> Result<Scenario, String> {
        Ok(match name {
            "succeeded" => Scenario::Succeeded,
            "failed" => Scenario::Failed,
            "redelivered" => Scenario::Redelivered,
            "double_payment" => Scenario::DoublePayment,
            "amount_mismatch" => Scenario::AmountMismatch,
            "late" => Scenario::Late,
            "paid_in_time" => Scenario::PaidInTime,
            _ => return Err(format!("must be one of {}", Scenario::NAMES)),
        })
    }

    /// Whether the scenario needs an order whose `expires_at` has passed.
    pub fn needs_expiry(self) -> bool {
        matches!(self, Scenario::Late | Scenario::PaidInTime)
    }

    /// The callbacks' bodies, in the order they are sent.
    pub fn callbacks(self, order: &Payment, now: OffsetDateTime) -> Vec<Value> {
        let succeeded = |paid_at: OffsetDateTime| {
            json!({
                "bank_txn_id": new_bank_txn_id(),
                "payment_id": order.id.as_str(),
                "amount": order.amount.to_string(),
                "currency": order.currency,
                "status": "succeeded",
                "paid_at": crate::timefmt::format_utc(paid_at),
            })
        };
        match self {
            Scenario::Succeeded | Scenario::Late => vec![succeeded(now)],
            Scenario::Failed => vec![json!({
                "bank_txn_id": new_bank_txn_id(),
                "payment_id": order.id.as_str(),
                "amount": order.amount.to_string(),
                "currency": order.currency,
                "status": "failed",
                "failure_reason": "Sandbox: the payer's account has insufficient funds",
            })],
            Scenario::Redelivered => {
                let callback = succeeded(now);
                vec![callback.clone(), callback]
            }
            Scenario::DoublePayment if order.status == PaymentStatus::Pending => {
                vec![succeeded(now), succeeded(now)]
            }
            Scenario::DoublePayment => vec![succeeded(now)],
            Scenario::AmountMismatch => {
                let mut callback = succeeded(now);
                callback["amount"] = json!(other_amount(order).to_string());
                vec![callback]
            }
            Scenario::PaidInTime => vec![succeeded(order.expires_at - Duration::seconds(1))],
        }
    }
}

/// A `bank_txn_id` of the sandbox bank: random, so that every scenario is a new payment.
fn new_bank_txn_id() -> String {
    random_id("SBX", 10)
}

/// An amount that is not the order's: one đồng more (or less, at the largest amount).
fn other_amount(order: &Payment) -> rust_decimal::Decimal {
    let amount = order.amount.decimal();
    if amount >= rust_decimal::Decimal::from(999_999_999_999_999i64) {
        amount - rust_decimal::Decimal::ONE
    } else {
        amount + rust_decimal::Decimal::ONE
    }
}
