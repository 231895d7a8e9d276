//! Integration support on the real HTTP service: sandbox agencies and banks kept apart from
//! live money, the built-in sandbox bank and its scenarios (through the real callback and
//! refund-result code), and the conformance checklists.

mod checklists;
mod isolation;
mod scenarios;

use std::time::{Duration, Instant};

use integration_tests::answers::{json_with, RequestExt};
use integration_tests::receiver::{Behaviour, Receiver};
use integration_tests::signer::Signer;
use integration_tests::world::{World, AMOUNT};
use reqwest::{Method, Response};
use serde_json::{json, Value};

/// The sandbox agency and the sandbox bank beside a `World`'s live ones.
const SBX_AGENCY: &str = "000.00.00.H12-SBX";
const SBX_BANK: &str = "VCB-SBX";
/// The built-in sandbox bank.
const SANDBOX: &str = "SANDBOX";
const HOOK: &str = "/paygate/notify";
/// Generous bound for what happens within a poll interval.
const WAIT: Duration = Duration::from_secs(15);

/// A live world, and a sandbox agency (listening at a receiver, with a second key to approve
/// refunds) and a sandbox bank of its own.
struct Sandbox {
    w: World,
    key: String,
    checker: String,
    bank: Signer,
    receiver: Receiver,
}

impl Sandbox {
    async fn new() -> Sandbox {
        let w = World::new().await;
        let receiver = Receiver::start(Behaviour::status(200)).await;
        let created = w
            .app
            .admin(Method::POST, "/v1/agencies")
            .json(&json!({
                "code": SBX_AGENCY, "name": "Sở Tư pháp Hà Nội (thử nghiệm)", "sandbox": true,
                "notify_url": receiver.url(HOOK),
            }))
            .json_with(201)
            .await;
        assert_eq!(created["sandbox"], true, "{created}");
        let key = created["api_key"].as_str().expect("api_key").to_owned();
        let checker = w
            .app
            .admin(Method::POST, &format!("/v1/agencies/{SBX_AGENCY}/keys"))
            .json_with(201)
            .await["api_key"]
            .as_str()
            .expect("api_key")
            .to_owned();
        let bank = w
            .app
            .admin(Method::POST, "/v1/banks")
            .json(&json!({"code": SBX_BANK, "name": "Vietcombank (thử nghiệm)", "sandbox": true}))
            .json_with(201)
            .await;
        assert_eq!(bank["sandbox"], true, "{bank}");
        let bank = Signer::from_answer(SBX_BANK, &bank);
        Sandbox { w, key, checker, bank, receiver }
    }

    /// A pending sandbox `fee` order of `AMOUNT`; returns its id.
    async fn order(&self, reference: &str) -> String {
        self.w.app.create_order(&self.key, "fee", reference, AMOUNT).await
    }

    /// `POST /v1/sandbox/payments/{id}/pay` with `key`.
    async fn pay_with(&self, key: &str, id: &str, scenario: &str) -> Response {
        self.w
            .app
            .post_with(key, &format!("/v1/sandbox/payments/{id}/pay"))
            .json(&json!({ "scenario": scenario }))
            .send()
            .await
            .expect("POST /v1/sandbox/payments/{id}/pay")
    }

    /// Plays `scenario` on order `id` as the sandbox agency; must answer 200.
    async fn pay(&self, id: &str, scenario: &str) -> Value {
        json_with(self.pay_with(&self.key, id, scenario).await, 200).await
    }

    /// Requests a refund of `amount` of order `id` and has the checker approve it; returns the
    /// refund's id.
    async fn approved_refund(&self, id: &str, amount: &str) -> String {
        let refund = self
            .w
            .app
            .post_with(&self.key, &format!("/v1/payments/{id}/refunds"))
            .header("Idempotency-Key", paygate::domain::ids::random_id("idem", 8))
            .json(&json!({"amount": amount, "reason": "Hồ sơ bị từ chối, hoàn lệ phí"}))
            .json_with(201)
            .await;
        let refund_id = refund["id"].as_str().expect("id").to_owned();
        let approved = self
            .w
            .app
            .post_with(&self.checker, &format!("/v1/refunds/{refund_id}/approve"))
            .json_with(200)
            .await;
        assert_eq!(approved["status"], "approved", "{approved}");
        refund_id
    }

    /// `POST /v1/sandbox/refunds/{id}/result` with `key` and `body`.
    async fn refund_result(&self, key: &str, refund_id: &str, body: &Value) -> Response {
        self.w
            .app
            .post_with(key, &format!("/v1/sandbox/refunds/{refund_id}/result"))
            .json(body)
            .send()
            .await
            .expect("POST /v1/sandbox/refunds/{id}/result")
    }

    /// GET `path` as an admin; must answer 200.
    async fn admin_get(&self, path: &str) -> Value {
        self.w.app.admin(Method::GET, path).json_with(200).await
    }

    /// A checklist (`agencies/<code>` or `banks/<code>`) as an admin reads it.
    async fn checklist(&self, party: &str) -> Value {
        self.admin_get(&format!("/v1/{party}/checklist")).await
    }

    /// Waits until `step` of `party`'s checklist is done.
    async fn wait_for_step(&self, party: &str, step: &str) {
        let deadline = Instant::now() + WAIT;
        while !done(&self.checklist(party).await, step) {
            assert!(Instant::now() < deadline, "{party}: {step} never done");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Whether `step` of the checklist `list` is done (and then has both times).
fn done(list: &Value, step: &str) -> bool {
    let item = list["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|item| item["step"] == step)
        .unwrap_or_else(|| panic!("no step {step} in {list}"));
    let done = item["done"].as_bool().expect("done");
    assert_eq!(item["first_at"].is_null(), !done, "{item}");
    assert_eq!(item["last_at"].is_null(), !done, "{item}");
    done
}

/// The steps of a checklist that are done, in its order.
fn done_steps(list: &Value) -> Vec<String> {
    list["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter(|item| item["done"] == true)
        .map(|item| item["step"].as_str().expect("step").to_owned())
        .collect()
}

/// The balance of `account` in a `GET /v1/ledger/balances` answer ("0" when absent).
fn sandbox_balance(balances: &Value, account: &str) -> String {
    integration_tests::world::balance_map(balances)
        .remove(account)
        .unwrap_or_else(|| "0".to_owned())
}
