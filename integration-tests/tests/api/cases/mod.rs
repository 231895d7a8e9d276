//! Cases: every way paygate opens one by itself (exception callbacks, kept callbacks,
//! reconciliation differences) and that a redelivery or a rerun opens nothing new; inquiries
//! and notes; who sees and who may act on what; the resolutions (`no_action`, `apply` with its
//! second admin, `refund` through a suspense refund and the bank's result); the cases that
//! resolve themselves; the daily report's `cases` and `refunds`; and the audit entries of every
//! operator action.

use std::time::Duration;

use integration_tests::answers::{assert_members, json_with, RequestExt};
use integration_tests::clock::paid_a_minute_ago;
use integration_tests::receiver::{Behaviour, ReceivedRequest, Receiver};
use integration_tests::world::{World, AGENCY, AMOUNT, BANK, OTHER_AGENCY};
use integration_tests::{assert_problem, invalid_fields};
use reqwest::{Method, Response};
use serde_json::{json, Value};

/// Every member of the case object, and nothing else.
const CASE_FIELDS: [&str; 12] = [
    "id",
    "kind",
    "status",
    "agency",
    "bank",
    "bank_txn_id",
    "payment_id",
    "amount",
    "opened_at",
    "opened_by",
    "notes",
    "resolution",
];
/// Every member of a resolution, and nothing else.
const RESOLUTION_FIELDS: [&str; 7] =
    ["kind", "at", "by", "note", "payment_id", "refund_id", "approved_by"];
/// The business day the reconciliation tests reconcile, and times on it and the next day.
const DAY: &str = "2026-11-22";
const ON_DAY: &str = "2026-11-22T03:00:00Z";
const NEXT_DAY: &str = "2026-11-23";
/// When orders that reconciliation tests pay on `DAY` were created.
const ORDERS_CREATED_AT: &str = "2026-11-01T00:00:00Z";
const STATEMENT_HEADER: &str = "bank_txn_id,payment_id,amount,paid_at,currency";
/// Generous bound for what a background worker does within a few poll intervals.
const WAIT: Duration = Duration::from_secs(15);

/// paygate itself, as `opened_by` and `by` show it.
fn system_actor() -> Value {
    json!({"key_id": null, "role": "system", "agency": null, "label": null, "via": "system"})
}

/// The world, another agency, and a second admin key (the checker of every money movement).
struct Desk {
    w: World,
    other_agency_key: String,
    checker_key: String,
}

impl Desk {
    async fn new() -> Desk {
        let w = World::new().await;
        let other_agency_key =
            w.app.create_agency(OTHER_AGENCY).await["api_key"].as_str().unwrap().to_owned();
        let checker_key = w.app.key_with_role("admin").await;
        Desk { w, other_agency_key, checker_key }
    }

    fn admin_key(&self) -> &str {
        &self.w.app.admin_key
    }

    /// A `succeeded` callback of `AMOUNT` paid a minute ago, delivered by the world's bank;
    /// must answer 200 with `result`.
    async fn pay(&self, bank_txn_id: &str, payment_id: &str, result: &str) -> String {
        let paid_at = paid_a_minute_ago();
        let answer = self.w.deliver_ok(&succeeded(bank_txn_id, payment_id, &paid_at)).await;
        assert_eq!(answer["result"], result, "{answer}");
        paid_at
    }

    /// A paid order of the world's agency and its second payment (`FT-<reference>-2`): a
    /// double payment in suspense. Returns the order id and its case.
    async fn double_payment(&self, reference: &str) -> (String, Value) {
        let id = self.w.order(reference).await;
        self.pay(&format!("FT-{reference}-1"), &id, "accepted").await;
        let second = format!("FT-{reference}-2");
        self.pay(&second, &id, "exception").await;
        let case = self.case_of("double_payment", &second).await;
        (id, case)
    }

    /// A cancelled order of the world's agency that the payer paid anyway (`FT-<reference>`):
    /// money in suspense. Returns the order id, the bank's `paid_at` and the case.
    async fn closed_order_payment(&self, reference: &str) -> (String, String, Value) {
        let id = self.w.order(reference).await;
        self.w.cancel(&id).await;
        let bank_txn_id = format!("FT-{reference}");
        let paid_at = self.pay(&bank_txn_id, &id, "exception").await;
        let case = self.case_of("order_closed", &bank_txn_id).await;
        (id, paid_at, case)
    }

    /// A callback for an order that does not exist: a `payment_not_found` case without money.
    async fn unknown_order_payment(&self, bank_txn_id: &str) -> Value {
        let body = succeeded(bank_txn_id, "pay_nonexistent", &paid_a_minute_ago());
        assert_problem(self.w.deliver(&body).await, 404, "payment_not_found").await;
        self.case_of("payment_not_found", bank_txn_id).await
    }

    /// The one case of `kind` for the world's bank's `bank_txn_id`, as an admin reads it.
    async fn case_of(&self, kind: &str, bank_txn_id: &str) -> Value {
        let page = self.page(self.admin_key(), &[("kind", kind), ("limit", "500")]).await;
        let matching: Vec<&Value> = page["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|case| case["bank_txn_id"] == bank_txn_id && case["bank"] == BANK)
            .collect();
        assert_eq!(matching.len(), 1, "one {kind} case of {bank_txn_id}: {page}");
        assert_case(matching[0]);
        matching[0].clone()
    }

    /// One page of `GET /v1/cases` with `key`; must answer 200.
    async fn page(&self, key: &str, query: &[(&str, &str)]) -> Value {
        self.w.app.page(key, "/v1/cases", query).await
    }

    /// The ids of a page's cases, newest first.
    async fn ids(&self, key: &str, query: &[(&str, &str)]) -> Vec<String> {
        ids_of(&self.page(key, query).await)
    }

    /// `GET /v1/cases/{id}` with `key`.
    async fn get_as(&self, key: &str, id: &str) -> Response {
        self.w.app.get_with(key, &format!("/v1/cases/{id}")).send().await.expect("GET a case")
    }

    /// The case `id` as an admin reads it.
    async fn case(&self, id: &str) -> Value {
        let case = json_with(self.get_as(self.admin_key(), id).await, 200).await;
        assert_case(&case);
        case
    }

    /// POSTs `body` (or none) to `/v1/cases/<id>/<verb>` with `key`.
    async fn act(&self, key: &str, id: &str, verb: &str, body: Option<Value>) -> Response {
        let mut request = self.w.app.post_with(key, &format!("/v1/cases/{id}/{verb}"));
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("POST to a case")
    }

    async fn resolve(&self, key: &str, id: &str, body: Value) -> Response {
        self.act(key, id, "resolve", Some(body)).await
    }

    async fn approve(&self, key: &str, id: &str) -> Response {
        self.act(key, id, "approve", None).await
    }

    async fn reject(&self, key: &str, id: &str, reason: &str) -> Response {
        self.act(key, id, "reject", Some(json!({ "reason": reason }))).await
    }

    async fn note(&self, key: &str, id: &str, body: Value) -> Response {
        self.act(key, id, "notes", Some(body)).await
    }

    /// `POST /v1/cases` with `key` and `body`.
    async fn open(&self, key: &str, body: Value) -> Response {
        self.w.app.post_with(key, "/v1/cases").json(&body).send().await.expect("POST /v1/cases")
    }

    /// POSTs `body` to `/v1/refunds/<id>/<verb>` with `key`.
    async fn decide_refund(
        &self,
        key: &str,
        id: &str,
        verb: &str,
        body: Option<Value>,
    ) -> Response {
        let mut request = self.w.app.post_with(key, &format!("/v1/refunds/{id}/{verb}"));
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("POST to a refund")
    }

    /// A refund as an admin reads it.
    async fn refund(&self, id: &str) -> Value {
        self.w.app.get_json(self.admin_key(), &format!("/v1/refunds/{id}")).await
    }

    /// The bank's signed result `body` for refund `id`.
    async fn refund_result(&self, id: &str, body: &Value) -> Response {
        self.w.app.post_signed(&self.w.bank, &format!("refunds/{id}/result"), body).await
    }

    /// Reconciles the world's bank's statement of `lines` for `date` with the admin key; must
    /// answer 201.
    async fn run(&self, date: &str, lines: &[String]) -> Value {
        let mut body = format!("{STATEMENT_HEADER}\n");
        for line in lines {
            body.push_str(line);
            body.push('\n');
        }
        self.w
            .app
            .post_with(self.admin_key(), &format!("/v1/reconciliations?bank={BANK}&date={date}"))
            .header("Content-Type", "text/csv")
            .body(body)
            .json_with(201)
            .await
    }

    /// A pending `fee` order of `AMOUNT` of the world's agency created before `DAY`, so that a
    /// bank may say it paid it on `DAY`.
    async fn order_before_day(&self, reference: &str) -> String {
        let id = self.w.order(reference).await;
        self.w
            .app
            .execute(
                "UPDATE payments SET created_at = $2::text::timestamptz WHERE id = $1",
                &[&id, &ORDERS_CREATED_AT],
            )
            .await;
        id
    }

    /// A `succeeded` callback of `AMOUNT` paid at `paid_at`; must answer 200 with `result`.
    async fn pay_at(&self, bank_txn_id: &str, payment_id: &str, paid_at: &str, result: &str) {
        let answer = self.w.deliver_ok(&succeeded(bank_txn_id, payment_id, paid_at)).await;
        assert_eq!(answer["result"], result, "{answer}");
    }

    /// Every row a case action may change, as one text, so that "nothing changed" is one
    /// comparison.
    async fn state(&self) -> String {
        self.w
            .app
            .row(
                "SELECT concat_ws(' | ',
                    (SELECT string_agg(concat_ws(',', id, status, resolution, resolved_at,
                                                 resolution_note, applied_payment_id, refund_id,
                                                 approved_by::text), ';' ORDER BY id) FROM cases),
                    (SELECT count(*) FROM case_notes),
                    (SELECT string_agg(concat_ws(',', id, status), ';' ORDER BY id) FROM refunds),
                    (SELECT string_agg(concat_ws(',', id, status, bank_code, bank_txn_id, paid_at),
                                       ';' ORDER BY id) FROM payments),
                    (SELECT count(*) FROM ledger_transactions),
                    (SELECT count(*) FROM ledger_entries),
                    (SELECT count(*) FROM events),
                    (SELECT count(*) FROM audit_log))",
                &[],
            )
            .await
            .get(0)
    }

    /// The audit entries of `action` on `case:<id>`: (actor key id, detail), oldest first.
    async fn audited(&self, action: &str, id: &str) -> Vec<(Option<String>, Value)> {
        self.w
            .app
            .rows(
                "SELECT actor_key_id, detail FROM audit_log WHERE action = $1 AND target = $2
                 ORDER BY seq",
                &[&action, &format!("case:{id}")],
            )
            .await
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect()
    }

    /// The number of audit entries of every `case.*` action.
    async fn case_entries(&self) -> i64 {
        self.w.app.count("SELECT count(*) FROM audit_log WHERE action LIKE 'case.%'").await
    }

    /// Sets the world's agency's `notify_url`.
    async fn set_notify_url(&self, url: &str) {
        self.w
            .app
            .admin(Method::PATCH, &format!("/v1/agencies/{AGENCY}"))
            .json(&json!({ "notify_url": url }))
            .json_with(200)
            .await;
    }

    /// Sets the world's bank's `refund_url`.
    async fn set_refund_url(&self, url: &str) {
        let bank = self
            .w
            .app
            .admin(Method::PATCH, &format!("/v1/banks/{BANK}"))
            .json(&json!({ "refund_url": url }))
            .json_with(200)
            .await;
        assert_eq!(bank["refund_url"], url, "{bank}");
    }

    /// The API key id (`key_<n>`) of `api_key`, as actors show it.
    async fn key_id(&self, api_key: &str) -> String {
        use sha2::Digest;
        let hash = sha2::Sha256::digest(api_key.as_bytes()).to_vec();
        let id: i64 =
            self.w.app.row("SELECT id FROM api_keys WHERE key_hash = $1", &[&hash]).await.get(0);
        format!("key_{id}")
    }
}

/// A `succeeded` callback of `AMOUNT`.
fn succeeded(bank_txn_id: &str, payment_id: &str, paid_at: &str) -> Value {
    json!({
        "bank_txn_id": bank_txn_id, "payment_id": payment_id, "amount": AMOUNT,
        "currency": "VND", "status": "succeeded", "paid_at": paid_at,
    })
}

/// One statement line in the usual column order.
fn line(bank_txn_id: &str, payment_id: &str, amount: &str, paid_at: &str) -> String {
    format!("{bank_txn_id},{payment_id},{amount},{paid_at},VND")
}

/// Asserts the shape of a case: exactly its members, and a resolution with exactly its own.
fn assert_case(case: &Value) {
    assert_members(case, &CASE_FIELDS);
    assert!(case["id"].as_str().expect("id").starts_with("cas_"), "{case}");
    assert!(case["opened_at"].as_str().expect("opened_at").ends_with('Z'), "{case}");
    assert!(case["notes"].is_array(), "{case}");
    if !case["resolution"].is_null() {
        assert_members(&case["resolution"], &RESOLUTION_FIELDS);
    }
}

fn id_of(value: &Value) -> String {
    value["id"].as_str().expect("id").to_owned()
}

fn ids_of(page: &Value) -> Vec<String> {
    page["items"].as_array().expect("items").iter().map(id_of).collect()
}

/// Asserts that `actor` is an API request made with the key `key_id` of `role` (and agency).
fn assert_api_actor(actor: &Value, key_id: &str, role: &str, agency: Option<&str>) {
    assert_members(actor, &["key_id", "role", "agency", "label", "via"]);
    assert_eq!(actor["key_id"], key_id, "{actor}");
    assert_eq!(actor["role"], role, "{actor}");
    assert_eq!(actor["agency"], json!(agency), "{actor}");
    assert_eq!(actor["via"], "api", "{actor}");
}

/// The events of `type` among the requests a receiver got, with their bodies.
fn events_of(requests: &[ReceivedRequest], event_type: &str) -> Vec<Value> {
    requests.iter().map(ReceivedRequest::json).filter(|body| body["type"] == event_type).collect()
}

mod access;
mod apply;
mod opening;
mod refund;
mod report;
mod resolutions;
mod self_resolving;
