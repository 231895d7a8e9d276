//! Payment orders: create, idempotency, references, tenancy, list, cancel,
//! expiry, and the events each change records.

use std::collections::HashSet;
use std::time::Duration;

use integration_tests::answers::assert_members;
use integration_tests::answers::{invalid, RequestExt};
use integration_tests::clock::TIMES_OUT_OF_RANGE;
use integration_tests::orders::{order_body, DESCRIPTION};
use integration_tests::world::{AGENCY, OBLIGATIONS, OTHER_AGENCY};
use integration_tests::{assert_problem, details, invalid_fields, test_config, TestApp};
use paygate::config::Config;
use reqwest::header::HeaderValue;
use reqwest::{Method, Response};
use serde_json::{json, Value};

const PAYER_NAME: &str = "Nguyễn Văn A";
/// Every member of the payment object, and nothing else.
const PAYMENT_FIELDS: [&str; 17] = [
    "id",
    "agency",
    "obligation",
    "reference",
    "amount",
    "currency",
    "description",
    "payer",
    "details",
    "status",
    "created_at",
    "expires_at",
    "paid_at",
    "bank",
    "bank_txn_id",
    "refunded_amount",
    "sandbox",
];

/// A valid create body of 150000 without `expires_at`.
fn order(obligation: &str, reference: &str) -> Value {
    order_body(obligation, reference, "150000")
}

/// `body` with the member at dotted `path` set to `value`, or removed when `value` is `None`.
fn changed(body: &Value, path: &str, value: Option<Value>) -> Value {
    let mut body = body.clone();
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().expect("a path");
    let mut object = &mut body;
    for part in parts {
        object = object.get_mut(part).expect("the path exists");
    }
    let object = object.as_object_mut().expect("an object");
    match value {
        Some(value) => object.insert(last.to_owned(), value),
        None => object.remove(last),
    };
    body
}

fn new_idempotency_key() -> String {
    paygate::domain::ids::random_id("idem", 8)
}

async fn agency_key(app: &TestApp, code: &str) -> String {
    app.create_agency(code).await["api_key"].as_str().expect("api_key").to_owned()
}

/// A fresh app with the agency `AGENCY`, and that agency's key: where most order tests start.
async fn with_agency() -> (TestApp, String) {
    let app = TestApp::spawn().await;
    let key = agency_key(&app, AGENCY).await;
    (app, key)
}

/// Posts `body` once per idempotency key, all at once; returns each answer's status, whether it
/// was a replay, and its body.
async fn post_at_once(
    app: &TestApp,
    api_key: &str,
    body: &Value,
    idempotency_keys: Vec<String>,
) -> Vec<(u16, bool, Value)> {
    let tasks: Vec<_> = idempotency_keys
        .into_iter()
        .map(|idempotency_key| {
            let request = app
                .post_with(api_key, "/v1/payments")
                .header("Idempotency-Key", idempotency_key)
                .json(body);
            tokio::spawn(async move {
                let response = request.send().await.expect("POST /v1/payments");
                let status = response.status().as_u16();
                let replayed = response.headers().get("Idempotent-Replayed").is_some();
                let answer: Value = response.json().await.expect("a JSON answer");
                (status, replayed, answer)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("a finished request"));
    }
    answers
}

async fn post_order(app: &TestApp, api_key: &str, idempotency_key: &str, body: &Value) -> Response {
    app.post_with(api_key, "/v1/payments")
        .header("Idempotency-Key", idempotency_key)
        .json(body)
        .send()
        .await
        .expect("POST /v1/payments")
}

/// Creates an order with a fresh key and returns the answer, which must be a 201.
async fn create(app: &TestApp, api_key: &str, body: &Value) -> Value {
    app.create_payment(api_key, body).await
}

fn id_of(payment: &Value) -> String {
    payment["id"].as_str().expect("id").to_owned()
}

async fn get(app: &TestApp, api_key: &str, id: &str) -> Response {
    app.get_with(api_key, &format!("/v1/payments/{id}"))
        .send()
        .await
        .expect("GET /v1/payments/{id}")
}

async fn read(app: &TestApp, api_key: &str, id: &str) -> Value {
    let response = get(app, api_key, id).await;
    assert_eq!(response.status(), 200, "reading {id}");
    response.json().await.expect("a JSON payment")
}

async fn cancel(app: &TestApp, api_key: &str, id: &str) -> Response {
    app.post_with(api_key, &format!("/v1/payments/{id}/cancel"))
        .send()
        .await
        .expect("POST /v1/payments/{id}/cancel")
}

async fn list(app: &TestApp, api_key: &str, query: &[(&str, &str)]) -> Response {
    app.list(api_key, "/v1/payments", query).await
}

/// One page, which must be a 200.
async fn page(app: &TestApp, api_key: &str, query: &[(&str, &str)]) -> Value {
    app.page(api_key, "/v1/payments", query).await
}

/// Query parameters of a list request.
type Query<'a> = Vec<(&'a str, &'a str)>;

fn ids(page: &Value) -> Vec<String> {
    page["items"].as_array().expect("items").iter().map(id_of).collect()
}

/// The rows that creating, cancelling and expiring write.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
struct Totals {
    payments: i64,
    idempotency_keys: i64,
    events: i64,
}

impl Totals {
    /// Totals of `payments` orders, `idempotency_keys` keys and `events` events.
    fn of(payments: i64, idempotency_keys: i64, events: i64) -> Totals {
        Totals { payments, idempotency_keys, events }
    }
}

async fn totals(app: &TestApp) -> Totals {
    Totals {
        payments: app.count("SELECT count(*) FROM payments").await,
        idempotency_keys: app.count("SELECT count(*) FROM idempotency_keys").await,
        events: app.count("SELECT count(*) FROM events").await,
    }
}

/// Runs `sql` with the payment id as `$1`; it must touch exactly one row.
async fn execute(app: &TestApp, sql: &str, id: &str) {
    let client = app.db.get().await.expect("a test database connection");
    let changed = client.execute(sql, &[&id]).await.expect(sql);
    assert_eq!(changed, 1, "{sql} for {id}");
}

/// Marks an order paid behind the API's back (bank `VCB` must exist).
async fn mark_paid(app: &TestApp, id: &str) {
    execute(
        app,
        "UPDATE payments SET status = 'paid', paid_at = now(), bank_code = 'VCB',
             bank_txn_id = 'X', closed_at = now()
         WHERE id = $1",
        id,
    )
    .await;
}

/// Moves a pending order's life into the past, so that it is overdue.
async fn make_overdue(app: &TestApp, id: &str) {
    execute(
        app,
        "UPDATE payments SET created_at = now() - interval '2 hours',
             expires_at = now() - interval '1 hour'
         WHERE id = $1",
        id,
    )
    .await;
}

/// The order's row as stored: status and whether it was closed.
async fn stored(app: &TestApp, id: &str) -> (String, bool) {
    let row =
        app.row("SELECT status, closed_at IS NOT NULL FROM payments WHERE id = $1", &[&id]).await;
    (row.get(0), row.get(1))
}

#[derive(Debug)]
struct Event {
    kind: String,
    agency_code: String,
    payment: Value,
}

async fn events_of(app: &TestApp, id: &str) -> Vec<Event> {
    app.rows(
        "SELECT type, agency_code, payment::text FROM events WHERE payment_id = $1 ORDER BY seq",
        &[&id],
    )
    .await
    .iter()
    .map(|row| Event {
        kind: row.get(0),
        agency_code: row.get(1),
        payment: serde_json::from_str(row.get::<_, &str>(2)).expect("a JSON payment"),
    })
    .collect()
}

/// The database clock's value of `expr` (a timestamptz) in UTC, RFC 3339 with microseconds.
async fn db_time(app: &TestApp, expr: &str) -> String {
    let sql =
        format!("SELECT to_char(({expr}) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
    app.row(&sql, &[]).await.get(0)
}

/// Polls until `condition` holds, for up to 10 seconds; returns whether it did.
async fn eventually<F, Fut>(mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if condition().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// An app whose expiry sweep runs once at start and then not for an hour, so that only the
/// request under test can change an overdue order.
async fn spawn_without_sweep() -> TestApp {
    TestApp::spawn_with(Config { expiry_interval_ms: 3_600_000, ..test_config() }).await
}

/// `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`.
fn is_wire_time(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| b[range].iter().all(u8::is_ascii_digit);
    let head = b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    let tail = match b.len() {
        20 => b[19] == b'Z',
        27 => b[19] == b'.' && digits(20..26) && b[26] == b'Z',
        _ => false,
    };
    head && tail && paygate::timefmt::parse_rfc3339(text).is_ok()
}

/// `^[A-Za-z0-9_-]{1,64}$`.
fn is_paygate_id(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn sorted(mut fields: Vec<String>) -> Vec<String> {
    fields.sort();
    fields
}

mod cancel;
mod catalog;
mod create;
mod expiry;
mod group_commit;
mod hostile_input;
mod idempotency;
mod list;
mod references;
mod tenancy;
