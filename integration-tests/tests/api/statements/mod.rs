//! Agency statements: a day's orders paid and refunds of orders completed, equal to the
//! agency's ledger movements and to nothing else (failed refunds, money in suspense and its
//! refunds, expired orders and other agencies are left out); the business day in Vietnam time
//! to the microsecond; the CSV file, the same items as the JSON answer, by `Accept` or by path,
//! with formula cells neutralised, streamed for a day of a hundred thousand orders; and who may
//! read which agency's statement.

use std::ops::Deref;

use integration_tests::answers::{assert_members, content_type, json_with, RequestExt};
use integration_tests::world::{World, AGENCY, BANK, OTHER_AGENCY};
use integration_tests::{assert_problem, invalid_fields};
use reqwest::{Method, Response};
use serde_json::{json, Value};

mod access;
mod contents;
mod files;

/// The business day most tests read, the one after it, and a time on it (10:00 in Hà Nội).
const DAY: &str = "2026-11-22";
const NEXT_DAY: &str = "2026-11-23";
/// When the tests' orders were created: before every day the tests read, so that a bank may
/// report them paid on those days.
const ORDERS_CREATED_AT: &str = "2026-11-01T00:00:00Z";
/// Every member of a statement item, and nothing else.
const ITEM_FIELDS: [&str; 9] = [
    "type",
    "payment_id",
    "reference",
    "obligation",
    "amount",
    "bank",
    "bank_txn_id",
    "at",
    "refund_id",
];
const CSV_HEADER: &str =
    "type,payment_id,reference,obligation,amount,bank,bank_txn_id,at,refund_id";

/// The usual world, with a second key of its agency (which approves the agency's refunds), a
/// second agency, and a second admin key (which approves refunds of money in suspense).
struct Day {
    w: World,
    checker_key: String,
    other_agency_key: String,
    second_admin_key: String,
}

impl Deref for Day {
    type Target = World;

    fn deref(&self) -> &World {
        &self.w
    }
}

impl Day {
    async fn new() -> Day {
        let w = World::new().await;
        let checker_key = w
            .app
            .admin(Method::POST, &format!("/v1/agencies/{AGENCY}/keys"))
            .json(&json!({"label": "Kế toán"}))
            .json_with(201)
            .await["api_key"]
            .as_str()
            .expect("api_key")
            .to_owned();
        let other_agency_key =
            w.app.create_agency(OTHER_AGENCY).await["api_key"].as_str().unwrap().to_owned();
        let second_admin_key = w.app.key_with_role("admin").await;
        Day { w, checker_key, other_agency_key, second_admin_key }
    }

    /// A pending order made with `api_key`, dated back to `ORDERS_CREATED_AT`; returns its id.
    async fn order_of(
        &self,
        api_key: &str,
        obligation: &str,
        reference: &str,
        amount: &str,
    ) -> String {
        let id = self.app.create_order(api_key, obligation, reference, amount).await;
        let moved = self
            .app
            .execute(
                "UPDATE payments SET created_at = $2::text::timestamptz WHERE id = $1",
                &[&id, &ORDERS_CREATED_AT],
            )
            .await;
        assert_eq!(moved, 1);
        id
    }

    /// A `succeeded` callback of the world's bank that must answer 200 with `result`.
    async fn pay(&self, bank_txn_id: &str, id: &str, amount: &str, paid_at: &str, result: &str) {
        let answer = self
            .deliver_ok(&json!({
                "bank_txn_id": bank_txn_id, "payment_id": id, "amount": amount,
                "currency": "VND", "status": "succeeded", "paid_at": paid_at,
            }))
            .await;
        assert_eq!(answer["result"], result, "{answer}");
    }

    /// An order of the agency paid by the world's bank at `paid_at`; returns its id.
    async fn paid(
        &self,
        obligation: &str,
        reference: &str,
        amount: &str,
        bank_txn_id: &str,
        paid_at: &str,
    ) -> String {
        let id = self.order_of(&self.agency_key, obligation, reference, amount).await;
        self.pay(bank_txn_id, &id, amount, paid_at, "accepted").await;
        id
    }

    /// A refund of `amount` of order `id`, requested by the agency and approved by its second
    /// key; returns the refund's id.
    async fn approved_refund(&self, id: &str, amount: &str) -> String {
        let refund = self
            .app
            .post_with(&self.agency_key, &format!("/v1/payments/{id}/refunds"))
            .header("Idempotency-Key", paygate::domain::ids::random_id("idem", 8))
            .json(&json!({"amount": amount, "reason": "Hồ sơ bị từ chối, hoàn lệ phí"}))
            .json_with(201)
            .await;
        let refund_id = refund["id"].as_str().expect("id").to_owned();
        self.approve_refund(&self.checker_key, &refund_id).await;
        refund_id
    }

    async fn approve_refund(&self, key: &str, refund_id: &str) {
        let approved = self
            .app
            .post_with(key, &format!("/v1/refunds/{refund_id}/approve"))
            .json_with(200)
            .await;
        assert_eq!(approved["status"], "approved", "{approved}");
    }

    /// The bank's result for `refund_id`: completed at `completed_at`, or failed when `None`.
    async fn refund_result(&self, refund_id: &str, completed_at: Option<&str>) {
        let body = match completed_at {
            Some(at) => json!({
                "status": "completed", "bank_refund_id": format!("BR-{refund_id}"),
                "completed_at": at, "failure_reason": null,
            }),
            None => json!({"status": "failed", "failure_reason": "Tài khoản người nhận đã đóng"}),
        };
        let response =
            self.app.post_signed(&self.bank, &format!("refunds/{refund_id}/result"), &body).await;
        let answer = json_with(response, 200).await;
        assert_eq!(answer["result"], "accepted", "{answer}");
    }

    /// A refund of `amount` of order `id` that the bank completed at `completed_at`; returns
    /// its id.
    async fn completed_refund(&self, id: &str, amount: &str, completed_at: &str) -> String {
        let refund_id = self.approved_refund(id, amount).await;
        self.refund_result(&refund_id, Some(completed_at)).await;
        refund_id
    }

    /// `GET <path>?<query>` with `api_key` (none when `None`) and `Accept: <accept>`.
    async fn get(
        &self,
        api_key: Option<&str>,
        path: &str,
        query: &[(&str, &str)],
        accept: Option<&str>,
    ) -> Response {
        let mut request = self.app.get(path).query(query);
        if let Some(key) = api_key {
            request = request.bearer_auth(key);
        }
        if let Some(accept) = accept {
            request = request.header("Accept", accept);
        }
        request.send().await.unwrap_or_else(|err| panic!("GET {path}: {err}"))
    }

    /// The JSON statement `api_key` reads with `query`; must answer 200.
    async fn statement(&self, api_key: &str, query: &[(&str, &str)]) -> Value {
        let response = self.get(Some(api_key), "/v1/statements/daily", query, None).await;
        assert_eq!(content_type(&response), "application/json");
        let statement = json_with(response, 200).await;
        assert_members(&statement, &["agency", "date", "items", "totals"]);
        for item in items(&statement) {
            assert_members(item, &ITEM_FIELDS);
        }
        statement
    }

    /// The statement of the world's agency for `date`, as the agency reads it.
    async fn own(&self, date: &str) -> Value {
        self.statement(&self.agency_key, &[("date", date)]).await
    }
}

fn items(statement: &Value) -> &Vec<Value> {
    statement["items"].as_array().expect("items")
}

/// `(type, payment_id or refund_id)` of each item, in order.
fn ids(statement: &Value) -> Vec<(String, String)> {
    items(statement)
        .iter()
        .map(|item| {
            let id = match item["type"].as_str().expect("type") {
                "refund" => &item["refund_id"],
                _ => &item["payment_id"],
            };
            (item["type"].as_str().unwrap().to_owned(), id.as_str().expect("an id").to_owned())
        })
        .collect()
}

fn payment(id: &str) -> (String, String) {
    ("payment".to_owned(), id.to_owned())
}

fn refund(id: &str) -> (String, String) {
    ("refund".to_owned(), id.to_owned())
}

/// A statement's totals as `((payments count, amount), (refunds count, amount), net)`.
fn totals(statement: &Value) -> ((i64, String), (i64, String), String) {
    let totals = &statement["totals"];
    assert_members(totals, &["payments", "refunds", "net"]);
    let pair = |name: &str| {
        let total = &totals[name];
        assert_members(total, &["count", "amount"]);
        (
            total["count"].as_i64().expect("count is an integer"),
            total["amount"].as_str().expect("amount is a string").to_owned(),
        )
    };
    (pair("payments"), pair("refunds"), totals["net"].as_str().expect("net").to_owned())
}
