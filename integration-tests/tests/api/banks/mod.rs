//! Banks and the ledger: signed inquiry and callbacks, every row of the callback
//! table in its order, every way a signature fails, concurrent deliveries, and the append-only
//! double-entry ledger that callbacks post to.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use integration_tests::answers::assert_members;
use integration_tests::answers::invalid;
use integration_tests::answers::RequestExt;
use integration_tests::answers::{counter, json_200};
use integration_tests::clock::{
    now_s, paid_a_minute_ago, rfc3339, rfc3339_at_offset, TIMES_OUT_OF_RANGE,
};
use integration_tests::orders::{order_body, DESCRIPTION};
use integration_tests::signer::{header, Signer};
use integration_tests::world::{
    World, AGENCY, AMOUNT, BANK, CREATED_AT, EXPIRED_AT, OBLIGATIONS, OTHER_AGENCY, OTHER_BANK,
};
use integration_tests::{assert_problem, invalid_fields, test_config, TestApp};
use paygate::config::Config;
use paygate::signature::sign;
use reqwest::header::HeaderValue;
use reqwest::Method;
use serde_json::{json, Value};

/// A bank's time of payment before `EXPIRED_AT`, and one after it.
const PAID_IN_TIME: &str = "2025-03-01T23:59:59Z";
const PAID_TOO_LATE: &str = "2025-03-02T00:00:01Z";
/// Every member of an inquiry answer, and nothing else.
const INQUIRY_FIELDS: [&str; 8] = [
    "payment_id",
    "agency",
    "obligation",
    "amount",
    "currency",
    "description",
    "status",
    "expires_at",
];

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A `succeeded` callback for `AMOUNT` with every field given.
fn succeeded(bank_txn_id: &str, payment_id: &str, paid_at: &str) -> Value {
    json!({
        "bank_txn_id": bank_txn_id,
        "payment_id": payment_id,
        "amount": AMOUNT,
        "currency": "VND",
        "status": "succeeded",
        "paid_at": paid_at,
        "failure_reason": null,
    })
}

/// A `failed` callback for `AMOUNT`.
fn failed(bank_txn_id: &str, payment_id: &str) -> Value {
    json!({
        "bank_txn_id": bank_txn_id,
        "payment_id": payment_id,
        "amount": AMOUNT,
        "currency": "VND",
        "status": "failed",
        "failure_reason": "Tài khoản không đủ số dư",
    })
}

/// `body` with member `field` set to `value`, or removed when `value` is `None`.
fn changed(body: &Value, field: &str, value: Option<Value>) -> Value {
    let mut body = body.clone();
    let object = body.as_object_mut().expect("an object");
    match value {
        Some(value) => object.insert(field.to_owned(), value),
        None => object.remove(field),
    };
    body
}

/// Everything a bank request could change.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Snapshot {
    bank_callbacks: i64,
    ledger_transactions: i64,
    ledger_entries: i64,
    events: i64,
    callback_exceptions: i64,
    /// Each order's id, stored status, bank, bank_txn_id and paid_at.
    payments: Vec<String>,
}

async fn snapshot(app: &TestApp) -> Snapshot {
    // One connection for every read: some tests hold the pool's other one.
    let client = app.db.get().await.expect("a test database connection");
    let counts = client
        .query_one(
            "SELECT (SELECT count(*) FROM bank_callbacks),
                    (SELECT count(*) FROM ledger_transactions),
                    (SELECT count(*) FROM ledger_entries),
                    (SELECT count(*) FROM events),
                    (SELECT count(*) FROM callback_exceptions)",
            &[],
        )
        .await
        .expect("count rows");
    let payments = client
        .query(
            "SELECT format('%s %s %s %s %s', id, status, bank_code, bank_txn_id, paid_at)
             FROM payments ORDER BY id",
            &[],
        )
        .await
        .expect("read payments")
        .iter()
        .map(|row| row.get(0))
        .collect();
    Snapshot {
        bank_callbacks: counts.get(0),
        ledger_transactions: counts.get(1),
        ledger_entries: counts.get(2),
        events: counts.get(3),
        callback_exceptions: counts.get(4),
        payments,
    }
}

/// What a rejected callback that is kept for investigation leaves: one exception row, nothing else.
fn plus_one_kept(before: &Snapshot) -> Snapshot {
    Snapshot { callback_exceptions: before.callback_exceptions + 1, ..before.clone() }
}

async fn count_events(app: &TestApp, payment_id: &str, event_type: &str) -> i64 {
    app.count(&format!(
        "SELECT count(*) FROM events WHERE payment_id = '{payment_id}' AND type = '{event_type}'"
    ))
    .await
}

/// The ledger entries of `payment_id` as (account, debit, credit), in order of writing.
async fn entries_of(app: &TestApp, payment_id: &str) -> Vec<(String, String, String)> {
    app.rows(
        "SELECT e.account, e.debit::text, e.credit::text
         FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id
         WHERE t.payment_id = $1 ORDER BY e.id",
        &[&payment_id],
    )
    .await
    .iter()
    .map(|row| (row.get(0), row.get(1), row.get(2)))
    .collect()
}

fn entry(account: &str, debit: &str, credit: &str) -> (String, String, String) {
    (account.to_owned(), debit.to_owned(), credit.to_owned())
}

/// Asserts a sound ledger of `transactions` two-entry transactions moving `total` in all.
fn assert_verified(verify: &Value, transactions: i64, total: &str) {
    assert_eq!(verify["ok"], true, "{verify}");
    assert_eq!(verify["transactions"], transactions, "{verify}");
    assert_eq!(verify["entries"], 2 * transactions, "{verify}");
    assert_eq!(verify["debits"], total, "{verify}");
    assert_eq!(verify["credits"], total, "{verify}");
    assert!(verify.get("offending").is_none(), "{verify}");
}

fn agency_account(obligation: &str) -> String {
    format!("agency:{AGENCY}:{obligation}")
}

/// The item of `page` for `bank_txn_id` (exactly one).
fn exception_for<'a>(page: &'a Value, bank_txn_id: &str) -> &'a Value {
    let matching: Vec<&Value> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|item| item["bank_txn_id"] == bank_txn_id)
        .collect();
    assert_eq!(matching.len(), 1, "{bank_txn_id} in {page}");
    matching[0]
}

#[test]
fn the_test_clock_formats_unix_seconds_as_rfc_3339() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    assert_eq!(rfc3339_at_offset(1_700_000_000, 7), "2023-11-15T05:13:20+07:00");
}

mod callback_table;
mod concurrency;
mod group_commit;
mod hostile_input;
mod inquiry;
mod key_memory;
mod late_callbacks;
mod ledger;
mod signatures;
mod validation;

/// The status and the text of the answer to a request sent as `what` (which must have been
/// answered), read in full.
async fn read_answer(answer: reqwest::Result<reqwest::Response>, what: &str) -> (u16, String) {
    let response = answer.unwrap_or_else(|err| panic!("{what}: {err}"));
    let status = response.status().as_u16();
    (status, response.text().await.expect("an answer"))
}
