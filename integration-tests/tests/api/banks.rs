//! Banks and the ledger: signed inquiry and callbacks, every row of the callback
//! table in its order, every way a signature fails, concurrent deliveries, and the append-only
//! double-entry ledger that callbacks post to.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use integration_tests::{assert_problem, details, invalid_fields, test_config, TestApp};
use paygate::config::Config;
use paygate::signature::sign;
use reqwest::header::HeaderValue;
use reqwest::{Method, Response};
use serde_json::{json, Value};

const AGENCY: &str = "000.00.00.H12";
const OTHER_AGENCY: &str = "000.00.00.H29";
const BANK: &str = "VCB";
const OTHER_BANK: &str = "BIDV";
const AMOUNT: &str = "150000";
const DESCRIPTION: &str = "Lệ phí cấp đổi giấy phép lái xe";
/// An order moved into the past by SQL is created at `CREATED_AT` and expires at `EXPIRED_AT`.
const CREATED_AT: &str = "2025-03-01T00:00:00Z";
const EXPIRED_AT: &str = "2025-03-02T00:00:00Z";
/// A bank's time of payment before that expiry, and one after it.
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
const OBLIGATIONS: [&str; 6] = [
    "fee",
    "tax",
    "social_insurance",
    "fine",
    "electricity",
    "court_advance",
];

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn now_s() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    i64::try_from(since_epoch.as_secs()).expect("seconds fit in i64")
}

/// `unix_s` as RFC 3339 in UTC, `YYYY-MM-DDTHH:MM:SSZ` (Howard Hinnant's `civil_from_days`;
/// the tests have no date crate of their own).
fn rfc3339(unix_s: i64) -> String {
    let days = unix_s.div_euclid(86_400);
    let seconds = unix_s.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds / 3_600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// The same instant as `rfc3339(unix_s)`, written with a whole-hour offset such as `+07:00`.
fn rfc3339_at_offset(unix_s: i64, offset_hours: i64) -> String {
    let local = rfc3339(unix_s + offset_hours * 3_600);
    format!("{}{offset_hours:+03}:00", &local[..19])
}

/// A bank's time of payment a minute ago.
fn paid_a_minute_ago() -> String {
    rfc3339(now_s() - 60)
}

/// A create body without `expires_at`.
fn order_body(obligation: &str, reference: &str, amount: &str) -> Value {
    json!({
        "obligation": obligation,
        "reference": reference,
        "amount": amount,
        "currency": "VND",
        "description": DESCRIPTION,
        "payer": {"name": "Nguyễn Văn A", "id_number": "001099012345"},
        "details": details(obligation),
    })
}

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

fn header(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).expect("a valid header value")
}

/// One signing key of a bank, as `POST /v1/banks` or `POST /v1/banks/{code}/keys` answered it.
#[derive(Debug, Clone)]
struct Signer {
    bank: String,
    kid: String,
    secret: String,
}

impl Signer {
    fn from_answer(bank: &str, answer: &Value) -> Signer {
        Signer {
            bank: bank.to_owned(),
            kid: answer["key_id"].as_str().expect("key_id").to_owned(),
            secret: answer["secret"].as_str().expect("secret").to_owned(),
        }
    }

    /// The `Paygate-Signature` value for `body` at unix time `t`.
    fn signature(&self, t: i64, body: &[u8]) -> String {
        sign(self.secret.as_bytes(), &self.kid, t, body)
    }
}

async fn new_bank(app: &TestApp, code: &str) -> Signer {
    Signer::from_answer(code, &app.create_bank(code).await)
}

/// POSTs `body` (exactly these bytes) to `path` with one `Paygate-Signature` header per value.
async fn post_raw(
    app: &TestApp,
    path: &str,
    signatures: &[HeaderValue],
    body: Vec<u8>,
) -> Response {
    let mut request = app
        .http
        .post(app.url(path))
        .header("Content-Type", "application/json")
        .body(body);
    for value in signatures {
        request = request.header("Paygate-Signature", value.clone());
    }
    request.send().await.expect("POST to a bank endpoint")
}

/// POSTs `body` to `/v1/banks/<bank>/<endpoint>`, signed now by `signer`.
async fn post_signed(app: &TestApp, signer: &Signer, endpoint: &str, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).expect("JSON");
    let signature = signer.signature(now_s(), &bytes);
    let path = format!("/v1/banks/{}/{endpoint}", signer.bank);
    post_raw(app, &path, &[header(&signature)], bytes).await
}

async fn json_200(response: Response) -> Value {
    let status = response.status();
    let text = response.text().await.expect("an answer");
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).expect("a JSON answer")
}

/// An app with one agency and one bank, and keys to act as each and as an auditor.
struct World {
    app: TestApp,
    agency_key: String,
    auditor_key: String,
    bank: Signer,
}

impl World {
    async fn new() -> World {
        World::with(test_config()).await
    }

    async fn with(config: Config) -> World {
        let app = TestApp::spawn_with(config).await;
        let agency_key = app.create_agency(AGENCY).await["api_key"]
            .as_str()
            .expect("api_key")
            .to_owned();
        let bank = new_bank(&app, BANK).await;
        let auditor_key = app.key_with_role("auditor").await;
        World {
            app,
            agency_key,
            auditor_key,
            bank,
        }
    }

    /// Creates an order of `body` with the agency's key; returns the payment.
    async fn create(&self, api_key: &str, body: &Value) -> Value {
        let idempotency_key = paygate::auth::keys::random_id("idem", 8);
        let response = self
            .app
            .http
            .post(self.app.url("/v1/payments"))
            .bearer_auth(api_key)
            .header("Idempotency-Key", idempotency_key)
            .json(body)
            .send()
            .await
            .expect("POST /v1/payments");
        let status = response.status();
        let text = response.text().await.expect("an answer");
        assert_eq!(status, 201, "{body}: {text}");
        serde_json::from_str(&text).expect("a JSON payment")
    }

    /// Creates a pending `fee` order of `AMOUNT`; returns its id.
    async fn order(&self, reference: &str) -> String {
        let payment = self
            .create(&self.agency_key, &order_body("fee", reference, AMOUNT))
            .await;
        payment["id"].as_str().expect("id").to_owned()
    }

    async fn payment(&self, id: &str) -> Value {
        let response = self
            .app
            .admin(Method::GET, &format!("/v1/payments/{id}"))
            .send()
            .await
            .expect("GET /v1/payments/{id}");
        json_200(response).await
    }

    async fn cancel(&self, id: &str) {
        let response = self
            .app
            .http
            .post(self.app.url(&format!("/v1/payments/{id}/cancel")))
            .bearer_auth(&self.agency_key)
            .send()
            .await
            .expect("POST cancel");
        let payment = json_200(response).await;
        assert_eq!(payment["status"], "cancelled");
    }

    /// Delivers a callback signed now by the world's bank.
    async fn deliver(&self, body: &Value) -> Response {
        post_signed(&self.app, &self.bank, "callbacks", body).await
    }

    /// Delivers a callback that must answer 200; returns the answer.
    async fn deliver_ok(&self, body: &Value) -> Value {
        json_200(self.deliver(body).await).await
    }

    /// GET `path` with the auditor's key; must answer 200.
    async fn audit(&self, path: &str) -> Value {
        let response = self
            .app
            .http
            .get(self.app.url(path))
            .bearer_auth(&self.auditor_key)
            .send()
            .await
            .expect("GET as auditor");
        json_200(response).await
    }

    async fn verify(&self) -> Value {
        self.audit("/v1/ledger/verify").await
    }

    /// Account -> balance, from `GET /v1/ledger/balances`.
    async fn balances(&self) -> HashMap<String, String> {
        balance_map(&self.audit("/v1/ledger/balances").await)
    }

    /// One page of `GET /v1/exceptions?<query>`.
    async fn exceptions(&self, query: &str) -> Value {
        self.audit(&format!("/v1/exceptions?{query}")).await
    }

    /// Moves an order's creation and expiry into the past (expired at `EXPIRED_AT`).
    async fn backdate(&self, id: &str) {
        let client = self.app.db.get().await.expect("a test database connection");
        let moved = client
            .execute(
                &format!(
                    "UPDATE payments SET created_at = '{CREATED_AT}', expires_at = '{EXPIRED_AT}'
                     WHERE id = $1"
                ),
                &[&id],
            )
            .await
            .expect("backdate the order");
        assert_eq!(moved, 1);
    }

    /// Backdates an order and waits until the expiry sweep has stored it as expired.
    async fn expire(&self, id: &str) {
        self.backdate(id).await;
        let deadline = Instant::now() + Duration::from_secs(15);
        while stored_status(&self.app, id).await != "expired" {
            assert!(Instant::now() < deadline, "the sweep did not expire {id}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn balance_map(balances: &Value) -> HashMap<String, String> {
    balances["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| {
            (
                item["account"].as_str().expect("account").to_owned(),
                item["balance"].as_str().expect("balance").to_owned(),
            )
        })
        .collect()
}

/// The status column as stored (not the effective status an answer shows).
async fn stored_status(app: &TestApp, id: &str) -> String {
    let client = app.db.get().await.expect("a test database connection");
    client
        .query_one("SELECT status FROM payments WHERE id = $1", &[&id])
        .await
        .expect("the order exists")
        .get(0)
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
    Snapshot {
        callback_exceptions: before.callback_exceptions + 1,
        ..before.clone()
    }
}

async fn count_events(app: &TestApp, payment_id: &str, event_type: &str) -> i64 {
    app.count(&format!(
        "SELECT count(*) FROM events WHERE payment_id = '{payment_id}' AND type = '{event_type}'"
    ))
    .await
}

/// The ledger entries of `payment_id` as (account, debit, credit), in order of writing.
async fn entries_of(app: &TestApp, payment_id: &str) -> Vec<(String, String, String)> {
    let client = app.db.get().await.expect("a test database connection");
    client
        .query(
            "SELECT e.account, e.debit::text, e.credit::text
             FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id
             WHERE t.payment_id = $1 ORDER BY e.id",
            &[&payment_id],
        )
        .await
        .expect("read the ledger")
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

async fn metrics(app: &TestApp) -> String {
    let response = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(response.status(), 200);
    response.text().await.expect("metrics text")
}

/// The value of one counter series (`name{labels}`), 0 when it is absent.
fn counter(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

#[test]
fn the_test_clock_formats_unix_seconds_as_rfc_3339() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    assert_eq!(
        rfc3339_at_offset(1_700_000_000, 7),
        "2023-11-15T05:13:20+07:00"
    );
}

// ---------------------------------------------------------------------------------------------
// The callback table, row by row
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn first_succeeded_callback_for_a_pending_order_pays_it_posts_one_transaction_and_one_event()
{
    let w = World::new().await;
    let id = w.order("H12.99-261122-0001").await;
    let paid_at = paid_a_minute_ago();

    let answer = w.deliver_ok(&succeeded("FT26327001", &id, &paid_at)).await;

    assert_eq!(
        answer,
        json!({"result": "accepted", "payment_id": id, "payment_status": "paid"})
    );
    let payment = w.payment(&id).await;
    assert_eq!(payment["status"], "paid");
    assert_eq!(payment["bank"], BANK);
    assert_eq!(payment["bank_txn_id"], "FT26327001");
    assert_eq!(payment["paid_at"], paid_at.as_str());
    assert_eq!(w.app.count("SELECT count(*) FROM bank_callbacks").await, 1);
    assert_eq!(
        w.app
            .count("SELECT count(*) FROM ledger_transactions")
            .await,
        1
    );
    assert_eq!(
        entries_of(&w.app, &id).await,
        vec![
            entry("bank:VCB", AMOUNT, "0"),
            entry(&agency_account("fee"), "0", AMOUNT)
        ]
    );
    assert_eq!(count_events(&w.app, &id, "payment.paid").await, 1);
    assert_eq!(w.app.count("SELECT count(*) FROM events").await, 1);
    let client = w.app.db.get().await.unwrap();
    let event_payment: Value = client
        .query_one("SELECT payment FROM events WHERE payment_id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(event_payment["status"], "paid");
    assert_eq!(event_payment["bank_txn_id"], "FT26327001");
    assert_eq!(event_payment["paid_at"], paid_at.as_str());
    assert_eq!(
        w.app
            .count("SELECT count(*) FROM callback_exceptions")
            .await,
        0
    );
    assert_verified(&w.verify().await, 1, AMOUNT);
    assert_eq!(
        w.audit("/v1/ledger/balances").await,
        json!({"items": [
            {"account": agency_account("fee"), "debits": "0", "credits": AMOUNT,
             "balance": "-150000"},
            {"account": "bank:VCB", "debits": AMOUNT, "credits": "0", "balance": AMOUNT},
        ]})
    );
    assert_eq!(w.exceptions("").await["items"], json!([]));
}

#[tokio::test]
async fn paid_at_with_an_offset_becomes_the_same_instant_in_utc() {
    let w = World::new().await;
    let id = w.order("H12-OFFSET").await;
    let t = now_s() - 120;

    w.deliver_ok(&succeeded("FT-OFFSET", &id, &rfc3339_at_offset(t, 7)))
        .await;

    assert_eq!(w.payment(&id).await["paid_at"], rfc3339(t).as_str());
}

#[tokio::test]
async fn each_obligation_is_credited_to_the_agency_account_of_that_obligation() {
    let w = World::new().await;
    let paid_at = paid_a_minute_ago();
    for (n, obligation) in OBLIGATIONS.iter().enumerate() {
        let amount = format!("{}000", n + 1);
        let payment = w
            .create(
                &w.agency_key,
                &order_body(obligation, &format!("REF-{obligation}"), &amount),
            )
            .await;
        let id = payment["id"].as_str().unwrap();
        let body = changed(
            &succeeded(&format!("FT-{obligation}"), id, &paid_at),
            "amount",
            Some(json!(amount)),
        );
        let answer = w.deliver_ok(&body).await;
        assert_eq!(answer["result"], "accepted", "{obligation}: {answer}");
        assert_eq!(
            entries_of(&w.app, id).await,
            vec![
                entry("bank:VCB", &amount, "0"),
                entry(&agency_account(obligation), "0", &amount)
            ],
            "{obligation}"
        );
    }

    let balances = w.balances().await;
    for (n, obligation) in OBLIGATIONS.iter().enumerate() {
        assert_eq!(
            balances[&agency_account(obligation)],
            format!("-{}000", n + 1),
            "{obligation}"
        );
    }
    assert_eq!(balances["bank:VCB"], "21000");
    assert_verified(&w.verify().await, 6, "21000");
}

#[tokio::test]
async fn a_succeeded_callback_for_an_expired_order_paid_by_its_expiry_pays_the_order() {
    let w = World::new().await;
    // Paid one second before the expiry, and exactly at it: both in time.
    for (reference, paid_at) in [("H12-IN-TIME", PAID_IN_TIME), ("H12-AT-EXPIRY", EXPIRED_AT)] {
        let id = w.order(reference).await;
        w.expire(&id).await;
        assert_eq!(w.payment(&id).await["status"], "expired");

        let answer = w
            .deliver_ok(&succeeded(&format!("FT-{reference}"), &id, paid_at))
            .await;

        assert_eq!(
            answer,
            json!({"result": "accepted", "payment_id": id, "payment_status": "paid"}),
            "{reference}"
        );
        let payment = w.payment(&id).await;
        assert_eq!(payment["status"], "paid", "{reference}");
        assert_eq!(payment["paid_at"], paid_at, "{reference}");
        assert_eq!(payment["bank"], BANK);
        assert_eq!(count_events(&w.app, &id, "payment.paid").await, 1);
        assert_eq!(
            entries_of(&w.app, &id).await,
            vec![
                entry("bank:VCB", AMOUNT, "0"),
                entry(&agency_account("fee"), "0", AMOUNT)
            ]
        );
    }
    assert_verified(&w.verify().await, 2, "300000");
    assert_eq!(
        w.app
            .count("SELECT count(*) FROM callback_exceptions")
            .await,
        0
    );
}

#[tokio::test]
async fn an_overdue_order_the_sweep_has_not_reached_yet_is_judged_expired_by_the_callback() {
    // The sweep's first round runs at start-up, the next an hour later: the overdue orders
    // below stay stored as pending throughout.
    let w = World::with(Config {
        expiry_interval_ms: 3_600_000,
        ..test_config()
    })
    .await;
    let in_time = w.order("H12-OVERDUE-1").await;
    let too_late = w.order("H12-OVERDUE-2").await;
    w.backdate(&in_time).await;
    w.backdate(&too_late).await;
    assert_eq!(stored_status(&w.app, &in_time).await, "pending");
    assert_eq!(w.payment(&in_time).await["status"], "expired");

    let paid = w
        .deliver_ok(&succeeded("FT-OVERDUE-1", &in_time, PAID_IN_TIME))
        .await;
    let closed = w
        .deliver_ok(&succeeded("FT-OVERDUE-2", &too_late, PAID_TOO_LATE))
        .await;

    assert_eq!(
        paid,
        json!({"result": "accepted", "payment_id": in_time, "payment_status": "paid"})
    );
    assert_eq!(w.payment(&in_time).await["status"], "paid");
    assert_eq!(count_events(&w.app, &in_time, "payment.paid").await, 1);
    assert_eq!(
        closed,
        json!({"result": "exception", "exception": "order_closed", "payment_id": too_late,
               "payment_status": "expired"})
    );
    assert_eq!(w.payment(&too_late).await["status"], "expired");
    assert_eq!(count_events(&w.app, &too_late, "payment.paid").await, 0);
    let balances = w.balances().await;
    assert_eq!(balances["bank:VCB"], "300000");
    assert_eq!(balances[&agency_account("fee")], "-150000");
    assert_eq!(balances["suspense:VCB"], "-150000");
}

#[tokio::test]
async fn a_callback_paid_after_the_order_expired_goes_to_suspense_as_order_closed() {
    let w = World::new().await;
    let id = w.order("H12-LATE").await;
    w.expire(&id).await;
    let before = snapshot(&w.app).await;

    let answer = w
        .deliver_ok(&succeeded("FT-LATE", &id, PAID_TOO_LATE))
        .await;

    assert_eq!(
        answer,
        json!({"result": "exception", "exception": "order_closed", "payment_id": id,
               "payment_status": "expired"})
    );
    let after = snapshot(&w.app).await;
    assert_eq!(after.payments, before.payments, "the order is unchanged");
    assert_eq!(after.events, before.events, "no event");
    assert_eq!(after.bank_callbacks, before.bank_callbacks + 1);
    assert_eq!(after.callback_exceptions, before.callback_exceptions + 1);
    let payment = w.payment(&id).await;
    assert_eq!(payment["status"], "expired");
    assert_eq!(payment["paid_at"], Value::Null);
    assert_eq!(payment["bank_txn_id"], Value::Null);
    assert_eq!(
        entries_of(&w.app, &id).await,
        vec![
            entry("bank:VCB", AMOUNT, "0"),
            entry("suspense:VCB", "0", AMOUNT)
        ]
    );
    let listed = w.exceptions("").await;
    let item = exception_for(&listed, "FT-LATE");
    assert_eq!(item["kind"], "suspense");
    assert_eq!(item["reason"], "order_closed");
    assert_eq!(item["bank"], BANK);
    assert_eq!(item["payment_id"], id.as_str());
    assert_eq!(item["amount"], AMOUNT);
    assert_eq!(item["currency"], "VND");
    assert_eq!(item["paid_at"], PAID_TOO_LATE);
    let balances = w.balances().await;
    assert_eq!(balances["bank:VCB"], AMOUNT);
    assert_eq!(balances["suspense:VCB"], "-150000");
    assert!(!balances.contains_key(&agency_account("fee")));
    assert_verified(&w.verify().await, 1, AMOUNT);
}

#[tokio::test]
async fn an_expired_order_paid_in_time_whose_reference_is_now_held_by_another_order_is_order_closed(
) {
    let w = World::new().await;
    let paid_at = paid_a_minute_ago();
    // (the holder's fate, whether the old order's reference is taken)
    for (holder_fate, taken) in [("pending", true), ("paid", true), ("cancelled", false)] {
        let reference = format!("H12-REUSED-{holder_fate}");
        let old = w.order(&reference).await;
        w.expire(&old).await;
        let holder = w.order(&reference).await;
        match holder_fate {
            "paid" => {
                let answer = w
                    .deliver_ok(&succeeded(
                        &format!("FT-HOLDER-{holder_fate}"),
                        &holder,
                        &paid_at,
                    ))
                    .await;
                assert_eq!(answer["result"], "accepted");
            }
            "cancelled" => w.cancel(&holder).await,
            _ => {}
        }
        let before = snapshot(&w.app).await;

        let answer = w
            .deliver_ok(&succeeded(
                &format!("FT-OLD-{holder_fate}"),
                &old,
                PAID_IN_TIME,
            ))
            .await;

        if taken {
            assert_eq!(
                answer,
                json!({"result": "exception", "exception": "order_closed", "payment_id": old,
                       "payment_status": "expired"}),
                "holder {holder_fate}"
            );
            let after = snapshot(&w.app).await;
            assert_eq!(after.payments, before.payments, "holder {holder_fate}");
            assert_eq!(
                entries_of(&w.app, &old).await,
                vec![
                    entry("bank:VCB", AMOUNT, "0"),
                    entry("suspense:VCB", "0", AMOUNT)
                ]
            );
            let listed = w.exceptions("").await;
            let item = exception_for(&listed, &format!("FT-OLD-{holder_fate}"));
            assert_eq!(item["reason"], "order_closed");
            assert_eq!(item["kind"], "suspense");
        } else {
            assert_eq!(
                answer,
                json!({"result": "accepted", "payment_id": old, "payment_status": "paid"}),
                "a cancelled holder gives the reference back"
            );
            assert_eq!(w.payment(&old).await["status"], "paid");
        }
        assert_eq!(w.payment(&holder).await["status"], holder_fate);
    }
    assert_eq!(w.verify().await["ok"], true);
}

#[tokio::test]
async fn a_failed_callback_is_accepted_and_changes_neither_the_order_nor_the_ledger() {
    let w = World::new().await;
    let id = w.order("H12-FAILED").await;
    let before = snapshot(&w.app).await;

    let answer = w.deliver_ok(&failed("FT-FAIL-1", &id)).await;

    assert_eq!(answer["result"], "accepted", "{answer}");
    assert_eq!(answer["payment_status"], "pending", "{answer}");
    assert!(answer.get("exception").is_none(), "{answer}");
    if let Some(payment_id) = answer.get("payment_id") {
        assert_eq!(payment_id, id.as_str());
    }
    let after = snapshot(&w.app).await;
    assert_eq!(
        after,
        Snapshot {
            bank_callbacks: before.bank_callbacks + 1,
            ..before.clone()
        },
        "only the attempt is recorded"
    );
    assert_eq!(w.payment(&id).await["status"], "pending");

    // `failed` is decided before the amount: a failed attempt of another amount is recorded too.
    let other_amount = changed(&failed("FT-FAIL-2", &id), "amount", Some(json!("1")));
    assert_eq!(
        w.deliver_ok(&other_amount).await["payment_status"],
        "pending"
    );
    // The order can still be paid, and a later failed attempt leaves it paid.
    let paid = w
        .deliver_ok(&succeeded("FT-PAY", &id, &paid_a_minute_ago()))
        .await;
    assert_eq!(paid["result"], "accepted");
    let late_failure = w.deliver_ok(&failed("FT-FAIL-3", &id)).await;
    assert_eq!(late_failure["result"], "accepted");
    assert_eq!(late_failure["payment_status"], "paid");
    // And a failed attempt for a cancelled order leaves it cancelled.
    let cancelled = w.order("H12-FAILED-CANCELLED").await;
    w.cancel(&cancelled).await;
    let answer = w.deliver_ok(&failed("FT-FAIL-4", &cancelled)).await;
    assert_eq!(answer["result"], "accepted");
    assert_eq!(answer["payment_status"], "cancelled");
    assert_eq!(w.payment(&cancelled).await["status"], "cancelled");

    assert_eq!(w.app.count("SELECT count(*) FROM bank_callbacks").await, 5);
    assert_verified(&w.verify().await, 1, AMOUNT);
    assert_eq!(
        w.app
            .count("SELECT count(*) FROM callback_exceptions")
            .await,
        0
    );
    // A failed callback reserves its bank_txn_id for ever.
    let reuse = w
        .deliver(&succeeded("FT-FAIL-4", &cancelled, &paid_a_minute_ago()))
        .await;
    assert_problem(reuse, 409, "bank_txn_conflict").await;
}

#[tokio::test]
async fn an_exact_redelivery_answers_duplicate_and_changes_nothing() {
    let w = World::new().await;
    let id = w.order("H12-REDELIVERY").await;
    let t = now_s() - 60;
    // The first delivery leaves currency and failure_reason out.
    let first = json!({
        "bank_txn_id": "FT-DUP", "payment_id": id, "amount": AMOUNT,
        "status": "succeeded", "paid_at": rfc3339(t),
    });
    let accepted = w.deliver_ok(&first).await;
    assert_eq!(accepted["result"], "accepted");
    let before = snapshot(&w.app).await;

    let redeliveries = [
        ("the same body", first.clone()),
        (
            "currency VND given",
            changed(&first, "currency", Some(json!("VND"))),
        ),
        (
            "failure_reason null given",
            changed(&first, "failure_reason", Some(Value::Null)),
        ),
        (
            "paid_at at +07:00",
            changed(&first, "paid_at", Some(json!(rfc3339_at_offset(t, 7)))),
        ),
        (
            "paid_at at -05:00 with a zero fraction",
            changed(
                &first,
                "paid_at",
                Some(json!(
                    rfc3339_at_offset(t, -5).replace("-05:00", ".000000-05:00")
                )),
            ),
        ),
        ("every field given", succeeded("FT-DUP", &id, &rfc3339(t))),
    ];
    for (what, body) in redeliveries {
        let answer = w.deliver_ok(&body).await;
        assert_eq!(
            answer,
            json!({"result": "duplicate", "payment_id": id, "payment_status": "paid"}),
            "{what}"
        );
        assert_eq!(snapshot(&w.app).await, before, "{what}");
    }
    // The very same bytes with members reordered and spaced out are the same content too.
    let spaced = format!(
        "{{ \"paid_at\" : \"{}\", \"status\":\"succeeded\", \"amount\":\"{AMOUNT}\",\n \
         \"payment_id\":\"{id}\", \"bank_txn_id\":\"FT-DUP\" }}",
        rfc3339(t)
    )
    .into_bytes();
    let signature = w.bank.signature(now_s(), &spaced);
    let response = post_raw(
        &w.app,
        "/v1/banks/VCB/callbacks",
        &[header(&signature)],
        spaced,
    )
    .await;
    assert_eq!(json_200(response).await["result"], "duplicate");
    assert_eq!(snapshot(&w.app).await, before);
    assert_verified(&w.verify().await, 1, AMOUNT);
}

#[tokio::test]
async fn redeliveries_of_failed_and_exception_callbacks_are_duplicates_too() {
    let w = World::new().await;
    let id = w.order("H12-DUP-KINDS").await;
    let paid_at = paid_a_minute_ago();
    w.deliver_ok(&failed("FT-F", &id)).await;
    w.deliver_ok(&succeeded("FT-P", &id, &paid_at)).await;
    let exception = w.deliver_ok(&succeeded("FT-X", &id, &paid_at)).await;
    assert_eq!(exception["exception"], "double_payment");
    let before = snapshot(&w.app).await;

    for body in [
        failed("FT-F", &id),
        succeeded("FT-P", &id, &paid_at),
        succeeded("FT-X", &id, &paid_at),
    ] {
        let answer = w.deliver_ok(&body).await;
        assert_eq!(
            answer,
            json!({"result": "duplicate", "payment_id": id, "payment_status": "paid"}),
            "{body}"
        );
    }
    assert_eq!(snapshot(&w.app).await, before);
    assert_verified(&w.verify().await, 2, "300000");
}

#[tokio::test]
async fn the_same_bank_txn_id_with_different_content_is_a_409_conflict_and_changes_nothing() {
    let w = World::new().await;
    let id = w.order("H12-CONFLICT").await;
    let other = w.order("H12-CONFLICT-OTHER").await;
    let t = now_s() - 60;
    let original = succeeded("FT-CONFLICT", &id, &rfc3339(t));
    w.deliver_ok(&original).await;
    let before = snapshot(&w.app).await;

    let conflicting = [
        (
            "another payment_id",
            changed(&original, "payment_id", Some(json!(other))),
        ),
        (
            "another amount",
            changed(&original, "amount", Some(json!("150001"))),
        ),
        (
            "another currency",
            changed(&original, "currency", Some(json!("USD"))),
        ),
        (
            "another paid_at",
            changed(&original, "paid_at", Some(json!(rfc3339(t + 1)))),
        ),
        (
            "a failure_reason",
            changed(&original, "failure_reason", Some(json!("Giao dịch bị hủy"))),
        ),
        ("status failed", failed("FT-CONFLICT", &id)),
        (
            "an unknown payment_id",
            changed(&original, "payment_id", Some(json!("pay_does_not_exist"))),
        ),
    ];
    for (what, body) in conflicting {
        let response = w.deliver(&body).await;
        assert_problem(response, 409, "bank_txn_conflict").await;
        assert_eq!(snapshot(&w.app).await, before, "{what}");
    }
    assert_eq!(w.payment(&other).await["status"], "pending");
}

#[tokio::test]
async fn a_bank_txn_id_is_unique_per_bank_not_across_banks() {
    let w = World::new().await;
    let other_bank = new_bank(&w.app, OTHER_BANK).await;
    let first = w.order("H12-PER-BANK-1").await;
    let second = w.order("H12-PER-BANK-2").await;
    let paid_at = paid_a_minute_ago();

    w.deliver_ok(&succeeded("FT-SHARED", &first, &paid_at))
        .await;
    let answer = json_200(
        post_signed(
            &w.app,
            &other_bank,
            "callbacks",
            &succeeded("FT-SHARED", &second, &paid_at),
        )
        .await,
    )
    .await;

    assert_eq!(answer["result"], "accepted");
    assert_eq!(w.payment(&second).await["bank"], OTHER_BANK);
    let balances = w.balances().await;
    assert_eq!(balances["bank:VCB"], AMOUNT);
    assert_eq!(balances["bank:BIDV"], AMOUNT);
    assert_eq!(balances[&agency_account("fee")], "-300000");
}

#[tokio::test]
async fn a_callback_for_an_unknown_payment_answers_404_and_is_kept_for_investigation_only() {
    let w = World::new().await;
    let paid_at = paid_a_minute_ago();
    let body = succeeded("FT-UNKNOWN", "pay_does_not_exist", &paid_at);
    let before = snapshot(&w.app).await;

    let response = w.deliver(&body).await;

    assert_problem(response, 404, "payment_not_found").await;
    assert_eq!(snapshot(&w.app).await, plus_one_kept(&before));
    let listed = w.exceptions("").await;
    let item = exception_for(&listed, "FT-UNKNOWN");
    assert_eq!(item["reason"], "payment_not_found");
    assert_eq!(item["kind"], "rejected");
    assert_eq!(item["bank"], BANK);
    assert_eq!(item["payment_id"], "pay_does_not_exist");
    assert_eq!(item["amount"], AMOUNT);
    assert_eq!(item["paid_at"], paid_at.as_str());

    // A 404 reserves nothing: the redelivery gets the same answer, and nothing is posted.
    let again = w.deliver(&body).await;
    assert_problem(again, 404, "payment_not_found").await;
    let after = snapshot(&w.app).await;
    assert_eq!(after.bank_callbacks, 0);
    assert_eq!(after.ledger_transactions, 0);
    assert_eq!(after.events, 0);
    assert!((1..=2).contains(&after.callback_exceptions), "{after:?}");
    // An unknown order is decided before `failed`.
    let failed_unknown = w.deliver(&failed("FT-UNKNOWN-F", "pay_nope")).await;
    assert_problem(failed_unknown, 404, "payment_not_found").await;
    assert_eq!(w.app.count("SELECT count(*) FROM bank_callbacks").await, 0);
    // Nor is the bank_txn_id reserved: the bank may use it for a real order.
    let id = w.order("H12-AFTER-404").await;
    let answer = w.deliver_ok(&succeeded("FT-UNKNOWN", &id, &paid_at)).await;
    assert_eq!(answer["result"], "accepted");
}

#[tokio::test]
async fn an_amount_or_currency_mismatch_answers_422_and_is_kept_for_investigation_only() {
    let w = World::new().await;
    let id = w.order("H12-MISMATCH").await;
    let paid_at = paid_a_minute_ago();
    let cases = [
        (
            "FT-MORE",
            changed(
                &succeeded("FT-MORE", &id, &paid_at),
                "amount",
                Some(json!("150001")),
            ),
        ),
        (
            "FT-LESS",
            changed(
                &succeeded("FT-LESS", &id, &paid_at),
                "amount",
                Some(json!("149999")),
            ),
        ),
        (
            "FT-USD",
            changed(
                &succeeded("FT-USD", &id, &paid_at),
                "currency",
                Some(json!("USD")),
            ),
        ),
    ];
    for (bank_txn_id, body) in &cases {
        let before = snapshot(&w.app).await;

        let response = w.deliver(body).await;

        assert_problem(response, 422, "amount_mismatch").await;
        assert_eq!(
            snapshot(&w.app).await,
            plus_one_kept(&before),
            "{bank_txn_id}"
        );
        let listed = w.exceptions("").await;
        let item = exception_for(&listed, bank_txn_id);
        assert_eq!(item["reason"], "amount_mismatch");
        assert_eq!(item["kind"], "rejected");
        assert_eq!(item["payment_id"], id.as_str());
        assert_eq!(item["amount"], body["amount"]);
        assert_eq!(item["currency"], body["currency"]);
    }
    assert_eq!(w.payment(&id).await["status"], "pending");

    // A 422 reserves nothing: the corrected callback may reuse the bank_txn_id.
    let corrected = w.deliver_ok(&succeeded("FT-MORE", &id, &paid_at)).await;
    assert_eq!(corrected["result"], "accepted");
    // The amount is decided before the order's state: a wrong amount for a paid order is still
    // a mismatch, not a double payment.
    let wrong_after_paid = changed(
        &succeeded("FT-WRONG-AFTER", &id, &paid_at),
        "amount",
        Some(json!("1")),
    );
    assert_problem(w.deliver(&wrong_after_paid).await, 422, "amount_mismatch").await;
    assert_verified(&w.verify().await, 1, AMOUNT);
}

#[tokio::test]
async fn a_second_succeeded_callback_with_another_bank_txn_id_goes_to_suspense_as_double_payment() {
    let w = World::new().await;
    let other_bank = new_bank(&w.app, OTHER_BANK).await;
    let id = w.order("H12-DOUBLE").await;
    let paid_at = paid_a_minute_ago();
    w.deliver_ok(&succeeded("FT-FIRST", &id, &paid_at)).await;
    let paid = w.payment(&id).await;
    let before = snapshot(&w.app).await;

    let answer = w.deliver_ok(&succeeded("FT-SECOND", &id, &paid_at)).await;
    let from_other_bank = json_200(
        post_signed(
            &w.app,
            &other_bank,
            "callbacks",
            &succeeded("FT-THIRD", &id, &paid_at),
        )
        .await,
    )
    .await;

    for answer in [&answer, &from_other_bank] {
        assert_eq!(
            answer,
            &json!({"result": "exception", "exception": "double_payment", "payment_id": id,
                    "payment_status": "paid"})
        );
    }
    assert_eq!(w.payment(&id).await, paid, "the order is unchanged");
    let after = snapshot(&w.app).await;
    assert_eq!(after.payments, before.payments);
    assert_eq!(after.events, before.events);
    assert_eq!(after.bank_callbacks, before.bank_callbacks + 2);
    assert_eq!(after.callback_exceptions, 2);
    assert_eq!(count_events(&w.app, &id, "payment.paid").await, 1);
    let listed = w.exceptions("").await;
    for (bank_txn_id, bank) in [("FT-SECOND", BANK), ("FT-THIRD", OTHER_BANK)] {
        let item = exception_for(&listed, bank_txn_id);
        assert_eq!(item["reason"], "double_payment");
        assert_eq!(item["kind"], "suspense");
        assert_eq!(item["bank"], bank);
    }
    let balances = w.balances().await;
    assert_eq!(balances["bank:VCB"], "300000");
    assert_eq!(balances["bank:BIDV"], AMOUNT);
    assert_eq!(balances[&agency_account("fee")], "-150000");
    assert_eq!(balances["suspense:VCB"], "-150000");
    assert_eq!(balances["suspense:BIDV"], "-150000");
    let banks_only = balance_map(&w.audit("/v1/ledger/balances?account_prefix=bank:").await);
    assert_eq!(
        banks_only.keys().collect::<HashSet<_>>(),
        HashSet::from([&"bank:BIDV".to_owned(), &"bank:VCB".to_owned()])
    );
    assert_verified(&w.verify().await, 3, "450000");
}

#[tokio::test]
async fn a_succeeded_callback_for_a_cancelled_order_goes_to_suspense_as_order_closed() {
    let w = World::new().await;
    let id = w.order("H12-CANCELLED").await;
    w.cancel(&id).await;
    let before = snapshot(&w.app).await;

    let answer = w
        .deliver_ok(&succeeded("FT-CANCELLED", &id, &paid_a_minute_ago()))
        .await;

    assert_eq!(
        answer,
        json!({"result": "exception", "exception": "order_closed", "payment_id": id,
               "payment_status": "cancelled"})
    );
    let after = snapshot(&w.app).await;
    assert_eq!(after.payments, before.payments);
    assert_eq!(after.events, before.events);
    assert_eq!(w.payment(&id).await["status"], "cancelled");
    assert_eq!(
        entries_of(&w.app, &id).await,
        vec![
            entry("bank:VCB", AMOUNT, "0"),
            entry("suspense:VCB", "0", AMOUNT)
        ]
    );
    let listed = w.exceptions("").await;
    assert_eq!(
        exception_for(&listed, "FT-CANCELLED")["reason"],
        "order_closed"
    );
}

// ---------------------------------------------------------------------------------------------
// Validation after a valid signature
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_invalid_callback_body_answers_422_naming_the_field_and_writes_nothing() {
    let w = World::new().await;
    let id = w.order("H12-INVALID").await;
    let valid = succeeded("FT-VALID", &id, &paid_a_minute_ago());
    let cases = [
        ("bank_txn_id", changed(&valid, "bank_txn_id", None)),
        (
            "bank_txn_id",
            changed(&valid, "bank_txn_id", Some(json!("A".repeat(65)))),
        ),
        (
            "bank_txn_id",
            changed(&valid, "bank_txn_id", Some(json!(""))),
        ),
        (
            "bank_txn_id",
            changed(&valid, "bank_txn_id", Some(json!(26327001))),
        ),
        ("payment_id", changed(&valid, "payment_id", None)),
        ("amount", changed(&valid, "amount", None)),
        ("amount", changed(&valid, "amount", Some(json!(150000)))),
        ("amount", changed(&valid, "amount", Some(json!("0")))),
        ("amount", changed(&valid, "amount", Some(json!("-150000")))),
        ("amount", changed(&valid, "amount", Some(json!("150000.5")))),
        (
            "amount",
            changed(&valid, "amount", Some(json!("1000000000000000"))),
        ),
        ("currency", changed(&valid, "currency", Some(json!(704)))),
        ("status", changed(&valid, "status", Some(json!("ok")))),
        ("status", changed(&valid, "status", None)),
        ("paid_at", changed(&valid, "paid_at", None)),
        ("paid_at", changed(&valid, "paid_at", Some(Value::Null))),
        (
            "paid_at",
            changed(&valid, "paid_at", Some(json!(rfc3339(now_s() + 600)))),
        ),
        (
            "paid_at",
            changed(&valid, "paid_at", Some(json!("2026-11-23 03:15:00"))),
        ),
        (
            "paid_at",
            changed(&valid, "paid_at", Some(json!("23/11/2026"))),
        ),
        (
            "paid_at",
            changed(&valid, "paid_at", Some(json!(1_763_867_700))),
        ),
        (
            "failure_reason",
            changed(&valid, "failure_reason", Some(json!(""))),
        ),
    ];
    let before = snapshot(&w.app).await;
    for (field, body) in cases {
        let response = w.deliver(&body).await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(invalid_fields(&problem), vec![field], "{body}");
        assert_eq!(snapshot(&w.app).await, before, "{body}");
    }

    let empty = w.deliver(&json!({})).await;
    let problem = assert_problem(empty, 422, "validation_failed").await;
    let fields: HashSet<String> = invalid_fields(&problem).into_iter().collect();
    for field in ["bank_txn_id", "payment_id", "amount", "status"] {
        assert!(fields.contains(field), "{field} in {problem}");
    }
    let not_an_object = w.deliver(&json!([valid])).await;
    assert_problem(not_an_object, 422, "validation_failed").await;
    assert_eq!(snapshot(&w.app).await, before);
}

#[tokio::test]
async fn callback_fields_at_their_limits_are_accepted() {
    let w = World::new().await;
    let id = w.order("H12-LIMITS").await;
    // 64 characters, 128 bytes: lengths count characters.
    let bank_txn_id = "Đ".repeat(64);
    let paid_soon = rfc3339(now_s() + 240);

    let answer = w
        .deliver_ok(&succeeded(&bank_txn_id, &id, &paid_soon))
        .await;

    assert_eq!(answer["result"], "accepted");
    let payment = w.payment(&id).await;
    assert_eq!(payment["bank_txn_id"], bank_txn_id.as_str());
    assert_eq!(payment["paid_at"], paid_soon.as_str());
}

#[tokio::test]
async fn a_callback_body_over_1_mib_answers_413_and_writes_nothing() {
    let w = World::new().await;
    let id = w.order("H12-OVERSIZED").await;
    let padding = "x".repeat(1024 * 1024);
    let body = changed(
        &succeeded("FT-BIG", &id, &paid_a_minute_ago()),
        "padding",
        Some(json!(padding)),
    );
    let before = snapshot(&w.app).await;

    let response = w.deliver(&body).await;

    assert_problem(response, 413, "payload_too_large").await;
    assert_eq!(snapshot(&w.app).await, before);
}

#[tokio::test]
async fn malformed_json_with_a_valid_signature_answers_400_and_writes_nothing() {
    let w = World::new().await;
    w.order("H12-MALFORMED").await;
    let before = snapshot(&w.app).await;
    let bodies: [&[u8]; 5] = [
        b"{",
        b"not json",
        b"",
        b"{\"bank_txn_id\": \"FT1\",}",
        b"\xff\xfe{}",
    ];
    for body in bodies {
        let signature = w.bank.signature(now_s(), body);
        let response = post_raw(
            &w.app,
            "/v1/banks/VCB/callbacks",
            &[header(&signature)],
            body.to_vec(),
        )
        .await;
        assert_problem(response, 400, "malformed_json").await;
        assert_eq!(snapshot(&w.app).await, before, "{body:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Signatures
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_signature_failure_answers_401_and_writes_nothing() {
    let w = World::new().await;
    let other_bank = new_bank(&w.app, OTHER_BANK).await;
    let id = w.order("H12-SIGNATURES").await;
    let body = serde_json::to_vec(&succeeded("FT-SIGNED", &id, &paid_a_minute_ago())).unwrap();
    let now = now_s();
    let kid = w.bank.kid.clone();
    let good = w.bank.signature(now, &body);
    let mac = good.rsplit_once("v1=").expect("v1").1.to_owned();
    let stranger = Signer {
        secret: "bsk_not_the_secret".to_owned(),
        ..w.bank.clone()
    };
    let mut changed_body = body.clone();
    let last = changed_body.len() - 2;
    changed_body[last] ^= 1;
    let path = "/v1/banks/VCB/callbacks";

    let one = |value: String| vec![header(&value)];
    /// (what is wrong, path, `Paygate-Signature` values, body, the expected code)
    type Refusal<'a> = (&'a str, &'a str, Vec<HeaderValue>, &'a [u8], &'a str);
    let cases: Vec<Refusal> = vec![
        ("no header", path, vec![], &body, "invalid_signature"),
        (
            "an empty header",
            path,
            one(String::new()),
            &body,
            "invalid_signature",
        ),
        (
            "garbage",
            path,
            one("garbage".into()),
            &body,
            "invalid_signature",
        ),
        (
            "v1 missing",
            path,
            one(format!("t={now},kid={kid}")),
            &body,
            "invalid_signature",
        ),
        (
            "t missing",
            path,
            one(format!("kid={kid},v1={mac}")),
            &body,
            "invalid_signature",
        ),
        (
            "kid missing",
            path,
            one(format!("t={now},v1={mac}")),
            &body,
            "invalid_signature",
        ),
        (
            "t repeated",
            path,
            one(format!("t={now},t={now},kid={kid},v1={mac}")),
            &body,
            "invalid_signature",
        ),
        (
            "v1 repeated",
            path,
            one(format!("{good},v1={mac}")),
            &body,
            "invalid_signature",
        ),
        (
            "an unknown field",
            path,
            one(format!("{good},v0={mac}")),
            &body,
            "invalid_signature",
        ),
        (
            "semicolons",
            path,
            one(good.replace(',', ";")),
            &body,
            "invalid_signature",
        ),
        (
            "uppercase hex",
            path,
            one(format!("t={now},kid={kid},v1={}", mac.to_uppercase())),
            &body,
            "invalid_signature",
        ),
        (
            "a short MAC",
            path,
            one(format!("t={now},kid={kid},v1={}", &mac[..62])),
            &body,
            "invalid_signature",
        ),
        (
            "t not digits",
            path,
            one(format!("t=now,kid={kid},v1={mac}")),
            &body,
            "invalid_signature",
        ),
        (
            "t with a leading zero",
            path,
            one(format!("t=0{now},kid={kid},v1={mac}")),
            &body,
            "invalid_signature",
        ),
        (
            "a negative t",
            path,
            one(format!("t=-{now},kid={kid},v1={mac}")),
            &body,
            "invalid_signature",
        ),
        (
            "an empty kid",
            path,
            one(format!("t={now},kid=,v1={mac}")),
            &body,
            "invalid_signature",
        ),
        (
            "a kid with a slash",
            path,
            one(format!("t={now},kid=a/b,v1={mac}")),
            &body,
            "invalid_signature",
        ),
        (
            "bytes that are not ASCII",
            path,
            vec![
                HeaderValue::from_bytes(format!("t={now},kid=k\u{e9},v1={mac}").as_bytes())
                    .unwrap(),
            ],
            &body,
            "invalid_signature",
        ),
        (
            "two headers",
            path,
            vec![header(&good), header(&good)],
            &body,
            "invalid_signature",
        ),
        (
            "an unknown bank in the path",
            "/v1/banks/NOPE/callbacks",
            one(good.clone()),
            &body,
            "invalid_signature",
        ),
        (
            "a bank code that is not a code",
            "/v1/banks/vcb/callbacks",
            one(good.clone()),
            &body,
            "invalid_signature",
        ),
        (
            "an unknown kid",
            path,
            one(sign(w.bank.secret.as_bytes(), "kid_unknown", now, &body)),
            &body,
            "invalid_signature",
        ),
        (
            "the kid of another bank",
            path,
            one(other_bank.signature(now, &body)),
            &body,
            "invalid_signature",
        ),
        (
            "a wrong MAC",
            path,
            one(stranger.signature(now, &body)),
            &body,
            "invalid_signature",
        ),
        (
            "the body changed after signing",
            path,
            one(good.clone()),
            &changed_body,
            "invalid_signature",
        ),
        (
            "the timestamp changed after signing",
            path,
            one(format!("t={},kid={kid},v1={mac}", now - 1)),
            &body,
            "invalid_signature",
        ),
        (
            "stale with the right MAC",
            path,
            one(w.bank.signature(now - 400, &body)),
            &body,
            "signature_expired",
        ),
        (
            "stale with a wrong MAC",
            path,
            one(stranger.signature(now - 400, &body)),
            &body,
            "invalid_signature",
        ),
        (
            "from the future with the right MAC",
            path,
            one(w.bank.signature(now + 400, &body)),
            &body,
            "signature_expired",
        ),
        (
            "from the future with a wrong MAC",
            path,
            one(stranger.signature(now + 400, &body)),
            &body,
            "invalid_signature",
        ),
        (
            "stale with an unknown kid",
            path,
            one(sign(
                w.bank.secret.as_bytes(),
                "kid_unknown",
                now - 400,
                &body,
            )),
            &body,
            "invalid_signature",
        ),
        (
            "a t beyond 64 bits",
            path,
            one(format!("t=99999999999999999999,kid={kid},v1={mac}")),
            &body,
            "invalid_signature",
        ),
        (
            "a kid of 65 characters",
            path,
            one(format!("t={now},kid={},v1={mac}", "k".repeat(65))),
            &body,
            "invalid_signature",
        ),
    ];
    let before = snapshot(&w.app).await;
    for (what, path, signatures, body, code) in cases {
        let response = post_raw(&w.app, path, &signatures, body.to_vec()).await;
        assert_eq!(response.status(), 401, "{what}");
        let problem = assert_problem(response, 401, code).await;
        assert!(problem.get("errors").is_none(), "{what}: {problem}");
        assert_eq!(snapshot(&w.app).await, before, "{what}");
    }

    // The same request properly signed is accepted: the failures above were the signatures'.
    let response = post_raw(
        &w.app,
        path,
        &[header(&w.bank.signature(now_s(), &body))],
        body,
    )
    .await;
    assert_eq!(json_200(response).await["result"], "accepted");
}

#[tokio::test]
async fn a_signature_with_spaces_fields_in_any_order_and_a_timestamp_within_tolerance_is_accepted()
{
    let w = World::new().await;
    let now = now_s();
    // (what, signing time, how the header lays out t, kid and mac)
    type Layout = fn(i64, &str, &str) -> String;
    let canonical: Layout = |t, kid, mac| format!("t={t},kid={kid},v1={mac}");
    let spaced: Layout = |t, kid, mac| format!("t = {t} ,\tkid={kid} , v1= {mac}");
    let reordered: Layout = |t, kid, mac| format!("v1={mac},kid={kid},t={t}");
    let variants = [
        ("spaces around fields and equals signs", now, spaced),
        ("fields in another order", now, reordered),
        ("signed 290 seconds ago", now - 290, canonical),
        ("signed 290 seconds ahead", now + 290, canonical),
    ];
    for (n, (what, t, layout)) in variants.into_iter().enumerate() {
        let id = w.order(&format!("H12-FORMS-{n}")).await;
        let body = serde_json::to_vec(&succeeded(
            &format!("FT-FORM-{n}"),
            &id,
            &paid_a_minute_ago(),
        ))
        .unwrap();
        let signed = w.bank.signature(t, &body);
        let mac = signed.rsplit_once("v1=").unwrap().1;
        let value = layout(t, &w.bank.kid, mac);
        let response = post_raw(&w.app, "/v1/banks/VCB/callbacks", &[header(&value)], body).await;
        assert_eq!(json_200(response).await["result"], "accepted", "{what}");
    }
}

#[tokio::test]
async fn the_configured_tolerance_decides_which_timestamps_are_stale() {
    let w = World::with(Config {
        signature_tolerance_s: 30,
        ..test_config()
    })
    .await;
    let id = w.order("H12-TOLERANCE").await;
    let body = serde_json::to_vec(&succeeded("FT-TOL", &id, &paid_a_minute_ago())).unwrap();
    let before = snapshot(&w.app).await;

    let stale = post_raw(
        &w.app,
        "/v1/banks/VCB/callbacks",
        &[header(&w.bank.signature(now_s() - 60, &body))],
        body.clone(),
    )
    .await;
    assert_problem(stale, 401, "signature_expired").await;
    assert_eq!(snapshot(&w.app).await, before);

    let fresh = post_raw(
        &w.app,
        "/v1/banks/VCB/callbacks",
        &[header(&w.bank.signature(now_s() - 10, &body))],
        body,
    )
    .await;
    assert_eq!(json_200(fresh).await["result"], "accepted");
}

#[tokio::test]
async fn after_key_rotation_both_keys_verify_until_the_old_one_is_revoked() {
    let w = World::new().await;
    let id = w.order("H12-ROTATION").await;
    let inquiry = json!({ "payment_id": id });
    let old = w.bank.clone();

    let response = w
        .app
        .admin(Method::POST, "/v1/banks/VCB/keys")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let new = Signer::from_answer(BANK, &response.json().await.unwrap());
    assert_ne!(new.kid, old.kid);

    for signer in [&old, &new] {
        let response = post_signed(&w.app, signer, "inquiry", &inquiry).await;
        assert_eq!(json_200(response).await["payment_id"], id.as_str());
    }

    let revoked = w
        .app
        .admin(Method::DELETE, &format!("/v1/banks/VCB/keys/{}", old.kid))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);

    let rejected = post_signed(&w.app, &old, "inquiry", &inquiry).await;
    assert_problem(rejected, 401, "invalid_signature").await;
    let before = snapshot(&w.app).await;
    let callback = succeeded("FT-ROTATED", &id, &paid_a_minute_ago());
    let with_revoked = post_signed(&w.app, &old, "callbacks", &callback).await;
    assert_problem(with_revoked, 401, "invalid_signature").await;
    assert_eq!(snapshot(&w.app).await, before);

    let response = post_signed(&w.app, &new, "inquiry", &inquiry).await;
    assert_eq!(json_200(response).await["status"], "pending");
    let accepted = json_200(post_signed(&w.app, &new, "callbacks", &callback).await).await;
    assert_eq!(accepted["result"], "accepted");
}

#[tokio::test]
async fn metrics_count_signature_failures_by_reason_and_callbacks_by_bank_and_result() {
    let w = World::new().await;
    let id = w.order("H12-METRICS").await;
    let cancelled = w.order("H12-METRICS-CANCELLED").await;
    w.cancel(&cancelled).await;
    let paid_at = paid_a_minute_ago();
    let body = serde_json::to_vec(&succeeded("FT-M1", &id, &paid_at)).unwrap();
    let path = "/v1/banks/VCB/callbacks";
    let stranger = Signer {
        secret: "bsk_wrong".to_owned(),
        ..w.bank.clone()
    };

    // Signature failures: 2 malformed, 1 unknown key, 1 bad MAC, 1 expired.
    post_raw(&w.app, path, &[], body.clone()).await;
    post_raw(&w.app, path, &[header("t=1")], body.clone()).await;
    let unknown = sign(b"secret", "kid_unknown", now_s(), &body);
    post_raw(&w.app, path, &[header(&unknown)], body.clone()).await;
    post_raw(
        &w.app,
        path,
        &[header(&stranger.signature(now_s(), &body))],
        body.clone(),
    )
    .await;
    post_raw(
        &w.app,
        path,
        &[header(&w.bank.signature(now_s() - 1_000, &body))],
        body.clone(),
    )
    .await;
    // Callbacks: one of each result.
    let callbacks: [(Value, u16); 8] = [
        (succeeded("FT-M1", &id, &paid_at), 200),
        (succeeded("FT-M1", &id, &paid_at), 200),
        (succeeded("FT-M2", &id, &paid_at), 200),
        (failed("FT-M3", &id), 200),
        (failed("FT-M1", &id), 409),
        (succeeded("FT-M4", "pay_nope", &paid_at), 404),
        (
            changed(
                &succeeded("FT-M5", &cancelled, &paid_at),
                "amount",
                Some(json!("7")),
            ),
            422,
        ),
        (json!({"bank_txn_id": "FT-M6"}), 422),
    ];
    for (callback, status) in &callbacks {
        let response = w.deliver(callback).await;
        assert_eq!(response.status().as_u16(), *status, "{callback}");
    }

    let text = metrics(&w.app).await;
    for (reason, expected) in [
        ("malformed", 2),
        ("unknown_key", 1),
        ("bad_mac", 1),
        ("expired", 1),
    ] {
        let series = format!("paygate_signature_failures_total{{reason=\"{reason}\"}}");
        assert_eq!(counter(&text, &series), expected, "{series} in\n{text}");
    }
    for result in [
        "accepted",
        "duplicate",
        "exception",
        "failed",
        "conflict",
        "not_found",
        "amount_mismatch",
        "invalid",
    ] {
        let series = format!("paygate_bank_callbacks_total{{bank=\"VCB\",result=\"{result}\"}}");
        assert_eq!(counter(&text, &series), 1, "{series} in\n{text}");
    }
}

// ---------------------------------------------------------------------------------------------
// Inquiry
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn inquiry_shows_the_payer_exactly_what_is_due() {
    let w = World::new().await;
    let other_agency_key = w.app.create_agency(OTHER_AGENCY).await["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let payment = w
        .create(
            &other_agency_key,
            &order_body("tax", "H29-TAX-1", "2500000"),
        )
        .await;
    let id = payment["id"].as_str().unwrap();
    let before = snapshot(&w.app).await;

    let answer =
        json_200(post_signed(&w.app, &w.bank, "inquiry", &json!({"payment_id": id})).await).await;

    let fields: HashSet<&str> = answer
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(fields, HashSet::from(INQUIRY_FIELDS));
    assert_eq!(answer["payment_id"], id);
    assert_eq!(answer["agency"], OTHER_AGENCY);
    assert_eq!(answer["obligation"], "tax");
    assert_eq!(answer["amount"], "2500000");
    assert_eq!(answer["currency"], "VND");
    assert_eq!(answer["description"], DESCRIPTION);
    assert_eq!(answer["status"], "pending");
    assert_eq!(answer["expires_at"], payment["expires_at"]);
    assert_eq!(snapshot(&w.app).await, before, "an inquiry writes nothing");

    // It follows the order's state: paid, and an overdue order reads as expired.
    let body = changed(
        &succeeded("FT-INQ", id, &paid_a_minute_ago()),
        "amount",
        Some(json!("2500000")),
    );
    w.deliver_ok(&body).await;
    let paid =
        json_200(post_signed(&w.app, &w.bank, "inquiry", &json!({"payment_id": id})).await).await;
    assert_eq!(paid["status"], "paid");
    let overdue = w.order("H12-INQ-OVERDUE").await;
    w.backdate(&overdue).await;
    let expired =
        json_200(post_signed(&w.app, &w.bank, "inquiry", &json!({"payment_id": overdue})).await)
            .await;
    assert_eq!(expired["status"], "expired");
    assert_eq!(expired["expires_at"], EXPIRED_AT);
}

#[tokio::test]
async fn inquiry_of_an_unknown_payment_is_404_an_invalid_one_422_and_an_unsigned_one_401() {
    let w = World::new().await;
    let id = w.order("H12-INQ").await;
    let before = snapshot(&w.app).await;

    let unknown = post_signed(
        &w.app,
        &w.bank,
        "inquiry",
        &json!({"payment_id": "pay_nope"}),
    )
    .await;
    assert_problem(unknown, 404, "payment_not_found").await;
    let missing = post_signed(&w.app, &w.bank, "inquiry", &json!({})).await;
    let problem = assert_problem(missing, 422, "validation_failed").await;
    assert_eq!(invalid_fields(&problem), vec!["payment_id"]);
    let bytes = serde_json::to_vec(&json!({ "payment_id": id })).unwrap();
    let unsigned = post_raw(&w.app, "/v1/banks/VCB/inquiry", &[], bytes.clone()).await;
    assert_problem(unsigned, 401, "invalid_signature").await;
    let stale = post_raw(
        &w.app,
        "/v1/banks/VCB/inquiry",
        &[header(&w.bank.signature(now_s() - 400, &bytes))],
        bytes,
    )
    .await;
    assert_problem(stale, 401, "signature_expired").await;
    assert_eq!(snapshot(&w.app).await, before);
}

// ---------------------------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------------------------

/// Sends every `(body, signature)` at once; returns each answer's status and JSON body.
async fn all_at_once(app: &TestApp, requests: Vec<(Vec<u8>, String)>) -> Vec<(u16, Value)> {
    let url = app.url("/v1/banks/VCB/callbacks");
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(requests.len()));
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|(body, signature)| {
            let http = app.http.clone();
            let url = url.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let response = http
                    .post(url)
                    .header("Content-Type", "application/json")
                    .header("Paygate-Signature", signature)
                    .body(body)
                    .send()
                    .await
                    .expect("POST callback");
                let status = response.status().as_u16();
                let text = response.text().await.expect("an answer");
                (status, serde_json::from_str(&text).expect("JSON"))
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("the request task"));
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_identical_callbacks_are_accepted_once_and_posted_once() {
    let w = World::new().await;
    let id = w.order("H12-CONCURRENT-SAME").await;
    let body = serde_json::to_vec(&succeeded("FT-RACE", &id, &paid_a_minute_ago())).unwrap();
    let signature = w.bank.signature(now_s(), &body);

    let answers = all_at_once(&w.app, vec![(body, signature); 50]).await;

    for (status, answer) in &answers {
        assert_eq!(*status, 200, "{answer}");
        assert_eq!(answer["payment_id"], id.as_str());
        assert_eq!(answer["payment_status"], "paid");
    }
    let results: Vec<&str> = answers
        .iter()
        .map(|(_, answer)| answer["result"].as_str().unwrap())
        .collect();
    assert_eq!(
        results.iter().filter(|r| **r == "accepted").count(),
        1,
        "{results:?}"
    );
    assert_eq!(
        results.iter().filter(|r| **r == "duplicate").count(),
        49,
        "{results:?}"
    );
    assert_eq!(w.app.count("SELECT count(*) FROM bank_callbacks").await, 1);
    assert_eq!(
        w.app
            .count("SELECT count(*) FROM ledger_transactions")
            .await,
        1
    );
    assert_eq!(count_events(&w.app, &id, "payment.paid").await, 1);
    assert_eq!(
        w.app
            .count("SELECT count(*) FROM callback_exceptions")
            .await,
        0
    );
    assert_verified(&w.verify().await, 1, AMOUNT);
    let balances = w.balances().await;
    assert_eq!(balances.len(), 2, "{balances:?}");
    assert_eq!(balances["bank:VCB"], AMOUNT);
    assert_eq!(balances[&agency_account("fee")], "-150000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_concurrent_callbacks_for_one_order_pay_it_once_and_send_nine_to_suspense() {
    let w = World::new().await;
    let id = w.order("H12-CONCURRENT-MANY").await;
    let paid_at = paid_a_minute_ago();
    let requests = (0..10)
        .map(|n| {
            let body =
                serde_json::to_vec(&succeeded(&format!("FT-MANY-{n}"), &id, &paid_at)).unwrap();
            let signature = w.bank.signature(now_s(), &body);
            (body, signature)
        })
        .collect();

    let answers = all_at_once(&w.app, requests).await;

    let accepted: Vec<&Value> = answers
        .iter()
        .map(|(status, answer)| {
            assert_eq!(*status, 200, "{answer}");
            answer
        })
        .filter(|answer| answer["result"] == "accepted")
        .collect();
    assert_eq!(accepted.len(), 1, "{answers:?}");
    let exceptions: Vec<&Value> = answers
        .iter()
        .map(|(_, answer)| answer)
        .filter(|answer| answer["result"] == "exception")
        .collect();
    assert_eq!(exceptions.len(), 9, "{answers:?}");
    for answer in exceptions {
        assert_eq!(answer["exception"], "double_payment");
        assert_eq!(answer["payment_status"], "paid");
    }
    assert_eq!(w.app.count("SELECT count(*) FROM bank_callbacks").await, 10);
    assert_eq!(count_events(&w.app, &id, "payment.paid").await, 1);
    let listed = w.exceptions("").await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 9);
    assert!(listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|item| item["reason"] == "double_payment" && item["kind"] == "suspense"));
    assert_verified(&w.verify().await, 10, "1500000");
    let balances = w.balances().await;
    assert_eq!(balances["bank:VCB"], "1500000");
    assert_eq!(balances[&agency_account("fee")], "-150000");
    assert_eq!(balances["suspense:VCB"], "-1350000");
    // The order names the callback that paid it, and that one is not listed as an exception.
    let payment = w.payment(&id).await;
    let paid_by = payment["bank_txn_id"].as_str().unwrap();
    assert!(listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|item| item["bank_txn_id"] != paid_by));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_racing_a_callback_either_pays_the_order_or_sends_the_money_to_suspense() {
    let w = World::new().await;
    let paid_at = paid_a_minute_ago();
    let mut ids = Vec::new();
    for n in 0..10 {
        ids.push(w.order(&format!("H12-RACE-{n}")).await);
    }

    let mut races = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        let body = serde_json::to_vec(&succeeded(&format!("FT-RACE-{n}"), id, &paid_at)).unwrap();
        let signature = w.bank.signature(now_s(), &body);
        let callback = w
            .app
            .http
            .post(w.app.url("/v1/banks/VCB/callbacks"))
            .header("Content-Type", "application/json")
            .header("Paygate-Signature", signature)
            .body(body)
            .send();
        let cancel = w
            .app
            .http
            .post(w.app.url(&format!("/v1/payments/{id}/cancel")))
            .bearer_auth(&w.agency_key)
            .send();
        races.push(tokio::spawn(async move {
            let (callback, cancel) = tokio::join!(callback, cancel);
            let callback = callback.expect("POST callback");
            let cancel = cancel.expect("POST cancel");
            let callback_status = callback.status().as_u16();
            let cancel_status = cancel.status().as_u16();
            let callback: Value = callback.json().await.expect("JSON");
            let cancel: Value = cancel.json().await.expect("JSON");
            (callback_status, callback, cancel_status, cancel)
        }));
    }

    let (mut paid, mut cancelled) = (0, 0);
    for (id, race) in ids.iter().zip(races) {
        let (callback_status, callback, cancel_status, cancel) = race.await.unwrap();
        assert_eq!(callback_status, 200, "{callback}");
        let status = w.payment(id).await["status"].clone();
        if status == "paid" {
            paid += 1;
            assert_eq!(callback["result"], "accepted", "{callback}");
            assert_eq!(cancel_status, 409, "{cancel}");
            assert_eq!(cancel["code"], "not_cancellable");
            assert_eq!(count_events(&w.app, id, "payment.cancelled").await, 0);
        } else {
            cancelled += 1;
            assert_eq!(status, "cancelled");
            assert_eq!(cancel_status, 200, "{cancel}");
            assert_eq!(
                callback,
                json!({"result": "exception", "exception": "order_closed", "payment_id": id,
                       "payment_status": "cancelled"})
            );
            assert_eq!(count_events(&w.app, id, "payment.paid").await, 0);
        }
    }
    assert_eq!(paid + cancelled, 10);
    assert_verified(&w.verify().await, 10, "1500000");
    let balances = w.balances().await;
    assert_eq!(balances["bank:VCB"], "1500000");
    let owed = |count: i64| {
        if count == 0 {
            None
        } else {
            Some(format!("-{}", 150_000 * count))
        }
    };
    assert_eq!(
        balances.get(&agency_account("fee")).cloned(),
        owed(paid),
        "{balances:?}"
    );
    assert_eq!(
        balances.get("suspense:VCB").cloned(),
        owed(cancelled),
        "{balances:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// The ledger
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_ledger_refuses_updates_deletes_and_truncation_by_sql() {
    let w = World::new().await;
    let id = w.order("H12-APPEND-ONLY").await;
    w.deliver_ok(&succeeded("FT-AO", &id, &paid_a_minute_ago()))
        .await;
    let before = snapshot(&w.app).await;
    let client = w.app.db.get().await.unwrap();

    for statement in [
        "UPDATE ledger_entries SET debit = debit + 1 WHERE debit > 0",
        "UPDATE ledger_entries SET account = 'bank:OTHER'",
        "DELETE FROM ledger_entries",
        "UPDATE ledger_transactions SET kind = 'suspense'",
        "DELETE FROM ledger_transactions",
        "TRUNCATE ledger_entries",
        "TRUNCATE ledger_transactions CASCADE",
    ] {
        let refused = client.batch_execute(statement).await;
        let error = refused.expect_err(statement);
        assert!(
            error
                .as_db_error()
                .is_some_and(|db| db.message().contains("append-only")),
            "{statement}: {error:?}"
        );
    }
    assert_eq!(snapshot(&w.app).await, before);
    assert_verified(&w.verify().await, 1, AMOUNT);
}

#[tokio::test]
async fn an_unbalanced_transaction_inserted_by_sql_fails_at_commit() {
    let w = World::new().await;
    let id = w.order("H12-UNBALANCED").await;
    w.deliver_ok(&failed("FT-SQL", &id)).await;
    let mut client = w.app.db.get().await.unwrap();
    let callback_id: i64 = client
        .query_one(
            "SELECT id FROM bank_callbacks WHERE bank_txn_id = 'FT-SQL'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let before = snapshot(&w.app).await;

    // Each case's entries as (account, debit, credit); none of them balances.
    type Entries<'a> = &'a [(&'a str, i64, i64)];
    let cases: [Entries; 4] = [
        &[],
        &[("bank:VCB", 100, 0)],
        &[("bank:VCB", 100, 0), ("suspense:VCB", 0, 99)],
        &[
            ("bank:VCB", 100, 0),
            ("suspense:VCB", 0, 60),
            ("suspense:VCB", 0, 30),
        ],
    ];
    for entries in cases {
        let transaction = client.transaction().await.unwrap();
        let tx: i64 = transaction
            .query_one(
                "INSERT INTO ledger_transactions (kind, callback_id, payment_id)
                 VALUES ('suspense', $1, $2) RETURNING id",
                &[&callback_id, &id],
            )
            .await
            .unwrap()
            .get(0);
        for (account, debit, credit) in entries {
            transaction
                .execute(
                    &format!(
                        "INSERT INTO ledger_entries (transaction_id, account, debit, credit)
                         VALUES ($1, $2, {debit}, {credit})"
                    ),
                    &[&tx, account],
                )
                .await
                .expect("each entry alone is accepted until commit");
        }
        let error = transaction
            .commit()
            .await
            .expect_err("an unbalanced commit");
        assert!(
            error
                .as_db_error()
                .is_some_and(|db| db.message().contains("does not balance")),
            "{entries:?}: {error:?}"
        );
        assert_eq!(snapshot(&w.app).await, before, "{entries:?}");
    }
    // An entry with both sides, or a negative one, is refused at once.
    for (debit, credit) in [(5, 5), (-5, 0), (0, 0)] {
        let transaction = client.transaction().await.unwrap();
        let tx: i64 = transaction
            .query_one(
                "INSERT INTO ledger_transactions (kind, callback_id, payment_id)
                 VALUES ('suspense', $1, $2) RETURNING id",
                &[&callback_id, &id],
            )
            .await
            .unwrap()
            .get(0);
        let refused = transaction
            .execute(
                &format!(
                    "INSERT INTO ledger_entries (transaction_id, account, debit, credit)
                     VALUES ($1, 'bank:VCB', {debit}, {credit})"
                ),
                &[&tx],
            )
            .await;
        assert!(refused.is_err(), "debit {debit}, credit {credit}");
    }
    assert_eq!(snapshot(&w.app).await, before);

    // A balanced transaction commits: the check refuses imbalance, not writing as such.
    let transaction = client.transaction().await.unwrap();
    transaction
        .execute(
            "WITH t AS (INSERT INTO ledger_transactions (kind, callback_id, payment_id)
                        VALUES ('suspense', $1, $2) RETURNING id)
             INSERT INTO ledger_entries (transaction_id, account, debit, credit)
             SELECT t.id, e.account, e.debit, e.credit
             FROM t, (VALUES ('bank:VCB', 100, 0), ('suspense:VCB', 0, 100))
                 AS e(account, debit, credit)",
            &[&callback_id, &id],
        )
        .await
        .unwrap();
    transaction
        .commit()
        .await
        .expect("a balanced transaction commits");
    assert_verified(&w.verify().await, 1, "100");
}

#[tokio::test]
async fn verify_lists_a_transaction_that_does_not_balance_when_one_slips_past_the_database() {
    let w = World::new().await;
    let id = w.order("H12-TAMPERED").await;
    w.deliver_ok(&succeeded("FT-GOOD", &id, &paid_a_minute_ago()))
        .await;
    w.deliver_ok(&failed("FT-TAMPER", &id)).await;
    // A superuser session with triggers off stands in for a ledger damaged behind the
    // service's back (a restore gone wrong, a hand edit).
    let mut client = w.app.db.get().await.unwrap();
    let transaction = client.transaction().await.unwrap();
    transaction
        .batch_execute("SET LOCAL session_replication_role = replica")
        .await
        .unwrap();
    let tampered: i64 = transaction
        .query_one(
            "WITH t AS (INSERT INTO ledger_transactions (kind, callback_id, payment_id)
                        SELECT 'suspense', id, payment_id FROM bank_callbacks
                        WHERE bank_txn_id = 'FT-TAMPER' RETURNING id)
             INSERT INTO ledger_entries (transaction_id, account, debit, credit)
             SELECT t.id, 'bank:VCB', 500, 0 FROM t RETURNING transaction_id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    transaction.commit().await.unwrap();

    let verify = w.verify().await;

    assert_eq!(verify["ok"], false, "{verify}");
    assert_eq!(verify["transactions"], 2, "{verify}");
    assert_eq!(verify["entries"], 3, "{verify}");
    assert_eq!(verify["debits"], "150500", "{verify}");
    assert_eq!(verify["credits"], AMOUNT, "{verify}");
    let offending = verify["offending"].as_array().expect("offending listed");
    assert_eq!(offending.len(), 1, "{verify}");
    assert_eq!(offending[0]["transaction"], tampered, "{verify}");
}

#[tokio::test]
async fn ledger_and_exception_endpoints_need_an_auditor_or_an_admin() {
    let w = World::new().await;
    for path in ["/v1/ledger/verify", "/v1/ledger/balances", "/v1/exceptions"] {
        let as_agency = w
            .app
            .http
            .get(w.app.url(path))
            .bearer_auth(&w.agency_key)
            .send()
            .await
            .unwrap();
        assert_problem(as_agency, 403, "forbidden").await;
        let anonymous = w.app.http.get(w.app.url(path)).send().await.unwrap();
        assert_problem(anonymous, 401, "unauthenticated").await;
        let unknown = w
            .app
            .http
            .get(w.app.url(path))
            .bearer_auth("pk_not_a_key_at_all")
            .send()
            .await
            .unwrap();
        assert_problem(unknown, 401, "unauthenticated").await;
        // A bank's signature is no key either.
        let signed = w
            .app
            .http
            .get(w.app.url(path))
            .header("Paygate-Signature", w.bank.signature(now_s(), b""))
            .send()
            .await
            .unwrap();
        assert_problem(signed, 401, "unauthenticated").await;
        w.audit(path).await;
        let as_admin = w.app.admin(Method::GET, path).send().await.unwrap();
        assert_eq!(as_admin.status(), 200, "{path}");
    }
    let empty = w.verify().await;
    assert_eq!(
        empty,
        json!({"ok": true, "transactions": 0, "entries": 0, "debits": "0", "credits": "0"})
    );
    assert_eq!(w.audit("/v1/ledger/balances").await, json!({"items": []}));
    assert_eq!(
        w.exceptions("").await,
        json!({"items": [], "next_cursor": null})
    );
}

#[tokio::test]
async fn exceptions_are_listed_newest_first_pages_walk_them_all_and_the_bank_filter_narrows() {
    let w = World::new().await;
    let other_bank = new_bank(&w.app, OTHER_BANK).await;
    let paid_at = paid_a_minute_ago();
    let paid = w.order("H12-EXC-PAID").await;
    let cancelled = w.order("H12-EXC-CANCELLED").await;
    w.cancel(&cancelled).await;
    w.deliver_ok(&succeeded("FT-E0", &paid, &paid_at)).await;
    // Recorded in this order: VCB, VCB, BIDV, VCB, BIDV, VCB.
    let vcb = |body: Value| (w.bank.clone(), body);
    let bidv = |body: Value| (other_bank.clone(), body);
    let recorded = [
        vcb(succeeded("FT-E1", "pay_nope", &paid_at)),
        vcb(changed(
            &succeeded("FT-E2", &paid, &paid_at),
            "amount",
            Some(json!("5")),
        )),
        bidv(succeeded("FT-E3", &paid, &paid_at)),
        vcb(succeeded("FT-E4", &cancelled, &paid_at)),
        bidv(succeeded("FT-E5", "pay_nope", &paid_at)),
        vcb(succeeded("FT-E6", &paid, &paid_at)),
    ];
    for (signer, body) in &recorded {
        post_signed(&w.app, signer, "callbacks", body).await;
    }

    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &cursor {
            Some(cursor) => format!("limit=2&cursor={cursor}"),
            None => "limit=2".to_owned(),
        };
        let page = w.exceptions(&query).await;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2, "{page}");
        walked.extend(
            items
                .iter()
                .map(|item| item["bank_txn_id"].as_str().unwrap().to_owned()),
        );
        pages += 1;
        assert!(pages <= 4, "the walk does not end: {page}");
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        walked,
        ["FT-E6", "FT-E5", "FT-E4", "FT-E3", "FT-E2", "FT-E1"],
        "newest first, each once"
    );

    let only_vcb = w.exceptions("bank=VCB").await;
    let vcb_items: Vec<&str> = only_vcb["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            assert_eq!(item["bank"], BANK);
            item["bank_txn_id"].as_str().unwrap()
        })
        .collect();
    assert_eq!(vcb_items, ["FT-E6", "FT-E4", "FT-E2", "FT-E1"]);
    let only_bidv = w.exceptions("bank=BIDV&limit=1").await;
    assert_eq!(only_bidv["items"][0]["bank_txn_id"], "FT-E5");
    let cursor = only_bidv["next_cursor"].as_str().expect("a second page");
    let second = w
        .exceptions(&format!("bank=BIDV&limit=1&cursor={cursor}"))
        .await;
    assert_eq!(second["items"][0]["bank_txn_id"], "FT-E3");
    assert_eq!(second["next_cursor"], Value::Null);
    assert_eq!(w.exceptions("bank=NOPE").await["items"], json!([]));
    let hour_ago = rfc3339(now_s() - 3_600);
    let in_an_hour = rfc3339(now_s() + 3_600);
    let window = w
        .exceptions(&format!("from={hour_ago}&to={in_an_hour}"))
        .await;
    assert_eq!(window["items"].as_array().unwrap().len(), 6, "{window}");
    let later = w.exceptions(&format!("from={in_an_hour}")).await;
    assert_eq!(later["items"], json!([]));
    let earlier = w.exceptions(&format!("to={hour_ago}")).await;
    assert_eq!(earlier["items"], json!([]));

    let reasons: HashMap<String, (String, String)> = w.exceptions("").await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            (
                item["bank_txn_id"].as_str().unwrap().to_owned(),
                (
                    item["reason"].as_str().unwrap().to_owned(),
                    item["kind"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect();
    let expected = [
        ("FT-E1", "payment_not_found", "rejected"),
        ("FT-E2", "amount_mismatch", "rejected"),
        ("FT-E3", "double_payment", "suspense"),
        ("FT-E4", "order_closed", "suspense"),
        ("FT-E5", "payment_not_found", "rejected"),
        ("FT-E6", "double_payment", "suspense"),
    ];
    for (bank_txn_id, reason, kind) in expected {
        assert_eq!(
            reasons[bank_txn_id],
            (reason.to_owned(), kind.to_owned()),
            "{bank_txn_id}"
        );
    }

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        ("bank=vcb", "bank"),
        ("from=yesterday", "from"),
    ] {
        let response = w
            .app
            .http
            .get(w.app.url(&format!("/v1/exceptions?{query}")))
            .bearer_auth(&w.auditor_key)
            .send()
            .await
            .unwrap();
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(invalid_fields(&problem), vec![field], "{query}");
    }
    let balances = w.balances().await;
    assert_eq!(balances["bank:VCB"], "450000");
    assert_eq!(balances["bank:BIDV"], AMOUNT);
    assert_eq!(balances["suspense:VCB"], "-300000");
    assert_eq!(balances["suspense:BIDV"], "-150000");
    assert_verified(&w.verify().await, 4, "600000");
}

// ---------------------------------------------------------------------------------------------
// Hostile input: times out of range, times before the order existed, NUL characters
// ---------------------------------------------------------------------------------------------

/// Valid RFC 3339 texts whose instant lies outside the years 2000-9998 in UTC.
const TIMES_OUT_OF_RANGE: [&str; 5] = [
    "9999-12-31T23:30:00-01:00",
    "9999-01-01T00:00:00Z",
    "1999-12-31T23:59:59Z",
    "2000-01-01T06:59:59+07:00",
    "0000-01-01T00:00:00Z",
];

/// `text` (RFC 3339) moved by `seconds`, in the wire format.
fn shifted(text: &str, seconds: i64) -> String {
    let at = paygate::timefmt::parse_rfc3339(text).expect("an RFC 3339 time");
    paygate::timefmt::format_utc(at + time::Duration::seconds(seconds))
}

#[tokio::test]
async fn a_callback_paid_at_outside_the_years_2000_to_9998_answers_422_and_reserves_nothing() {
    let w = World::new().await;
    let id = w.order("H12-PAID-AT-RANGE").await;
    let before = snapshot(&w.app).await;
    for paid_at in TIMES_OUT_OF_RANGE {
        for body in [
            succeeded("FT-RANGE", &id, paid_at),
            changed(&failed("FT-RANGE", &id), "paid_at", Some(json!(paid_at))),
            succeeded("FT-RANGE", "pay_does_not_exist", paid_at),
        ] {
            let problem = assert_problem(w.deliver(&body).await, 422, "validation_failed").await;
            assert_eq!(invalid_fields(&problem), ["paid_at"], "{body}");
            assert_eq!(snapshot(&w.app).await, before, "{body}");
        }
    }
    // Nothing was reserved: the corrected callback with the same bank_txn_id pays the order.
    let answer = w
        .deliver_ok(&succeeded("FT-RANGE", &id, &paid_a_minute_ago()))
        .await;
    assert_eq!(answer["result"], "accepted", "{answer}");
}

#[tokio::test]
async fn a_callback_paid_more_than_5_minutes_before_the_order_was_created_answers_422_and_reserves_nothing(
) {
    let w = World::new().await;
    let id = w.order("H12-PAID-EARLY").await;
    let created_at = w.payment(&id).await["created_at"]
        .as_str()
        .expect("created_at")
        .to_owned();
    let too_early = shifted(&created_at, -301);
    let before = snapshot(&w.app).await;
    for body in [
        succeeded("FT-EARLY", &id, &too_early),
        // Its redelivery gets the same answer: the first reserved nothing.
        succeeded("FT-EARLY", &id, &too_early),
        succeeded("FT-EARLY", &id, "2000-01-01T00:00:00Z"),
        changed(&failed("FT-EARLY", &id), "paid_at", Some(json!(too_early))),
    ] {
        let problem = assert_problem(w.deliver(&body).await, 422, "validation_failed").await;
        assert_eq!(invalid_fields(&problem), ["paid_at"], "{body}");
        assert_eq!(snapshot(&w.app).await, before, "{body}");
    }
    // The order is looked up first: an unknown order is a 404 whatever its paid_at.
    let unknown = w
        .deliver(&succeeded("FT-EARLY-404", "pay_does_not_exist", &too_early))
        .await;
    assert_problem(unknown, 404, "payment_not_found").await;
    let before = snapshot(&w.app).await;

    // Exactly 5 minutes before creation is allowed, and the same bank_txn_id is free.
    let in_time = shifted(&created_at, -300);
    let answer = w.deliver_ok(&succeeded("FT-EARLY", &id, &in_time)).await;
    assert_eq!(
        answer,
        json!({"result": "accepted", "payment_id": id, "payment_status": "paid"})
    );
    assert_eq!(w.payment(&id).await["paid_at"], in_time.as_str());
    assert_eq!(
        snapshot(&w.app).await.ledger_transactions,
        before.ledger_transactions + 1
    );
    // Redelivery and conflict come before it: the same bank_txn_id with the early time is a
    // conflict now that the id is reserved.
    let conflict = w.deliver(&succeeded("FT-EARLY", &id, &too_early)).await;
    assert_problem(conflict, 409, "bank_txn_conflict").await;
}

#[tokio::test]
async fn a_nul_in_any_callback_or_inquiry_field_answers_422_naming_it_and_writes_nothing() {
    let w = World::new().await;
    let id = w.order("H12-NUL").await;
    let valid = changed(
        &succeeded("FT-NUL", &id, &paid_a_minute_ago()),
        "failure_reason",
        Some(json!("Lý do")),
    );
    let before = snapshot(&w.app).await;
    for field in [
        "bank_txn_id",
        "payment_id",
        "amount",
        "currency",
        "status",
        "paid_at",
        "failure_reason",
    ] {
        let text = valid[field].as_str().expect("a text field");
        for value in [
            "\u{0}".to_owned(),
            format!("{text}\u{0}"),
            format!("\u{0}{text}"),
        ] {
            let body = changed(&valid, field, Some(json!(value)));
            let problem = assert_problem(w.deliver(&body).await, 422, "validation_failed").await;
            assert_eq!(invalid_fields(&problem), [field], "{body}");
        }
    }
    // A member paygate does not read is refused too: no text with NUL gets in anywhere.
    let extra = changed(&valid, "note", Some(json!("x\u{0}")));
    let problem = assert_problem(w.deliver(&extra).await, 422, "validation_failed").await;
    assert_eq!(invalid_fields(&problem), ["note"]);
    let inquiry = post_signed(
        &w.app,
        &w.bank,
        "inquiry",
        &json!({ "payment_id": format!("{id}\u{0}") }),
    )
    .await;
    let problem = assert_problem(inquiry, 422, "validation_failed").await;
    assert_eq!(invalid_fields(&problem), ["payment_id"]);
    assert_eq!(snapshot(&w.app).await, before);
    // Nothing was reserved.
    let answer = w.deliver_ok(&valid).await;
    assert_eq!(answer["result"], "accepted", "{answer}");
}

#[tokio::test]
async fn exception_filters_outside_the_years_2000_to_9998_answer_422_naming_the_filter() {
    let w = World::new().await;
    for name in ["from", "to"] {
        for value in TIMES_OUT_OF_RANGE {
            let response = w
                .app
                .http
                .get(w.app.url("/v1/exceptions"))
                .query(&[(name, value)])
                .bearer_auth(&w.auditor_key)
                .send()
                .await
                .expect("GET /v1/exceptions");
            let problem = assert_problem(response, 422, "validation_failed").await;
            assert_eq!(invalid_fields(&problem), [name], "{name}={value}");
        }
        for value in ["2000-01-01T00:00:00Z", "9998-12-31T23:59:59.999999Z"] {
            let page = w.exceptions(&format!("{name}={value}")).await;
            assert_eq!(page["items"], json!([]), "{name}={value}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A late callback racing a new order for the same reference
// ---------------------------------------------------------------------------------------------

/// Makes an order stored as expired at `EXPIRED_AT` (as the sweep would leave it, without its
/// event, which these tests do not look at).
async fn expired_by_sql(app: &TestApp, id: &str) {
    let client = app.db.get().await.expect("a test database connection");
    let changed = client
        .execute(
            &format!(
                "UPDATE payments SET created_at = '{CREATED_AT}', expires_at = '{EXPIRED_AT}',
                     status = 'expired', closed_at = now()
                 WHERE id = $1"
            ),
            &[&id],
        )
        .await
        .expect("expire the order");
    assert_eq!(changed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_callback_waiting_on_an_uncommitted_order_with_the_same_reference_is_order_closed_if_it_commits(
) {
    let w = World::with(Config {
        expiry_interval_ms: 3_600_000,
        ..test_config()
    })
    .await;
    for commit in [true, false] {
        let reference = format!("H12-UNCOMMITTED-{commit}");
        let old = w.order(&reference).await;
        expired_by_sql(&w.app, &old).await;
        // Another order takes the reference in a transaction that stays open while the
        // callback is decided, exactly as a create in flight would.
        let mut holder = w.app.db.get().await.expect("a test database connection");
        let creating = holder.transaction().await.expect("BEGIN");
        creating
            .execute(
                "INSERT INTO payments (id, agency_code, obligation, reference, amount, currency,
                     description, payer_name, details, status, expires_at)
                 VALUES ($1, $2, 'fee', $3, 150000, 'VND', 'Lệ phí', 'Nguyễn Văn A',
                     '{\"procedure_code\": \"1.002804\", \"dossier_code\": \"D-1\"}',
                     'pending', now() + interval '1 day')",
                &[&format!("pay_holder_{commit}"), &AGENCY, &reference],
            )
            .await
            .expect("insert the competing order");
        let callback = succeeded(&format!("FT-LATE-{commit}"), &old, PAID_IN_TIME);
        let bytes = serde_json::to_vec(&callback).unwrap();
        let signature = w.bank.signature(now_s(), &bytes);
        let http = w.app.http.clone();
        let url = w.app.url("/v1/banks/VCB/callbacks");
        let delivery = tokio::spawn(async move {
            let response = http
                .post(url)
                .header("Content-Type", "application/json")
                .header("Paygate-Signature", signature)
                .body(bytes)
                .send()
                .await
                .expect("POST callback");
            let status = response.status().as_u16();
            (status, response.text().await.expect("an answer"))
        });
        // Give the callback time to reach the unique index and wait there.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            !delivery.is_finished(),
            "the callback must wait for the create"
        );
        if commit {
            creating.commit().await.expect("COMMIT");
        } else {
            creating.rollback().await.expect("ROLLBACK");
        }
        let (status, text) = delivery.await.expect("the delivery task");
        assert_eq!(status, 200, "{text}");
        let answer: Value = serde_json::from_str(&text).expect("JSON");
        if commit {
            assert_eq!(
                answer,
                json!({"result": "exception", "exception": "order_closed", "payment_id": old,
                       "payment_status": "expired"})
            );
            assert_eq!(stored_status(&w.app, &old).await, "expired");
            assert_eq!(
                entries_of(&w.app, &old).await,
                vec![
                    entry("bank:VCB", AMOUNT, "0"),
                    entry("suspense:VCB", "0", AMOUNT)
                ]
            );
        } else {
            assert_eq!(
                answer,
                json!({"result": "accepted", "payment_id": old, "payment_status": "paid"})
            );
            assert_eq!(stored_status(&w.app, &old).await, "paid");
        }
    }
    assert_eq!(w.verify().await["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_callback_racing_a_new_order_with_the_same_reference_is_accepted_or_order_closed_never_an_error(
) {
    const RACES: usize = 40;
    let w = World::with(Config {
        expiry_interval_ms: 3_600_000,
        ..test_config()
    })
    .await;
    let mut olds = Vec::new();
    for n in 0..RACES {
        let old = w.order(&format!("H12-REF-RACE-{n}")).await;
        // Half stored as expired (as after the sweep), half only overdue (before it).
        if n % 2 == 0 {
            expired_by_sql(&w.app, &old).await;
        } else {
            w.backdate(&old).await;
        }
        olds.push(old);
    }

    let mut races = Vec::new();
    for (n, old) in olds.iter().enumerate() {
        let reference = format!("H12-REF-RACE-{n}");
        let body =
            serde_json::to_vec(&succeeded(&format!("FT-REF-RACE-{n}"), old, PAID_IN_TIME)).unwrap();
        let callback = w
            .app
            .http
            .post(w.app.url("/v1/banks/VCB/callbacks"))
            .header("Content-Type", "application/json")
            .header("Paygate-Signature", w.bank.signature(now_s(), &body))
            .body(body)
            .send();
        let create = w
            .app
            .http
            .post(w.app.url("/v1/payments"))
            .bearer_auth(&w.agency_key)
            .header("Idempotency-Key", paygate::auth::keys::random_id("idem", 8))
            .json(&order_body("fee", &reference, AMOUNT))
            .send();
        // The callback starts up to 38 ms after the create (about as long as a create takes
        // here), so that either may win the race and many land in between.
        let delay = Duration::from_millis(2 * (n % 20) as u64);
        let callback = async move {
            tokio::time::sleep(delay).await;
            callback.await
        };
        races.push(tokio::spawn(async move {
            let (callback, create) = tokio::join!(callback, create);
            let callback = callback.expect("POST callback");
            let create = create.expect("POST /v1/payments");
            let callback_status = callback.status().as_u16();
            let create_status = create.status().as_u16();
            let callback = callback.text().await.expect("an answer");
            let create = create.text().await.expect("an answer");
            (callback_status, callback, create_status, create)
        }));
    }

    let (mut accepted, mut closed) = (0, 0);
    for (n, (old, race)) in olds.iter().zip(races).enumerate() {
        let (callback_status, callback, create_status, create) = race.await.unwrap();
        assert_eq!(callback_status, 200, "race {n}: {callback}");
        let callback: Value = serde_json::from_str(&callback).expect("JSON");
        let create: Value = serde_json::from_str(&create).expect("JSON");
        let reference = format!("H12-REF-RACE-{n}");
        let holders = w
            .app
            .count(&format!(
                "SELECT count(*) FROM payments WHERE reference = '{reference}'
                   AND status IN ('pending', 'paid')"
            ))
            .await;
        assert_eq!(holders, 1, "race {n}");
        match callback["result"].as_str() {
            Some("accepted") => {
                accepted += 1;
                assert_eq!(callback["payment_status"], "paid", "{callback}");
                assert_eq!(stored_status(&w.app, old).await, "paid");
                assert_eq!(create_status, 409, "race {n}: {create}");
                assert_eq!(create["code"], "duplicate_reference", "{create}");
            }
            Some("exception") => {
                closed += 1;
                assert_eq!(callback["exception"], "order_closed", "{callback}");
                assert_eq!(stored_status(&w.app, old).await, "expired");
                assert_eq!(create_status, 201, "race {n}: {create}");
                assert_eq!(create["status"], "pending", "{create}");
            }
            _ => panic!("race {n}: {callback}"),
        }
    }
    println!("{RACES} races: {accepted} accepted, {closed} order_closed");
    assert_eq!(accepted + closed, RACES);
    let total = (150_000 * RACES).to_string();
    assert_verified(&w.verify().await, RACES as i64, &total);
    let balances = w.balances().await;
    assert_eq!(balances["bank:VCB"], total);
}
