//! Conformance checklists: the integration steps paygate has seen each agency and each bank
//! take, so that a party knows what it has exercised and what is left before it goes live.
//!
//! A step is recorded where it happens: in the transaction of the change when there is one (an
//! order created, a callback accepted, a refund requested), or by a statement of its own for a
//! request that changes nothing else (an inquiry, a rejected signature, a replayed create).
//! Reading a checklist reads these rows and nothing else: never the history of orders or
//! callbacks.
//!
//! `first_at` is exact. `last_at` is kept to within a second: a step already recorded less than
//! a second ago is not written again, so that a bank sending thousands of callbacks a second
//! does not queue them all on one row.

pub mod http;
pub mod store;

pub use http::configure;
pub use store::{mark_agencies, mark_agency, mark_banks, Recent};

/// A step of either checklist, as the in-process memory of recent marks ([`Recent`]) keys it.
pub trait Step: Copy {
    /// Whether it is a bank's step (else an agency's).
    const BANK: bool;
    fn name(self) -> &'static str;
}

impl Step for AgencyStep {
    const BANK: bool = false;
    fn name(self) -> &'static str {
        self.as_str()
    }
}

impl Step for BankStep {
    const BANK: bool = true;
    fn name(self) -> &'static str {
        self.as_str()
    }
}

/// A step of an agency's integration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AgencyStep {
    /// An order created.
    OrderCreated,
    /// A create replayed with the same `Idempotency-Key` and body.
    IdempotentReplay,
    /// A create answered 422 `validation_failed`.
    ValidationErrorSeen,
    /// An order cancelled.
    OrderCancelled,
    /// A notification answered with a 2xx by the agency's endpoint.
    NotificationAcknowledged,
    /// An event of the agency's redelivered on request.
    RedeliveryRequested,
    /// A refund requested.
    RefundRequested,
    /// An inquiry case opened by the agency.
    InquiryCaseOpened,
}

impl AgencyStep {
    pub const ALL: [AgencyStep; 8] = [
        AgencyStep::OrderCreated,
        AgencyStep::IdempotentReplay,
        AgencyStep::ValidationErrorSeen,
        AgencyStep::OrderCancelled,
        AgencyStep::NotificationAcknowledged,
        AgencyStep::RedeliveryRequested,
        AgencyStep::RefundRequested,
        AgencyStep::InquiryCaseOpened,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AgencyStep::OrderCreated => "order_created",
            AgencyStep::IdempotentReplay => "idempotent_replay",
            AgencyStep::ValidationErrorSeen => "validation_error_seen",
            AgencyStep::OrderCancelled => "order_cancelled",
            AgencyStep::NotificationAcknowledged => "notification_acknowledged",
            AgencyStep::RedeliveryRequested => "redelivery_requested",
            AgencyStep::RefundRequested => "refund_requested",
            AgencyStep::InquiryCaseOpened => "inquiry_case_opened",
        }
    }
}

/// A step of a bank's integration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BankStep {
    /// An inquiry answered 200.
    Inquiry,
    /// A callback answered `accepted` (a payment or a failure) or `exception`.
    CallbackAccepted,
    /// A `failed` callback accepted.
    CallbackFailedStatus,
    /// A redelivered callback answered `duplicate`.
    RedeliveryDuplicate,
    /// A request to the bank's path refused with 401 `invalid_signature`.
    BadSignatureRejected,
    /// A request to the bank's path refused with 401 `signature_expired`.
    ExpiredSignatureRejected,
    /// A valid request signed with a key the bank received after its first one.
    KeyRotated,
    /// A refund result accepted.
    RefundResult,
}

impl BankStep {
    pub const ALL: [BankStep; 8] = [
        BankStep::Inquiry,
        BankStep::CallbackAccepted,
        BankStep::CallbackFailedStatus,
        BankStep::RedeliveryDuplicate,
        BankStep::BadSignatureRejected,
        BankStep::ExpiredSignatureRejected,
        BankStep::KeyRotated,
        BankStep::RefundResult,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BankStep::Inquiry => "inquiry",
            BankStep::CallbackAccepted => "callback_accepted",
            BankStep::CallbackFailedStatus => "callback_failed_status",
            BankStep::RedeliveryDuplicate => "redelivery_duplicate",
            BankStep::BadSignatureRejected => "bad_signature_rejected",
            BankStep::ExpiredSignatureRejected => "expired_signature_rejected",
            BankStep::KeyRotated => "key_rotated",
            BankStep::RefundResult => "refund_result",
        }
    }
}
