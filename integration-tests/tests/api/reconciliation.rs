//! Reconciliation and reports: every outcome on its own and all of them in
//! one statement, the business day in Vietnam time, matching across days, reruns, recovery of
//! lost callbacks, the run, items and CSV report endpoints, statement files good and bad, and
//! the daily report.

use std::collections::{BTreeMap, HashSet};
use std::time::{SystemTime, UNIX_EPOCH};

use integration_tests::{assert_problem, details, invalid_fields, TestApp};
use paygate::signature::sign;
use reqwest::{Method, Response};
use serde_json::{json, Value};

const AGENCY: &str = "000.00.00.H12";
const OTHER_AGENCY: &str = "000.00.00.H29";
const BANK: &str = "VCB";
const OTHER_BANK: &str = "BIDV";
const AMOUNT: &str = "150000";
/// The business day most tests reconcile, and a time on it (10:00 in Hà Nội).
const DAY: &str = "2026-11-22";
const ON_DAY: &str = "2026-11-22T03:00:00Z";
const HEADER: &str = "bank_txn_id,payment_id,amount,paid_at,currency";
/// When the tests' orders were created: before every day the tests reconcile.
const ORDERS_CREATED_AT: &str = "2026-11-01T00:00:00Z";
const OUTCOMES: [&str; 7] = [
    "matched",
    "recovered",
    "missing_in_gateway",
    "missing_in_bank",
    "mismatch",
    "duplicate_in_statement",
    "invalid_line",
];
const OBLIGATIONS: [&str; 6] = [
    "fee",
    "tax",
    "social_insurance",
    "fine",
    "electricity",
    "court_advance",
];
const RUN_FIELDS: [&str; 7] = [
    "id",
    "bank",
    "date",
    "created_at",
    "statement_lines",
    "summary",
    "by_obligation",
];
const ITEM_FIELDS: [&str; 7] = [
    "outcome",
    "line",
    "bank_txn_id",
    "payment_id",
    "statement_amount",
    "gateway_amount",
    "detail",
];
const REPORT_HEADER: &str =
    "outcome,line,bank_txn_id,payment_id,statement_amount,gateway_amount,detail";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn now_s() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    i64::try_from(since_epoch.as_secs()).expect("seconds fit in i64")
}

/// A statement: the usual header, then `lines` each ended by a newline.
fn statement(lines: &[&str]) -> String {
    let mut text = format!("{HEADER}\n");
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// One statement line in the usual column order.
fn line(bank_txn_id: &str, payment_id: &str, amount: &str, paid_at: &str) -> String {
    format!("{bank_txn_id},{payment_id},{amount},{paid_at},VND")
}

/// A run's `summary` as outcome -> (count, amount), after checking it has exactly the seven
/// outcomes with integer counts and amount strings.
fn summary_of(run: &Value) -> BTreeMap<String, (i64, String)> {
    totals_of(&run["summary"], &OUTCOMES)
}

fn totals_of(totals: &Value, keys: &[&str]) -> BTreeMap<String, (i64, String)> {
    let object = totals.as_object().expect("an object of totals");
    let mut names: Vec<&str> = object.keys().map(String::as_str).collect();
    names.sort_unstable();
    let mut expected = keys.to_vec();
    expected.sort_unstable();
    assert_eq!(names, expected, "{totals}");
    object
        .iter()
        .map(|(name, total)| {
            let count = total["count"].as_i64().expect("count is an integer");
            let amount = total["amount"].as_str().expect("amount is a string");
            (name.clone(), (count, amount.to_owned()))
        })
        .collect()
}

/// Asserts `totals` (of every name in `keys`) equals `nonzero`, every other name zero.
fn assert_totals(totals: &Value, keys: &[&str], nonzero: &[(&str, i64, &str)]) {
    let actual = totals_of(totals, keys);
    let mut expected: BTreeMap<String, (i64, String)> = keys
        .iter()
        .map(|k| ((*k).to_owned(), (0, "0".to_owned())))
        .collect();
    for (name, count, amount) in nonzero {
        assert!(keys.contains(name), "{name} is not one of {keys:?}");
        expected.insert((*name).to_owned(), (*count, (*amount).to_owned()));
    }
    assert_eq!(actual, expected, "{totals}");
}

fn assert_summary(run: &Value, nonzero: &[(&str, i64, &str)]) {
    assert_totals(&run["summary"], &OUTCOMES, nonzero);
}

fn assert_by_obligation(run: &Value, nonzero: &[(&str, i64, &str)]) {
    assert_totals(&run["by_obligation"], &OBLIGATIONS, nonzero);
}

/// An item without its `detail` (checked apart), after checking its members.
fn brief(item: &Value) -> Value {
    let object = item.as_object().expect("an item object");
    let mut names: Vec<&str> = object.keys().map(String::as_str).collect();
    names.sort_unstable();
    let mut expected = ITEM_FIELDS.to_vec();
    expected.sort_unstable();
    assert_eq!(names, expected, "{item}");
    let mut brief = item.clone();
    brief.as_object_mut().expect("object").remove("detail");
    brief
}

/// The expected brief of an item.
fn expect(
    outcome: &str,
    line: Option<i64>,
    bank_txn_id: Option<&str>,
    payment_id: Option<&str>,
    statement_amount: Option<&str>,
    gateway_amount: Option<&str>,
) -> Value {
    json!({
        "outcome": outcome,
        "line": line,
        "bank_txn_id": bank_txn_id,
        "payment_id": payment_id,
        "statement_amount": statement_amount,
        "gateway_amount": gateway_amount,
    })
}

fn detail(item: &Value) -> &str {
    item["detail"]
        .as_str()
        .unwrap_or_else(|| panic!("a detail: {item}"))
}

async fn json_with(response: Response, status: u16) -> Value {
    let actual = response.status().as_u16();
    let text = response.text().await.expect("an answer");
    assert_eq!(actual, status, "{text}");
    serde_json::from_str(&text).expect("a JSON answer")
}

/// A value as every CSV file paygate writes carries it: a leading `'` before `=`, `+`, `-`, `@`,
/// a tab or a carriage return, so that a spreadsheet shows text instead of running a formula.
fn csv_cell(value: &str) -> String {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    }
}

/// A tiny RFC 4180 reader: quoted fields, doubled quotes, CRLF or LF record ends.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut field_started = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    quoted = false;
                }
            } else {
                field.push(c);
            }
            continue;
        }
        match c {
            '"' if !field_started => {
                quoted = true;
                field_started = true;
            }
            ',' => {
                record.push(std::mem::take(&mut field));
                field_started = false;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
                field_started = false;
            }
            other => {
                assert!(
                    other != '"',
                    "a bare quote inside an unquoted field: {text}"
                );
                field.push(other);
                field_started = true;
            }
        }
    }
    assert!(!quoted, "an unterminated quoted field: {text}");
    if field_started || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    records
}

/// One signing key of a bank.
#[derive(Debug, Clone)]
struct Signer {
    bank: String,
    kid: String,
    secret: String,
}

/// An app with two agencies and two banks, and an auditor's key.
struct World {
    app: TestApp,
    agency_key: String,
    other_agency_key: String,
    auditor_key: String,
    /// The app's admin key: runs made with it move money (recoveries).
    admin_key: String,
    bank: Signer,
    other_bank: Signer,
}

impl World {
    async fn new() -> World {
        let app = TestApp::spawn().await;
        let key = |answer: Value| answer["api_key"].as_str().expect("api_key").to_owned();
        let agency_key = key(app.create_agency(AGENCY).await);
        let other_agency_key = key(app.create_agency(OTHER_AGENCY).await);
        let signer = |code: &str, answer: Value| Signer {
            bank: code.to_owned(),
            kid: answer["key_id"].as_str().expect("key_id").to_owned(),
            secret: answer["secret"].as_str().expect("secret").to_owned(),
        };
        let bank = signer(BANK, app.create_bank(BANK).await);
        let other_bank = signer(OTHER_BANK, app.create_bank(OTHER_BANK).await);
        let auditor_key = app.key_with_role("auditor").await;
        let admin_key = app.admin_key.clone();
        World {
            app,
            agency_key,
            other_agency_key,
            auditor_key,
            admin_key,
            bank,
            other_bank,
        }
    }

    /// Creates a pending order with `api_key`; returns its id.
    async fn order_of(
        &self,
        api_key: &str,
        obligation: &str,
        reference: &str,
        amount: &str,
    ) -> String {
        let body = json!({
            "obligation": obligation,
            "reference": reference,
            "amount": amount,
            "currency": "VND",
            "description": "Lệ phí cấp đổi giấy phép lái xe",
            "payer": {"name": "Nguyễn Văn A", "id_number": "001099012345"},
            "details": details(obligation),
        });
        let response = self
            .app
            .http
            .post(self.app.url("/v1/payments"))
            .bearer_auth(api_key)
            .header("Idempotency-Key", paygate::auth::keys::random_id("idem", 8))
            .json(&body)
            .send()
            .await
            .expect("POST /v1/payments");
        let payment = json_with(response, 201).await;
        let id = payment["id"].as_str().expect("id").to_owned();
        // The tests reconcile days in November 2026 whatever today is, and a bank's callback
        // may not be paid long before its order was created: the orders are made to date from
        // before those days.
        self.app
            .db
            .get()
            .await
            .expect("a test database connection")
            .execute(
                "UPDATE payments SET created_at = $2::text::timestamptz WHERE id = $1",
                &[&id, &ORDERS_CREATED_AT],
            )
            .await
            .expect("date the order back");
        id
    }

    /// A pending `fee` order of `AMOUNT` of the first agency.
    async fn order(&self, reference: &str) -> String {
        self.order_of(&self.agency_key, "fee", reference, AMOUNT)
            .await
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
        assert_eq!(json_with(response, 200).await["status"], "cancelled");
    }

    /// Sends a signed callback of `body` from `signer`'s bank.
    async fn callback(&self, signer: &Signer, body: &Value) -> Response {
        let bytes = serde_json::to_vec(body).expect("JSON");
        let signature = sign(signer.secret.as_bytes(), &signer.kid, now_s(), &bytes);
        self.app
            .http
            .post(
                self.app
                    .url(&format!("/v1/banks/{}/callbacks", signer.bank)),
            )
            .header("Content-Type", "application/json")
            .header("Paygate-Signature", signature)
            .body(bytes)
            .send()
            .await
            .expect("POST a callback")
    }

    /// A `succeeded` callback from `signer`'s bank that must answer 200 with `result`.
    async fn pay_with(
        &self,
        signer: &Signer,
        bank_txn_id: &str,
        payment_id: &str,
        amount: &str,
        paid_at: &str,
        result: &str,
    ) {
        let body = json!({
            "bank_txn_id": bank_txn_id, "payment_id": payment_id, "amount": amount,
            "currency": "VND", "status": "succeeded", "paid_at": paid_at,
        });
        let answer = json_with(self.callback(signer, &body).await, 200).await;
        assert_eq!(answer["result"], result, "{answer}");
    }

    /// An accepted callback of `AMOUNT` from the main bank.
    async fn pay(&self, bank_txn_id: &str, payment_id: &str, paid_at: &str) {
        self.pay_with(
            &self.bank,
            bank_txn_id,
            payment_id,
            AMOUNT,
            paid_at,
            "accepted",
        )
        .await;
    }

    /// POSTs a statement of `bank` for `date` with `api_key`.
    async fn reconcile_as(
        &self,
        api_key: Option<&str>,
        query: &str,
        body: impl Into<Vec<u8>>,
    ) -> Response {
        let mut request = self
            .app
            .http
            .post(self.app.url(&format!("/v1/reconciliations?{query}")))
            .header("Content-Type", "text/csv")
            .body(body.into());
        if let Some(key) = api_key {
            request = request.bearer_auth(key);
        }
        request.send().await.expect("POST /v1/reconciliations")
    }

    /// Reconciles the main bank's statement for `date` with the admin key (a run that applies
    /// recoveries); must answer 201 with a well-formed run.
    async fn run(&self, date: &str, body: impl Into<Vec<u8>>) -> Value {
        self.run_as(&self.admin_key, date, body).await
    }

    /// Reconciles the main bank's statement for `date` with `api_key`; must answer 201 with a
    /// well-formed run.
    async fn run_as(&self, api_key: &str, date: &str, body: impl Into<Vec<u8>>) -> Value {
        let response = self
            .reconcile_as(Some(api_key), &format!("bank={BANK}&date={date}"), body)
            .await;
        let run = json_with(response, 201).await;
        let object = run.as_object().expect("a run object");
        let mut names: Vec<&str> = object.keys().map(String::as_str).collect();
        names.sort_unstable();
        let mut expected = RUN_FIELDS.to_vec();
        expected.sort_unstable();
        assert_eq!(names, expected, "{run}");
        assert_eq!(run["bank"], BANK);
        assert_eq!(run["date"], date);
        let id = run["id"].as_str().expect("id");
        assert!(
            !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
            "{id}"
        );
        let created_at = run["created_at"].as_str().expect("created_at");
        assert!(created_at.ends_with('Z'), "{created_at}");
        run
    }

    /// A run's statement (with the bank and a date) must be refused with 422; returns the
    /// problem.
    async fn refused(&self, query: &str, body: impl Into<Vec<u8>>) -> Value {
        let response = self
            .reconcile_as(Some(self.auditor_key.as_str()), query, body)
            .await;
        assert_problem(response, 422, "validation_failed").await
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
        json_with(response, 200).await
    }

    async fn get_as(&self, api_key: Option<&str>, path: &str) -> Response {
        let mut request = self.app.http.get(self.app.url(path));
        if let Some(key) = api_key {
            request = request.bearer_auth(key);
        }
        request.send().await.expect("GET")
    }

    /// Every item of a run, in one page.
    async fn items(&self, run: &Value) -> Vec<Value> {
        let id = run["id"].as_str().expect("id");
        let page = self
            .audit(&format!("/v1/reconciliations/{id}/items?limit=500"))
            .await;
        assert_eq!(page["next_cursor"], Value::Null);
        page["items"].as_array().expect("items").clone()
    }

    async fn payment(&self, id: &str) -> Value {
        self.audit(&format!("/v1/payments/{id}")).await
    }

    async fn balance(&self, account: &str) -> String {
        let balances = self.audit("/v1/ledger/balances").await;
        balances["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|item| item["account"] == account)
            .map_or_else(
                || "0".to_owned(),
                |item| item["balance"].as_str().expect("balance").to_owned(),
            )
    }

    async fn assert_ledger_ok(&self) {
        let verify = self.audit("/v1/ledger/verify").await;
        assert_eq!(verify["ok"], true, "{verify}");
    }

    async fn runs(&self) -> i64 {
        self.app
            .count("SELECT count(*) FROM reconciliation_runs")
            .await
    }

    /// Counts of every table a run may change through a recovery.
    async fn money_state(&self) -> Vec<i64> {
        let mut counts = Vec::new();
        for table in [
            "bank_callbacks",
            "ledger_transactions",
            "ledger_entries",
            "events",
            "callback_exceptions",
        ] {
            counts.push(
                self.app
                    .count(&format!("SELECT count(*) FROM {table}"))
                    .await,
            );
        }
        counts.push(
            self.app
                .count("SELECT count(*) FROM payments WHERE status = 'paid'")
                .await,
        );
        counts
    }
}

/// The orders and statement of a run that has every outcome.
struct Mixed {
    statement: String,
    matched: String,
    lost: String,
    cancelled: String,
    mismatched: String,
    absent: String,
    /// The bank_txn_id of the missing_in_gateway line with a comma and a quote in it.
    odd_txn: String,
}

/// Every outcome in one statement of `DAY`:
///
/// | line | what | outcome |
/// | --- | --- | --- |
/// | 2 | FT-A, paid by callback | matched (fee 150000) |
/// | 3 | FT-B, callback lost | recovered (tax 200000) |
/// | 4 | FT-C, a cancelled order | recovered into suspense (150000) |
/// | 5 | `FT,"X"`, no such order | missing_in_gateway (70000) |
/// | 6 | FT-D, amount differs | missing_in_gateway (160000) |
/// | 7 | FT-E, currency differs | missing_in_gateway (150000) |
/// | 8 | blank | - |
/// | 9 | FT-G, paygate has 300000 | mismatch (310000) |
/// | 10 | FT-A again | duplicate_in_statement (150000) |
/// | 11 | amount `abc` | invalid_line |
/// | 12 | too few fields | invalid_line |
/// | - | FT-F, paid by callback that day | missing_in_bank (fine 50000) |
async fn arrange_mixed(w: &World) -> Mixed {
    let matched = w.order("MIX-A").await;
    let lost = w.order_of(&w.agency_key, "tax", "MIX-B", "200000").await;
    let cancelled = w.order("MIX-C").await;
    w.cancel(&cancelled).await;
    let amount_differs = w.order("MIX-D").await;
    let currency_differs = w.order("MIX-E").await;
    let absent = w.order_of(&w.agency_key, "fine", "MIX-F", "50000").await;
    let mismatched = w
        .order_of(&w.agency_key, "social_insurance", "MIX-G", "300000")
        .await;
    w.pay("FT-A", &matched, "2026-11-22T01:00:00Z").await;
    w.pay_with(
        &w.bank,
        "FT-F",
        &absent,
        "50000",
        "2026-11-22T09:00:00Z",
        "accepted",
    )
    .await;
    w.pay_with(
        &w.bank,
        "FT-G",
        &mismatched,
        "300000",
        "2026-11-22T02:00:00Z",
        "accepted",
    )
    .await;
    // Money of other banks and other days is no part of this run.
    let elsewhere = w.order("MIX-H").await;
    w.pay_with(
        &w.other_bank,
        "FT-H",
        &elsewhere,
        AMOUNT,
        ON_DAY,
        "accepted",
    )
    .await;
    let next_day = w.order("MIX-I").await;
    w.pay("FT-I", &next_day, "2026-11-23T03:00:00Z").await;
    let statement = statement(&[
        &line("FT-A", &matched, AMOUNT, "2026-11-22T01:00:00Z"),
        &line("FT-B", &lost, "200000", "2026-11-22T04:00:00Z"),
        &line("FT-C", &cancelled, AMOUNT, "2026-11-22T05:00:00Z"),
        &line("\"FT,\"\"X\"\"\"", "pay_nonexistent", "70000", ON_DAY),
        &line("FT-D", &amount_differs, "160000", ON_DAY),
        &format!("FT-E,{currency_differs},{AMOUNT},{ON_DAY},USD"),
        "",
        &line("FT-G", &mismatched, "310000", "2026-11-22T02:00:00Z"),
        &line("FT-A", &matched, AMOUNT, "2026-11-22T01:00:00Z"),
        &line("FT-Z", &absent, "abc", ON_DAY),
        "FT-Y,pay_short",
    ]);
    Mixed {
        statement,
        matched,
        lost,
        cancelled,
        mismatched,
        absent,
        odd_txn: "FT,\"X\"".to_owned(),
    }
}

fn assert_mixed_totals(run: &Value) {
    assert_eq!(run["statement_lines"], 10, "{run}");
    assert_summary(
        run,
        &[
            ("matched", 1, "150000"),
            ("recovered", 2, "350000"),
            ("missing_in_gateway", 3, "380000"),
            ("missing_in_bank", 1, "50000"),
            ("mismatch", 1, "310000"),
            ("duplicate_in_statement", 1, "150000"),
            ("invalid_line", 2, "0"),
        ],
    );
    assert_by_obligation(run, &[("fee", 1, "150000"), ("tax", 1, "200000")]);
}

// ---------------------------------------------------------------------------------------------
// Each outcome on its own
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_line_paygate_recorded_with_the_same_payment_and_amount_is_matched() {
    let w = World::new().await;
    let id = w.order("MATCH-1").await;
    w.pay("FT26327001", &id, ON_DAY).await;
    let before = w.money_state().await;

    let run = w
        .run(DAY, statement(&[&line("FT26327001", &id, AMOUNT, ON_DAY)]))
        .await;

    assert_eq!(run["statement_lines"], 1);
    assert_summary(&run, &[("matched", 1, "150000")]);
    assert_by_obligation(&run, &[("fee", 1, "150000")]);
    let items = w.items(&run).await;
    assert_eq!(items.len(), 1);
    assert_eq!(
        brief(&items[0]),
        expect(
            "matched",
            Some(2),
            Some("FT26327001"),
            Some(id.as_str()),
            Some(AMOUNT),
            Some(AMOUNT)
        )
    );
    assert_eq!(w.money_state().await, before, "matching changes no money");
}

#[tokio::test]
async fn a_line_whose_callback_was_lost_is_recovered_and_pays_the_order_once() {
    let w = World::new().await;
    let id = w
        .order_of(&w.agency_key, "electricity", "LOST-1", "275000")
        .await;
    assert_eq!(w.payment(&id).await["status"], "pending");

    // 10:15 in Hà Nội is 03:15 UTC.
    let run = w
        .run(
            DAY,
            statement(&[&line("FT-LOST", &id, "275000", "2026-11-22T10:15:00+07:00")]),
        )
        .await;

    assert_summary(&run, &[("recovered", 1, "275000")]);
    assert_by_obligation(&run, &[("electricity", 1, "275000")]);
    let items = w.items(&run).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["outcome"], "recovered");
    assert_eq!(items[0]["line"], 2);
    assert_eq!(items[0]["bank_txn_id"], "FT-LOST");
    assert_eq!(items[0]["payment_id"], id.as_str());
    assert_eq!(items[0]["statement_amount"], "275000");

    let payment = w.payment(&id).await;
    assert_eq!(payment["status"], "paid", "{payment}");
    assert_eq!(payment["bank"], BANK);
    assert_eq!(payment["bank_txn_id"], "FT-LOST");
    assert_eq!(payment["paid_at"], "2026-11-22T03:15:00Z");
    assert_eq!(
        w.app
            .count("SELECT count(*) FROM ledger_transactions")
            .await,
        1
    );
    assert_eq!(
        w.app
            .count(&format!(
                "SELECT count(*) FROM events WHERE payment_id = '{id}' AND type = 'payment.paid'"
            ))
            .await,
        1
    );
    assert_eq!(w.app.count("SELECT count(*) FROM events").await, 1);
    assert_eq!(w.balance(&format!("bank:{BANK}")).await, "275000");
    assert_eq!(
        w.balance(&format!("agency:{AGENCY}:electricity")).await,
        "-275000"
    );
    assert_eq!(w.balance(&format!("suspense:{BANK}")).await, "0");
    w.assert_ledger_ok().await;
}

#[tokio::test]
async fn a_line_for_a_cancelled_order_is_recovered_into_suspense_and_not_credited_to_an_agency() {
    let w = World::new().await;
    let id = w.order("CANCELLED-1").await;
    w.cancel(&id).await;

    let run = w
        .run(DAY, statement(&[&line("FT-SUSP", &id, AMOUNT, ON_DAY)]))
        .await;

    assert_summary(&run, &[("recovered", 1, "150000")]);
    assert_by_obligation(&run, &[]);
    let items = w.items(&run).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["outcome"], "recovered");
    assert_eq!(items[0]["line"], 2);
    assert_eq!(items[0]["payment_id"], id.as_str());
    assert_eq!(items[0]["statement_amount"], AMOUNT);
    assert!(
        detail(&items[0]).contains("suspense"),
        "the detail names the suspense: {}",
        items[0]
    );
    let payment = w.payment(&id).await;
    assert_eq!(payment["status"], "cancelled");
    assert_eq!(payment["paid_at"], Value::Null);
    assert_eq!(w.balance(&format!("suspense:{BANK}")).await, "-150000");
    assert_eq!(w.balance(&format!("bank:{BANK}")).await, "150000");
    assert_eq!(w.balance(&format!("agency:{AGENCY}:fee")).await, "0");
    assert_eq!(
        w.app
            .count("SELECT count(*) FROM ledger_transactions")
            .await,
        1
    );
    assert_eq!(
        w.app
            .count("SELECT count(*) FROM events WHERE type = 'payment.paid'")
            .await,
        0
    );
    let exceptions = w.audit(&format!("/v1/exceptions?bank={BANK}")).await;
    let listed = exceptions["items"].as_array().expect("items");
    assert_eq!(listed.len(), 1, "{exceptions}");
    assert_eq!(listed[0]["bank_txn_id"], "FT-SUSP");
    w.assert_ledger_ok().await;
}

#[tokio::test]
async fn lines_that_cannot_be_applied_are_missing_in_gateway_and_change_nothing() {
    let w = World::new().await;
    let amount_differs = w.order("MIG-1").await;
    let currency_differs = w.order("MIG-2").await;
    let before = w.money_state().await;

    let run = w
        .run(
            DAY,
            statement(&[
                &line("FT-1", "pay_nonexistent", "99000", ON_DAY),
                &line("FT-2", &amount_differs, "150001", ON_DAY),
                &format!("FT-3,{currency_differs},{AMOUNT},{ON_DAY},USD"),
            ]),
        )
        .await;

    assert_eq!(run["statement_lines"], 3);
    assert_summary(&run, &[("missing_in_gateway", 3, "399001")]);
    assert_by_obligation(&run, &[]);
    let items = w.items(&run).await;
    let briefs: Vec<Value> = items.iter().map(brief).collect();
    assert_eq!(
        briefs,
        [
            expect(
                "missing_in_gateway",
                Some(2),
                Some("FT-1"),
                Some("pay_nonexistent"),
                Some("99000"),
                None
            ),
            expect(
                "missing_in_gateway",
                Some(3),
                Some("FT-2"),
                Some(amount_differs.as_str()),
                Some("150001"),
                None
            ),
            expect(
                "missing_in_gateway",
                Some(4),
                Some("FT-3"),
                Some(currency_differs.as_str()),
                Some(AMOUNT),
                None
            ),
        ]
    );
    assert!(detail(&items[1]).contains("amount"), "{}", items[1]);
    assert!(detail(&items[2]).contains("currency"), "{}", items[2]);
    assert_eq!(w.money_state().await, before);
    for id in [&amount_differs, &currency_differs] {
        assert_eq!(w.payment(id).await["status"], "pending");
    }
}

#[tokio::test]
async fn money_paygate_recorded_that_day_but_absent_from_the_statement_is_missing_in_bank() {
    let w = World::new().await;
    let on_statement = w.order("MIB-1").await;
    let absent = w
        .order_of(&w.agency_key, "court_advance", "MIB-2", "480000")
        .await;
    let twice = w.order("MIB-3").await;
    let failed = w.order("MIB-4").await;
    let other_bank = w.order("MIB-5").await;
    w.pay("FT-ON", &on_statement, ON_DAY).await;
    w.pay_with(
        &w.bank,
        "FT-ABSENT",
        &absent,
        "480000",
        "2026-11-22T08:00:00Z",
        "accepted",
    )
    .await;
    w.pay("FT-TWICE-1", &twice, "2026-11-22T04:00:00Z").await;
    // A second payment of a paid order went to suspense: money moved, so it counts too.
    w.pay_with(
        &w.bank,
        "FT-TWICE-2",
        &twice,
        AMOUNT,
        "2026-11-22T05:00:00Z",
        "exception",
    )
    .await;
    // A failed attempt moved no money, and another bank's money is another run's.
    let failure = json!({
        "bank_txn_id": "FT-FAILED", "payment_id": failed, "amount": AMOUNT,
        "status": "failed", "failure_reason": "Tài khoản không đủ số dư",
    });
    json_with(w.callback(&w.bank, &failure).await, 200).await;
    w.pay_with(
        &w.other_bank,
        "FT-OTHER",
        &other_bank,
        AMOUNT,
        ON_DAY,
        "accepted",
    )
    .await;

    let run = w
        .run(
            DAY,
            statement(&[&line("FT-ON", &on_statement, AMOUNT, ON_DAY)]),
        )
        .await;

    assert_summary(
        &run,
        &[("matched", 1, "150000"), ("missing_in_bank", 3, "780000")],
    );
    assert_by_obligation(&run, &[("fee", 1, "150000")]);
    let items = w.items(&run).await;
    let missing: Vec<&Value> = items
        .iter()
        .filter(|i| i["outcome"] == "missing_in_bank")
        .collect();
    let mut briefs: Vec<Value> = missing.iter().map(|i| brief(i)).collect();
    briefs.sort_by_key(|b| b["bank_txn_id"].as_str().map(str::to_owned));
    assert_eq!(
        briefs,
        [
            expect(
                "missing_in_bank",
                None,
                Some("FT-ABSENT"),
                Some(absent.as_str()),
                None,
                Some("480000")
            ),
            expect(
                "missing_in_bank",
                None,
                Some("FT-TWICE-1"),
                Some(twice.as_str()),
                None,
                Some(AMOUNT)
            ),
            expect(
                "missing_in_bank",
                None,
                Some("FT-TWICE-2"),
                Some(twice.as_str()),
                None,
                Some(AMOUNT)
            ),
        ]
    );
}

#[tokio::test]
async fn a_known_bank_txn_id_with_another_payment_or_amount_is_a_mismatch_saying_which() {
    let w = World::new().await;
    let first = w.order("MM-1").await;
    let second = w.order("MM-2").await;
    let third = w.order("MM-3").await;
    w.pay("FT-1", &first, ON_DAY).await;
    w.pay("FT-2", &second, ON_DAY).await;
    w.pay("FT-3", &third, ON_DAY).await;
    let before = w.money_state().await;

    let run = w
        .run(
            DAY,
            statement(&[
                &line("FT-1", &second, AMOUNT, ON_DAY),
                &line("FT-2", &second, "150500", ON_DAY),
                &line("FT-3", &first, "1", ON_DAY),
            ]),
        )
        .await;

    assert_summary(&run, &[("mismatch", 3, "300501")]);
    assert_by_obligation(&run, &[]);
    let items = w.items(&run).await;
    assert_eq!(
        items.len(),
        3,
        "a mismatched record is not also missing_in_bank"
    );
    let briefs: Vec<Value> = items.iter().map(brief).collect();
    assert_eq!(
        briefs,
        [
            expect(
                "mismatch",
                Some(2),
                Some("FT-1"),
                Some(second.as_str()),
                Some(AMOUNT),
                Some(AMOUNT)
            ),
            expect(
                "mismatch",
                Some(3),
                Some("FT-2"),
                Some(second.as_str()),
                Some("150500"),
                Some(AMOUNT)
            ),
            expect(
                "mismatch",
                Some(4),
                Some("FT-3"),
                Some(first.as_str()),
                Some("1"),
                Some(AMOUNT)
            ),
        ]
    );
    let first_detail = detail(&items[0]);
    assert!(
        first_detail.contains("payment_id") && !first_detail.contains("amount"),
        "{first_detail}"
    );
    let second_detail = detail(&items[1]);
    assert!(
        second_detail.contains("amount") && !second_detail.contains("payment_id"),
        "{second_detail}"
    );
    let third_detail = detail(&items[2]);
    assert!(
        third_detail.contains("amount") && third_detail.contains("payment_id"),
        "{third_detail}"
    );
    assert_eq!(w.money_state().await, before);
}

#[tokio::test]
async fn a_repeated_bank_txn_id_is_a_duplicate_on_its_second_line_and_applied_once() {
    let w = World::new().await;
    let id = w.order("DUP-1").await;

    let run = w
        .run(
            DAY,
            statement(&[
                &line("FT-DUP", &id, AMOUNT, ON_DAY),
                &line("FT-DUP", &id, AMOUNT, ON_DAY),
            ]),
        )
        .await;

    assert_eq!(run["statement_lines"], 2);
    assert_summary(
        &run,
        &[
            ("recovered", 1, "150000"),
            ("duplicate_in_statement", 1, "150000"),
        ],
    );
    assert_by_obligation(&run, &[("fee", 1, "150000")]);
    let items = w.items(&run).await;
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["outcome"], "recovered");
    assert_eq!(items[0]["line"], 2);
    assert_eq!(items[1]["outcome"], "duplicate_in_statement");
    assert_eq!(items[1]["line"], 3);
    assert_eq!(items[1]["bank_txn_id"], "FT-DUP");
    assert_eq!(items[1]["statement_amount"], AMOUNT);
    assert!(detail(&items[1]).contains('2'), "{}", items[1]);
    assert_eq!(
        w.app
            .count("SELECT count(*) FROM ledger_transactions")
            .await,
        1
    );
    w.assert_ledger_ok().await;
}

#[tokio::test]
async fn an_unreadable_line_is_an_invalid_line_with_its_number_and_reason_and_no_amount() {
    let w = World::new().await;
    let id = w.order("INV-1").await;

    let run = w
        .run(
            DAY,
            statement(&[
                "FT-1,pay_short,150000",
                &line("FT-2", &id, "0", ON_DAY),
                &line("FT-3", &id, AMOUNT, "2026-11-22 10:00"),
            ]),
        )
        .await;

    assert_eq!(run["statement_lines"], 3);
    assert_summary(&run, &[("invalid_line", 3, "0")]);
    let items = w.items(&run).await;
    let lines: Vec<&Value> = items.iter().map(|i| &i["line"]).collect();
    assert_eq!(lines, [&json!(2), &json!(3), &json!(4)]);
    for item in &items {
        assert_eq!(item["outcome"], "invalid_line");
        assert!(!detail(item).is_empty());
    }
    assert!(detail(&items[1]).contains("amount"), "{}", items[1]);
    assert!(detail(&items[2]).contains("paid_at"), "{}", items[2]);
    assert_eq!(w.payment(&id).await["status"], "pending");
}

#[tokio::test]
async fn two_lost_payments_of_one_order_pay_it_once_and_put_the_other_in_suspense() {
    let w = World::new().await;
    let id = w.order("TWICE-1").await;

    let run = w
        .run(
            DAY,
            statement(&[
                &line("FT-1", &id, AMOUNT, "2026-11-22T03:00:00Z"),
                &line("FT-2", &id, AMOUNT, "2026-11-22T03:05:00Z"),
            ]),
        )
        .await;

    assert_summary(&run, &[("recovered", 2, "300000")]);
    assert_by_obligation(&run, &[("fee", 1, "150000")]);
    let items = w.items(&run).await;
    let in_suspense: Vec<&Value> = items
        .iter()
        .filter(|i| i["detail"].as_str().is_some_and(|d| d.contains("suspense")))
        .collect();
    assert_eq!(in_suspense.len(), 1, "{items:?}");
    let payment = w.payment(&id).await;
    assert_eq!(payment["status"], "paid");
    assert_ne!(payment["bank_txn_id"], in_suspense[0]["bank_txn_id"]);
    assert_eq!(w.balance(&format!("agency:{AGENCY}:fee")).await, "-150000");
    assert_eq!(w.balance(&format!("suspense:{BANK}")).await, "-150000");
    assert_eq!(w.balance(&format!("bank:{BANK}")).await, "300000");
    assert_eq!(
        w.app
            .count("SELECT count(*) FROM events WHERE type = 'payment.paid'")
            .await,
        1
    );
    w.assert_ledger_ok().await;
}

// ---------------------------------------------------------------------------------------------
// Everything at once, days, reruns
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_outcome_in_one_statement_is_counted_and_summed_exactly() {
    let w = World::new().await;
    let m = arrange_mixed(&w).await;

    let run = w.run(DAY, m.statement.as_bytes()).await;

    assert_mixed_totals(&run);
    let items = w.items(&run).await;
    let briefs: Vec<Value> = items.iter().map(brief).collect();
    let expected = [
        expect(
            "matched",
            Some(2),
            Some("FT-A"),
            Some(m.matched.as_str()),
            Some(AMOUNT),
            Some(AMOUNT),
        ),
        expect(
            "recovered",
            Some(3),
            Some("FT-B"),
            Some(m.lost.as_str()),
            Some("200000"),
            Some("200000"),
        ),
        expect(
            "recovered",
            Some(4),
            Some("FT-C"),
            Some(m.cancelled.as_str()),
            Some(AMOUNT),
            Some(AMOUNT),
        ),
        expect(
            "missing_in_gateway",
            Some(5),
            Some(m.odd_txn.as_str()),
            Some("pay_nonexistent"),
            Some("70000"),
            None,
        ),
    ];
    assert_eq!(briefs[..4], expected);
    let outcomes: Vec<(&str, Value)> = items
        .iter()
        .map(|i| (i["outcome"].as_str().expect("outcome"), i["line"].clone()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("matched", json!(2)),
            ("recovered", json!(3)),
            ("recovered", json!(4)),
            ("missing_in_gateway", json!(5)),
            ("missing_in_gateway", json!(6)),
            ("missing_in_gateway", json!(7)),
            ("mismatch", json!(9)),
            ("duplicate_in_statement", json!(10)),
            ("invalid_line", json!(11)),
            ("invalid_line", json!(12)),
            ("missing_in_bank", Value::Null),
        ]
    );
    assert_eq!(items[6]["payment_id"], m.mismatched.as_str());
    assert_eq!(items[6]["gateway_amount"], "300000");
    assert_eq!(items[10]["bank_txn_id"], "FT-F");
    assert_eq!(items[10]["payment_id"], m.absent.as_str());
    assert_eq!(items[10]["gateway_amount"], "50000");
    assert_eq!(items[10]["statement_amount"], Value::Null);
    assert_eq!(w.payment(&m.lost).await["status"], "paid");
    assert_eq!(w.payment(&m.cancelled).await["status"], "cancelled");
    w.assert_ledger_ok().await;
}

#[tokio::test]
async fn the_business_day_is_the_calendar_day_in_vietnam_time() {
    let w = World::new().await;
    // 23:30 in Hà Nội on the 22nd, and midnight starting the 23rd.
    let late = w.order("TZ-1").await;
    let next = w.order("TZ-2").await;
    // The first and last instants of the 22nd, and the last of the 21st.
    let first = w.order("TZ-3").await;
    let last = w.order("TZ-4").await;
    let before = w.order("TZ-5").await;
    w.pay("FT-LATE", &late, "2026-11-22T16:30:00Z").await;
    w.pay("FT-NEXT", &next, "2026-11-22T17:00:00Z").await;
    w.pay("FT-FIRST", &first, "2026-11-21T17:00:00Z").await;
    w.pay("FT-LAST", &last, "2026-11-22T16:59:59.999999Z").await;
    w.pay("FT-BEFORE", &before, "2026-11-21T16:59:59Z").await;

    let missing = |run: &Value, items: &[Value]| -> Vec<String> {
        let mut ids: Vec<String> = items
            .iter()
            .filter(|i| i["outcome"] == "missing_in_bank")
            .map(|i| i["bank_txn_id"].as_str().expect("bank_txn_id").to_owned())
            .collect();
        ids.sort();
        assert_eq!(
            run["summary"]["missing_in_bank"]["count"],
            ids.len(),
            "{run}"
        );
        ids
    };
    let day = w.run("2026-11-22", statement(&[])).await;
    assert_eq!(
        missing(&day, &w.items(&day).await),
        ["FT-FIRST", "FT-LAST", "FT-LATE"]
    );
    assert_summary(&day, &[("missing_in_bank", 3, "450000")]);
    let next_day = w.run("2026-11-23", statement(&[])).await;
    assert_eq!(missing(&next_day, &w.items(&next_day).await), ["FT-NEXT"]);
    let day_before = w.run("2026-11-21", statement(&[])).await;
    assert_eq!(
        missing(&day_before, &w.items(&day_before).await),
        ["FT-BEFORE"]
    );
}

#[tokio::test]
async fn lines_match_by_bank_txn_id_whatever_day_paygate_recorded_them() {
    let w = World::new().await;
    let early = w.order("XD-1").await;
    let lost = w.order("XD-2").await;
    let never = w.order("XD-3").await;
    let wrong = w.order("XD-4").await;
    // Recorded on the 21st (Vietnam time).
    w.pay("FT-EARLY", &early, "2026-11-21T10:00:00Z").await;
    w.pay("FT-NEVER", &never, "2026-11-21T11:00:00Z").await;
    w.pay("FT-WRONG", &wrong, "2026-11-21T12:00:00Z").await;

    // The bank booked them on the 22nd.
    let day = w
        .run(
            DAY,
            statement(&[
                &line("FT-EARLY", &early, AMOUNT, "2026-11-22T01:00:00Z"),
                &line("FT-LOST", &lost, AMOUNT, "2026-11-21T16:00:00Z"),
                &line("FT-WRONG", &wrong, "149000", "2026-11-22T01:00:00Z"),
            ]),
        )
        .await;
    assert_summary(
        &day,
        &[
            ("matched", 1, "150000"),
            ("recovered", 1, "150000"),
            ("mismatch", 1, "149000"),
        ],
    );
    assert_eq!(w.payment(&lost).await["paid_at"], "2026-11-21T16:00:00Z");

    // The 21st's own statement carried none of them: the ones the 22nd's run matched or
    // recovered are timing differences, the others are gaps.
    let day_before = w.run("2026-11-21", statement(&[])).await;
    assert_summary(&day_before, &[("missing_in_bank", 2, "300000")]);
    let mut missing: Vec<String> = w
        .items(&day_before)
        .await
        .iter()
        .map(|i| i["bank_txn_id"].as_str().expect("bank_txn_id").to_owned())
        .collect();
    missing.sort();
    assert_eq!(missing, ["FT-NEVER", "FT-WRONG"]);
}

#[tokio::test]
async fn running_the_same_statement_again_applies_nothing_twice() {
    let w = World::new().await;
    let m = arrange_mixed(&w).await;
    let first = w.run(DAY, m.statement.as_bytes()).await;
    let after_first = w.money_state().await;
    let first_items = w.items(&first).await;

    let second = w.run(DAY, m.statement.as_bytes()).await;

    assert_ne!(first["id"], second["id"]);
    assert_eq!(
        w.money_state().await,
        after_first,
        "nothing is applied twice"
    );
    assert_eq!(second["statement_lines"], 10);
    assert_summary(
        &second,
        &[
            ("matched", 3, "500000"),
            ("missing_in_gateway", 3, "380000"),
            ("missing_in_bank", 1, "50000"),
            ("mismatch", 1, "310000"),
            ("duplicate_in_statement", 1, "150000"),
            ("invalid_line", 2, "0"),
        ],
    );
    assert_eq!(second["by_obligation"], first["by_obligation"]);
    let second_items = w.items(&second).await;
    let key = |i: &Value| {
        (
            i["line"].clone(),
            i["bank_txn_id"].clone(),
            i["payment_id"].clone(),
            i["statement_amount"].clone(),
        )
    };
    let expected: Vec<_> = first_items
        .iter()
        .map(|i| {
            let outcome = if i["outcome"] == "recovered" {
                json!("matched")
            } else {
                i["outcome"].clone()
            };
            (outcome, key(i))
        })
        .collect();
    let actual: Vec<_> = second_items
        .iter()
        .map(|i| (i["outcome"].clone(), key(i)))
        .collect();
    assert_eq!(actual, expected);
    w.assert_ledger_ok().await;
}

#[tokio::test]
async fn a_real_callback_after_recovery_is_a_duplicate_and_changes_nothing() {
    let w = World::new().await;
    let lost = w.order("LATE-1").await;
    let cancelled = w.order("LATE-2").await;
    w.cancel(&cancelled).await;
    w.run(
        DAY,
        statement(&[
            &line("FT-LOST", &lost, AMOUNT, "2026-11-22T03:00:00Z"),
            &line("FT-SUSP", &cancelled, AMOUNT, "2026-11-22T03:00:00Z"),
        ]),
    )
    .await;
    let before = w.money_state().await;

    // The bank's own time differs from its statement's: paid_at is not compared.
    let late = json!({
        "bank_txn_id": "FT-LOST", "payment_id": lost, "amount": AMOUNT,
        "status": "succeeded", "paid_at": "2026-11-22T03:00:07+07:00",
    });
    let answer = json_with(w.callback(&w.bank, &late).await, 200).await;
    assert_eq!(answer["result"], "duplicate", "{answer}");
    assert_eq!(answer["payment_id"], lost.as_str());
    assert_eq!(answer["payment_status"], "paid");
    let late_exception = json!({
        "bank_txn_id": "FT-SUSP", "payment_id": cancelled, "amount": AMOUNT,
        "currency": "VND", "status": "succeeded", "paid_at": "2026-11-22T04:00:00Z",
    });
    let answer = json_with(w.callback(&w.bank, &late_exception).await, 200).await;
    assert_eq!(answer["result"], "duplicate", "{answer}");
    assert_eq!(answer["payment_status"], "cancelled");
    // Other money under the same bank_txn_id is a conflict.
    let other_amount = json!({
        "bank_txn_id": "FT-LOST", "payment_id": lost, "amount": "150001",
        "status": "succeeded", "paid_at": "2026-11-22T03:00:00Z",
    });
    assert_problem(
        w.callback(&w.bank, &other_amount).await,
        409,
        "bank_txn_conflict",
    )
    .await;
    let other_payment = json!({
        "bank_txn_id": "FT-LOST", "payment_id": cancelled, "amount": AMOUNT,
        "status": "succeeded", "paid_at": "2026-11-22T03:00:00Z",
    });
    assert_problem(
        w.callback(&w.bank, &other_payment).await,
        409,
        "bank_txn_conflict",
    )
    .await;

    assert_eq!(w.money_state().await, before);
    assert_eq!(w.payment(&lost).await["paid_at"], "2026-11-22T03:00:00Z");
}

// ---------------------------------------------------------------------------------------------
// Runs, items, report
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_run_reads_back_exactly_as_posted_and_runs_are_listed_by_bank_and_date() {
    let w = World::new().await;
    let m = arrange_mixed(&w).await;
    let posted = w.run(DAY, m.statement.as_bytes()).await;
    let id = posted["id"].as_str().expect("id");

    assert_eq!(w.audit(&format!("/v1/reconciliations/{id}")).await, posted);
    let admin_read = w
        .app
        .admin(Method::GET, &format!("/v1/reconciliations/{id}"))
        .send()
        .await
        .expect("GET as admin");
    assert_eq!(json_with(admin_read, 200).await, posted);

    let again = w.run(DAY, statement(&[])).await;
    let other_day = w.run("2026-11-23", statement(&[])).await;
    let other_bank = json_with(
        w.reconcile_as(
            Some(&w.auditor_key),
            &format!("bank={OTHER_BANK}&date={DAY}"),
            statement(&[]),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(other_bank["bank"], OTHER_BANK);

    let listed = |page: &Value| -> HashSet<String> {
        assert_eq!(page["next_cursor"], Value::Null, "{page}");
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|run| run["id"].as_str().expect("id").to_owned())
            .collect()
    };
    let ids = |runs: &[&Value]| -> HashSet<String> {
        runs.iter()
            .map(|run| run["id"].as_str().expect("id").to_owned())
            .collect()
    };
    let page = w
        .audit(&format!("/v1/reconciliations?bank={BANK}&date={DAY}"))
        .await;
    assert_eq!(listed(&page), ids(&[&posted, &again]));
    let found = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|run| run["id"] == posted["id"])
        .expect("listed");
    assert_eq!(found, &posted, "a listed run is the run");
    assert_eq!(
        listed(&w.audit(&format!("/v1/reconciliations?bank={BANK}")).await),
        ids(&[&posted, &again, &other_day])
    );
    assert_eq!(
        listed(&w.audit(&format!("/v1/reconciliations?date={DAY}")).await),
        ids(&[&posted, &again, &other_bank])
    );
    assert_eq!(
        listed(&w.audit("/v1/reconciliations").await),
        ids(&[&posted, &again, &other_day, &other_bank])
    );
    assert_eq!(
        listed(
            &w.audit("/v1/reconciliations?bank=VCB&date=2026-11-20")
                .await
        ),
        HashSet::new()
    );
    // Keyset pages walk every run once.
    let mut walked = Vec::new();
    let mut path = "/v1/reconciliations?limit=1".to_owned();
    loop {
        let page = w.audit(&path).await;
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 1);
        walked.extend(
            items
                .iter()
                .map(|r| r["id"].as_str().expect("id").to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/reconciliations?limit=1&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(walked.len(), 4, "{walked:?}");
    assert_eq!(
        walked.into_iter().collect::<HashSet<_>>(),
        ids(&[&posted, &again, &other_day, &other_bank])
    );
    let bad = assert_problem(
        w.get_as(Some(&w.auditor_key), "/v1/reconciliations?date=22-11-2026")
            .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(invalid_fields(&bad), ["date"]);
}

#[tokio::test]
async fn items_filter_by_outcome_and_page_through_every_item_once_in_order() {
    let w = World::new().await;
    let m = arrange_mixed(&w).await;
    let run = w.run(DAY, m.statement.as_bytes()).await;
    let id = run["id"].as_str().expect("id");
    let all = w.items(&run).await;
    assert_eq!(all.len(), 11);

    let mut walked = Vec::new();
    let mut pages = 0;
    let mut path = format!("/v1/reconciliations/{id}/items?limit=2");
    loop {
        let page = w.audit(&path).await;
        pages += 1;
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 2, "{page}");
        walked.extend(items.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                assert!(!items.is_empty());
                path = format!("/v1/reconciliations/{id}/items?limit=2&cursor={cursor}");
            }
            None => break,
        }
        assert!(pages < 20, "the pages never end");
    }
    assert_eq!(walked, all, "every item once, in order");
    assert_eq!(pages, 6);

    let summary = summary_of(&run);
    for outcome in OUTCOMES {
        let page = w
            .audit(&format!("/v1/reconciliations/{id}/items?outcome={outcome}"))
            .await;
        let items = page["items"].as_array().expect("items");
        assert!(items.iter().all(|i| i["outcome"] == outcome), "{page}");
        assert_eq!(items.len() as i64, summary[outcome].0, "{outcome}");
        let expected: Vec<&Value> = all.iter().filter(|i| i["outcome"] == outcome).collect();
        assert_eq!(items.iter().collect::<Vec<_>>(), expected);
    }
    // Filtered pages walk too.
    let first = w
        .audit(&format!(
            "/v1/reconciliations/{id}/items?outcome=missing_in_gateway&limit=2"
        ))
        .await;
    let cursor = first["next_cursor"].as_str().expect("a second page");
    let rest = w
        .audit(&format!(
            "/v1/reconciliations/{id}/items?outcome=missing_in_gateway&limit=2&cursor={cursor}"
        ))
        .await;
    assert_eq!(rest["items"].as_array().expect("items").len(), 1);
    assert_eq!(rest["items"][0]["line"], 7);
    assert_eq!(rest["next_cursor"], Value::Null);

    for query in ["outcome=paid", "outcome=MATCHED", "outcome="] {
        let problem = assert_problem(
            w.get_as(
                Some(&w.auditor_key),
                &format!("/v1/reconciliations/{id}/items?{query}"),
            )
            .await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(invalid_fields(&problem), ["outcome"], "{query}");
    }
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("cursor=%21", "cursor"),
    ] {
        let problem = assert_problem(
            w.get_as(
                Some(&w.auditor_key),
                &format!("/v1/reconciliations/{id}/items?{query}"),
            )
            .await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(invalid_fields(&problem), [field], "{query}");
    }
}

#[tokio::test]
async fn an_unknown_run_is_reconciliation_not_found_everywhere() {
    let w = World::new().await;
    for path in [
        "/v1/reconciliations/rec_nosuchrun",
        "/v1/reconciliations/rec_nosuchrun/items",
        "/v1/reconciliations/rec_nosuchrun/items?outcome=matched",
        "/v1/reconciliations/rec_nosuchrun/report.csv",
    ] {
        assert_problem(
            w.get_as(Some(&w.auditor_key), path).await,
            404,
            "reconciliation_not_found",
        )
        .await;
    }
}

#[tokio::test]
async fn the_csv_report_has_one_rfc_4180_record_per_item_with_nulls_empty() {
    let w = World::new().await;
    let m = arrange_mixed(&w).await;
    let run = w.run(DAY, m.statement.as_bytes()).await;
    let id = run["id"].as_str().expect("id");
    let items = w.items(&run).await;

    let response = w
        .get_as(
            Some(&w.auditor_key),
            &format!("/v1/reconciliations/{id}/report.csv"),
        )
        .await;
    assert_eq!(response.status(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    let bytes = response.bytes().await.expect("the report");
    assert!(!bytes.starts_with(b"\xEF\xBB\xBF"), "no BOM");
    let text = String::from_utf8(bytes.to_vec()).expect("UTF-8");
    let first_line = text.split('\n').next().expect("a header");
    assert_eq!(first_line.trim_end_matches('\r'), REPORT_HEADER);
    // A detail with a comma and quotes, and a bank_txn_id with both, are quoted.
    assert!(text.contains("such as \"\"150000\"\")\""), "{text}");
    assert!(text.contains("\"FT,\"\"X\"\"\""), "{text}");

    let records = parse_csv(&text);
    assert_eq!(records[0], REPORT_HEADER.split(',').collect::<Vec<_>>());
    assert_eq!(records.len(), items.len() + 1, "{text}");
    let field = |value: &Value| -> String {
        match value {
            Value::Null => String::new(),
            Value::String(s) => csv_cell(s),
            Value::Number(n) => n.to_string(),
            other => panic!("an unexpected item value {other}"),
        }
    };
    for (record, item) in records[1..].iter().zip(&items) {
        let expected: Vec<String> = ITEM_FIELDS.iter().map(|f| field(&item[*f])).collect();
        assert_eq!(record, &expected);
    }
    let invalid_amount = &records[9];
    assert_eq!(invalid_amount[0], "invalid_line");
    assert_eq!(invalid_amount[1], "11");
    assert!(
        invalid_amount[6].contains(',') && invalid_amount[6].contains('"'),
        "{invalid_amount:?}"
    );
    let missing = &records[11];
    assert_eq!(missing[0], "missing_in_bank");
    assert_eq!(missing[1], "", "a null line is an empty field");
    assert_eq!(missing[4], "", "a null statement_amount is an empty field");

    // A run without items is the header alone.
    let empty = w.run("2026-11-20", statement(&[])).await;
    let empty_id = empty["id"].as_str().expect("id");
    let text = w
        .get_as(
            Some(&w.auditor_key),
            &format!("/v1/reconciliations/{empty_id}/report.csv"),
        )
        .await
        .text()
        .await
        .expect("the report");
    assert_eq!(
        parse_csv(&text),
        [REPORT_HEADER.split(',').collect::<Vec<_>>()]
    );
}

// ---------------------------------------------------------------------------------------------
// Statement files
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn columns_are_found_by_name_after_a_bom_and_extra_columns_are_ignored() {
    let w = World::new().await;
    let paid = w.order("COL-1").await;
    let lost = w.order("COL-2").await;
    w.pay("FT-1", &paid, ON_DAY).await;
    // The first record's note spans two lines of the file.
    let text = format!(
        "\u{feff}ghi_chú,paid_at,currency,amount,payment_id,chi_nhánh,bank_txn_id\n\
         \"Thu hộ, lệ phí\n(hai dòng)\",{ON_DAY},VND,{AMOUNT},{paid},Hà Nội,FT-1\n\
         Điện,{ON_DAY},,{AMOUNT},{lost},\"Đà Nẵng, \"\"CN2\"\"\",FT-2\n"
    );

    let run = w.run(DAY, text).await;

    assert_eq!(run["statement_lines"], 2);
    assert_summary(
        &run,
        &[("matched", 1, "150000"), ("recovered", 1, "150000")],
    );
    let items = w.items(&run).await;
    assert_eq!(
        brief(&items[0]),
        expect(
            "matched",
            Some(2),
            Some("FT-1"),
            Some(paid.as_str()),
            Some(AMOUNT),
            Some(AMOUNT)
        )
    );
    assert_eq!(items[1]["outcome"], "recovered");
    assert_eq!(items[1]["line"], 4);
    assert_eq!(items[1]["bank_txn_id"], "FT-2");
    assert_eq!(w.payment(&lost).await["status"], "paid");
}

#[tokio::test]
async fn a_file_without_a_required_column_is_refused_naming_it_and_records_nothing() {
    let w = World::new().await;
    let lost = w.order("REQ-1").await;
    let cases: [(&str, &[&str]); 5] = [
        ("payment_id,amount,paid_at,currency", &["bank_txn_id"]),
        ("bank_txn_id,amount,paid_at", &["payment_id"]),
        ("bank_txn_id,payment_id,paid_at", &["amount"]),
        ("bank_txn_id,payment_id,amount,currency", &["paid_at"]),
        ("bank_txn_id,amount", &["payment_id", "paid_at"]),
    ];
    for (header, missing) in cases {
        let text = format!("{header}\nFT-1,{lost},{AMOUNT},{ON_DAY}\n");
        let problem = w.refused(&format!("bank={BANK}&date={DAY}"), text).await;
        assert_eq!(invalid_fields(&problem), ["statement"], "{problem}");
        let message = problem["errors"][0]["message"].as_str().expect("message");
        for column in missing {
            assert!(message.contains(column), "{header}: {message}");
        }
    }
    assert_eq!(w.runs().await, 0);
    assert_eq!(
        w.app
            .count("SELECT count(*) FROM reconciliation_items")
            .await,
        0
    );
    assert_eq!(w.payment(&lost).await["status"], "pending");
}

#[tokio::test]
async fn a_file_that_is_not_utf8_is_refused_and_applies_nothing() {
    let w = World::new().await;
    let lost = w.order("UTF-1").await;
    let lost_line = line("FT-1", &lost, AMOUNT, ON_DAY);
    let mut in_a_line = statement(&[&lost_line]).into_bytes();
    // "Hà Nội" in Windows-1258 after a line that could be recovered.
    in_a_line.extend_from_slice(b"FT-2,pay_x,1000,2026-11-22T03:00:00Z,VND,H\xe0 N\xf4i\n");
    let mut in_the_header = b"bank_txn_id,payment_id,amount,paid_at,ghi_ch\xfa\n".to_vec();
    in_the_header.extend_from_slice(lost_line.as_bytes());
    in_the_header.push(b'\n');
    for body in [in_a_line, in_the_header] {
        let problem = w.refused(&format!("bank={BANK}&date={DAY}"), body).await;
        assert_eq!(invalid_fields(&problem), ["statement"], "{problem}");
    }
    assert_eq!(w.runs().await, 0);
    assert_eq!(w.payment(&lost).await["status"], "pending");
    assert_eq!(
        w.app
            .count("SELECT count(*) FROM ledger_transactions")
            .await,
        0
    );
}

#[tokio::test]
async fn a_file_without_a_header_row_is_refused() {
    let w = World::new().await;
    for body in ["", "\n", "\r\n\r\n", "\u{feff}"] {
        let problem = w.refused(&format!("bank={BANK}&date={DAY}"), body).await;
        assert_eq!(
            invalid_fields(&problem),
            ["statement"],
            "{body:?}: {problem}"
        );
    }
    assert_eq!(w.runs().await, 0);
}

#[tokio::test]
async fn a_header_alone_is_a_valid_empty_statement() {
    let w = World::new().await;
    for body in [
        format!("{HEADER}\n"),
        HEADER.to_owned(),
        format!("\u{feff}{HEADER}\r\n"),
    ] {
        let run = w.run(DAY, body).await;
        assert_eq!(run["statement_lines"], 0);
        assert_summary(&run, &[]);
        assert_by_obligation(&run, &[]);
        assert!(w.items(&run).await.is_empty());
    }
    assert_eq!(w.runs().await, 3);
}

#[tokio::test]
async fn broken_and_blank_lines_keep_the_files_line_numbers_and_the_rest_still_counts() {
    for newline in ["\n", "\r\n"] {
        let w = World::new().await;
        let paid = w.order("BRK-1").await;
        let lost = w.order("BRK-2").await;
        w.pay("FT-1", &paid, ON_DAY).await;
        let lines = [
            HEADER.to_owned(),
            line("FT-1", &paid, AMOUNT, ON_DAY),
            String::new(),
            "FT-2,pay_short,150000".to_owned(),
            line("FT-3", &paid, "15.000", ON_DAY),
            line("FT-4", &paid, AMOUNT, "hôm qua"),
            String::new(),
            String::new(),
            line("FT-5", &lost, AMOUNT, ON_DAY),
            line("FT-6", &paid, "-150000", ON_DAY),
        ];
        let text = lines.join(newline) + newline;

        let run = w.run(DAY, text).await;

        assert_eq!(run["statement_lines"], 6, "{newline:?}");
        assert_summary(
            &run,
            &[
                ("matched", 1, "150000"),
                ("recovered", 1, "150000"),
                ("invalid_line", 4, "0"),
            ],
        );
        let items = w.items(&run).await;
        let outcomes: Vec<(&str, i64)> = items
            .iter()
            .map(|i| {
                (
                    i["outcome"].as_str().expect("outcome"),
                    i["line"].as_i64().expect("line"),
                )
            })
            .collect();
        assert_eq!(
            outcomes,
            [
                ("matched", 2),
                ("invalid_line", 4),
                ("invalid_line", 5),
                ("invalid_line", 6),
                ("recovered", 9),
                ("invalid_line", 10),
            ],
            "{newline:?}"
        );
        assert!(detail(&items[2]).contains("amount"), "{}", items[2]);
        assert!(detail(&items[3]).contains("paid_at"), "{}", items[3]);
        assert!(detail(&items[5]).contains("amount"), "{}", items[5]);
    }
}

// ---------------------------------------------------------------------------------------------
// Validation and roles
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_run_with_a_missing_or_invalid_bank_or_date_is_refused_naming_it() {
    let w = World::new().await;
    let body = statement(&[]);
    let cases: [(&str, &[&str]); 10] = [
        ("", &["bank", "date"]),
        ("bank=VCB", &["date"]),
        ("date=2026-11-22", &["bank"]),
        ("bank=vcb&date=2026-11-22", &["bank"]),
        ("bank=V&date=2026-11-22", &["bank"]),
        ("bank=VCB&date=2026-11-31", &["date"]),
        ("bank=VCB&date=22%2F11%2F2026", &["date"]),
        ("bank=VCB&date=2026-11-22T00%3A00%3A00Z", &["date"]),
        ("bank=VCB&date=", &["date"]),
        ("bank=ACB&date=2026-11-22", &["bank"]),
    ];
    for (query, fields) in cases {
        let problem = w.refused(query, body.clone()).await;
        let mut named = invalid_fields(&problem);
        named.sort();
        assert_eq!(named, fields, "{query}: {problem}");
    }
    assert_eq!(w.runs().await, 0);
    // Any date may be reconciled, future ones included.
    let future = w.run("2030-01-01", body).await;
    assert_summary(&future, &[]);
}

#[tokio::test]
async fn only_auditors_and_admins_reconcile_and_read_runs_and_reports() {
    let w = World::new().await;
    // A paid order, so that the daily report has something to total.
    let paid = w.order("ROLE-1").await;
    w.pay("FT-1", &paid, ON_DAY).await;
    let run = w.run(DAY, statement(&[])).await;
    let id = run["id"].as_str().expect("id");
    let query = format!("bank={BANK}&date={DAY}");

    assert_problem(
        w.reconcile_as(Some(&w.agency_key), &query, statement(&[]))
            .await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        w.reconcile_as(None, &query, statement(&[])).await,
        401,
        "unauthenticated",
    )
    .await;
    assert_problem(
        w.reconcile_as(Some("not-a-key"), &query, statement(&[]))
            .await,
        401,
        "unauthenticated",
    )
    .await;
    assert_eq!(w.runs().await, 1, "refused runs record nothing");
    let admin_run = w
        .app
        .admin(Method::POST, &format!("/v1/reconciliations?{query}"))
        .header("Content-Type", "text/csv")
        .body(statement(&[]))
        .send()
        .await
        .expect("POST as admin");
    json_with(admin_run, 201).await;

    let paths = [
        format!("/v1/reconciliations?{query}"),
        format!("/v1/reconciliations/{id}"),
        format!("/v1/reconciliations/{id}/items"),
        format!("/v1/reconciliations/{id}/report.csv"),
        format!("/v1/reports/daily?date={DAY}"),
    ];
    for path in &paths {
        assert_problem(w.get_as(Some(&w.agency_key), path).await, 403, "forbidden").await;
        assert_problem(
            w.get_as(Some(&w.other_agency_key), path).await,
            403,
            "forbidden",
        )
        .await;
        assert_problem(w.get_as(None, path).await, 401, "unauthenticated").await;
        let admin = w
            .app
            .admin(Method::GET, path)
            .send()
            .await
            .expect("GET as admin");
        assert_eq!(admin.status(), 200, "{path}");
        assert_eq!(
            w.get_as(Some(&w.auditor_key), path).await.status(),
            200,
            "{path}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Daily report
// ---------------------------------------------------------------------------------------------

fn sorted_rows(rows: &Value, key: &str) -> Vec<(String, i64, String)> {
    let mut rows: Vec<(String, i64, String)> = rows
        .as_array()
        .expect("an array")
        .iter()
        .map(|row| {
            let object = row.as_object().expect("a row");
            assert_eq!(object.len(), 3, "{row}");
            (
                row[key].as_str().expect("key").to_owned(),
                row["count"].as_i64().expect("count"),
                row["amount"].as_str().expect("amount").to_owned(),
            )
        })
        .collect();
    rows.sort();
    rows
}

fn rows(expected: &[(&str, i64, &str)]) -> Vec<(String, i64, String)> {
    let mut rows: Vec<(String, i64, String)> = expected
        .iter()
        .map(|(k, c, a)| ((*k).to_owned(), *c, (*a).to_owned()))
        .collect();
    rows.sort();
    rows
}

#[tokio::test]
async fn the_daily_report_totals_orders_paid_that_business_day() {
    let w = World::new().await;
    let a = &w.agency_key;
    let b = &w.other_agency_key;
    let fee = w.order_of(a, "fee", "DR-1", "150000").await;
    let tax = w.order_of(a, "tax", "DR-2", "200000").await;
    let fine = w.order_of(b, "fine", "DR-3", "50000").await;
    let electricity = w.order_of(b, "electricity", "DR-4", "300000").await;
    let court = w.order_of(b, "court_advance", "DR-5", "400000").await;
    let lost = w.order_of(a, "social_insurance", "DR-6", "250000").await;
    let cancelled = w.order_of(a, "fee", "DR-7", "99000").await;
    w.order_of(a, "fee", "DR-8", "77000").await; // never paid
    w.cancel(&cancelled).await;
    w.pay_with(
        &w.bank,
        "FT-1",
        &fee,
        "150000",
        "2026-11-22T01:00:00Z",
        "accepted",
    )
    .await;
    // 00:00 in Hà Nội on the 22nd.
    w.pay_with(
        &w.other_bank,
        "FT-2",
        &tax,
        "200000",
        "2026-11-21T17:00:00Z",
        "accepted",
    )
    .await;
    w.pay_with(
        &w.bank,
        "FT-3",
        &fine,
        "50000",
        "2026-11-22T16:59:59Z",
        "accepted",
    )
    .await;
    w.pay_with(
        &w.bank,
        "FT-4",
        &electricity,
        "300000",
        "2026-11-22T17:00:00Z",
        "accepted",
    )
    .await;
    w.pay_with(
        &w.other_bank,
        "FT-5",
        &court,
        "400000",
        "2026-11-21T16:59:59Z",
        "accepted",
    )
    .await;
    // Money for a cancelled order is in suspense: no order was paid.
    w.pay_with(&w.bank, "FT-7", &cancelled, "99000", ON_DAY, "exception")
        .await;
    // A payment recovered by reconciliation counts like any other.
    w.run(
        DAY,
        statement(&[&line("FT-6", &lost, "250000", "2026-11-22T05:00:00Z")]),
    )
    .await;

    let day = w.audit(&format!("/v1/reports/daily?date={DAY}")).await;
    assert_eq!(day["date"], DAY);
    assert_eq!(day["totals"], json!({"count": 4, "amount": "650000"}));
    assert_totals(
        &day["by_obligation"],
        &OBLIGATIONS,
        &[
            ("fee", 1, "150000"),
            ("tax", 1, "200000"),
            ("social_insurance", 1, "250000"),
            ("fine", 1, "50000"),
        ],
    );
    assert_eq!(
        sorted_rows(&day["by_agency"], "agency"),
        rows(&[(AGENCY, 3, "600000"), (OTHER_AGENCY, 1, "50000")])
    );
    assert_eq!(
        sorted_rows(&day["by_bank"], "bank"),
        rows(&[(BANK, 3, "450000"), (OTHER_BANK, 1, "200000")])
    );

    let next = w.audit("/v1/reports/daily?date=2026-11-23").await;
    assert_eq!(next["totals"], json!({"count": 1, "amount": "300000"}));
    assert_totals(
        &next["by_obligation"],
        &OBLIGATIONS,
        &[("electricity", 1, "300000")],
    );
    assert_eq!(
        sorted_rows(&next["by_agency"], "agency"),
        rows(&[(OTHER_AGENCY, 1, "300000")])
    );
    assert_eq!(
        sorted_rows(&next["by_bank"], "bank"),
        rows(&[(BANK, 1, "300000")])
    );

    let before = w.audit("/v1/reports/daily?date=2026-11-21").await;
    assert_eq!(before["totals"], json!({"count": 1, "amount": "400000"}));
    assert_totals(
        &before["by_obligation"],
        &OBLIGATIONS,
        &[("court_advance", 1, "400000")],
    );
    assert_eq!(
        sorted_rows(&before["by_bank"], "bank"),
        rows(&[(OTHER_BANK, 1, "400000")])
    );
}

#[tokio::test]
async fn the_daily_report_of_a_day_without_paid_orders_is_all_zeros() {
    let w = World::new().await;
    // An order paid on another day, one never paid, and money in suspense on the day.
    let paid = w.order("Q-1").await;
    w.order("Q-2").await;
    let cancelled = w.order("Q-3").await;
    w.cancel(&cancelled).await;
    w.pay("FT-1", &paid, "2026-11-21T03:00:00Z").await;
    w.pay_with(&w.bank, "FT-2", &cancelled, AMOUNT, ON_DAY, "exception")
        .await;

    for date in [DAY, "2026-11-20"] {
        let quiet = w.audit(&format!("/v1/reports/daily?date={date}")).await;
        assert_eq!(quiet["date"], date);
        assert_eq!(quiet["totals"], json!({"count": 0, "amount": "0"}));
        assert_totals(&quiet["by_obligation"], &OBLIGATIONS, &[]);
        assert_eq!(quiet["by_agency"], json!([]));
        assert_eq!(quiet["by_bank"], json!([]));
    }
}

#[tokio::test]
async fn the_daily_report_needs_a_valid_date() {
    let w = World::new().await;
    for path in [
        "/v1/reports/daily",
        "/v1/reports/daily?date=",
        "/v1/reports/daily?date=2026-02-30",
        "/v1/reports/daily?date=20261122",
        "/v1/reports/daily?date=today",
    ] {
        let problem = assert_problem(
            w.get_as(Some(&w.auditor_key), path).await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(invalid_fields(&problem), ["date"], "{path}");
    }
}

#[tokio::test]
async fn concurrent_runs_never_record_a_line_they_could_apply_as_missing_in_gateway() {
    let w = World::new().await;
    // More runs at once than the app has database connections (4 in tests), each with a lost
    // callback to recover.
    let mut lost = Vec::new();
    for n in 0..8 {
        let id = w.order(&format!("CONC-{n}")).await;
        let body = statement(&[&line(&format!("FT-{n}"), &id, AMOUNT, ON_DAY)]);
        let request = w
            .app
            .http
            .post(
                w.app
                    .url(&format!("/v1/reconciliations?bank={BANK}&date={DAY}")),
            )
            .bearer_auth(&w.admin_key)
            .header("Content-Type", "text/csv")
            .body(body);
        lost.push((id, request));
    }
    let mut sent = Vec::new();
    for (id, request) in lost {
        sent.push((
            id,
            tokio::spawn(async move { request.send().await.expect("POST a statement") }),
        ));
    }

    let mut recorded = 0;
    for (id, handle) in sent {
        let response = handle.await.expect("the request task");
        if response.status() == 503 {
            // Refusing a run the database cannot serve now is fine: nothing is recorded.
            assert_problem(response, 503, "unavailable").await;
            continue;
        }
        let run = json_with(response, 201).await;
        recorded += 1;
        assert_summary(&run, &[("recovered", 1, "150000")]);
        assert_eq!(w.payment(&id).await["status"], "paid");
    }
    assert_eq!(w.runs().await, recorded);
    w.assert_ledger_ok().await;
}

// ---------------------------------------------------------------------------------------------
// Bad input and limits
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_auditors_run_applies_nothing_and_reports_recoverable_lines_that_an_admins_run_recovers()
{
    let w = World::new().await;
    let lost = w.order("AUD-1").await;
    let cancelled = w.order("AUD-2").await;
    w.cancel(&cancelled).await;
    let body = statement(&[
        &line("FT-AUD-1", &lost, AMOUNT, ON_DAY),
        &line("FT-AUD-2", &cancelled, AMOUNT, ON_DAY),
        &line("FT-AUD-3", "pay_nonexistent", AMOUNT, ON_DAY),
    ]);
    let before = w.money_state().await;

    let audited = w.run_as(&w.auditor_key, DAY, body.clone()).await;

    assert_summary(&audited, &[("missing_in_gateway", 3, "450000")]);
    assert_by_obligation(&audited, &[]);
    let items = w.items(&audited).await;
    let briefs: Vec<Value> = items.iter().map(brief).collect();
    assert_eq!(
        briefs,
        [
            expect(
                "missing_in_gateway",
                Some(2),
                Some("FT-AUD-1"),
                Some(lost.as_str()),
                Some(AMOUNT),
                None
            ),
            expect(
                "missing_in_gateway",
                Some(3),
                Some("FT-AUD-2"),
                Some(cancelled.as_str()),
                Some(AMOUNT),
                None
            ),
            expect(
                "missing_in_gateway",
                Some(4),
                Some("FT-AUD-3"),
                Some("pay_nonexistent"),
                Some(AMOUNT),
                None
            ),
        ]
    );
    let details: Vec<&str> = items.iter().map(detail).collect();
    assert_eq!(details, ["recoverable", "recoverable", "no such payment"]);
    assert_eq!(
        w.money_state().await,
        before,
        "an auditor's run changes no order, ledger, event or exception"
    );
    assert_eq!(w.payment(&lost).await["status"], "pending");
    assert_eq!(w.payment(&cancelled).await["status"], "cancelled");

    // The admin's run of the same statement recovers both lines.
    let applied = w.run(DAY, body.clone()).await;
    assert_summary(
        &applied,
        &[
            ("recovered", 2, "300000"),
            ("missing_in_gateway", 1, AMOUNT),
        ],
    );
    assert_by_obligation(&applied, &[("fee", 1, AMOUNT)]);
    assert_eq!(w.payment(&lost).await["status"], "paid");
    assert_eq!(
        w.app
            .count("SELECT count(*) FROM ledger_transactions")
            .await,
        2
    );
    w.assert_ledger_ok().await;

    // An auditor's later run finds them matched: nothing is left to apply.
    let again = w.run_as(&w.auditor_key, DAY, body).await;
    assert_summary(
        &again,
        &[("matched", 2, "300000"), ("missing_in_gateway", 1, AMOUNT)],
    );
    assert_eq!(
        w.app
            .count("SELECT count(*) FROM ledger_transactions")
            .await,
        2
    );
}

#[tokio::test]
async fn formula_cells_get_a_leading_quote_in_report_csv_and_stay_as_received_in_json_items() {
    let w = World::new().await;
    let formula = "=HYPERLINK(\"http://evil.example/\",\"click\")";
    let body = format!(
        "{HEADER}\n\"{}\",-pay,150000,{ON_DAY},VND\n@SUM(1+1),+pay,70000,{ON_DAY},VND\n",
        formula.replace('"', "\"\"")
    );

    let run = w.run(DAY, body).await;

    assert_summary(&run, &[("missing_in_gateway", 2, "220000")]);
    let items = w.items(&run).await;
    assert_eq!(items[0]["bank_txn_id"], formula, "JSON keeps the value");
    assert_eq!(items[0]["payment_id"], "-pay");
    assert_eq!(items[1]["bank_txn_id"], "@SUM(1+1)");
    assert_eq!(items[1]["payment_id"], "+pay");

    let id = run["id"].as_str().expect("id");
    let text = w
        .get_as(
            Some(&w.auditor_key),
            &format!("/v1/reconciliations/{id}/report.csv"),
        )
        .await
        .text()
        .await
        .expect("the report");
    assert!(
        text.contains("\"'=HYPERLINK(\"\"http://evil.example/\"\",\"\"click\"\")\""),
        "{text}"
    );
    let records = parse_csv(&text);
    assert_eq!(records.len(), 3, "{text}");
    assert_eq!(records[1][2], format!("'{formula}"));
    assert_eq!(records[1][3], "'-pay");
    assert_eq!(records[2][2], "'@SUM(1+1)");
    assert_eq!(records[2][3], "'+pay");
    for record in &records {
        for cell in record {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "{cell:?} in {text}"
            );
        }
    }
}

#[tokio::test]
async fn a_line_over_64_kib_with_a_nul_or_a_time_outside_2000_to_9998_is_an_invalid_line() {
    let w = World::new().await;
    let id = w.order("LIMIT-1").await;
    let before = w.money_state().await;
    // 65537 bytes: one more than a line may have. An extra column carries the padding.
    let good = line("FT-LONG", &id, AMOUNT, ON_DAY);
    let long = format!("{good},{}", "y".repeat(64 * 1024 - good.len()));
    let body = statement(&[
        &long,
        &line("FT-NUL\0", &id, AMOUNT, ON_DAY),
        &line("FT-FAR", &id, AMOUNT, "9999-12-31T23:30:00-01:00"),
        &line("FT-OLD", &id, AMOUNT, "1999-12-31T23:59:59Z"),
        &line("FT-GOOD", &id, AMOUNT, ON_DAY),
    ]);

    let run = w.run(DAY, body).await;

    assert_eq!(run["statement_lines"], 5);
    assert_summary(&run, &[("invalid_line", 4, "0"), ("recovered", 1, AMOUNT)]);
    let items = w.items(&run).await;
    let lines: Vec<&Value> = items.iter().map(|i| &i["line"]).collect();
    assert_eq!(
        lines,
        [&json!(2), &json!(3), &json!(4), &json!(5), &json!(6)]
    );
    assert_eq!(detail(&items[0]), "the line is longer than 65536 bytes");
    assert_eq!(
        detail(&items[1]),
        "the line contains a NUL character (U+0000)"
    );
    for item in &items[2..4] {
        assert_eq!(item["outcome"], "invalid_line");
        assert!(
            detail(item).starts_with("paid_at must fall in the years 2000 to 9998"),
            "{item}"
        );
    }
    assert_eq!(items[4]["bank_txn_id"], "FT-GOOD");
    let after = w.money_state().await;
    assert_eq!(after[0], before[0] + 1, "one callback recorded: {after:?}");
    assert_eq!(w.payment(&id).await["bank_txn_id"], "FT-GOOD");
}

/// A pool like the app's whose connections allow each statement `statement_timeout_ms`.
fn strict_pool(
    settings: &tokio_postgres::Config,
    statement_timeout_ms: u64,
) -> deadpool_postgres::Pool {
    let mut settings = settings.clone();
    settings.options(format!(
        "-c statement_timeout={statement_timeout_ms} -c lock_timeout={statement_timeout_ms}"
    ));
    let manager = deadpool_postgres::Manager::from_config(
        settings,
        tokio_postgres::NoTls,
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    deadpool_postgres::Pool::builder(manager)
        .max_size(4)
        .build()
        .expect("a pool")
}

#[tokio::test]
async fn a_run_sets_its_own_limits_so_the_pools_statement_timeout_cannot_cut_it_short() {
    let w = World::new().await;
    let lost = w.order("TIMEOUT-1").await;
    // A second app on the same database, whose connections allow each statement 50 ms.
    let pool = strict_pool(&w.app.db_settings, 50);
    let slow = pool
        .get()
        .await
        .expect("a connection")
        .query("SELECT pg_sleep(0.2)", &[])
        .await
        .expect_err("the pool's statements are cut at 50 ms");
    assert_eq!(
        slow.as_db_error().map(|e| e.code().code()),
        Some("57014"),
        "{slow}"
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let app = paygate::http::Application::build(integration_tests::test_config(), pool, listener)
        .expect("build the app");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    // Enough lines that copying and classifying them each take far longer than 50 ms.
    let mut body = format!("{HEADER}\n{}\n", line("FT-T-LOST", &lost, AMOUNT, ON_DAY));
    let unknown: i64 = 50_000;
    for n in 0..unknown {
        body.push_str(&line(
            &format!("FT-T-{n}"),
            &format!("pay_none_{n}"),
            "1000",
            ON_DAY,
        ));
        body.push('\n');
    }

    let response = w
        .app
        .http
        .post(format!(
            "{address}/v1/reconciliations?bank={BANK}&date={DAY}"
        ))
        .bearer_auth(&w.admin_key)
        .header("Content-Type", "text/csv")
        .body(body)
        .send()
        .await
        .expect("POST a statement");

    let run = json_with(response, 201).await;
    assert_eq!(run["statement_lines"], unknown + 1);
    assert_summary(
        &run,
        &[
            ("recovered", 1, AMOUNT),
            ("missing_in_gateway", unknown, "50000000"),
        ],
    );
    assert_eq!(w.payment(&lost).await["status"], "paid");
}

#[tokio::test]
async fn a_run_that_loses_a_deadlock_runs_again_and_recovers_each_line_once() {
    let w = World::new().await;
    let first = w.order("DEADLOCK-1").await;
    let second = w.order("DEADLOCK-2").await;
    let body = statement(&[
        &line("FT-DL-1", &first, AMOUNT, ON_DAY),
        &line("FT-DL-2", &second, AMOUNT, ON_DAY),
    ]);
    // Another session holds the second order, so the run waits there holding the first.
    let (mut client, connection) = w
        .app
        .db_settings
        .connect(tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    // The blocker checks for deadlocks late (where its role may set that), so that PostgreSQL
    // picks the run as the deadlock's victim.
    let _ = client.batch_execute("SET deadlock_timeout = '20s'").await;
    let blocker = client.transaction().await.expect("begin");
    let lock = "SELECT 1 FROM payments WHERE id = $1 FOR UPDATE";
    blocker
        .query(lock, &[&second])
        .await
        .expect("lock the second order");
    let request = w
        .app
        .http
        .post(
            w.app
                .url(&format!("/v1/reconciliations?bank={BANK}&date={DAY}")),
        )
        .bearer_auth(&w.admin_key)
        .header("Content-Type", "text/csv")
        .body(body);
    let sent = tokio::spawn(async move { request.send().await.expect("POST a statement") });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let waiting = w
            .app
            .count(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .await;
        if waiting == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the run never waited");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // Taking the first order closes the cycle; PostgreSQL fails the run's transaction.
    blocker
        .query(lock, &[&first])
        .await
        .expect("the run, not the blocker, is the deadlock's victim");
    blocker.rollback().await.expect("rollback");

    let run = json_with(sent.await.expect("the request task"), 201).await;
    assert_summary(&run, &[("recovered", 2, "300000")]);
    assert_eq!(w.runs().await, 1, "the failed attempt recorded nothing");
    assert_eq!(
        w.app
            .count("SELECT count(*) FROM ledger_transactions")
            .await,
        2
    );
    for id in [&first, &second] {
        assert_eq!(w.payment(id).await["status"], "paid");
    }
    w.assert_ledger_ok().await;
}
