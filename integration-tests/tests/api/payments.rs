//! Payment orders: create, idempotency, references, tenancy, list, cancel,
//! expiry, and the events each change records.

use std::collections::HashSet;
use std::time::Duration;

use integration_tests::{assert_problem, details, invalid_fields, test_config, TestApp};
use paygate::config::Config;
use reqwest::header::HeaderValue;
use reqwest::{Method, Response};
use serde_json::{json, Value};

const AGENCY: &str = "000.00.00.H12";
const OTHER_AGENCY: &str = "000.00.00.H29";
const DESCRIPTION: &str = "Lệ phí cấp đổi giấy phép lái xe";
const PAYER_NAME: &str = "Nguyễn Văn A";
const OBLIGATIONS: [&str; 6] = [
    "fee",
    "tax",
    "social_insurance",
    "fine",
    "electricity",
    "court_advance",
];
/// Every member of the payment object, and nothing else.
const PAYMENT_FIELDS: [&str; 15] = [
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
];

/// A valid create body without `expires_at`.
fn order(obligation: &str, reference: &str) -> Value {
    json!({
        "obligation": obligation,
        "reference": reference,
        "amount": "150000",
        "currency": "VND",
        "description": DESCRIPTION,
        "payer": {"name": PAYER_NAME, "id_number": "001099012345"},
        "details": details(obligation),
    })
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
    paygate::auth::keys::random_id("idem", 8)
}

async fn agency_key(app: &TestApp, code: &str) -> String {
    app.create_agency(code).await["api_key"]
        .as_str()
        .expect("api_key")
        .to_owned()
}

async fn post_order(app: &TestApp, api_key: &str, idempotency_key: &str, body: &Value) -> Response {
    app.http
        .post(app.url("/v1/payments"))
        .bearer_auth(api_key)
        .header("Idempotency-Key", idempotency_key)
        .json(body)
        .send()
        .await
        .expect("POST /v1/payments")
}

/// Creates an order with a fresh key and returns the answer, which must be a 201.
async fn create(app: &TestApp, api_key: &str, body: &Value) -> Value {
    let response = post_order(app, api_key, &new_idempotency_key(), body).await;
    let status = response.status();
    let text = response.text().await.expect("an answer");
    assert_eq!(status, 201, "{body}: {text}");
    serde_json::from_str(&text).expect("a JSON payment")
}

fn id_of(payment: &Value) -> String {
    payment["id"].as_str().expect("id").to_owned()
}

async fn get(app: &TestApp, api_key: &str, id: &str) -> Response {
    app.http
        .get(app.url(&format!("/v1/payments/{id}")))
        .bearer_auth(api_key)
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
    app.http
        .post(app.url(&format!("/v1/payments/{id}/cancel")))
        .bearer_auth(api_key)
        .send()
        .await
        .expect("POST /v1/payments/{id}/cancel")
}

async fn list(app: &TestApp, api_key: &str, query: &[(&str, &str)]) -> Response {
    app.http
        .get(app.url("/v1/payments"))
        .bearer_auth(api_key)
        .query(query)
        .send()
        .await
        .expect("GET /v1/payments")
}

/// One page, which must be a 200.
async fn page(app: &TestApp, api_key: &str, query: &[(&str, &str)]) -> Value {
    let response = list(app, api_key, query).await;
    let status = response.status();
    let text = response.text().await.expect("an answer");
    assert_eq!(status, 200, "{query:?}: {text}");
    serde_json::from_str(&text).expect("a JSON page")
}

/// Query parameters of a list request.
type Query<'a> = Vec<(&'a str, &'a str)>;

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(id_of)
        .collect()
}

/// The rows that creating, cancelling and expiring write.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
struct Totals {
    payments: i64,
    idempotency_keys: i64,
    events: i64,
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
    let client = app.db.get().await.expect("a test database connection");
    let row = client
        .query_one(
            "SELECT status, closed_at IS NOT NULL FROM payments WHERE id = $1",
            &[&id],
        )
        .await
        .expect("the payment row");
    (row.get(0), row.get(1))
}

#[derive(Debug)]
struct Event {
    kind: String,
    agency_code: String,
    payment: Value,
}

async fn events_of(app: &TestApp, id: &str) -> Vec<Event> {
    let client = app.db.get().await.expect("a test database connection");
    client
        .query(
            "SELECT type, agency_code, payment::text FROM events WHERE payment_id = $1 ORDER BY seq",
            &[&id],
        )
        .await
        .expect("events")
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
    let client = app.db.get().await.expect("a test database connection");
    let sql =
        format!("SELECT to_char(({expr}) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
    client.query_one(&sql, &[]).await.expect(&sql).get(0)
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
    TestApp::spawn_with(Config {
        expiry_interval_ms: 3_600_000,
        ..test_config()
    })
    .await
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
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn sorted(mut fields: Vec<String>) -> Vec<String> {
    fields.sort();
    fields
}

// Create.

#[tokio::test]
async fn an_agency_creates_an_order_and_a_later_read_returns_the_identical_body() {
    let app = TestApp::spawn().await;
    let key = agency_key(&app, AGENCY).await;
    let body = order("fee", "H12.99-261122-0001");
    let before =
        paygate::timefmt::parse_rfc3339(&db_time(&app, "clock_timestamp()").await).expect("a time");

    let response = post_order(&app, &key, "order-H12.99-261122-0001", &body).await;
    assert_eq!(response.status(), 201);
    assert!(response.headers().get("Idempotent-Replayed").is_none());
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let created_text = response.text().await.unwrap();
    let after =
        paygate::timefmt::parse_rfc3339(&db_time(&app, "clock_timestamp()").await).expect("a time");
    let created: Value = serde_json::from_str(&created_text).unwrap();

    let members: HashSet<&str> = created
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(members, HashSet::from(PAYMENT_FIELDS), "{created}");
    let id = id_of(&created);
    assert!(is_paygate_id(&id), "{id}");
    assert_eq!(created["agency"], AGENCY);
    assert_eq!(created["obligation"], "fee");
    assert_eq!(created["reference"], "H12.99-261122-0001");
    assert_eq!(created["amount"], "150000");
    assert_eq!(created["currency"], "VND");
    assert_eq!(created["description"], DESCRIPTION);
    assert_eq!(
        created["payer"],
        json!({"name": PAYER_NAME, "id_number": "001099012345"})
    );
    assert_eq!(created["details"], body["details"]);
    assert_eq!(created["status"], "pending");
    for field in ["paid_at", "bank", "bank_txn_id"] {
        assert_eq!(created.get(field), Some(&Value::Null), "{field}: {created}");
    }
    // Vietnamese text is sent as UTF-8, not escaped.
    assert!(created_text.contains(DESCRIPTION) && created_text.contains(PAYER_NAME));

    let created_at = created["created_at"].as_str().unwrap();
    let expires_at = created["expires_at"].as_str().unwrap();
    assert!(is_wire_time(created_at), "{created_at}");
    assert!(is_wire_time(expires_at), "{expires_at}");
    let created_at = paygate::timefmt::parse_rfc3339(created_at).unwrap();
    let expires_at = paygate::timefmt::parse_rfc3339(expires_at).unwrap();
    assert!(
        before <= created_at && created_at <= after,
        "{created}: made between {before} and {after}"
    );
    assert_eq!(
        (expires_at - created_at).whole_microseconds(),
        24 * 3600 * 1_000_000,
        "the default expiry is exactly 24 hours: {created}"
    );

    let read = get(&app, &key, &id).await;
    assert_eq!(read.status(), 200);
    assert_eq!(read.text().await.unwrap(), created_text, "byte for byte");

    let client = app.db.get().await.unwrap();
    let row = client
        .query_one(
            "SELECT description, payer_name FROM payments WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>(0).as_bytes(), DESCRIPTION.as_bytes());
    assert_eq!(row.get::<_, &str>(1).as_bytes(), PAYER_NAME.as_bytes());
    assert_eq!(
        totals(&app).await,
        Totals {
            payments: 1,
            idempotency_keys: 1,
            events: 0
        }
    );
}

#[tokio::test]
async fn a_valid_order_of_each_obligation_is_created_with_its_details_as_sent() {
    let app = TestApp::spawn().await;
    let key = agency_key(&app, AGENCY).await;
    let mut cases: Vec<(&str, Value)> = OBLIGATIONS
        .iter()
        .map(|obligation| (*obligation, details(obligation)))
        .collect();
    cases.extend([
        ("tax", json!({"tax_code": "0101234567"})),
        ("tax", json!({"tax_code": "0101234567-001"})),
        ("fine", json!({"decision_number": "123/QĐ-XPVPHC"})),
    ]);
    for (n, (obligation, details)) in cases.iter().enumerate() {
        let body = changed(
            &order(obligation, &format!("H12-{n:03}")),
            "details",
            Some(details.clone()),
        );
        let created = create(&app, &key, &body).await;
        assert_eq!(created["obligation"], *obligation, "{created}");
        assert_eq!(created["details"], *details, "{created}");
        assert_eq!(created["status"], "pending");
        let read = read(&app, &key, &id_of(&created)).await;
        assert_eq!(read, created);
    }
    assert_eq!(
        app.count("SELECT count(*) FROM payments").await,
        cases.len() as i64
    );
}

#[tokio::test]
async fn each_invalid_details_field_of_each_obligation_is_named_and_nothing_is_created() {
    let app = TestApp::spawn().await;
    let key = agency_key(&app, AGENCY).await;
    let chars = |n: usize| json!("ệ".repeat(n));
    let cases: Vec<(&str, &str, Option<Value>)> = vec![
        // fee
        ("fee", "procedure_code", None),
        ("fee", "procedure_code", Some(json!(""))),
        ("fee", "procedure_code", Some(chars(33))),
        ("fee", "procedure_code", Some(json!(1.002804))),
        ("fee", "dossier_code", None),
        ("fee", "dossier_code", Some(json!(""))),
        ("fee", "dossier_code", Some(chars(65))),
        ("fee", "dosier_code", Some(json!("H12.99-261122-0001"))),
        // tax
        ("tax", "tax_code", None),
        ("tax", "tax_code", Some(json!("010123456"))),
        ("tax", "tax_code", Some(json!("01012345678"))),
        ("tax", "tax_code", Some(json!("010123456A"))),
        ("tax", "tax_code", Some(json!("0101234567-01"))),
        ("tax", "tax_code", Some(json!("0101234567-0012"))),
        ("tax", "tax_code", Some(json!("0101234567_001"))),
        ("tax", "tax_code", Some(json!(" 0101234567"))),
        ("tax", "tax_code", Some(json!(101234567))),
        ("tax", "tax_period", Some(json!(""))),
        ("tax", "tax_period", Some(chars(33))),
        ("tax", "tax_perod", Some(json!("Quý 4/2026"))),
        // social_insurance
        ("social_insurance", "insurance_code", None),
        (
            "social_insurance",
            "insurance_code",
            Some(json!("012345678")),
        ),
        (
            "social_insurance",
            "insurance_code",
            Some(json!("01234567890")),
        ),
        (
            "social_insurance",
            "insurance_code",
            Some(json!("012345678A")),
        ),
        ("social_insurance", "period", None),
        ("social_insurance", "period", Some(json!("2026-13"))),
        ("social_insurance", "period", Some(json!("2026-00"))),
        ("social_insurance", "period", Some(json!("2026-1"))),
        ("social_insurance", "period", Some(json!("11-2026"))),
        ("social_insurance", "period", Some(json!("2026/11"))),
        ("social_insurance", "period", Some(json!("2026-11-01"))),
        (
            "social_insurance",
            "insurance_no",
            Some(json!("0123456789")),
        ),
        // fine
        ("fine", "decision_number", None),
        ("fine", "decision_number", Some(json!(""))),
        ("fine", "decision_number", Some(chars(65))),
        ("fine", "violation_date", Some(json!("2026-02-30"))),
        ("fine", "violation_date", Some(json!("2026-13-01"))),
        ("fine", "violation_date", Some(json!("20-11-2026"))),
        ("fine", "violation_date", Some(json!("2026/11/20"))),
        (
            "fine",
            "violation_date",
            Some(json!("2026-11-20T08:00:00Z")),
        ),
        ("fine", "violation_day", Some(json!("2026-11-20"))),
        // electricity
        ("electricity", "customer_code", None),
        ("electricity", "customer_code", Some(json!("pe01000123456"))),
        ("electricity", "customer_code", Some(json!("PE0100012345"))),
        (
            "electricity",
            "customer_code",
            Some(json!("PE010001234567")),
        ),
        ("electricity", "customer_code", Some(json!("1E01000123456"))),
        ("electricity", "customer_code", Some(json!("PE01000-23456"))),
        ("electricity", "billing_period", None),
        ("electricity", "billing_period", Some(json!("2026-13"))),
        ("electricity", "billing_period", Some(json!("2026-11-01"))),
        ("electricity", "billing_perid", Some(json!("2026-11"))),
        // court_advance
        ("court_advance", "case_number", None),
        ("court_advance", "case_number", Some(json!(""))),
        ("court_advance", "case_number", Some(chars(65))),
        ("court_advance", "court_code", None),
        ("court_advance", "court_code", Some(json!(""))),
        ("court_advance", "court_code", Some(chars(33))),
        ("court_advance", "court", Some(json!("TAND-HN"))),
    ];
    for (n, (obligation, field, value)) in cases.into_iter().enumerate() {
        let body = changed(
            &order(obligation, &format!("H12-{n:03}")),
            &format!("details.{field}"),
            value,
        );
        let response = post_order(&app, &key, &new_idempotency_key(), &body).await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(
            invalid_fields(&problem),
            [format!("details.{field}")],
            "{obligation}: {}",
            body["details"]
        );
    }
    assert_eq!(
        totals(&app).await,
        Totals {
            payments: 0,
            idempotency_keys: 0,
            events: 0
        }
    );
}

#[tokio::test]
async fn each_invalid_top_level_field_is_named_and_nothing_is_created() {
    let app = TestApp::spawn().await;
    let key = agency_key(&app, AGENCY).await;
    let past = db_time(&app, "now() - interval '1 minute'").await;
    let too_far = db_time(&app, "now() + interval '30 days 1 minute'").await;
    let s = |text: &str| Some(json!(text));
    let cases: Vec<(&str, Option<Value>, Vec<&str>)> = vec![
        ("amount", Some(json!(150000)), vec!["amount"]),
        ("amount", s("0"), vec!["amount"]),
        ("amount", s("-1"), vec!["amount"]),
        ("amount", s("+1"), vec!["amount"]),
        ("amount", s("1.5"), vec!["amount"]),
        ("amount", s("150000.00"), vec!["amount"]),
        ("amount", s("01"), vec!["amount"]),
        ("amount", s("1000000000000000"), vec!["amount"]),
        ("amount", s("1e5"), vec!["amount"]),
        ("amount", s("150 000"), vec!["amount"]),
        ("amount", s(""), vec!["amount"]),
        ("amount", None, vec!["amount"]),
        ("currency", s("USD"), vec!["currency"]),
        ("currency", s("vnd"), vec!["currency"]),
        ("currency", Some(json!(704)), vec!["currency"]),
        ("description", s(""), vec!["description"]),
        (
            "description",
            Some(json!("ệ".repeat(256))),
            vec!["description"],
        ),
        ("description", None, vec!["description"]),
        ("reference", s(""), vec!["reference"]),
        ("reference", Some(json!("R".repeat(65))), vec!["reference"]),
        ("reference", Some(json!(1)), vec!["reference"]),
        ("reference", None, vec!["reference"]),
        ("payer", None, vec!["payer"]),
        ("payer", s(PAYER_NAME), vec!["payer"]),
        ("payer.name", None, vec!["payer.name"]),
        ("payer.name", s(""), vec!["payer.name"]),
        (
            "payer.name",
            Some(json!("ễ".repeat(129))),
            vec!["payer.name"],
        ),
        ("payer.id_number", s(""), vec!["payer.id_number"]),
        ("obligation", s("donation"), vec!["obligation"]),
        ("obligation", s("Fee"), vec!["obligation"]),
        ("obligation", None, vec!["obligation"]),
        ("details", None, vec!["details"]),
        ("details", Some(json!([])), vec!["details"]),
        ("expires_at", Some(json!(past)), vec!["expires_at"]),
        ("expires_at", Some(json!(too_far)), vec!["expires_at"]),
        ("expires_at", s("2026-11-25 10:00:00"), vec!["expires_at"]),
        ("expires_at", s("2026-11-25T10:00:00"), vec!["expires_at"]),
        ("expires_at", s("2026-11-25"), vec!["expires_at"]),
        ("expires_at", s("ngày mai"), vec!["expires_at"]),
        ("expires_at", Some(json!(1_795_000_000)), vec!["expires_at"]),
    ];
    for (n, (path, value, fields)) in cases.into_iter().enumerate() {
        let body = changed(&order("fee", &format!("H12-{n:03}")), path, value);
        let response = post_order(&app, &key, &new_idempotency_key(), &body).await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(invalid_fields(&problem), fields, "{body}");
    }
    assert_eq!(
        totals(&app).await,
        Totals {
            payments: 0,
            idempotency_keys: 0,
            events: 0
        }
    );
}

#[tokio::test]
async fn details_of_another_obligation_are_named_field_by_field() {
    let app = TestApp::spawn().await;
    let key = agency_key(&app, AGENCY).await;
    let body = changed(&order("fee", "H12-1"), "details", Some(details("tax")));
    let response = post_order(&app, &key, &new_idempotency_key(), &body).await;
    let problem = assert_problem(response, 422, "validation_failed").await;
    assert_eq!(
        sorted(invalid_fields(&problem)),
        [
            "details.dossier_code",
            "details.procedure_code",
            "details.tax_code",
            "details.tax_period"
        ]
    );
    assert_eq!(totals(&app).await.payments, 0);
}

#[tokio::test]
async fn a_body_with_several_invalid_fields_names_all_of_them_at_once() {
    let app = TestApp::spawn().await;
    let key = agency_key(&app, AGENCY).await;
    let body = json!({
        "obligation": "tax",
        "reference": "",
        "amount": 150000,
        "currency": "USD",
        "description": "ệ".repeat(256),
        "payer": {"id_number": "001099012345"},
        "details": {"tax_code": "0101234567-1", "tax_perod": "2026"},
        "expires_at": "tomorrow",
    });
    let response = post_order(&app, &key, &new_idempotency_key(), &body).await;
    let problem = assert_problem(response, 422, "validation_failed").await;
    assert_eq!(
        sorted(invalid_fields(&problem)),
        [
            "amount",
            "currency",
            "description",
            "details.tax_code",
            "details.tax_perod",
            "expires_at",
            "payer.name",
            "reference",
        ]
    );
    for error in problem["errors"].as_array().unwrap() {
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{error}"
        );
    }
    assert_eq!(
        totals(&app).await,
        Totals {
            payments: 0,
            idempotency_keys: 0,
            events: 0
        }
    );
}

#[tokio::test]
async fn lengths_count_characters_so_the_longest_vietnamese_texts_and_largest_amount_are_accepted()
{
    let app = TestApp::spawn().await;
    let key = agency_key(&app, AGENCY).await;
    let description = "ệ".repeat(255);
    let name = "Nguyễn".repeat(21) + "ễễ";
    assert_eq!(name.chars().count(), 128);
    let reference = "R".repeat(64);
    let body = json!({
        "obligation": "tax",
        "reference": reference,
        "amount": "999999999999999",
        "description": description,
        "payer": {"name": name},
        "details": {"tax_code": "0101234567-001"},
    });
    let created = create(&app, &key, &body).await;
    assert_eq!(created["description"], description.as_str());
    assert_eq!(created["payer"], json!({"name": name}), "id_number omitted");
    assert_eq!(created["reference"], reference.as_str());
    assert_eq!(created["amount"], "999999999999999");
    assert_eq!(created["currency"], "VND", "the default currency");
    assert_eq!(read(&app, &key, &id_of(&created)).await, created);
}

#[tokio::test]
async fn expires_at_with_any_offset_is_kept_and_answered_in_utc() {
    let app = TestApp::spawn().await;
    let key = agency_key(&app, AGENCY).await;
    // Two days ahead at a whole second, written in Vietnam time with a fraction of 7 digits.
    let client = app.db.get().await.unwrap();
    let row = client
        .query_one(
            "WITH t AS (SELECT date_trunc('second', now() + interval '2 days') AS at)
             SELECT to_char(at AT TIME ZONE 'UTC' + interval '7 hours',
                            'YYYY-MM-DD\"T\"HH24:MI:SS\".5000009+07:00\"'),
                    to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\".500000Z\"')
             FROM t",
            &[],
        )
        .await
        .unwrap();
    let (input, expected): (String, String) = (row.get(0), row.get(1));
    let body = changed(&order("fee", "H12-1"), "expires_at", Some(json!(input)));
    let created = create(&app, &key, &body).await;
    assert_eq!(created["expires_at"], expected.as_str(), "{input}");

    let at_limit = db_time(&app, "now() + interval '29 days 23 hours'").await;
    let body = changed(&order("fee", "H12-2"), "expires_at", Some(json!(at_limit)));
    let created = create(&app, &key, &body).await;
    assert_eq!(created["expires_at"], at_limit.as_str());
}

#[tokio::test]
async fn an_expires_at_a_moment_ahead_answers_201_or_422_never_an_internal_error() {
    let app = TestApp::spawn().await;
    let key = agency_key(&app, AGENCY).await;
    // The app's clock and the database's disagree by the time a request takes: an expiry that
    // is still ahead when validated may be behind the order's creation time.
    for n in 0..40 {
        let at = db_time(&app, "clock_timestamp() + interval '1 millisecond'").await;
        let body = changed(
            &order("fee", &format!("H12-{n:03}")),
            "expires_at",
            Some(json!(at)),
        );
        let response = post_order(&app, &key, &new_idempotency_key(), &body).await;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        match status {
            201 => {}
            422 => {
                let problem: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(invalid_fields(&problem), ["expires_at"], "{text}");
            }
            _ => panic!("expires_at {at}: {status} {text}"),
        }
    }
    assert_eq!(
        app.count("SELECT count(*) FROM payments").await,
        app.count("SELECT count(*) FROM idempotency_keys").await
    );
}

#[tokio::test]
async fn unknown_top_level_fields_are_ignored() {
    let app = TestApp::spawn().await;
    let key = agency_key(&app, AGENCY).await;
    let body = changed(
        &order("electricity", "EVN-2026-11-0001"),
        "ghi_chu",
        Some(json!({"kênh": "Cổng DVC quốc gia"})),
    );
    let created = create(&app, &key, &body).await;
    assert!(created.get("ghi_chu").is_none(), "{created}");
    assert_eq!(created["details"], details("electricity"));
    assert_eq!(app.count("SELECT count(*) FROM payments").await, 1);
}

#[tokio::test]
async fn creating_needs_an_agency_key() {
    let app = TestApp::spawn().await;
    agency_key(&app, AGENCY).await;
    let auditor = app.key_with_role("auditor").await;
    let body = order("fee", "H12-1");
    let send = |key: Option<&str>| {
        let request = app
            .http
            .post(app.url("/v1/payments"))
            .header("Idempotency-Key", "order-1")
            .json(&body);
        match key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
        .send()
    };
    assert_problem(send(None).await.unwrap(), 401, "unauthenticated").await;
    assert_problem(
        send(Some("pgk_not-a-key-paygate-ever-issued"))
            .await
            .unwrap(),
        401,
        "unauthenticated",
    )
    .await;
    assert_problem(
        send(Some(app.admin_key.as_str())).await.unwrap(),
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        send(Some(auditor.as_str())).await.unwrap(),
        403,
        "forbidden",
    )
    .await;
    assert_eq!(
        totals(&app).await,
        Totals {
            payments: 0,
            idempotency_keys: 0,
            events: 0
        }
    );
}

#[tokio::test]
async fn a_missing_or_malformed_idempotency_key_answers_400_and_creates_nothing() {
    let app = TestApp::spawn().await;
    let key = agency_key(&app, AGENCY).await;
    let body = order("fee", "H12-1");
    let cases: Vec<Option<HeaderValue>> = vec![
        None,
        Some(HeaderValue::from_static("")),
        Some(HeaderValue::from_str(&"k".repeat(256)).unwrap()),
        Some(HeaderValue::from_static("order\t1")),
        Some(HeaderValue::from_bytes("khóa-1".as_bytes()).unwrap()),
    ];
    for value in cases {
        let mut request = app
            .http
            .post(app.url("/v1/payments"))
            .bearer_auth(&key)
            .json(&body);
        if let Some(value) = value.clone() {
            request = request.header("Idempotency-Key", value);
        }
        let response = request.send().await.unwrap();
        assert_problem(response, 400, "idempotency_key_required").await;
    }
    assert_eq!(
        totals(&app).await,
        Totals {
            payments: 0,
            idempotency_keys: 0,
            events: 0
        }
    );

    // 255 printable characters, a space among them, are a key.
    let mut longest: String = (0..255u8).map(|i| char::from(b'!' + i % 94)).collect();
    longest.replace_range(100..101, " ");
    let response = post_order(&app, &key, &longest, &body).await;
    assert_eq!(response.status(), 201);
    let client = app.db.get().await.unwrap();
    let stored: String = client
        .query_one("SELECT key FROM idempotency_keys", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, longest);
}

// Idempotency.

#[tokio::test]
async fn replaying_a_key_with_the_same_body_in_another_key_order_answers_the_same_and_creates_nothing(
) {
    let app = TestApp::spawn().await;
    let key = agency_key(&app, AGENCY).await;
    let body = order("social_insurance", "BHXH-2026-11-0001");
    let response = post_order(&app, &key, "bhxh-0001", &body).await;
    assert_eq!(response.status(), 201);
    let first: Value = response.json().await.unwrap();
    let after_first = totals(&app).await;

    // The same JSON value, written with every object's members reversed and other spacing.
    let reordered = r#"{ "details" : {"period": "2026-11", "insurance_code": "0123456789"},
        "payer": {"id_number": "001099012345", "name": "Nguyễn Văn A"},
        "description": "Lệ phí cấp đổi giấy phép lái xe", "currency": "VND",
        "amount": "150000", "reference": "BHXH-2026-11-0001", "obligation": "social_insurance" }"#;
    assert_eq!(serde_json::from_str::<Value>(reordered).unwrap(), body);
    for _ in 0..2 {
        let response = app
            .http
            .post(app.url("/v1/payments"))
            .bearer_auth(&key)
            .header("Idempotency-Key", "bhxh-0001")
            .header("Content-Type", "application/json")
            .body(reordered)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        assert_eq!(
            response.headers().get("Idempotent-Replayed").unwrap(),
            "true"
        );
        let replayed: Value = response.json().await.unwrap();
        assert_eq!(replayed, first);
    }
    assert_eq!(totals(&app).await, after_first);
    assert_eq!(
        after_first,
        Totals {
            payments: 1,
            idempotency_keys: 1,
            events: 0
        }
    );
}

#[tokio::test]
async fn a_replay_answers_the_first_answer_byte_for_byte() {
    let app = TestApp::spawn().await;
    let key = agency_key(&app, AGENCY).await;
    let body = order("fee", "H12.99-261122-0001");
    let response = post_order(&app, &key, "order-1", &body).await;
    assert_eq!(response.status(), 201);
    let first = response.text().await.unwrap();
    let response = post_order(&app, &key, "order-1", &body).await;
    assert_eq!(response.status(), 201);
    assert_eq!(
        response.headers().get("Idempotent-Replayed").unwrap(),
        "true"
    );
    assert_eq!(response.text().await.unwrap(), first, "the same body again");
}

#[tokio::test]
async fn a_replay_after_the_orders_expires_at_has_passed_still_answers_the_first_answer() {
    let app = TestApp::spawn().await;
    let key = agency_key(&app, AGENCY).await;
    let soon = db_time(&app, "now() + interval '1 second'").await;
    let body = changed(&order("fee", "H12-1"), "expires_at", Some(json!(soon)));
    let response = post_order(&app, &key, "order-1", &body).await;
    assert_eq!(response.status(), 201);
    let first: Value = response.json().await.unwrap();
    let id = id_of(&first);
    let expired = eventually(|| async { stored(&app, &id).await.0 == "expired" }).await;
    assert!(expired, "{id} expired");
    let before = totals(&app).await;

    // A client retrying after a lost answer must learn that its order exists.
    let response = post_order(&app, &key, "order-1", &body).await;
    let status = response.status();
    let replayed = response.headers().get("Idempotent-Replayed").cloned();
    let text = response.text().await.unwrap();
    assert_eq!(status, 201, "{text}");
    assert_eq!(replayed.unwrap(), "true");
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), first);
    assert_eq!(totals(&app).await, before);
}

#[tokio::test]
async fn the_same_key_with_a_different_body_answers_422_idempotency_key_reused() {
    let app = TestApp::spawn().await;
    let key = agency_key(&app, AGENCY).await;
    let body = order("fee", "H12-1");
    assert_eq!(post_order(&app, &key, "order-1", &body).await.status(), 201);
    let before = totals(&app).await;
    for other in [
        changed(&body, "amount", Some(json!("150001"))),
        changed(&body, "reference", Some(json!("H12-2"))),
        changed(&body, "currency", None),
        changed(&body, "note", Some(json!("x"))),
    ] {
        let response = post_order(&app, &key, "order-1", &other).await;
        assert_problem(response, 422, "idempotency_key_reused").await;
    }
    assert_eq!(totals(&app).await, before);
    assert_eq!(
        app.count("SELECT count(*) FROM payments WHERE reference = 'H12-2'")
            .await,
        0
    );
}

#[tokio::test]
async fn a_failed_request_leaves_its_key_free_for_the_corrected_request() {
    let app = TestApp::spawn().await;
    let key = agency_key(&app, AGENCY).await;
    let body = order("tax", "THUE-2026-0001");

    let invalid = changed(&body, "details.tax_code", Some(json!("01012345")));
    let response = post_order(&app, &key, "thue-1", &invalid).await;
    assert_problem(response, 422, "validation_failed").await;
    assert_eq!(app.count("SELECT count(*) FROM idempotency_keys").await, 0);
    let response = post_order(&app, &key, "thue-1", &body).await;
    assert_eq!(response.status(), 201);
    assert!(response.headers().get("Idempotent-Replayed").is_none());

    // A conflict fails too, and frees its key as well.
    let clash = changed(&body, "amount", Some(json!("2000000")));
    let response = post_order(&app, &key, "thue-2", &clash).await;
    assert_problem(response, 409, "duplicate_reference").await;
    assert_eq!(app.count("SELECT count(*) FROM idempotency_keys").await, 1);
    let corrected = changed(&clash, "reference", Some(json!("THUE-2026-0002")));
    let response = post_order(&app, &key, "thue-2", &corrected).await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["amount"], "2000000");
    assert_eq!(
        totals(&app).await,
        Totals {
            payments: 2,
            idempotency_keys: 2,
            events: 0
        }
    );
}

#[tokio::test]
async fn idempotency_keys_belong_to_one_agency() {
    let app = TestApp::spawn().await;
    let a = agency_key(&app, AGENCY).await;
    let b = agency_key(&app, OTHER_AGENCY).await;
    let body = order("fee", "HS-0001");
    let response = post_order(&app, &a, "order-1", &body).await;
    assert_eq!(response.status(), 201);
    let first: Value = response.json().await.unwrap();
    let response = post_order(&app, &b, "order-1", &body).await;
    assert_eq!(response.status(), 201);
    assert!(response.headers().get("Idempotent-Replayed").is_none());
    let second: Value = response.json().await.unwrap();
    assert_ne!(first["id"], second["id"]);
    assert_eq!(first["agency"], AGENCY);
    assert_eq!(second["agency"], OTHER_AGENCY);
    assert_eq!(
        totals(&app).await,
        Totals {
            payments: 2,
            idempotency_keys: 2,
            events: 0
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_requests_with_one_key_create_exactly_one_order() {
    let app = TestApp::spawn().await;
    let key = agency_key(&app, AGENCY).await;
    let body = order("court_advance", "TA-456-2026");
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let request = app
                .http
                .post(app.url("/v1/payments"))
                .bearer_auth(&key)
                .header("Idempotency-Key", "tam-ung-an-phi-456")
                .json(&body);
            tokio::spawn(async move {
                let response = request.send().await.expect("POST /v1/payments");
                let status = response.status().as_u16();
                let replayed = response.headers().get("Idempotent-Replayed").is_some();
                let answer: Value = response.json().await.expect("a JSON answer");
                (status, replayed, answer)
            })
        })
        .collect();
    let mut ids = HashSet::new();
    let mut originals = 0;
    for task in tasks {
        let (status, replayed, answer) = task.await.unwrap();
        match status {
            201 => {
                ids.insert(id_of(&answer));
                if !replayed {
                    originals += 1;
                }
            }
            409 => assert_eq!(answer["code"], "idempotency_key_in_use", "{answer}"),
            _ => panic!("unexpected {status}: {answer}"),
        }
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(originals, 1, "exactly one answer is not a replay");
    assert_eq!(
        totals(&app).await,
        Totals {
            payments: 1,
            idempotency_keys: 1,
            events: 0
        }
    );
}

// References.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_orders_with_one_reference_and_different_keys_create_exactly_one() {
    let app = TestApp::spawn().await;
    let key = agency_key(&app, AGENCY).await;
    let body = order("tax", "THUE-2026-Q4-0101234567");
    let tasks: Vec<_> = (0..10)
        .map(|n| {
            let request = app
                .http
                .post(app.url("/v1/payments"))
                .bearer_auth(&key)
                .header("Idempotency-Key", format!("thue-q4-{n}"))
                .json(&body);
            tokio::spawn(async move {
                let response = request.send().await.expect("POST /v1/payments");
                let status = response.status().as_u16();
                let answer: Value = response.json().await.expect("a JSON answer");
                (status, answer)
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        let (status, answer) = task.await.unwrap();
        match status {
            201 => created += 1,
            409 => assert_eq!(answer["code"], "duplicate_reference", "{answer}"),
            _ => panic!("unexpected {status}: {answer}"),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(
        totals(&app).await,
        Totals {
            payments: 1,
            idempotency_keys: 1,
            events: 0
        }
    );
}

#[tokio::test]
async fn a_reference_is_refused_while_its_order_is_pending_or_paid() {
    let app = TestApp::spawn().await;
    app.create_bank("VCB").await;
    let key = agency_key(&app, AGENCY).await;
    let body = order("fine", "CSGT-HN-0001");
    let first = create(&app, &key, &body).await;
    let again = changed(&body, "amount", Some(json!("250000")));

    let before = totals(&app).await;
    let response = post_order(&app, &key, &new_idempotency_key(), &again).await;
    assert_problem(response, 409, "duplicate_reference").await;
    assert_eq!(totals(&app).await, before);

    mark_paid(&app, &id_of(&first)).await;
    let response = post_order(&app, &key, &new_idempotency_key(), &again).await;
    assert_problem(response, 409, "duplicate_reference").await;
    assert_eq!(totals(&app).await, before);

    // References are the agency's own: another agency may use the same text.
    let other = agency_key(&app, OTHER_AGENCY).await;
    let created = create(&app, &other, &body).await;
    assert_eq!(created["agency"], OTHER_AGENCY);
}

#[tokio::test]
async fn a_reference_is_free_again_after_its_order_is_cancelled() {
    let app = TestApp::spawn().await;
    let key = agency_key(&app, AGENCY).await;
    let body = order("fee", "H12.99-261122-0001");
    let first = create(&app, &key, &body).await;
    assert_eq!(cancel(&app, &key, &id_of(&first)).await.status(), 200);
    let second = create(&app, &key, &body).await;
    assert_ne!(first["id"], second["id"]);
    assert_eq!(second["status"], "pending");
    assert_eq!(
        read(&app, &key, &id_of(&first)).await["status"],
        "cancelled"
    );
    let page = page(&app, &key, &[("reference", "H12.99-261122-0001")]).await;
    assert_eq!(ids(&page), [id_of(&second), id_of(&first)]);
}

#[tokio::test]
async fn an_overdue_pending_order_frees_its_reference_and_then_reads_as_expired() {
    let app = spawn_without_sweep().await;
    let key = agency_key(&app, AGENCY).await;
    let body = order("electricity", "EVN-PE01000123456-2026-11");
    let first = create(&app, &key, &body).await;
    let first_id = id_of(&first);
    make_overdue(&app, &first_id).await;
    assert_eq!(stored(&app, &first_id).await, ("pending".to_owned(), false));

    let second = create(&app, &key, &body).await;
    assert_ne!(id_of(&second), first_id);
    assert_eq!(second["status"], "pending");

    let old = read(&app, &key, &first_id).await;
    assert_eq!(old["status"], "expired");
    assert_eq!(stored(&app, &first_id).await, ("expired".to_owned(), true));
    let events = events_of(&app, &first_id).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].kind, "payment.expired");
    assert_eq!(events[0].agency_code, AGENCY);
    assert_eq!(events[0].payment, old);
    assert!(events_of(&app, &id_of(&second)).await.is_empty());
}

// Tenancy.

#[tokio::test]
async fn another_agencys_order_answers_404_exactly_like_a_missing_one() {
    let app = TestApp::spawn().await;
    let a = agency_key(&app, AGENCY).await;
    let b = agency_key(&app, OTHER_AGENCY).await;
    let order_of_a = create(&app, &a, &order("tax", "THUE-1")).await;
    let id = id_of(&order_of_a);
    let missing = "pay_0123456789abcdef01234567";
    let before = totals(&app).await;

    let foreign = assert_problem(get(&app, &b, &id).await, 404, "payment_not_found").await;
    let absent = assert_problem(get(&app, &b, missing).await, 404, "payment_not_found").await;
    assert_eq!(
        foreign.to_string().replace(&id, "ID"),
        absent.to_string().replace(missing, "ID")
    );
    let foreign = assert_problem(cancel(&app, &b, &id).await, 404, "payment_not_found").await;
    let absent = assert_problem(cancel(&app, &b, missing).await, 404, "payment_not_found").await;
    assert_eq!(
        foreign.to_string().replace(&id, "ID"),
        absent.to_string().replace(missing, "ID")
    );

    // Ids paygate could not have made name nothing either.
    let too_long = "p".repeat(65);
    for bad in [too_long.as_str(), "pay.1", "pay%20x"] {
        assert_problem(get(&app, &a, bad).await, 404, "payment_not_found").await;
        assert_problem(cancel(&app, &a, bad).await, 404, "payment_not_found").await;
    }

    assert_eq!(totals(&app).await, before);
    assert_eq!(read(&app, &a, &id).await, order_of_a);
}

#[tokio::test]
async fn admins_and_auditors_read_any_order() {
    let app = TestApp::spawn().await;
    let a = agency_key(&app, AGENCY).await;
    let auditor = app.key_with_role("auditor").await;
    let created = create(&app, &a, &order("social_insurance", "BHXH-1")).await;
    let id = id_of(&created);
    for key in [&app.admin_key, &auditor] {
        assert_eq!(read(&app, key, &id).await, created);
    }
    for key in [&app.admin_key, &auditor] {
        assert_problem(
            get(&app, key, "pay_missing").await,
            404,
            "payment_not_found",
        )
        .await;
    }
}

#[tokio::test]
async fn an_agency_lists_only_its_own_orders_and_admins_and_auditors_may_filter_by_agency() {
    let app = TestApp::spawn().await;
    let a = agency_key(&app, AGENCY).await;
    let b = agency_key(&app, OTHER_AGENCY).await;
    let auditor = app.key_with_role("auditor").await;
    let mut of_a = Vec::new();
    let mut of_b = Vec::new();
    for n in 0..3 {
        of_a.push(id_of(
            &create(&app, &a, &order("fee", &format!("A-{n}"))).await,
        ));
        if n < 2 {
            of_b.push(id_of(
                &create(&app, &b, &order("fee", &format!("B-{n}"))).await,
            ));
        }
    }
    of_a.reverse();
    of_b.reverse();

    assert_eq!(ids(&page(&app, &a, &[]).await), of_a);
    assert_eq!(ids(&page(&app, &b, &[]).await), of_b);
    // An agency naming another agency still sees only its own.
    assert_eq!(ids(&page(&app, &b, &[("agency", AGENCY)]).await), of_b);
    assert!(ids(&page(&app, &b, &[("reference", "A-0")]).await).is_empty());

    for key in [&app.admin_key, &auditor] {
        assert_eq!(ids(&page(&app, key, &[]).await).len(), 5);
        assert_eq!(ids(&page(&app, key, &[("agency", AGENCY)]).await), of_a);
        assert_eq!(
            ids(&page(&app, key, &[("agency", OTHER_AGENCY)]).await),
            of_b
        );
        assert!(ids(&page(&app, key, &[("agency", "000.00.00.X99")]).await).is_empty());
        for bad in ["h12", "", "A", "ệ"] {
            let response = list(&app, key, &[("agency", bad)]).await;
            let problem = assert_problem(response, 422, "validation_failed").await;
            assert_eq!(invalid_fields(&problem), ["agency"], "{bad:?}");
        }
    }
}

#[tokio::test]
async fn reading_listing_and_cancelling_need_a_key() {
    let app = TestApp::spawn().await;
    let a = agency_key(&app, AGENCY).await;
    let id = id_of(&create(&app, &a, &order("fee", "H12-1")).await);
    for (method, path) in [
        (Method::GET, format!("/v1/payments/{id}")),
        (Method::GET, "/v1/payments".to_owned()),
        (Method::POST, format!("/v1/payments/{id}/cancel")),
    ] {
        let response = app
            .http
            .request(method.clone(), app.url(&path))
            .send()
            .await
            .unwrap();
        assert_problem(response, 401, "unauthenticated").await;
    }
    assert_eq!(stored(&app, &id).await, ("pending".to_owned(), false));
}

// List.

#[tokio::test]
async fn pages_of_seven_walk_twenty_five_orders_newest_first_each_exactly_once() {
    let app = TestApp::spawn().await;
    let key = agency_key(&app, AGENCY).await;
    let mut created = Vec::new();
    for n in 0..25 {
        let obligation = OBLIGATIONS[n % OBLIGATIONS.len()];
        created.push(create(&app, &key, &order(obligation, &format!("H12-{n:03}"))).await);
    }
    let newest_first: Vec<Value> = created.iter().rev().cloned().collect();

    let mut walked: Vec<Value> = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![("limit", "7")];
        if let Some(cursor) = &cursor {
            query.push(("cursor", cursor.as_str()));
        }
        let page = page(&app, &key, &query).await;
        let items = page["items"].as_array().unwrap();
        sizes.push(items.len());
        walked.extend(items.iter().cloned());
        match &page["next_cursor"] {
            Value::Null => break,
            Value::String(next) => {
                assert!(is_paygate_id(next), "{next}");
                cursor = Some(next.clone());
            }
            other => panic!("next_cursor {other}"),
        }
        assert!(sizes.len() < 10, "the walk does not end");
    }
    assert_eq!(sizes, [7, 7, 7, 4]);
    assert_eq!(
        walked, newest_first,
        "every order once, newest first, as read"
    );
    let times: Vec<_> = walked
        .iter()
        .map(|p| paygate::timefmt::parse_rfc3339(p["created_at"].as_str().unwrap()).unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");

    // Without a limit, one page of at most 100 holds them all.
    let all = page(&app, &key, &[]).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 25);
    assert_eq!(all["next_cursor"], Value::Null);
    // A page that ends exactly at the last order still says whether more follow.
    let exact = page(&app, &key, &[("limit", "25")]).await;
    assert_eq!(exact["next_cursor"], Value::Null);
    let widest = page(&app, &key, &[("limit", "500")]).await;
    assert_eq!(widest, all);
    let one = page(&app, &key, &[("limit", "1")]).await;
    assert_eq!(ids(&one), [id_of(&created[24])]);
    assert!(one["next_cursor"].is_string());
}

#[tokio::test]
async fn the_list_filters_by_status_obligation_reference_and_creation_time() {
    let app = TestApp::spawn().await;
    app.create_bank("VCB").await;
    let key = agency_key(&app, AGENCY).await;
    let created = [
        create(&app, &key, &order("fee", "F-1")).await,
        create(&app, &key, &order("tax", "T-1")).await,
        create(&app, &key, &order("fine", "X-1")).await,
        create(&app, &key, &order("fee", "F-2")).await,
    ];
    let [o1, o2, o3, o4] = created.each_ref().map(id_of);
    let [_, t2, t3, t4] = created
        .each_ref()
        .map(|p| p["created_at"].as_str().unwrap().to_owned());
    mark_paid(&app, &o2).await;
    assert_eq!(cancel(&app, &key, &o4).await.status(), 200);
    // The instant of `t2`, written in Vietnam time.
    let client = app.db.get().await.unwrap();
    let t2_vietnam: String = client
        .query_one(
            "SELECT to_char($1::text::timestamptz AT TIME ZONE 'UTC' + interval '7 hours',
                            'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+07:00\"')",
            &[&t2],
        )
        .await
        .unwrap()
        .get(0);

    let cases: Vec<(Query, Vec<&String>)> = vec![
        (vec![("status", "pending")], vec![&o3, &o1]),
        (vec![("status", "paid")], vec![&o2]),
        (vec![("status", "cancelled")], vec![&o4]),
        (vec![("status", "expired")], vec![]),
        (vec![("obligation", "fee")], vec![&o4, &o1]),
        (vec![("obligation", "electricity")], vec![]),
        (
            vec![("obligation", "fee"), ("status", "pending")],
            vec![&o1],
        ),
        (vec![("reference", "T-1")], vec![&o2]),
        (vec![("reference", "t-1")], vec![]),
        (vec![("created_from", &*t2)], vec![&o4, &o3, &o2]),
        (vec![("created_from", &*t2_vietnam)], vec![&o4, &o3, &o2]),
        (vec![("created_to", &*t3)], vec![&o2, &o1]),
        (
            vec![("created_from", &*t2), ("created_to", &*t4)],
            vec![&o3, &o2],
        ),
        (vec![("created_from", &*t2), ("created_to", &*t2)], vec![]),
        (
            vec![
                ("created_from", &*t2),
                ("limit", "2"),
                ("status", "pending"),
            ],
            vec![&o3],
        ),
    ];
    for (query, expected) in cases {
        let page = page(&app, &key, &query).await;
        assert_eq!(
            ids(&page),
            expected.into_iter().cloned().collect::<Vec<_>>(),
            "{query:?}"
        );
        assert_eq!(page["next_cursor"], Value::Null, "{query:?}");
    }

    // An overdue pending order is listed as expired before the sweep reaches it, too.
    make_overdue(&app, &o1).await;
    let expired = page(&app, &key, &[("status", "expired")]).await;
    assert_eq!(ids(&expired), [o1]);
    assert_eq!(expired["items"][0]["status"], "expired");
    assert_eq!(ids(&page(&app, &key, &[("status", "pending")]).await), [o3]);
}

#[tokio::test]
async fn invalid_list_parameters_answer_422_naming_the_parameter() {
    let app = TestApp::spawn().await;
    let key = agency_key(&app, AGENCY).await;
    create(&app, &key, &order("fee", "H12-1")).await;
    let before = totals(&app).await;
    for (name, value) in [
        ("limit", "0"),
        ("limit", "501"),
        ("limit", "-1"),
        ("limit", "x"),
        ("limit", "7.5"),
        ("limit", ""),
        ("cursor", "abc"),
        ("cursor", "not a cursor!"),
        ("cursor", ""),
        ("status", "open"),
        ("status", "PENDING"),
        ("obligation", "donation"),
        ("created_from", "yesterday"),
        ("created_from", "2026-11-24"),
        ("created_from", "2026-11-24 10:00:00"),
        ("created_to", "2026-11-24T10:00:00"),
    ] {
        let response = list(&app, &key, &[(name, value)]).await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(invalid_fields(&problem), [name], "{name}={value:?}");
    }
    let response = list(
        &app,
        &key,
        &[("limit", "0"), ("status", "open"), ("created_to", "x")],
    )
    .await;
    let problem = assert_problem(response, 422, "validation_failed").await;
    assert_eq!(
        sorted(invalid_fields(&problem)),
        ["created_to", "limit", "status"]
    );
    assert_eq!(totals(&app).await, before);
}

// Cancel.

#[tokio::test]
async fn cancelling_a_pending_order_answers_cancelled_and_records_one_event() {
    let app = TestApp::spawn().await;
    let key = agency_key(&app, AGENCY).await;
    let created = create(&app, &key, &order("fee", "H12-1")).await;
    let id = id_of(&created);

    let response = cancel(&app, &key, &id).await;
    assert_eq!(response.status(), 200);
    let cancelled: Value = response.json().await.unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    for field in PAYMENT_FIELDS {
        if field != "status" {
            assert_eq!(cancelled[field], created[field], "{field}");
        }
    }
    assert_eq!(stored(&app, &id).await, ("cancelled".to_owned(), true));
    assert_eq!(read(&app, &key, &id).await, cancelled);
    let events = events_of(&app, &id).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].kind, "payment.cancelled");
    assert_eq!(events[0].agency_code, AGENCY);
    assert_eq!(events[0].payment, cancelled);

    let response = cancel(&app, &key, &id).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), cancelled);
    assert_eq!(events_of(&app, &id).await.len(), 1);
    assert_eq!(
        totals(&app).await,
        Totals {
            payments: 1,
            idempotency_keys: 1,
            events: 1
        }
    );
}

#[tokio::test]
async fn a_paid_order_is_not_cancellable() {
    let app = TestApp::spawn().await;
    app.create_bank("VCB").await;
    let key = agency_key(&app, AGENCY).await;
    let id = id_of(&create(&app, &key, &order("tax", "THUE-1")).await);
    mark_paid(&app, &id).await;
    let before = totals(&app).await;
    for caller in [&key, &app.admin_key] {
        assert_problem(cancel(&app, caller, &id).await, 409, "not_cancellable").await;
    }
    assert_eq!(stored(&app, &id).await, ("paid".to_owned(), true));
    assert_eq!(totals(&app).await, before);
    let paid = read(&app, &key, &id).await;
    assert_eq!(paid["status"], "paid");
    assert_eq!(paid["bank"], "VCB");
    assert_eq!(paid["bank_txn_id"], "X");
    assert!(is_wire_time(paid["paid_at"].as_str().unwrap()), "{paid}");
}

#[tokio::test]
async fn an_overdue_pending_order_is_not_cancellable_and_cancel_changes_nothing() {
    let app = spawn_without_sweep().await;
    let key = agency_key(&app, AGENCY).await;
    let id = id_of(&create(&app, &key, &order("fine", "CSGT-1")).await);
    make_overdue(&app, &id).await;
    let before = totals(&app).await;
    assert_problem(cancel(&app, &key, &id).await, 409, "not_cancellable").await;
    assert_eq!(stored(&app, &id).await, ("pending".to_owned(), false));
    assert_eq!(totals(&app).await, before);
    assert_eq!(read(&app, &key, &id).await["status"], "expired");
}

#[tokio::test]
async fn an_auditor_cannot_cancel_and_an_admin_may_cancel_any_order() {
    let app = TestApp::spawn().await;
    let key = agency_key(&app, AGENCY).await;
    let auditor = app.key_with_role("auditor").await;
    let id = id_of(&create(&app, &key, &order("electricity", "EVN-1")).await);
    let before = totals(&app).await;
    assert_problem(cancel(&app, &auditor, &id).await, 403, "forbidden").await;
    assert_eq!(stored(&app, &id).await, ("pending".to_owned(), false));
    assert_eq!(totals(&app).await, before);

    let response = cancel(&app, &app.admin_key, &id).await;
    assert_eq!(response.status(), 200);
    let cancelled: Value = response.json().await.unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["agency"], AGENCY);
    let events = events_of(&app, &id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, "payment.cancelled");
    assert_eq!(events[0].agency_code, AGENCY);
    assert_eq!(events[0].payment, cancelled);
    assert_problem(
        cancel(&app, &app.admin_key, "pay_missing").await,
        404,
        "payment_not_found",
    )
    .await;
}

// Expiry.

#[tokio::test]
async fn the_sweep_expires_an_overdue_order_with_exactly_one_event() {
    let app = TestApp::spawn().await;
    let key = agency_key(&app, AGENCY).await;
    let overdue = id_of(&create(&app, &key, &order("social_insurance", "BHXH-1")).await);
    let current = id_of(&create(&app, &key, &order("social_insurance", "BHXH-2")).await);
    make_overdue(&app, &overdue).await;

    let expired = eventually(|| async { stored(&app, &overdue).await.0 == "expired" }).await;
    assert!(expired, "the sweep did not expire {overdue} within 10 s");
    // A few more rounds of the sweep must not record it again.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(stored(&app, &overdue).await, ("expired".to_owned(), true));
    let read = read(&app, &key, &overdue).await;
    assert_eq!(read["status"], "expired");
    let events = events_of(&app, &overdue).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].kind, "payment.expired");
    assert_eq!(events[0].agency_code, AGENCY);
    assert_eq!(events[0].payment, read);

    assert_eq!(stored(&app, &current).await, ("pending".to_owned(), false));
    assert!(events_of(&app, &current).await.is_empty());
    assert_eq!(app.count("SELECT count(*) FROM events").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_racing_the_sweep_ends_cancelled_or_expired_never_both() {
    const ORDERS: usize = 20;
    let app = TestApp::spawn().await;
    let key = agency_key(&app, AGENCY).await;
    let mut ids = Vec::new();
    for n in 0..ORDERS {
        ids.push(id_of(
            &create(&app, &key, &order("fee", &format!("RACE-{n:02}"))).await,
        ));
    }
    // Order n falls due 200 + 40n ms from now, and its cancel arrives 50 (19 - n) ms from now:
    // the first ones are due long before their cancel, the last ones long after, and those in
    // between race the sweep (every 200 ms).
    let client = app.db.get().await.unwrap();
    client
        .execute(
            "UPDATE payments SET expires_at = clock_timestamp()
                 + make_interval(secs => 0.2 + 0.04 * (substring(reference from 6)::int))
             WHERE reference LIKE 'RACE-%'",
            &[],
        )
        .await
        .unwrap();
    let tasks: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| {
            let request = app
                .http
                .post(app.url(&format!("/v1/payments/{id}/cancel")))
                .bearer_auth(&key);
            let delay = Duration::from_millis(50 * (ORDERS - 1 - n) as u64);
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let response = request.send().await.expect("cancel");
                let status = response.status().as_u16();
                let answer: Value = response.json().await.expect("a JSON answer");
                (status, answer)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    let settled = eventually(|| async {
        app.count("SELECT count(*) FROM payments WHERE status = 'pending'")
            .await
            == 0
    })
    .await;
    assert!(settled, "every order left pending within 10 s");
    // Let the sweep run a few more rounds, then look.
    tokio::time::sleep(Duration::from_millis(600)).await;

    let (mut cancelled, mut expired) = (0, 0);
    for (id, (status, answer)) in ids.iter().zip(answers) {
        let (state, closed) = stored(&app, id).await;
        assert!(closed, "{id}");
        let events = events_of(&app, id).await;
        assert_eq!(events.len(), 1, "{id} ({state}): {events:?}");
        match status {
            200 => {
                cancelled += 1;
                assert_eq!(answer["status"], "cancelled", "{answer}");
                assert_eq!(state, "cancelled", "{id}");
                assert_eq!(events[0].kind, "payment.cancelled");
                assert_eq!(events[0].payment, answer);
            }
            409 => {
                expired += 1;
                assert_eq!(answer["code"], "not_cancellable", "{answer}");
                assert_eq!(state, "expired", "{id}");
                assert_eq!(events[0].kind, "payment.expired");
                assert_eq!(events[0].payment["status"], "expired");
            }
            _ => panic!("cancel of {id} answered {status}: {answer}"),
        }
    }
    assert_eq!(cancelled + expired, ORDERS);
    assert_eq!(
        app.count("SELECT count(*) FROM events").await,
        ORDERS as i64
    );
}

// Hostile input: times out of range and NUL characters.

/// Valid RFC 3339 texts whose instant lies outside the years 2000-9998 in UTC.
const TIMES_OUT_OF_RANGE: [&str; 5] = [
    "9999-12-31T23:30:00-01:00",
    "9999-01-01T00:00:00Z",
    "1999-12-31T23:59:59Z",
    "2000-01-01T06:59:59+07:00",
    "0000-01-01T00:00:00Z",
];

#[tokio::test]
async fn an_expires_at_outside_the_years_2000_to_9998_answers_422_and_creates_nothing() {
    let app = TestApp::spawn().await;
    let key = agency_key(&app, AGENCY).await;
    for (n, at) in TIMES_OUT_OF_RANGE.into_iter().enumerate() {
        let body = changed(
            &order("fee", &format!("H12-{n}")),
            "expires_at",
            Some(json!(at)),
        );
        let idempotency_key = new_idempotency_key();
        let response = post_order(&app, &key, &idempotency_key, &body).await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(invalid_fields(&problem), ["expires_at"], "{at}");
        // The key stays free for the corrected request.
        let corrected = changed(&body, "expires_at", None);
        let response = post_order(&app, &key, &idempotency_key, &corrected).await;
        assert_eq!(response.status(), 201, "{at}");
    }
    assert_eq!(
        totals(&app).await,
        Totals {
            payments: 5,
            idempotency_keys: 5,
            events: 0
        }
    );
}

#[tokio::test]
async fn creation_time_filters_outside_the_years_2000_to_9998_answer_422_naming_the_filter() {
    let app = TestApp::spawn().await;
    let key = agency_key(&app, AGENCY).await;
    let created = create(&app, &key, &order("fee", "H12-1")).await;
    for name in ["created_from", "created_to"] {
        for value in TIMES_OUT_OF_RANGE {
            for api_key in [key.as_str(), app.admin_key.as_str()] {
                let response = list(&app, api_key, &[(name, value)]).await;
                let problem = assert_problem(response, 422, "validation_failed").await;
                assert_eq!(invalid_fields(&problem), [name], "{name}={value}");
            }
        }
    }
    // The first and last instants of the range are fine filters.
    let from_first = page(&app, &key, &[("created_from", "2000-01-01T00:00:00Z")]).await;
    assert_eq!(ids(&from_first), [id_of(&created)]);
    let to_last = page(&app, &key, &[("created_to", "9998-12-31T23:59:59.999999Z")]).await;
    assert_eq!(ids(&to_last), [id_of(&created)]);
    let both = page(
        &app,
        &key,
        &[
            ("created_from", "9998-12-31T23:59:59Z"),
            ("created_to", "2000-01-01T07:00:00+07:00"),
        ],
    )
    .await;
    assert_eq!(ids(&both), Vec::<String>::new());
}

#[tokio::test]
async fn a_nul_in_any_text_field_of_a_create_body_answers_422_naming_it_and_creates_nothing() {
    let app = TestApp::spawn().await;
    let key = agency_key(&app, AGENCY).await;
    let expires_at = db_time(&app, "now() + interval '1 day'").await;
    let mut cases: Vec<(String, Value)> = Vec::new();
    for obligation in OBLIGATIONS {
        let valid = changed(
            &order(obligation, "H12-NUL"),
            "expires_at",
            Some(json!(expires_at)),
        );
        let mut paths: Vec<String> = [
            "obligation",
            "reference",
            "amount",
            "currency",
            "description",
            "payer.name",
            "payer.id_number",
            "expires_at",
        ]
        .map(str::to_owned)
        .to_vec();
        for name in details(obligation).as_object().expect("details").keys() {
            paths.push(format!("details.{name}"));
        }
        for path in paths {
            let mut value = valid.clone();
            for part in path.split('.') {
                value = value[part].clone();
            }
            let text = value.as_str().expect("a text field").to_owned();
            for nul in [
                "\u{0}".to_owned(),
                format!("{text}\u{0}"),
                format!("\u{0}{text}"),
            ] {
                cases.push((path.clone(), changed(&valid, &path, Some(json!(nul)))));
            }
        }
        // Members paygate does not read are refused too, at any depth.
        cases.push((
            "ghi_chu.kênh".to_owned(),
            changed(&valid, "ghi_chu", Some(json!({"kênh": "Cổng\u{0}DVC"}))),
        ));
        cases.push((
            "payer.aliases.1".to_owned(),
            changed(&valid, "payer.aliases", Some(json!(["A", "\u{0}"]))),
        ));
    }
    for (path, body) in cases {
        let response = post_order(&app, &key, &new_idempotency_key(), &body).await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(invalid_fields(&problem), [path.as_str()], "{body}");
        let message = problem["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains("NUL"), "{problem}");
    }
    // Several at once are all named.
    let body = changed(
        &changed(&order("fee", "R\u{0}"), "payer.name", Some(json!("\u{0}"))),
        "details.dossier_code",
        Some(json!("D\u{0}")),
    );
    let response = post_order(&app, &key, &new_idempotency_key(), &body).await;
    let problem = assert_problem(response, 422, "validation_failed").await;
    assert_eq!(
        sorted(invalid_fields(&problem)),
        ["details.dossier_code", "payer.name", "reference"]
    );
    assert_eq!(
        totals(&app).await,
        Totals {
            payments: 0,
            idempotency_keys: 0,
            events: 0
        }
    );
}

#[tokio::test]
async fn a_nul_in_a_list_parameter_answers_422_naming_it_and_in_a_payment_id_404() {
    let app = TestApp::spawn().await;
    let key = agency_key(&app, AGENCY).await;
    let created = create(&app, &key, &order("fee", "H12-1")).await;
    let id = id_of(&created);
    for name in [
        "reference",
        "status",
        "obligation",
        "created_from",
        "created_to",
        "agency",
        "limit",
        "cursor",
        "something_else",
    ] {
        for api_key in [key.as_str(), app.admin_key.as_str()] {
            let response = list(&app, api_key, &[(name, "a\u{0}b")]).await;
            let problem = assert_problem(response, 422, "validation_failed").await;
            assert_eq!(invalid_fields(&problem), [name], "{name}");
        }
    }
    for path in [
        format!("/v1/payments/{id}%00"),
        "/v1/payments/%00".to_owned(),
    ] {
        let response = app
            .http
            .get(app.url(&path))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_problem(response, 404, "not_found").await;
        let response = app
            .http
            .post(app.url(&format!("{path}/cancel")))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_problem(response, 404, "not_found").await;
    }
    assert_eq!(read(&app, &key, &id).await, created);
}
