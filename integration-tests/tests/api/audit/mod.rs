//! The audit trail: what each operator action records, the list and its filters, the hash
//! chain recomputed from outside, tampering, and the secret scan.

mod actions;
mod chain;
mod list;
mod secrets;

use integration_tests::answers::RequestExt;
use integration_tests::TestApp;
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The label of the admin key the tests act with: Vietnamese, a quote, a backslash and a tab,
/// so that the canonical form's escaping is exercised.
const LABEL: &str = "Quản trị \"Hà Nội\" \\ ca\t1";

/// A new admin key with [`LABEL`]; returns the key and its id.
async fn labelled_admin(app: &TestApp) -> (String, String) {
    let created = app
        .admin(Method::POST, "/v1/api-keys")
        .json(&json!({"role": "admin", "label": LABEL}))
        .json_with(201)
        .await;
    (created["api_key"].as_str().unwrap().to_owned(), created["id"].as_str().unwrap().to_owned())
}

/// Every entry, oldest first, read through the API page by page.
async fn all_entries(app: &TestApp) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut path = "/v1/audit?limit=500".to_owned();
    loop {
        let page = app.admin(Method::GET, &path).json_with(200).await;
        entries.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/audit?limit=500&cursor={cursor}"),
            None => break,
        }
    }
    entries.reverse();
    entries
}

/// The newest seq, 0 for an empty trail.
async fn head_seq(app: &TestApp) -> i64 {
    app.count("SELECT coalesce(max(seq), 0) FROM audit_log").await
}

/// Entries after `seq`, oldest first.
async fn entries_after(app: &TestApp, seq: i64) -> Vec<Value> {
    all_entries(app).await.into_iter().filter(|e| e["seq"].as_i64().unwrap() > seq).collect()
}

/// `GET /v1/audit/verify` with the admin key.
async fn verify(app: &TestApp) -> Value {
    app.admin(Method::GET, "/v1/audit/verify").json_with(200).await
}

/// The canonical JSON of the audit trail, written here from its definition (keys sorted at
/// every level, no spaces, characters as themselves; serde_json escapes strings exactly as
/// JSON requires), independent of paygate's own code.
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let members: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&map[k])))
                .collect();
            format!("{{{}}}", members.join(","))
        }
        Value::Array(items) => {
            format!("[{}]", items.iter().map(canonical).collect::<Vec<_>>().join(","))
        }
        other => other.to_string(),
    }
}

/// The hash an entry must carry: SHA-256 of its prev_hash and its canonical JSON without hash.
fn expected_hash(entry: &Value) -> String {
    let mut document = entry.clone();
    document.as_object_mut().unwrap().remove("hash");
    let text = format!("{}{}", entry["prev_hash"].as_str().unwrap(), canonical(&document));
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The `X-Request-Id` paygate answered.
fn request_id(response: &reqwest::Response) -> String {
    response.headers()["x-request-id"].to_str().unwrap().to_owned()
}
