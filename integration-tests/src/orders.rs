//! Orders as an agency makes them: a valid create body, and creating and cancelling through the
//! API.

use reqwest::Method;
use serde_json::{json, Value};

use crate::answers::json_with;
use crate::{details, TestApp};

/// The description every test order carries.
pub const DESCRIPTION: &str = "Lệ phí cấp đổi giấy phép lái xe";

/// A create body without `expires_at`.
pub fn order_body(obligation: &str, reference: &str, amount: &str) -> Value {
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

impl TestApp {
    /// POSTs `body` to `/v1/payments` with `api_key` and a fresh idempotency key.
    pub async fn post_payment(&self, api_key: &str, body: &Value) -> reqwest::Response {
        self.post_with(api_key, "/v1/payments")
            .header("Idempotency-Key", paygate::domain::ids::random_id("idem", 8))
            .json(body)
            .send()
            .await
            .expect("POST /v1/payments")
    }

    /// Creates an order of `body` with `api_key`, which must answer 201; returns the payment.
    pub async fn create_payment(&self, api_key: &str, body: &Value) -> Value {
        json_with(self.post_payment(api_key, body).await, 201).await
    }

    /// Creates a pending order of `obligation` with `api_key`; returns its id.
    pub async fn create_order(
        &self,
        api_key: &str,
        obligation: &str,
        reference: &str,
        amount: &str,
    ) -> String {
        let body = order_body(obligation, reference, amount);
        let payment = self.create_payment(api_key, &body).await;
        payment["id"].as_str().expect("id").to_owned()
    }

    /// Cancels order `id` with `api_key`, which must answer 200 with the cancelled payment.
    pub async fn cancel(&self, api_key: &str, id: &str) -> Value {
        let response = self
            .post_with(api_key, &format!("/v1/payments/{id}/cancel"))
            .send()
            .await
            .expect("POST cancel");
        let payment = json_with(response, 200).await;
        assert_eq!(payment["status"], "cancelled", "{payment}");
        payment
    }

    /// GET `path` with `api_key` and the query parameters `query`.
    pub async fn list(
        &self,
        api_key: &str,
        path: &str,
        query: &[(&str, &str)],
    ) -> reqwest::Response {
        self.get_with(api_key, path)
            .query(query)
            .send()
            .await
            .unwrap_or_else(|err| panic!("GET {path}: {err}"))
    }

    /// One page of `path` with the query parameters `query`, which must answer 200.
    pub async fn page(&self, api_key: &str, path: &str, query: &[(&str, &str)]) -> Value {
        let response = self.list(api_key, path, query).await;
        let status = response.status().as_u16();
        let text = response.text().await.expect("an answer");
        assert_eq!(status, 200, "GET {path} {query:?}: {text}");
        serde_json::from_str(&text).expect("a JSON page")
    }

    /// GET `path` with `api_key`, which must answer 200; returns the answer.
    pub async fn get_json(&self, api_key: &str, path: &str) -> Value {
        let response = self
            .http
            .request(Method::GET, self.url(path))
            .bearer_auth(api_key)
            .send()
            .await
            .unwrap_or_else(|err| panic!("GET {path}: {err}"));
        json_with(response, 200).await
    }
}
