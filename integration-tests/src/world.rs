//! A small world most money tests start from: the app, one agency, one bank, an auditor.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use paygate::config::Config;
use reqwest::{Method, Response};
use serde_json::Value;

use crate::answers::json_200;
use crate::orders::order_body;
use crate::signer::Signer;
use crate::{test_config, TestApp};

/// The agency of a `World`, and another one.
pub const AGENCY: &str = "000.00.00.H12";
pub const OTHER_AGENCY: &str = "000.00.00.H29";
/// The bank of a `World`, and another one.
pub const BANK: &str = "VCB";
pub const OTHER_BANK: &str = "BIDV";
/// The amount of a `World`'s usual order.
pub const AMOUNT: &str = "150000";
/// An order moved into the past by `World::backdate` is created at `CREATED_AT` and expires at
/// `EXPIRED_AT`.
pub const CREATED_AT: &str = "2025-03-01T00:00:00Z";
pub const EXPIRED_AT: &str = "2025-03-02T00:00:00Z";
/// The seven outcomes a reconciliation gives a statement line, in the order a run lists them.
pub const OUTCOMES: [&str; 7] = [
    "matched",
    "recovered",
    "missing_in_gateway",
    "missing_in_bank",
    "mismatch",
    "duplicate_in_statement",
    "invalid_line",
];
/// The six obligations, in the order the contract lists them.
pub const OBLIGATIONS: [&str; 6] =
    ["fee", "tax", "social_insurance", "fine", "electricity", "court_advance"];

/// An app with one agency (`AGENCY`) and one bank (`BANK`), and keys to act as each and as an
/// auditor.
pub struct World {
    pub app: TestApp,
    pub agency_key: String,
    pub auditor_key: String,
    pub bank: Signer,
}

impl World {
    pub async fn new() -> World {
        World::with(test_config()).await
    }

    pub async fn with(config: Config) -> World {
        let app = TestApp::spawn_with(config).await;
        let agency_key =
            app.create_agency(AGENCY).await["api_key"].as_str().expect("api_key").to_owned();
        let bank = app.new_bank(BANK).await;
        let auditor_key = app.key_with_role("auditor").await;
        World { app, agency_key, auditor_key, bank }
    }

    /// A new world with one pending order of `reference`, as `order` makes it; returns the
    /// world and the order's id.
    pub async fn with_order(reference: &str) -> (World, String) {
        let w = World::new().await;
        let id = w.order(reference).await;
        (w, id)
    }

    /// Creates an order of `body` with `api_key`; returns the payment.
    pub async fn create(&self, api_key: &str, body: &Value) -> Value {
        self.app.create_payment(api_key, body).await
    }

    /// Creates a pending `fee` order of `AMOUNT` of the agency; returns its id.
    pub async fn order(&self, reference: &str) -> String {
        let payment = self.create(&self.agency_key, &order_body("fee", reference, AMOUNT)).await;
        payment["id"].as_str().expect("id").to_owned()
    }

    /// Creates one pending order of each reference, as `order` does; returns their ids.
    pub async fn orders<const N: usize>(&self, references: [&str; N]) -> [String; N] {
        let mut ids = Vec::with_capacity(N);
        for reference in references {
            ids.push(self.order(reference).await);
        }
        ids.try_into().expect("one id per reference")
    }

    /// The payment `id` as an admin reads it.
    pub async fn payment(&self, id: &str) -> Value {
        let response = self
            .app
            .admin(Method::GET, &format!("/v1/payments/{id}"))
            .send()
            .await
            .expect("GET /v1/payments/{id}");
        json_200(response).await
    }

    /// Cancels order `id` with the agency's key.
    pub async fn cancel(&self, id: &str) {
        self.app.cancel(&self.agency_key, id).await;
    }

    /// Delivers a callback signed now by the world's bank.
    pub async fn deliver(&self, body: &Value) -> Response {
        self.app.post_signed(&self.bank, "callbacks", body).await
    }

    /// Delivers a callback that must answer 200; returns the answer.
    pub async fn deliver_ok(&self, body: &Value) -> Value {
        json_200(self.deliver(body).await).await
    }

    /// GET `path` with the auditor's key; must answer 200.
    pub async fn audit(&self, path: &str) -> Value {
        self.app.get_json(&self.auditor_key, path).await
    }

    /// `GET /v1/ledger/verify`.
    pub async fn verify(&self) -> Value {
        self.audit("/v1/ledger/verify").await
    }

    /// Account -> balance, from `GET /v1/ledger/balances`.
    pub async fn balances(&self) -> HashMap<String, String> {
        balance_map(&self.audit("/v1/ledger/balances").await)
    }

    /// The balance of `account`, "0" for an account with no entries.
    pub async fn balance(&self, account: &str) -> String {
        self.balances().await.remove(account).unwrap_or_else(|| "0".to_owned())
    }

    /// One page of `GET /v1/exceptions?<query>`.
    pub async fn exceptions(&self, query: &str) -> Value {
        self.audit(&format!("/v1/exceptions?{query}")).await
    }

    /// Moves an order's creation and expiry into the past: created at `CREATED_AT`, expired at
    /// `EXPIRED_AT`.
    pub async fn backdate(&self, id: &str) {
        let client = self.app.db.get().await.expect("a test database connection");
        let moved = client
            .execute(
                "UPDATE payments SET created_at = $2::text::timestamptz,
                                     expires_at = $3::text::timestamptz
                 WHERE id = $1",
                &[&id, &CREATED_AT, &EXPIRED_AT],
            )
            .await
            .expect("backdate the order");
        assert_eq!(moved, 1);
    }

    /// Backdates an order and waits until the expiry sweep has stored it as expired.
    pub async fn expire(&self, id: &str) {
        self.backdate(id).await;
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.app.stored_status(id).await != "expired" {
            assert!(Instant::now() < deadline, "the sweep did not expire {id}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl TestApp {
    /// The status column of order `id` as stored (not the effective status an answer shows).
    pub async fn stored_status(&self, id: &str) -> String {
        self.row("SELECT status FROM payments WHERE id = $1", &[&id]).await.get(0)
    }
}

/// Account -> balance of a `GET /v1/ledger/balances` answer.
pub fn balance_map(balances: &Value) -> HashMap<String, String> {
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
