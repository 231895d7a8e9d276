//! Refunds: agencies refund paid orders in full or in part (idempotent, never over the paid
//! amount, even under concurrency), a second key approves or rejects, the approved refund goes
//! to the bank's `refund_url` as a signed instruction (delivered to a real HTTP receiver and
//! retried), and the bank's signed result completes it (posted once) or fails it; the agency
//! hears of both.

use std::time::Duration;

use integration_tests::answers::{assert_members, json_with, RequestExt};
use integration_tests::clock::paid_a_minute_ago;
use integration_tests::receiver::{Behaviour, ReceivedRequest, Receiver};
use integration_tests::signer::Signer;
use integration_tests::world::{World, AGENCY, AMOUNT, BANK, OTHER_AGENCY, OTHER_BANK};
use integration_tests::{assert_problem, invalid_fields, test_config};
use paygate::config::Config;
use reqwest::{Method, Response};
use serde_json::{json, Value};

/// Every member of the refund object, and nothing else.
const REFUND_FIELDS: [&str; 17] = [
    "id",
    "kind",
    "payment_id",
    "case_id",
    "agency",
    "bank",
    "bank_txn_id",
    "amount",
    "reason",
    "status",
    "requested_by",
    "approved_by",
    "created_at",
    "approved_at",
    "completed_at",
    "bank_refund_id",
    "failure_reason",
];
/// Every member of a `refund.requested` instruction's `refund`, and nothing else.
const INSTRUCTION_REFUND_FIELDS: [&str; 6] =
    ["id", "bank_txn_id", "payment_id", "amount", "currency", "reason"];
const REASON: &str = "Hồ sơ bị từ chối, hoàn lệ phí";
const REFUND_PATH: &str = "/refunds/instructions";
/// Generous bound for what happens within a poll interval or a short backoff step.
const WAIT: Duration = Duration::from_secs(15);

/// The world, with a second key of the same agency (the checker) and a key of another agency.
struct Refunds {
    w: World,
    checker_key: String,
    other_agency_key: String,
}

impl Refunds {
    async fn new() -> Refunds {
        Refunds::with(test_config()).await
    }

    async fn with(config: Config) -> Refunds {
        let w = World::with(config).await;
        let checker_key = agency_key(&w, AGENCY).await;
        let other_agency_key =
            w.app.create_agency(OTHER_AGENCY).await["api_key"].as_str().unwrap().to_owned();
        Refunds { w, checker_key, other_agency_key }
    }

    /// A `fee` order of `AMOUNT`, paid by the world's bank with `bank_txn_id`; returns its id.
    async fn paid_order(&self, reference: &str, bank_txn_id: &str) -> String {
        let id = self.w.order(reference).await;
        let answer = self
            .w
            .deliver_ok(&json!({
                "bank_txn_id": bank_txn_id, "payment_id": id, "amount": AMOUNT,
                "status": "succeeded", "paid_at": paid_a_minute_ago(),
            }))
            .await;
        assert_eq!(answer["result"], "accepted", "{answer}");
        id
    }

    /// POSTs a refund request of `body` for order `id` with `key` and `idempotency_key`.
    async fn request_with(
        &self,
        key: &str,
        id: &str,
        idempotency_key: &str,
        body: &Value,
    ) -> Response {
        self.w
            .app
            .post_with(key, &format!("/v1/payments/{id}/refunds"))
            .header("Idempotency-Key", idempotency_key)
            .json(body)
            .send()
            .await
            .expect("POST /v1/payments/{id}/refunds")
    }

    /// Requests a refund of `amount` of order `id` with the agency's key; must answer 201.
    async fn request(&self, id: &str, amount: &str) -> Value {
        let response =
            self.request_with(&self.w.agency_key, id, &new_key(), &refund_body(amount)).await;
        json_with(response, 201).await
    }

    async fn decide(
        &self,
        key: &str,
        refund_id: &str,
        verb: &str,
        body: Option<Value>,
    ) -> Response {
        let mut request = self.w.app.post_with(key, &format!("/v1/refunds/{refund_id}/{verb}"));
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("POST /v1/refunds/{id}/{verb}")
    }

    async fn approve(&self, key: &str, refund_id: &str) -> Response {
        self.decide(key, refund_id, "approve", None).await
    }

    async fn reject(&self, key: &str, refund_id: &str, reason: &str) -> Response {
        self.decide(key, refund_id, "reject", Some(json!({ "reason": reason }))).await
    }

    /// Requests a refund of `amount` of order `id` and has the checker approve it; returns the
    /// approved refund.
    async fn approved(&self, id: &str, amount: &str) -> Value {
        let refund = self.request(id, amount).await;
        let approved = json_with(self.approve(&self.checker_key, &id_of(&refund)).await, 200).await;
        assert_eq!(approved["status"], "approved", "{approved}");
        approved
    }

    /// The bank's result `body` for refund `refund_id`, signed now by `signer`.
    async fn result_by(&self, signer: &Signer, refund_id: &str, body: &Value) -> Response {
        self.w.app.post_signed(signer, &format!("refunds/{refund_id}/result"), body).await
    }

    async fn result(&self, refund_id: &str, body: &Value) -> Response {
        self.result_by(&self.w.bank, refund_id, body).await
    }

    /// A refund as an admin reads it.
    async fn refund(&self, refund_id: &str) -> Value {
        let response = self
            .w
            .app
            .admin(Method::GET, &format!("/v1/refunds/{refund_id}"))
            .send()
            .await
            .expect("GET /v1/refunds/{id}");
        json_with(response, 200).await
    }

    /// Sets the world's bank's `refund_url`.
    async fn set_refund_url(&self, url: Option<&str>) {
        let bank = self
            .w
            .app
            .admin(Method::PATCH, &format!("/v1/banks/{BANK}"))
            .json(&json!({ "refund_url": url }))
            .json_with(200)
            .await;
        assert_eq!(bank["refund_url"], json!(url), "{bank}");
    }

    /// Every row that requesting, deciding and completing refunds may change, as one text, so
    /// that "nothing changed" is one comparison.
    async fn state(&self) -> String {
        self.w
            .app
            .row(
                "SELECT concat_ws(' | ',
                    (SELECT string_agg(concat_ws(',', id, status, approved_at, rejected_at,
                                                 result_at, bank_refund_id, delivery_status,
                                                 attempts), ';' ORDER BY id) FROM refunds),
                    (SELECT string_agg(concat_ws(',', id, status, refund_reserved,
                                                 refunded_amount), ';' ORDER BY id) FROM payments),
                    (SELECT count(*) FROM ledger_transactions),
                    (SELECT count(*) FROM ledger_entries),
                    (SELECT count(*) FROM events),
                    (SELECT count(*) FROM audit_log),
                    (SELECT count(*) FROM idempotency_keys))",
                &[],
            )
            .await
            .get(0)
    }

    /// `(refund_reserved, refunded_amount)` of order `id`, as stored.
    async fn reserved(&self, id: &str) -> (String, String) {
        let row = self
            .w
            .app
            .row(
                "SELECT refund_reserved::text, refunded_amount::text FROM payments WHERE id = $1",
                &[&id],
            )
            .await;
        (row.get(0), row.get(1))
    }

    /// The audit entries of `action` on `refund:<refund_id>`: their actors' key ids.
    async fn audited(&self, action: &str, refund_id: &str) -> Vec<Option<String>> {
        self.w
            .app
            .rows(
                "SELECT actor_key_id FROM audit_log WHERE action = $1 AND target = $2 ORDER BY seq",
                &[&action, &format!("refund:{refund_id}")],
            )
            .await
            .iter()
            .map(|row| row.get(0))
            .collect()
    }
}

/// A new key of agency `code`, made by an admin.
async fn agency_key(w: &World, code: &str) -> String {
    let answer = w
        .app
        .admin(Method::POST, &format!("/v1/agencies/{code}/keys"))
        .json(&json!({"label": "Lãnh đạo phòng"}))
        .json_with(201)
        .await;
    answer["api_key"].as_str().expect("api_key").to_owned()
}

fn refund_body(amount: &str) -> Value {
    json!({ "amount": amount, "reason": REASON })
}

fn completed(bank_refund_id: &str) -> Value {
    json!({
        "status": "completed", "bank_refund_id": bank_refund_id,
        "completed_at": paid_a_minute_ago(), "failure_reason": null,
    })
}

fn failed(reason: &str) -> Value {
    json!({ "status": "failed", "failure_reason": reason })
}

fn new_key() -> String {
    paygate::domain::ids::random_id("idem", 8)
}

fn id_of(value: &Value) -> String {
    value["id"].as_str().expect("id").to_owned()
}

/// The API key id (`key_<n>`) of `api_key`, as the audit trail and actors show it.
async fn key_id(w: &World, api_key: &str) -> String {
    let hash = sha256(api_key);
    let id: i64 = w.app.row("SELECT id FROM api_keys WHERE key_hash = $1", &[&hash]).await.get(0);
    format!("key_{id}")
}

fn sha256(text: &str) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes()).to_vec()
}

/// Asserts that `request` carries one `Paygate-Signature` by `signer` over exactly its body.
fn assert_signed_by(request: &ReceivedRequest, signer: &Signer) {
    let values = request.header_values("paygate-signature");
    assert_eq!(values.len(), 1, "{values:?}");
    let header = paygate::signature::SignatureHeader::parse(values[0])
        .unwrap_or_else(|err| panic!("unparsable signature {:?}: {err}", values[0]));
    assert_eq!(header.kid, signer.kid);
    header
        .verify(signer.secret.as_bytes(), &request.body, integration_tests::clock::now_s(), 300)
        .unwrap_or_else(|err| panic!("the instruction's signature does not verify: {err}"));
}

mod approval;
mod bank;
mod replicas;
mod requests;
