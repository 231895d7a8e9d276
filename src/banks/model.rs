//! A callback as the domain sees it, whoever reports it: a bank's body that passed validation,
//! or a statement line that reconciliation applies.

use time::OffsetDateTime;

use crate::domain::{Amount, BankTxnId, PaymentId};

/// What the bank reports, with the time the money was taken: a payment that succeeded always
/// has one, a failed one may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackStatus {
    Succeeded { paid_at: OffsetDateTime },
    Failed { paid_at: Option<OffsetDateTime> },
}

impl CallbackStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackStatus::Succeeded { .. } => "succeeded",
            CallbackStatus::Failed { .. } => "failed",
        }
    }

    pub fn paid_at(self) -> Option<OffsetDateTime> {
        match self {
            CallbackStatus::Succeeded { paid_at } => Some(paid_at),
            CallbackStatus::Failed { paid_at } => paid_at,
        }
    }
}

/// Where a callback came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Sent by the bank.
    Callback,
    /// Applied from a statement line by reconciliation (a lost callback).
    Reconciliation,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Callback => "callback",
            Source::Reconciliation => "reconciliation",
        }
    }
}

/// A callback that passed validation (a bank's body, or a statement line).
#[derive(Debug, Clone, PartialEq)]
pub struct Callback {
    pub bank_txn_id: BankTxnId,
    /// The order the bank names; it may not exist.
    pub payment_id: PaymentId,
    pub amount: Amount,
    /// `VND` when not given.
    pub currency: String,
    pub status: CallbackStatus,
    pub failure_reason: Option<String>,
}

impl Callback {
    pub fn paid_at(&self) -> Option<OffsetDateTime> {
        self.status.paid_at()
    }
}
