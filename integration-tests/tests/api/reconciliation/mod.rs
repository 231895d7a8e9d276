//! Reconciliation and reports: every outcome on its own and all of them in
//! one statement, the business day in Vietnam time, matching across days, reruns, recovery of
//! lost callbacks, the run, items and CSV report endpoints, statement files good and bad, and
//! the daily report.

use std::collections::{BTreeMap, HashSet};
use std::ops::Deref;

use integration_tests::answers::{assert_members, content_type, invalid, json_with, RequestExt};
use integration_tests::signer::Signer;
use integration_tests::world::{
    AGENCY, AMOUNT, BANK, OBLIGATIONS, OTHER_AGENCY, OTHER_BANK, OUTCOMES,
};
use integration_tests::{assert_problem, invalid_fields};
use reqwest::{Method, Response};
use serde_json::{json, Value};

/// The business day most tests reconcile, and a time on it (10:00 in Hà Nội).
const DAY: &str = "2026-11-22";
const ON_DAY: &str = "2026-11-22T03:00:00Z";
const HEADER: &str = "bank_txn_id,payment_id,amount,paid_at,currency";
/// When the tests' orders were created: before every day the tests reconcile.
const ORDERS_CREATED_AT: &str = "2026-11-01T00:00:00Z";
const RUN_FIELDS: [&str; 7] =
    ["id", "bank", "date", "created_at", "statement_lines", "summary", "by_obligation"];
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
    assert_members(totals, keys);
    let object = totals.as_object().expect("an object of totals");
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
    let mut expected: BTreeMap<String, (i64, String)> =
        keys.iter().map(|k| ((*k).to_owned(), (0, "0".to_owned()))).collect();
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
    assert_members(item, &ITEM_FIELDS);
    let mut brief = item.clone();
    brief.as_object_mut().expect("object").remove("detail");
    brief
}

/// The briefs of `items`.
fn briefs(items: &[Value]) -> Vec<Value> {
    items.iter().map(brief).collect()
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
    item["detail"].as_str().unwrap_or_else(|| panic!("a detail: {item}"))
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
                assert!(other != '"', "a bare quote inside an unquoted field: {text}");
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

/// The usual world with a second agency and a second bank, and the admin's key.
struct World {
    base: integration_tests::world::World,
    other_agency_key: String,
    /// The app's admin key: runs made with it move money (recoveries).
    admin_key: String,
    other_bank: Signer,
}

impl Deref for World {
    type Target = integration_tests::world::World;

    fn deref(&self) -> &Self::Target {
        &self.base
    }
}

impl World {
    async fn new() -> World {
        let base = integration_tests::world::World::new().await;
        let other_agency_key = base.app.create_agency(OTHER_AGENCY).await["api_key"]
            .as_str()
            .expect("api_key")
            .to_owned();
        let other_bank = base.app.new_bank(OTHER_BANK).await;
        let admin_key = base.app.admin_key.clone();
        World { base, other_agency_key, admin_key, other_bank }
    }

    /// A new world with one pending order of `reference`; returns the world and the order's id.
    async fn with_order(reference: &str) -> (World, String) {
        let w = World::new().await;
        let id = w.order(reference).await;
        (w, id)
    }

    /// Creates a pending order with `api_key`; returns its id.
    /// `order` is the obligation, the reference and the amount.
    async fn order_of(&self, api_key: &str, order: [&str; 3]) -> String {
        let [obligation, reference, amount] = order;
        let id = self.app.create_order(api_key, obligation, reference, amount).await;
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
        self.order_of(&self.agency_key, ["fee", reference, AMOUNT]).await
    }

    /// One order of each reference, as `order` makes them (not as the base world's `orders`,
    /// which would not date them back).
    async fn orders<const N: usize>(&self, references: [&str; N]) -> [String; N] {
        let mut ids = Vec::with_capacity(N);
        for reference in references {
            ids.push(self.order(reference).await);
        }
        ids.try_into().expect("one id per reference")
    }

    /// Sends a signed callback of `body` from `signer`'s bank.
    async fn callback(&self, signer: &Signer, body: &Value) -> Response {
        self.app.post_signed(signer, "callbacks", body).await
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
        self.pay_with(&self.bank, bank_txn_id, payment_id, AMOUNT, paid_at, "accepted").await;
    }

    /// A POST of a statement to `/v1/reconciliations?<query>` with `api_key`, not yet sent.
    fn reconcile_request(
        &self,
        api_key: Option<&str>,
        query: &str,
        body: impl Into<Vec<u8>>,
    ) -> reqwest::RequestBuilder {
        let request = self
            .app
            .http
            .post(self.app.url(&format!("/v1/reconciliations?{query}")))
            .header("Content-Type", "text/csv")
            .body(body.into());
        match api_key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    /// POSTs a statement to `/v1/reconciliations?<query>` with `api_key`.
    async fn reconcile_as(
        &self,
        api_key: Option<&str>,
        query: &str,
        body: impl Into<Vec<u8>>,
    ) -> Response {
        self.reconcile_request(api_key, query, body).send().await.expect("POST /v1/reconciliations")
    }

    /// The CSV report of `run` as the auditor reads it.
    async fn report_csv(&self, run: &Value) -> String {
        let id = run["id"].as_str().expect("id");
        self.get_as(Some(&self.auditor_key), &format!("/v1/reconciliations/{id}/report.csv"))
            .await
            .text()
            .await
            .expect("the report")
    }

    /// Reconciles the main bank's statement for `date` with the admin key (a run that applies
    /// recoveries); must answer 201 with a well-formed run.
    async fn run(&self, date: &str, body: impl Into<Vec<u8>>) -> Value {
        self.run_as(&self.admin_key, date, body).await
    }

    /// Reconciles a statement of `lines` for `DAY`, as `run` does.
    async fn run_day(&self, lines: &[&str]) -> Value {
        self.run(DAY, statement(lines)).await
    }

    /// Reconciles the main bank's statement for `date` with `api_key`; must answer 201 with a
    /// well-formed run.
    async fn run_as(&self, api_key: &str, date: &str, body: impl Into<Vec<u8>>) -> Value {
        let response =
            self.reconcile_as(Some(api_key), &format!("bank={BANK}&date={date}"), body).await;
        let run = json_with(response, 201).await;
        assert_members(&run, &RUN_FIELDS);
        assert_eq!(run["bank"], BANK);
        assert_eq!(run["date"], date);
        let id = run["id"].as_str().expect("id");
        assert!(
            !id.is_empty()
                && id.len() <= 64
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
            "{id}"
        );
        let created_at = run["created_at"].as_str().expect("created_at");
        assert!(created_at.ends_with('Z'), "{created_at}");
        run
    }

    /// A run's statement (with the bank and a date) must be refused with 422; returns the
    /// problem.
    async fn refused(&self, query: &str, body: impl Into<Vec<u8>>) -> Value {
        let response = self.reconcile_as(Some(self.auditor_key.as_str()), query, body).await;
        assert_problem(response, 422, "validation_failed").await
    }

    async fn get_as(&self, api_key: Option<&str>, path: &str) -> Response {
        let mut request = self.app.get(path);
        if let Some(key) = api_key {
            request = request.bearer_auth(key);
        }
        request.send().await.expect("GET")
    }

    /// Every item of a run, in one page.
    async fn items(&self, run: &Value) -> Vec<Value> {
        let id = run["id"].as_str().expect("id");
        let page = self.audit(&format!("/v1/reconciliations/{id}/items?limit=500")).await;
        assert_eq!(page["next_cursor"], Value::Null);
        page["items"].as_array().expect("items").clone()
    }

    async fn assert_ledger_ok(&self) {
        let verify = self.audit("/v1/ledger/verify").await;
        assert_eq!(verify["ok"], true, "{verify}");
    }

    async fn runs(&self) -> i64 {
        self.app.count("SELECT count(*) FROM reconciliation_runs").await
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
            counts.push(self.app.count(&format!("SELECT count(*) FROM {table}")).await);
        }
        counts.push(self.app.count("SELECT count(*) FROM payments WHERE status = 'paid'").await);
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

/// A world where the statement of `arrange_mixed` has been reconciled on `DAY`: the world, what
/// was arranged, and the run.
async fn mixed_run() -> (World, Mixed, Value) {
    let w = World::new().await;
    let m = arrange_mixed(&w).await;
    let run = w.run(DAY, m.statement.as_bytes()).await;
    (w, m, run)
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
    let lost = w.order_of(&w.agency_key, ["tax", "MIX-B", "200000"]).await;
    let cancelled = w.order("MIX-C").await;
    w.cancel(&cancelled).await;
    let amount_differs = w.order("MIX-D").await;
    let currency_differs = w.order("MIX-E").await;
    let absent = w.order_of(&w.agency_key, ["fine", "MIX-F", "50000"]).await;
    let mismatched = w.order_of(&w.agency_key, ["social_insurance", "MIX-G", "300000"]).await;
    w.pay("FT-A", &matched, "2026-11-22T01:00:00Z").await;
    w.pay_with(&w.bank, "FT-F", &absent, "50000", "2026-11-22T09:00:00Z", "accepted").await;
    w.pay_with(&w.bank, "FT-G", &mismatched, "300000", "2026-11-22T02:00:00Z", "accepted").await;
    // Money of other banks and other days is no part of this run.
    let elsewhere = w.order("MIX-H").await;
    w.pay_with(&w.other_bank, "FT-H", &elsewhere, AMOUNT, ON_DAY, "accepted").await;
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

/// The summary of a run of the mixed statement: `settled` (its matched and recovered lines),
/// then the outcomes that stay the same however often the statement is run.
fn mixed_summary<'a>(settled: &[(&'a str, i64, &'a str)]) -> Vec<(&'a str, i64, &'a str)> {
    let unsettled = [
        ("missing_in_gateway", 3, "380000"),
        ("missing_in_bank", 1, "50000"),
        ("mismatch", 1, "310000"),
        ("duplicate_in_statement", 1, "150000"),
        ("invalid_line", 2, "0"),
    ];
    settled.iter().copied().chain(unsettled).collect()
}

fn assert_mixed_totals(run: &Value) {
    assert_eq!(run["statement_lines"], 10, "{run}");
    assert_summary(run, &mixed_summary(&[("matched", 1, "150000"), ("recovered", 2, "350000")]));
    assert_by_obligation(run, &[("fee", 1, "150000"), ("tax", 1, "200000")]);
}

mod all_at_once;
mod daily_report;
mod limits;
mod outcomes;
mod runs;
mod statement_files;
mod storage;
mod validation;
