//! The obligation catalog: listing, creating and changing entries, the schema rules and bounds,
//! the immutability of schemas, and replicas that see a new entry at once.

mod entries;
mod replicas;
mod schemas;

use integration_tests::answers::RequestExt;
use integration_tests::orders::order_body;
use integration_tests::world::{AGENCY, OBLIGATIONS};
use integration_tests::{assert_problem, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

/// A hospital-fee schema: a patient code and an optional ward.
fn hospital_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "patient_code": {"type": "string", "pattern": "^BN[0-9]{8}$"},
            "ward": {"type": "string", "minLength": 1, "maxLength": 32}
        },
        "required": ["patient_code"],
        "additionalProperties": false
    })
}

fn hospital_entry() -> Value {
    json!({"code": "hospital_fee", "name": "Viện phí (hospital fees)", "details_schema": hospital_schema()})
}

async fn post_obligation(app: &TestApp, key: &str, body: &Value) -> reqwest::Response {
    app.post_with(key, "/v1/obligations").json(body).send().await.unwrap()
}

async fn patch_obligation(app: &TestApp, code: &str, body: &Value) -> reqwest::Response {
    app.admin(Method::PATCH, &format!("/v1/obligations/{code}")).json(body).send().await.unwrap()
}

async fn catalog(app: &TestApp, key: &str) -> Vec<Value> {
    let listed = app.get_with(key, "/v1/obligations").json_with(200).await;
    listed["items"].as_array().expect("items").clone()
}

/// Creates the agency `AGENCY` and answers its API key.
async fn agency_key(app: &TestApp) -> String {
    let agency = app.create_agency(AGENCY).await;
    agency["api_key"].as_str().expect("api_key").to_owned()
}

/// A valid hospital-fee order body.
fn hospital_order(reference: &str, details: Value) -> Value {
    let mut body = order_body("fee", reference, "250000");
    body["obligation"] = json!("hospital_fee");
    body["details"] = details;
    body
}
