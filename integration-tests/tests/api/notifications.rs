//! Notifications to agencies, delivered to a real HTTP receiver: signing,
//! retries on error statuses, timeouts and refused connections, dead events, waiting for a
//! `notify_url`, redelivery, the events API, restarts, two replicas, and the metrics.

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use integration_tests::answers::RequestExt;
use integration_tests::clock::now_s;
use integration_tests::receiver::{Behaviour, ReceivedRequest, Receiver, Reply};
use integration_tests::{assert_problem, invalid_fields, test_config, TestApp};
use paygate::config::Config;
use paygate::signature::{SignatureError, SignatureHeader};
use reqwest::{Method, Response};
use serde_json::{json, Value};
use tokio::task::JoinSet;

const AGENCY: &str = "000.00.00.H12";
const OTHER_AGENCY: &str = "000.00.00.H29";
const HOOK_PATH: &str = "/hooks/paygate";
/// Generous bounds for things that happen within a poll interval or a short backoff step.
const WAIT: Duration = Duration::from_secs(15);
/// Every member of an item of `GET /v1/events`, and nothing else.
const EVENT_ITEM_FIELDS: [&str; 8] = [
    "id",
    "type",
    "payment_id",
    "status",
    "attempts",
    "last_error",
    "next_attempt_at",
    "delivered_at",
];

/// The test configuration with the retry schedule `backoff_s`.
fn with_backoff(backoff_s: &[u64]) -> Config {
    Config { notify_backoff_s: backoff_s.to_vec(), ..test_config() }
}

struct Agency {
    code: String,
    key: String,
    notify_secret: String,
}

/// Creates an agency and, when given, sets its `notify_url`.
/// An app whose agency `AGENCY` listens at a receiver that answers 200, another agency with no
/// URL, and an auditor's key: where the tests of redelivery and of the event list start.
struct Listening {
    app: TestApp,
    receiver: Receiver,
    agency: Agency,
    other: Agency,
    auditor: String,
}

impl Listening {
    async fn start() -> Listening {
        let app = TestApp::spawn().await;
        let receiver = Receiver::start(Behaviour::status(200)).await;
        let agency = agency(&app, AGENCY, Some(&receiver.url(HOOK_PATH))).await;
        let other = self::agency(&app, OTHER_AGENCY, None).await;
        let auditor = app.key_with_role("auditor").await;
        Listening { app, receiver, agency, other, auditor }
    }
}

async fn agency(app: &TestApp, code: &str, notify_url: Option<&str>) -> Agency {
    let created = app.create_agency(code).await;
    if notify_url.is_some() {
        set_notify_url(app, code, notify_url).await;
    }
    Agency {
        code: code.to_owned(),
        key: created["api_key"].as_str().expect("api_key").to_owned(),
        notify_secret: created["notify_secret"].as_str().expect("notify_secret").to_owned(),
    }
}

/// Sets (or with `None` clears) an agency's `notify_url` as an admin.
async fn set_notify_url(app: &TestApp, code: &str, url: Option<&str>) {
    let response = app
        .admin(Method::PATCH, &format!("/v1/agencies/{code}"))
        .json(&json!({ "notify_url": url }))
        .send()
        .await
        .expect("PATCH /v1/agencies/{code}");
    let status = response.status();
    let text = response.text().await.expect("an answer");
    assert_eq!(status, 200, "setting notify_url {url:?}: {text}");
    let agency: Value = serde_json::from_str(&text).expect("a JSON agency");
    assert_eq!(agency["notify_url"], json!(url), "{agency}");
}

/// A URL nothing listens on, on a port no other test can take.
fn refused_url() -> String {
    // Bound but never listened on: a connection is refused at once, and, the port being held
    // until the test process ends, no other test's server can take it meanwhile (a port merely
    // released was once taken by another test's receiver, which answered 404).
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.bind("127.0.0.1:0".parse().expect("an address")).expect("bind an ephemeral port");
    let port = socket.local_addr().expect("its address").port();
    std::mem::forget(socket);
    format!("http://127.0.0.1:{port}{HOOK_PATH}")
}

/// Creates a pending `fee` order of 150000 and returns its id.
async fn create_order(app: &TestApp, api_key: &str, reference: &str) -> String {
    app.create_order(api_key, "fee", reference, "150000").await
}

/// Cancels an order and returns the payment the answer carries.
async fn cancel_order(app: &TestApp, api_key: &str, id: &str) -> Value {
    app.cancel(api_key, id).await
}

/// Creates and cancels an order; returns the cancelled payment and its event's id.
async fn cancelled_order(app: &TestApp, agency: &Agency, reference: &str) -> (Value, String) {
    let id = create_order(app, &agency.key, reference).await;
    let payment = cancel_order(app, &agency.key, &id).await;
    let event_id = event_of(app, &id).await;
    (payment, event_id)
}

/// The id of the one `payment.cancelled` event of `payment_id`, read from the database.
async fn event_of(app: &TestApp, payment_id: &str) -> String {
    let rows = app
        .rows(
            "SELECT id FROM events WHERE payment_id = $1 AND type = 'payment.cancelled'",
            &[&payment_id],
        )
        .await;
    assert_eq!(rows.len(), 1, "one cancelled event for {payment_id}");
    rows[0].get(0)
}

/// An event as its table holds it.
#[derive(Debug, Clone, PartialEq)]
struct EventRow {
    status: String,
    attempts: i32,
    schedule_attempts: i32,
    last_error: Option<String>,
    delivered: bool,
    locked: bool,
}

async fn event_row(app: &TestApp, event_id: &str) -> EventRow {
    let row = app
        .row(
            "SELECT status, attempts, schedule_attempts, last_error, delivered_at IS NOT NULL,
                    locked_until IS NOT NULL
             FROM events WHERE id = $1",
            &[&event_id],
        )
        .await;
    EventRow {
        status: row.get(0),
        attempts: row.get(1),
        schedule_attempts: row.get(2),
        last_error: row.get(3),
        delivered: row.get(4),
        locked: row.get(5),
    }
}

/// Waits until the event's status is `status` and it is not claimed; returns its row.
async fn wait_for_event(app: &TestApp, event_id: &str, status: &str, within: Duration) -> EventRow {
    let deadline = Instant::now() + within;
    loop {
        let row = event_row(app, event_id).await;
        if row.status == status && !row.locked {
            return row;
        }
        assert!(
            Instant::now() < deadline,
            "event {event_id} did not become {status} within {within:?}: {row:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One row of `event_attempts`.
#[derive(Debug, Clone, PartialEq)]
struct Attempt {
    http_status: Option<i16>,
    error: Option<String>,
    duration_ms: i32,
    /// Seconds from the first attempt's start to this one's.
    offset_s: f64,
}

async fn attempts_of(app: &TestApp, event_id: &str) -> Vec<Attempt> {
    app.rows(
        "SELECT http_status, error, duration_ms,
                extract(epoch FROM started_at - min(started_at) OVER ())::float8
         FROM event_attempts WHERE event_id = $1 ORDER BY id",
        &[&event_id],
    )
    .await
    .iter()
    .map(|row| Attempt {
        http_status: row.get(0),
        error: row.get(1),
        duration_ms: row.get(2),
        offset_s: row.get(3),
    })
    .collect()
}

/// Waits until the event has `n` recorded attempts; returns them.
async fn wait_for_attempts(
    app: &TestApp,
    event_id: &str,
    n: usize,
    within: Duration,
) -> Vec<Attempt> {
    let deadline = Instant::now() + within;
    loop {
        let attempts = attempts_of(app, event_id).await;
        if attempts.len() >= n {
            return attempts;
        }
        assert!(
            Instant::now() < deadline,
            "event {event_id} did not record {n} attempts within {within:?}: {attempts:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn list_events(app: &TestApp, api_key: &str, query: &[(&str, &str)]) -> Response {
    app.list(api_key, "/v1/events", query).await
}

/// `GET /v1/events` answered 200; returns the page.
async fn events_page(app: &TestApp, api_key: &str, query: &[(&str, &str)]) -> Value {
    let page = app.page(api_key, "/v1/events", query).await;
    for item in page["items"].as_array().expect("items") {
        let fields: BTreeSet<&str> =
            item.as_object().expect("an event item").keys().map(String::as_str).collect();
        assert_eq!(fields, BTreeSet::from(EVENT_ITEM_FIELDS), "{item}");
    }
    page
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["id"].as_str().expect("id").to_owned())
        .collect()
}

/// The API's view of the one event of `payment_id`, read with `api_key`.
async fn event_item(app: &TestApp, api_key: &str, payment_id: &str) -> Value {
    let page = events_page(app, api_key, &[("payment_id", payment_id)]).await;
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "one event for {payment_id}: {page}");
    items[0].clone()
}

async fn redeliver(app: &TestApp, api_key: &str, event_id: &str) -> Response {
    app.post_with(api_key, &format!("/v1/events/{event_id}/redeliver"))
        .send()
        .await
        .expect("POST /v1/events/{id}/redeliver")
}

/// Waits until /metrics has a line equal to `line`.
async fn wait_for_metric(app: &TestApp, line: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let text = app.metrics().await;
        if text.lines().any(|l| l == line) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no line {line:?} in /metrics within {within:?}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asserts a notification is signed by paygate for `agency` over exactly the bytes received.
fn assert_signed(request: &ReceivedRequest, agency: &Agency) {
    let values = request.header_values("paygate-signature");
    assert_eq!(values.len(), 1, "one Paygate-Signature header: {request:?}");
    let header = SignatureHeader::parse(values[0])
        .unwrap_or_else(|err| panic!("unparsable signature {:?}: {err}", values[0]));
    assert_eq!(header.kid, agency.code);
    let now = now_s();
    assert!(
        (now - 60..=now + 1).contains(&header.timestamp),
        "signed at {}, now {now}",
        header.timestamp
    );
    header
        .verify(agency.notify_secret.as_bytes(), &request.body, now, 300)
        .unwrap_or_else(|err| panic!("the signature does not verify: {err}"));
    // It binds the secret and the body.
    assert_eq!(
        header.verify(b"not the agency's secret", &request.body, now, 300),
        Err(SignatureError::BadMac)
    );
    let mut tampered = request.body.clone();
    tampered.push(b' ');
    assert_eq!(
        header.verify(agency.notify_secret.as_bytes(), &tampered, now, 300),
        Err(SignatureError::BadMac)
    );
    // No rotation is under way: there is no second signature.
    assert_eq!(
        request.header_values("paygate-signature-previous"),
        Vec::<&str>::new(),
        "{request:?}"
    );
}

/// Asserts the shape of a notification for event `event_id` of the cancelled `payment`.
fn assert_cancelled_notification(request: &ReceivedRequest, event_id: &str, payment: &Value) {
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, HOOK_PATH);
    assert_eq!(request.header_values("content-type"), vec!["application/json"]);
    assert_eq!(request.header_values("paygate-event-id"), vec![event_id]);
    let body = request.json();
    let fields: BTreeSet<&str> =
        body.as_object().expect("an event object").keys().map(String::as_str).collect();
    assert_eq!(fields, BTreeSet::from(["created_at", "id", "payment", "type"]), "{body}");
    assert_eq!(body["id"], event_id, "{body}");
    assert_eq!(body["type"], "payment.cancelled", "{body}");
    let created_at = body["created_at"].as_str().expect("created_at is a string");
    assert!(created_at.ends_with('Z'), "{created_at}");
    paygate::timefmt::parse_rfc3339(created_at).expect("created_at is RFC 3339");
    // The payment as the cancel answered it: status cancelled, every field.
    assert_eq!(body["payment"], *payment, "{body}");
    assert_eq!(body["payment"]["status"], "cancelled");
}

#[tokio::test]
async fn a_cancelled_order_is_notified_on_the_first_try_signed_and_recorded_as_delivered() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(Behaviour::status(200)).await;
    let agency = agency(&app, AGENCY, Some(&receiver.url(HOOK_PATH))).await;
    let (payment, event_id) = cancelled_order(&app, &agency, "H12-1").await;
    let payment_id = payment["id"].as_str().unwrap();

    let requests = receiver.wait_for(1, WAIT).await;
    assert_cancelled_notification(&requests[0], &event_id, &payment);
    assert_signed(&requests[0], &agency);

    let row = wait_for_event(&app, &event_id, "delivered", WAIT).await;
    assert_eq!(row.attempts, 1, "{row:?}");
    assert!(row.delivered, "{row:?}");
    let item = event_item(&app, &agency.key, payment_id).await;
    assert_eq!(item["id"], event_id);
    assert_eq!(item["type"], "payment.cancelled");
    assert_eq!(item["payment_id"], payment_id);
    assert_eq!(item["status"], "delivered");
    assert_eq!(item["attempts"], 1);
    assert_eq!(item["last_error"], Value::Null);
    assert_eq!(item["next_attempt_at"], Value::Null);
    let delivered_at = item["delivered_at"].as_str().expect("delivered_at is set");
    paygate::timefmt::parse_rfc3339(delivered_at).expect("delivered_at is RFC 3339");

    let attempts = attempts_of(&app, &event_id).await;
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!(attempts[0].http_status, Some(200));
    assert_eq!(attempts[0].error, None);
    // Acknowledged once, delivered once.
    receiver.assert_no_more_than(1, Duration::from_millis(700)).await;
}

#[tokio::test]
async fn any_2xx_answer_acknowledges_a_notification() {
    for status in [201, 202, 204, 299] {
        let app = TestApp::spawn().await;
        let receiver = Receiver::start(Behaviour::status(status)).await;
        let agency = agency(&app, AGENCY, Some(&receiver.url(HOOK_PATH))).await;
        let (_, event_id) = cancelled_order(&app, &agency, "H12-1").await;

        let row = wait_for_event(&app, &event_id, "delivered", WAIT).await;
        assert_eq!(row.attempts, 1, "answer {status}: {row:?}");
        let attempts = attempts_of(&app, &event_id).await;
        assert_eq!(attempts.len(), 1, "answer {status}: {attempts:?}");
        assert_eq!(attempts[0].http_status, Some(status as i16));
        assert_eq!(attempts[0].error, None, "answer {status}");
        assert_eq!(receiver.count(), 1, "answer {status}");
    }
}

#[tokio::test]
async fn an_error_answer_is_retried_after_the_first_backoff_step_and_then_delivered() {
    let app = TestApp::spawn_with(with_backoff(&[2, 2, 2])).await;
    let receiver = Receiver::start(Behaviour::sequence(&[500, 200])).await;
    let agency = agency(&app, AGENCY, Some(&receiver.url(HOOK_PATH))).await;
    let (payment, event_id) = cancelled_order(&app, &agency, "H12-1").await;
    let payment_id = payment["id"].as_str().unwrap();

    // Between the attempts: pending, one attempt, the error, and the retry time shown.
    let first = wait_for_attempts(&app, &event_id, 1, WAIT).await;
    assert_eq!(first[0].http_status, Some(500), "{first:?}");
    let error = first[0].error.as_deref().expect("the 500 is an error");
    assert!(error.contains("500"), "{error}");
    let item = event_item(&app, &agency.key, payment_id).await;
    assert_eq!(item["status"], "pending", "{item}");
    assert_eq!(item["attempts"], 1, "{item}");
    assert_eq!(item["last_error"], error, "{item}");
    assert_eq!(item["delivered_at"], Value::Null, "{item}");
    assert!(item["next_attempt_at"].is_string(), "{item}");
    let row = event_row(&app, &event_id).await;
    assert_eq!(row.schedule_attempts, 1, "{row:?}");

    let requests = receiver.wait_for(2, WAIT).await;
    let gap = requests[1].arrived_at - requests[0].arrived_at;
    assert!(gap >= Duration::from_millis(1_900), "retried after {gap:?}, before the 2 s step");
    for request in &requests {
        assert_cancelled_notification(request, &event_id, &payment);
        assert_signed(request, &agency);
    }

    let row = wait_for_event(&app, &event_id, "delivered", WAIT).await;
    assert_eq!(row.attempts, 2, "{row:?}");
    let attempts = attempts_of(&app, &event_id).await;
    let statuses: Vec<Option<i16>> = attempts.iter().map(|a| a.http_status).collect();
    assert_eq!(statuses, vec![Some(500), Some(200)], "{attempts:?}");
    assert_eq!(attempts[1].error, None);
    assert!(attempts[1].offset_s >= 1.9, "{attempts:?}");
    // A delivery clears the last error.
    let item = event_item(&app, &agency.key, payment_id).await;
    assert_eq!(item["status"], "delivered", "{item}");
    assert_eq!(item["attempts"], 2, "{item}");
    assert_eq!(item["last_error"], Value::Null, "{item}");
    assert_eq!(item["next_attempt_at"], Value::Null, "{item}");
    assert!(item["delivered_at"].is_string(), "{item}");
    receiver.assert_no_more_than(2, Duration::from_millis(700)).await;
}

#[tokio::test]
async fn an_answer_slower_than_ten_seconds_is_a_timed_out_attempt_and_is_retried() {
    let app = TestApp::spawn_with(with_backoff(&[1, 1, 1])).await;
    // Slower than the 10 s limit by far, so an attempt that waited would be obvious.
    let receiver = Receiver::start(Behaviour::script(
        vec![Reply::delayed(Duration::from_secs(15), 200)],
        Reply::status(200),
    ))
    .await;
    let agency = agency(&app, AGENCY, Some(&receiver.url(HOOK_PATH))).await;
    let (payment, event_id) = cancelled_order(&app, &agency, "H12-1").await;

    let requests = receiver.wait_for(2, Duration::from_secs(30)).await;
    let gap = requests[1].arrived_at - requests[0].arrived_at;
    assert!(
        gap >= Duration::from_millis(10_500) && gap < Duration::from_secs(15),
        "retried {gap:?} after the slow request"
    );
    assert_cancelled_notification(&requests[1], &event_id, &payment);

    let row = wait_for_event(&app, &event_id, "delivered", WAIT).await;
    assert_eq!(row.attempts, 2, "{row:?}");
    assert_eq!(row.last_error, None, "{row:?}");
    let attempts = attempts_of(&app, &event_id).await;
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[0].http_status, None, "{attempts:?}");
    let error = attempts[0].error.as_deref().expect("the timeout is an error");
    assert!(error.contains("timed out"), "{error}");
    assert!(
        (9_900..12_000).contains(&attempts[0].duration_ms),
        "the slow attempt took {} ms",
        attempts[0].duration_ms
    );
    assert_eq!(attempts[1].http_status, Some(200), "{attempts:?}");
    assert_eq!(attempts[1].error, None, "{attempts:?}");
}

#[tokio::test]
async fn a_refused_connection_is_retried_on_the_schedule_and_the_event_is_dead_after_it() {
    let app = TestApp::spawn_with(with_backoff(&[1, 1])).await;
    let agency = agency(&app, AGENCY, Some(&refused_url())).await;
    let (payment, event_id) = cancelled_order(&app, &agency, "H12-1").await;
    let payment_id = payment["id"].as_str().unwrap();

    let row = wait_for_event(&app, &event_id, "dead", WAIT).await;
    assert_eq!(row.attempts, 3, "one attempt and one per step: {row:?}");
    assert!(!row.delivered, "{row:?}");
    let attempts = attempts_of(&app, &event_id).await;
    assert_eq!(attempts.len(), 3, "{attempts:?}");
    for attempt in &attempts {
        assert_eq!(attempt.http_status, None, "{attempts:?}");
        let error = attempt.error.as_deref().expect("a refused connection fails");
        assert!(error.contains("connect"), "{error}");
    }
    assert!(attempts[1].offset_s >= 0.95, "{attempts:?}");
    assert!(attempts[2].offset_s >= 1.95, "{attempts:?}");

    let item = event_item(&app, &agency.key, payment_id).await;
    assert_eq!(item["status"], "dead", "{item}");
    assert_eq!(item["attempts"], 3, "{item}");
    assert_eq!(item["last_error"], json!(attempts[2].error), "{item}");
    assert_eq!(item["next_attempt_at"], Value::Null, "{item}");
    assert_eq!(item["delivered_at"], Value::Null, "{item}");

    // Dead is final: no further attempts.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(attempts_of(&app, &event_id).await.len(), 3);
    assert_eq!(event_row(&app, &event_id).await.status, "dead");
    let text = app.metrics().await;
    assert!(
        text.lines().any(|l| l == r#"paygate_notify_deliveries_total{outcome="failed"} 3"#),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l == r#"paygate_notify_deliveries_total{outcome="dead"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn an_event_waits_pending_for_a_notify_url_and_is_delivered_once_one_is_set() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(Behaviour::status(200)).await;
    let agency = agency(&app, AGENCY, None).await;
    let (payment, event_id) = cancelled_order(&app, &agency, "H12-1").await;
    let payment_id = payment["id"].as_str().unwrap();

    // Ten poll intervals: nothing is attempted without a URL.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let row = event_row(&app, &event_id).await;
    assert_eq!(row.status, "pending", "{row:?}");
    assert_eq!(row.attempts, 0, "{row:?}");
    assert!(attempts_of(&app, &event_id).await.is_empty());
    let item = event_item(&app, &agency.key, payment_id).await;
    assert_eq!(item["status"], "pending", "{item}");
    assert_eq!(item["attempts"], 0, "{item}");
    assert_eq!(item["last_error"], Value::Null, "{item}");

    set_notify_url(&app, AGENCY, Some(&receiver.url(HOOK_PATH))).await;
    let requests = receiver.wait_for(1, WAIT).await;
    assert_cancelled_notification(&requests[0], &event_id, &payment);
    assert_signed(&requests[0], &agency);
    let row = wait_for_event(&app, &event_id, "delivered", WAIT).await;
    assert_eq!(row.attempts, 1, "{row:?}");
}

#[tokio::test]
async fn redelivery_is_for_the_events_agency_and_admins_and_delivers_the_same_event_again() {
    let Listening { app, receiver, agency, other, auditor } = Listening::start().await;
    let (payment, event_id) = cancelled_order(&app, &agency, "H12-1").await;
    let payment_id = payment["id"].as_str().unwrap();
    wait_for_event(&app, &event_id, "delivered", WAIT).await;
    let first = receiver.wait_for(1, WAIT).await.remove(0);

    // Refused: another agency (as if the event did not exist), an auditor, no key, no event.
    assert_problem(redeliver(&app, &other.key, &event_id).await, 404, "event_not_found").await;
    assert_problem(redeliver(&app, &auditor, &event_id).await, 403, "forbidden").await;
    app.post(&format!("/v1/events/{event_id}/redeliver")).problem(401, "unauthenticated").await;
    assert_problem(redeliver(&app, &agency.key, "evt_doesnotexist").await, 404, "event_not_found")
        .await;
    assert_problem(
        redeliver(&app, &app.admin_key, "evt_doesnotexist").await,
        404,
        "event_not_found",
    )
    .await;
    // None of them scheduled anything.
    receiver.assert_no_more_than(1, Duration::from_millis(500)).await;
    let row = event_row(&app, &event_id).await;
    assert_eq!((row.status.as_str(), row.attempts), ("delivered", 1));

    // The agency redelivers its own event.
    let response = redeliver(&app, &agency.key, &event_id).await;
    assert_eq!(response.status(), 202);
    let requests = receiver.wait_for(2, WAIT).await;
    assert_cancelled_notification(&requests[1], &event_id, &payment);
    assert_signed(&requests[1], &agency);
    assert_eq!(requests[1].json(), first.json(), "the same event again");
    let row = wait_for_event(&app, &event_id, "delivered", WAIT).await;
    assert_eq!(row.attempts, 2, "{row:?}");

    // An admin redelivers it too.
    let response =
        app.admin(Method::POST, &format!("/v1/events/{event_id}/redeliver")).send().await.unwrap();
    assert_eq!(response.status(), 202);
    let requests = receiver.wait_for(3, WAIT).await;
    assert_eq!(requests[2].header("paygate-event-id"), Some(event_id.as_str()));
    let row = wait_for_event(&app, &event_id, "delivered", WAIT).await;
    assert_eq!(row.attempts, 3, "{row:?}");
    let item = event_item(&app, &agency.key, payment_id).await;
    assert_eq!(item["status"], "delivered", "{item}");
    assert_eq!(item["attempts"], 3, "{item}");
    let statuses: Vec<Option<i16>> =
        attempts_of(&app, &event_id).await.iter().map(|a| a.http_status).collect();
    assert_eq!(statuses, vec![Some(200); 3]);
    receiver.assert_no_more_than(3, Duration::from_millis(500)).await;
}

#[tokio::test]
async fn a_redelivered_dead_event_is_pending_again_with_a_fresh_schedule() {
    let app = TestApp::spawn_with(with_backoff(&[1])).await;
    let agency = agency(&app, AGENCY, Some(&refused_url())).await;
    let (payment, event_id) = cancelled_order(&app, &agency, "H12-1").await;
    let payment_id = payment["id"].as_str().unwrap();
    let row = wait_for_event(&app, &event_id, "dead", WAIT).await;
    assert_eq!(row.attempts, 2, "{row:?}");

    // A working URL alone does not revive a dead event.
    let receiver = Receiver::start(Behaviour::sequence(&[500, 200])).await;
    set_notify_url(&app, AGENCY, Some(&receiver.url(HOOK_PATH))).await;
    receiver.assert_no_more_than(0, Duration::from_millis(700)).await;

    let response = redeliver(&app, &agency.key, &event_id).await;
    assert_eq!(response.status(), 202);
    // The schedule starts over: the 500 is retried after the one step, though the event had
    // used up its schedule before.
    let requests = receiver.wait_for(2, WAIT).await;
    for request in &requests {
        assert_cancelled_notification(request, &event_id, &payment);
    }
    let row = wait_for_event(&app, &event_id, "delivered", WAIT).await;
    assert_eq!(row.attempts, 4, "{row:?}");
    assert_eq!(row.schedule_attempts, 2, "{row:?}");
    let statuses: Vec<Option<i16>> =
        attempts_of(&app, &event_id).await.iter().map(|a| a.http_status).collect();
    assert_eq!(statuses, vec![None, None, Some(500), Some(200)]);
    let item = event_item(&app, &agency.key, payment_id).await;
    assert_eq!(item["status"], "delivered", "{item}");
    assert_eq!(item["attempts"], 4, "{item}");
}

#[tokio::test]
async fn events_are_listed_newest_first_per_agency_filtered_and_paginated() {
    let Listening { app, receiver: _receiver, agency, other, auditor } = Listening::start().await;

    // Two delivered events, then (without a URL) one pending; the other agency's one pending.
    let (first, first_event) = cancelled_order(&app, &agency, "H12-1").await;
    let (_, second_event) = cancelled_order(&app, &agency, "H12-2").await;
    wait_for_event(&app, &first_event, "delivered", WAIT).await;
    wait_for_event(&app, &second_event, "delivered", WAIT).await;
    set_notify_url(&app, AGENCY, None).await;
    let (_, third_event) = cancelled_order(&app, &agency, "H12-3").await;
    let (other_payment, other_event) = cancelled_order(&app, &other, "H29-1").await;

    let own = events_page(&app, &agency.key, &[]).await;
    assert_eq!(ids(&own), vec![third_event.clone(), second_event.clone(), first_event.clone()]);
    assert_eq!(own["next_cursor"], Value::Null);
    assert_eq!(ids(&events_page(&app, &other.key, &[]).await), vec![other_event.clone()]);
    for key in [&app.admin_key, &auditor] {
        assert_eq!(
            ids(&events_page(&app, key, &[]).await),
            vec![
                other_event.clone(),
                third_event.clone(),
                second_event.clone(),
                first_event.clone()
            ]
        );
    }

    // payment_id: one order's events; another agency's order shows nothing.
    let first_id = first["id"].as_str().unwrap();
    let other_id = other_payment["id"].as_str().unwrap();
    assert_eq!(
        ids(&events_page(&app, &agency.key, &[("payment_id", first_id)]).await),
        vec![first_event.clone()]
    );
    assert!(ids(&events_page(&app, &agency.key, &[("payment_id", other_id)]).await).is_empty());
    assert_eq!(
        ids(&events_page(&app, &app.admin_key, &[("payment_id", other_id)]).await),
        vec![other_event.clone()]
    );

    // status
    let delivered = events_page(&app, &agency.key, &[("status", "delivered")]).await;
    assert_eq!(ids(&delivered), vec![second_event.clone(), first_event.clone()]);
    for item in delivered["items"].as_array().unwrap() {
        assert_eq!(item["status"], "delivered");
        assert!(item["delivered_at"].is_string(), "{item}");
        assert_eq!(item["next_attempt_at"], Value::Null, "{item}");
    }
    let pending = events_page(&app, &agency.key, &[("status", "pending")]).await;
    assert_eq!(ids(&pending), vec![third_event.clone()]);
    let item = &pending["items"][0];
    assert_eq!(item["attempts"], 0, "{item}");
    assert!(item["next_attempt_at"].is_string(), "{item}");
    assert_eq!(item["delivered_at"], Value::Null, "{item}");
    assert!(ids(&events_page(&app, &agency.key, &[("status", "dead")]).await).is_empty());
    assert_eq!(
        ids(&events_page(&app, &agency.key, &[("status", "delivered"), ("payment_id", first_id)])
            .await),
        vec![first_event.clone()]
    );

    // limit and cursor walk every event once.
    let page1 = events_page(&app, &agency.key, &[("limit", "2")]).await;
    assert_eq!(ids(&page1), vec![third_event.clone(), second_event.clone()]);
    let cursor = page1["next_cursor"].as_str().expect("a next page");
    let page2 = events_page(&app, &agency.key, &[("limit", "2"), ("cursor", cursor)]).await;
    assert_eq!(ids(&page2), vec![first_event.clone()]);
    assert_eq!(page2["next_cursor"], Value::Null);
    let page = events_page(&app, &agency.key, &[("limit", "1"), ("status", "delivered")]).await;
    assert_eq!(ids(&page), vec![second_event.clone()]);
    assert!(page["next_cursor"].is_string(), "{page}");

    // Invalid filters.
    for (query, field) in [
        (("status", "bogus"), "status"),
        (("status", "DELIVERED"), "status"),
        (("status", ""), "status"),
        (("limit", "0"), "limit"),
        (("limit", "501"), "limit"),
        (("limit", "two"), "limit"),
        (("cursor", "not-a-cursor"), "cursor"),
    ] {
        let problem = assert_problem(
            list_events(&app, &agency.key, &[query]).await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(invalid_fields(&problem), vec![field], "{query:?}: {problem}");
    }
    let anonymous = app.get("/v1/events").send().await.unwrap();
    assert_problem(anonymous, 401, "unauthenticated").await;
}

#[tokio::test]
async fn a_retry_due_when_the_app_stopped_is_delivered_by_the_restarted_app() {
    let app = TestApp::spawn_with(with_backoff(&[3])).await;
    let receiver = Receiver::start(Behaviour::sequence(&[500, 200])).await;
    let agency = agency(&app, AGENCY, Some(&receiver.url(HOOK_PATH))).await;
    let (payment, event_id) = cancelled_order(&app, &agency, "H12-1").await;
    wait_for_attempts(&app, &event_id, 1, WAIT).await;
    let row = event_row(&app, &event_id).await;
    assert_eq!((row.status.as_str(), row.attempts), ("pending", 1));

    // Stop the app while the event waits for its retry, and see it gone.
    let old_address = app.address.clone();
    let settings = app.stop_keeping_database();
    let deadline = Instant::now() + WAIT;
    while reqwest::get(format!("{old_address}/healthz")).await.is_ok() {
        assert!(Instant::now() < deadline, "the first app did not stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Its worker stops right after its server.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopped_at = Instant::now();
    assert_eq!(receiver.count(), 1, "the retry came before the app stopped");

    let app = TestApp::spawn_on(with_backoff(&[3]), settings).await;
    let requests = receiver.wait_for(2, WAIT).await;
    assert!(requests[1].arrived_at > stopped_at);
    assert_cancelled_notification(&requests[1], &event_id, &payment);
    assert_signed(&requests[1], &agency);
    let row = wait_for_event(&app, &event_id, "delivered", WAIT).await;
    assert_eq!(row.attempts, 2, "{row:?}");
    let statuses: Vec<Option<i16>> =
        attempts_of(&app, &event_id).await.iter().map(|a| a.http_status).collect();
    assert_eq!(statuses, vec![Some(500), Some(200)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_app_instances_on_one_database_deliver_each_event_exactly_once() {
    const ORDERS: usize = 200;
    let first = TestApp::spawn().await;
    let second = TestApp::spawn_on(test_config(), first.db_settings.clone()).await;
    let receiver = Receiver::start(Behaviour::status(200)).await;
    // No URL yet: the whole backlog becomes due for both instances at once.
    let agency = agency(&first, AGENCY, None).await;

    let mut orders = JoinSet::new();
    for n in 0..ORDERS {
        let app = if n % 2 == 0 { &first } else { &second };
        let (http, base, key) = (app.http.clone(), app.address.clone(), agency.key.clone());
        orders.spawn(async move {
            let response = http
                .post(format!("{base}/v1/payments"))
                .bearer_auth(&key)
                .header("Idempotency-Key", format!("order-{n}"))
                .json(&json!({
                    "obligation": "fee",
                    "reference": format!("H12-{n}"),
                    "amount": "150000",
                    "description": "Lệ phí",
                    "payer": {"name": "Nguyễn Văn A"},
                    "details": {"procedure_code": "1.002804", "dossier_code": format!("H12-{n}")},
                }))
                .send()
                .await
                .expect("POST /v1/payments");
            assert_eq!(response.status(), 201);
            let payment: Value = response.json().await.expect("a payment");
            let id = payment["id"].as_str().expect("id").to_owned();
            let response = http
                .post(format!("{base}/v1/payments/{id}/cancel"))
                .bearer_auth(&key)
                .send()
                .await
                .expect("POST /v1/payments/{id}/cancel");
            assert_eq!(response.status(), 200);
        });
        // A few requests in flight at a time.
        if orders.len() >= 8 {
            orders.join_next().await.unwrap().expect("an order");
        }
    }
    while let Some(done) = orders.join_next().await {
        done.expect("an order");
    }
    first.assert_count("SELECT count(*) FROM events WHERE status = 'pending'", ORDERS as i64).await;

    set_notify_url(&first, AGENCY, Some(&receiver.url(HOOK_PATH))).await;
    receiver.wait_for(ORDERS, Duration::from_secs(60)).await;
    let deadline = Instant::now() + WAIT;
    while first
        .count(
            "SELECT count(*) FROM events WHERE status <> 'delivered' OR locked_until IS NOT NULL",
        )
        .await
        > 0
    {
        assert!(Instant::now() < deadline, "events were not all recorded delivered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Time for any duplicate to show up.
    tokio::time::sleep(Duration::from_millis(1_000)).await;

    let requests = receiver.requests();
    let received: Vec<&str> =
        requests.iter().map(|r| r.header("paygate-event-id").expect("Paygate-Event-Id")).collect();
    let distinct: HashSet<&str> = received.iter().copied().collect();
    assert_eq!(distinct.len(), ORDERS, "distinct event ids");
    assert_eq!(received.len(), ORDERS, "each event delivered once");
    let client = first.db.get().await.unwrap();
    let stored: HashSet<String> = client
        .query("SELECT id FROM events", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(stored, distinct.iter().map(|id| id.to_string()).collect::<HashSet<_>>());
    for request in &requests {
        assert_signed(request, &agency);
        assert_eq!(request.json()["id"].as_str(), request.header("paygate-event-id"));
    }
    first
        .assert_count(
            "SELECT count(*) FROM events WHERE status = 'delivered' AND attempts = 1",
            ORDERS as i64,
        )
        .await;
    first
        .assert_count("SELECT count(*) FROM event_attempts WHERE http_status = 200", ORDERS as i64)
        .await;
    first.assert_count("SELECT count(*) FROM event_attempts", ORDERS as i64).await;
}

#[tokio::test]
async fn metrics_count_deliveries_by_outcome_and_show_the_queue_depth() {
    let app = TestApp::spawn_with(with_backoff(&[1])).await;
    let receiver = Receiver::start(Behaviour::sequence(&[500, 200])).await;
    let agency = agency(&app, AGENCY, None).await;

    // An event waiting for a URL is due now, so it is in the queue.
    let (_, event_id) = cancelled_order(&app, &agency, "H12-1").await;
    let text = wait_for_metric(&app, "paygate_notify_queue_depth 1", WAIT).await;
    assert!(!text.contains(r#"paygate_notify_deliveries_total{outcome="delivered"}"#), "{text}");

    set_notify_url(&app, AGENCY, Some(&receiver.url(HOOK_PATH))).await;
    wait_for_event(&app, &event_id, "delivered", WAIT).await;
    let text = wait_for_metric(&app, "paygate_notify_queue_depth 0", WAIT).await;
    for line in [
        r#"paygate_notify_deliveries_total{outcome="delivered"} 1"#,
        r#"paygate_notify_deliveries_total{outcome="failed"} 1"#,
        "paygate_notify_delivery_duration_seconds_count 2",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
    }
    assert!(!text.contains(r#"paygate_notify_deliveries_total{outcome="dead"}"#), "{text}");
}

/// A time from the database clock, `offset` (a PostgreSQL interval) from now, as the wire has it.
async fn db_time(app: &TestApp, offset: &str) -> String {
    app.row(
        "SELECT to_char((now() + $1::text::interval) AT TIME ZONE 'UTC',
                        'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
        &[&offset],
    )
    .await
    .get(0)
}

/// The one event of `payment_id` of `event_type`, waited for until it exists.
async fn wait_for_event_of(app: &TestApp, payment_id: &str, event_type: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let rows = app
            .rows(
                "SELECT id FROM events WHERE payment_id = $1 AND type = $2",
                &[&payment_id, &event_type],
            )
            .await;
        if let Some(row) = rows.first() {
            return row.get(0);
        }
        assert!(Instant::now() < deadline, "no {event_type} event for {payment_id}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn get_payment(app: &TestApp, api_key: &str, id: &str) -> Value {
    app.get_json(api_key, &format!("/v1/payments/{id}")).await
}

#[tokio::test]
async fn paid_expired_and_cancelled_orders_are_each_notified_with_their_event_type() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(Behaviour::status(200)).await;
    let agency = agency(&app, AGENCY, Some(&receiver.url(HOOK_PATH))).await;
    let bank = app.create_bank("VCB").await;
    let (kid, bank_secret) =
        (bank["key_id"].as_str().expect("key_id"), bank["secret"].as_str().expect("secret"));

    // Paid through a signed bank callback.
    let paid_id = create_order(&app, &agency.key, "H12-paid").await;
    let callback = serde_json::to_vec(&json!({
        "bank_txn_id": "FT26327001",
        "payment_id": paid_id,
        "amount": "150000",
        "currency": "VND",
        "status": "succeeded",
        "paid_at": db_time(&app, "-1 minute").await,
        "failure_reason": null,
    }))
    .unwrap();
    app.post("/v1/banks/VCB/callbacks")
        .header("content-type", "application/json")
        .header(
            "Paygate-Signature",
            paygate::signature::sign(bank_secret.as_bytes(), kid, now_s(), &callback),
        )
        .body(callback)
        .json_with(200)
        .await;
    // Expired by the sweep, seconds after creation.
    let expiring_id = {
        let created = app
            .post_with(&agency.key, "/v1/payments")
            .header("Idempotency-Key", "expiring")
            .json(&json!({
                "obligation": "fee",
                "reference": "H12-expired",
                "amount": "150000",
                "description": "Lệ phí",
                "payer": {"name": "Nguyễn Văn A"},
                "details": {"procedure_code": "1.002804", "dossier_code": "H12-expired"},
                "expires_at": db_time(&app, "3 seconds").await,
            }))
            .json_with(201)
            .await;
        created["id"].as_str().unwrap().to_owned()
    };
    // Cancelled.
    let (cancelled, cancelled_event) = cancelled_order(&app, &agency, "H12-cancelled").await;

    let paid_event = wait_for_event_of(&app, &paid_id, "payment.paid").await;
    let expired_event = wait_for_event_of(&app, &expiring_id, "payment.expired").await;
    let requests = receiver.wait_for(3, WAIT).await;
    let by_id = |event_id: &str| {
        let found: Vec<&ReceivedRequest> =
            requests.iter().filter(|r| r.header("paygate-event-id") == Some(event_id)).collect();
        assert_eq!(found.len(), 1, "one request for {event_id}: {requests:?}");
        found[0].clone()
    };

    let paid = by_id(&paid_event);
    assert_signed(&paid, &agency);
    let body = paid.json();
    assert_eq!(body["type"], "payment.paid", "{body}");
    assert_eq!(body["id"], paid_event);
    assert_eq!(body["payment"]["status"], "paid", "{body}");
    assert_eq!(body["payment"]["bank"], "VCB", "{body}");
    assert_eq!(body["payment"]["bank_txn_id"], "FT26327001", "{body}");
    assert!(body["payment"]["paid_at"].is_string(), "{body}");
    assert_eq!(body["payment"], get_payment(&app, &agency.key, &paid_id).await);

    let expired = by_id(&expired_event);
    assert_signed(&expired, &agency);
    let body = expired.json();
    assert_eq!(body["type"], "payment.expired", "{body}");
    assert_eq!(body["id"], expired_event);
    assert_eq!(body["payment"]["status"], "expired", "{body}");
    assert_eq!(body["payment"], get_payment(&app, &agency.key, &expiring_id).await);

    assert_cancelled_notification(&by_id(&cancelled_event), &cancelled_event, &cancelled);
    for event_id in [&paid_event, &expired_event, &cancelled_event] {
        let row = wait_for_event(&app, event_id, "delivered", WAIT).await;
        assert_eq!(row.attempts, 1, "{event_id}: {row:?}");
    }
}

#[tokio::test]
async fn answers_other_than_2xx_are_failed_attempts_that_are_retried() {
    for status in [301, 302, 400, 404, 410, 503] {
        let app = TestApp::spawn_with(with_backoff(&[1])).await;
        let receiver = Receiver::start(Behaviour::sequence(&[status, 200])).await;
        let agency = agency(&app, AGENCY, Some(&receiver.url(HOOK_PATH))).await;
        let (_, event_id) = cancelled_order(&app, &agency, "H12-1").await;

        let row = wait_for_event(&app, &event_id, "delivered", WAIT).await;
        assert_eq!(row.attempts, 2, "answer {status}: {row:?}");
        let attempts = attempts_of(&app, &event_id).await;
        let statuses: Vec<Option<i16>> = attempts.iter().map(|a| a.http_status).collect();
        assert_eq!(statuses, vec![Some(status as i16), Some(200)], "answer {status}");
        let error = attempts[0].error.as_deref().expect("an error");
        assert!(error.contains(&status.to_string()), "{error}");
        assert_eq!(receiver.count(), 2, "answer {status}");
    }
}

#[tokio::test]
async fn a_notify_url_whose_address_is_refused_at_delivery_time_is_a_failed_attempt() {
    // One instance allows private addresses, so the URLs can be set; its worker polls only
    // once, at start. The other instance delivers and refuses them.
    let setter =
        TestApp::spawn_with(Config { notify_poll_interval_ms: 3_600_000, ..test_config() }).await;
    let deliverer = TestApp::spawn_on(
        Config { notify_allow_private: false, ..with_backoff(&[1]) },
        setter.db_settings.clone(),
    )
    .await;
    let receiver = Receiver::start(Behaviour::status(200)).await;
    let port = receiver.address().port();
    let literal =
        agency(&setter, AGENCY, Some(&format!("http://127.0.0.1:{port}{HOOK_PATH}"))).await;
    let named =
        agency(&setter, OTHER_AGENCY, Some(&format!("http://localhost:{port}{HOOK_PATH}"))).await;
    let (_, literal_event) = cancelled_order(&setter, &literal, "H12-1").await;
    let (_, named_event) = cancelled_order(&setter, &named, "H29-1").await;

    for event_id in [&literal_event, &named_event] {
        let row = wait_for_event(&deliverer, event_id, "dead", WAIT).await;
        assert_eq!(row.attempts, 2, "{event_id}: {row:?}");
        let attempts = attempts_of(&deliverer, event_id).await;
        assert_eq!(attempts.len(), 2, "{attempts:?}");
        for attempt in attempts {
            assert_eq!(attempt.http_status, None, "{attempt:?}");
            let error = attempt.error.expect("a refused address is an error");
            assert!(error.contains("private"), "{event_id}: {error}");
        }
    }
    assert_eq!(receiver.count(), 0, "nothing reached the private address");
}

#[tokio::test]
async fn a_redelivery_requested_during_a_failing_attempt_is_not_lost() {
    // The schedule allows one retry; the retry is slow and fails, and the agency asks for a
    // redelivery while it is in flight. The event must be pending again afterwards, with a
    // fresh schedule, not dead.
    let app = TestApp::spawn_with(with_backoff(&[1])).await;
    let receiver = Receiver::start(Behaviour::script(
        vec![Reply::status(500), Reply::delayed(Duration::from_secs(3), 500)],
        Reply::status(200),
    ))
    .await;
    let agency = agency(&app, AGENCY, Some(&receiver.url(HOOK_PATH))).await;
    let (_, event_id) = cancelled_order(&app, &agency, "H12-1").await;
    receiver.wait_for(2, WAIT).await;
    // The second attempt is being held by the receiver.
    let response = redeliver(&app, &agency.key, &event_id).await;
    assert_eq!(response.status(), 202);

    // Once the held attempt has failed and been recorded (one transaction with the event's
    // update), the event is not dead: it is pending (or already delivered again).
    wait_for_attempts(&app, &event_id, 2, WAIT).await;
    let row = event_row(&app, &event_id).await;
    assert!(
        row.status == "pending" || row.status == "delivered",
        "the redelivery was lost: {row:?}"
    );

    let requests = receiver.wait_for(3, WAIT).await;
    assert_eq!(requests[2].header("paygate-event-id"), Some(event_id.as_str()));
    let row = wait_for_event(&app, &event_id, "delivered", WAIT).await;
    assert_eq!(row.attempts, 3, "{row:?}");
}

#[tokio::test]
async fn a_stopping_app_finishes_its_deliveries_in_flight_and_releases_the_rest_at_once() {
    const EVENTS: usize = 40;
    let app = TestApp::spawn().await;
    // Every answer takes a while, so the app stops with deliveries in flight and more claimed.
    let receiver =
        Receiver::start(Behaviour::script(Vec::new(), Reply::delayed(Duration::from_secs(2), 200)))
            .await;
    let agency = agency(&app, AGENCY, None).await;
    for n in 0..EVENTS {
        cancelled_order(&app, &agency, &format!("H12-{n}")).await;
    }
    set_notify_url(&app, AGENCY, Some(&receiver.url(HOOK_PATH))).await;
    let in_flight = receiver.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let db = app.db.clone();
    let settings = app.stop_keeping_database();
    let started = receiver.count();
    assert!(!in_flight.is_empty() && started < EVENTS, "{started} started");

    // The deliveries in flight are recorded, delivered, once their answers come.
    let count = |sql: &'static str| {
        let db = db.clone();
        async move {
            let client = db.get().await.expect("a test database connection");
            client.query_one(sql, &[]).await.expect(sql).get::<_, i64>(0)
        }
    };
    let deadline = Instant::now() + WAIT;
    while count("SELECT count(*) FROM events WHERE status = 'delivered'").await < started as i64 {
        assert!(Instant::now() < deadline, "the deliveries in flight were not recorded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.count(), started, "the stopping app started no new delivery");
    // The rest are not left under the 60 s lease.
    assert_eq!(count("SELECT count(*) FROM events WHERE locked_until IS NOT NULL").await, 0);

    let app = TestApp::spawn_on(test_config(), settings).await;
    receiver.wait_for(EVENTS, Duration::from_secs(30)).await;
    let deadline = Instant::now() + WAIT;
    while app.count("SELECT count(*) FROM events WHERE status = 'delivered' AND attempts = 1").await
        < EVENTS as i64
    {
        assert!(Instant::now() < deadline, "not all events were delivered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let distinct: HashSet<String> = receiver
        .requests()
        .iter()
        .map(|r| r.header("paygate-event-id").unwrap().to_owned())
        .collect();
    assert_eq!(distinct.len(), EVENTS);
    assert_eq!(receiver.count(), EVENTS, "no event was sent twice");
}

/// Asserts that header `name` of `request` is one signature by `kid` with `secret` over exactly
/// the bytes received, and returns its timestamp.
fn assert_signed_with(request: &ReceivedRequest, name: &str, secret: &str, kid: &str) -> i64 {
    let values = request.header_values(name);
    assert_eq!(values.len(), 1, "one {name} header: {request:?}");
    let header = SignatureHeader::parse(values[0])
        .unwrap_or_else(|err| panic!("unparsable {name} {:?}: {err}", values[0]));
    assert_eq!(header.kid, kid);
    header
        .verify(secret.as_bytes(), &request.body, now_s(), 300)
        .unwrap_or_else(|err| panic!("{name} does not verify with its secret: {err}"));
    header.timestamp
}

async fn rotate(app: &TestApp, code: &str) -> String {
    let body =
        app.admin(Method::POST, &format!("/v1/agencies/{code}/notify-secret")).json_with(201).await;
    let fields: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(fields, ["notify_secret"], "{body}");
    let secret = body["notify_secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("nsk_") && secret.len() == 47, "{secret}");
    secret
}

#[tokio::test]
async fn after_a_secret_rotation_notifications_carry_both_signatures_for_a_day_then_only_the_new_one(
) {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(Behaviour::status(200)).await;
    let mut agency = agency(&app, AGENCY, Some(&receiver.url(HOOK_PATH))).await;
    let old = agency.notify_secret.clone();
    let new = rotate(&app, AGENCY).await;
    assert_ne!(new, old);
    let read = app
        .admin(Method::GET, &format!("/v1/agencies/{AGENCY}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!read.contains(&new) && !read.contains(&old), "{read}");

    // Within the day: the new secret signs Paygate-Signature, the old one
    // Paygate-Signature-Previous, at the same time over the same bytes; each verifies only with
    // its own secret.
    let (_, first_event) = cancelled_order(&app, &agency, "H12-rot-1").await;
    let requests = receiver.wait_for(1, WAIT).await;
    let request = &requests[0];
    assert_eq!(request.header("paygate-event-id"), Some(first_event.as_str()));
    let t = assert_signed_with(request, "paygate-signature", &new, AGENCY);
    let t_previous = assert_signed_with(request, "paygate-signature-previous", &old, AGENCY);
    assert_eq!(t, t_previous);
    for (name, wrong) in [("paygate-signature", &old), ("paygate-signature-previous", &new)] {
        let header = SignatureHeader::parse(request.header(name).unwrap()).unwrap();
        assert_eq!(
            header.verify(wrong.as_bytes(), &request.body, now_s(), 300),
            Err(SignatureError::BadMac),
            "{name}"
        );
    }

    // Still inside the day, just.
    let client = app.db.get().await.unwrap();
    client
        .execute(
            "UPDATE agencies SET notify_secret_rotated_at = now() - interval '23 hours 59 minutes'",
            &[],
        )
        .await
        .unwrap();
    cancelled_order(&app, &agency, "H12-rot-2").await;
    let requests = receiver.wait_for(2, WAIT).await;
    assert_signed_with(&requests[1], "paygate-signature", &new, AGENCY);
    assert_signed_with(&requests[1], "paygate-signature-previous", &old, AGENCY);

    // A day after the rotation, only the new secret signs.
    client
        .execute(
            "UPDATE agencies SET notify_secret_rotated_at = now() - interval '24 hours 1 second'",
            &[],
        )
        .await
        .unwrap();
    agency.notify_secret = new.clone();
    cancelled_order(&app, &agency, "H12-rot-3").await;
    let requests = receiver.wait_for(3, WAIT).await;
    assert_signed(&requests[2], &agency);

    // Rotating again: the secret just replaced is the previous one; the first is forgotten.
    let newest = rotate(&app, AGENCY).await;
    cancelled_order(&app, &agency, "H12-rot-4").await;
    let requests = receiver.wait_for(4, WAIT).await;
    assert_signed_with(&requests[3], "paygate-signature", &newest, AGENCY);
    assert_signed_with(&requests[3], "paygate-signature-previous", &new, AGENCY);
    let stored: (String, String) = {
        let row = client
            .query_one(
                "SELECT notify_secret, previous_notify_secret FROM agencies WHERE code = $1",
                &[&AGENCY],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(stored, (newest, new));
}

#[tokio::test]
async fn rotating_the_secret_of_an_unknown_agency_answers_404_and_changes_nothing() {
    let app = TestApp::spawn().await;
    agency(&app, AGENCY, None).await;
    let before =
        app.count("SELECT count(*) FROM agencies WHERE previous_notify_secret IS NULL").await;
    for code in ["NOPE", "not%20a%20code"] {
        app.admin(Method::POST, &format!("/v1/agencies/{code}/notify-secret"))
            .problem(404, "agency_not_found")
            .await;
    }
    app.assert_count("SELECT count(*) FROM agencies WHERE previous_notify_secret IS NULL", before)
        .await;
}
