//! Ledger seals: the sealing worker (its safe horizon under concurrent callbacks, replicas
//! sealing at once), the signed chain as an outside auditor recomputes it, tampering found by
//! `/v1/ledger/verify`, key rotation, and the endpoints' refusals.
//!
//! The hashes and signatures are checked here with this file's own canonical JSON, SHA-256 and
//! Ed25519 code, never with paygate's, so that the tests hold the published rule, not the
//! implementation, to account.

mod keys;
mod sealing;
mod tamper;
mod validation;

use std::time::{Duration, Instant};

use ed25519_dalek::{Signature, SigningKey, Verifier, VerifyingKey};
use integration_tests::answers::RequestExt;
use integration_tests::clock::{now_s, paid_a_minute_ago};
use integration_tests::signer::header;
use integration_tests::world::{World, AMOUNT, BANK};
use integration_tests::TestApp;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Seals must appear within a few sealing intervals; this bounds a broken sealer's test, it is
/// not a speed requirement.
const SEALED_WITHIN: Duration = Duration::from_secs(60);

/// A `succeeded` callback for `AMOUNT`.
fn succeeded(bank_txn_id: &str, payment_id: &str) -> Value {
    json!({
        "bank_txn_id": bank_txn_id,
        "payment_id": payment_id,
        "amount": AMOUNT,
        "currency": "VND",
        "status": "succeeded",
        "paid_at": paid_a_minute_ago(),
    })
}

/// Creates `n` pending orders whose references start with `prefix`; returns their ids.
async fn orders(w: &World, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        ids.push(w.order(&format!("{prefix}-{i}")).await);
    }
    ids
}

/// Pays every order of `ids` at once, each with its own bank transaction, through `app`; every
/// callback must be accepted.
async fn pay_all(w: &World, app: &TestApp, ids: &[String]) {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(ids.len()));
    let tasks: Vec<_> = ids
        .iter()
        .map(|id| {
            let body = serde_json::to_vec(&succeeded(&format!("FT-{id}"), id)).unwrap();
            let signature = w.bank.signature(now_s(), &body);
            let request = app.raw_request(
                &format!("/v1/banks/{BANK}/callbacks"),
                &[header(&signature)],
                body,
            );
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let response = request.send().await.expect("POST callback");
                let status = response.status().as_u16();
                (status, response.text().await.expect("an answer"))
            })
        })
        .collect();
    for task in tasks {
        let (status, answer) = task.await.expect("the callback task");
        assert_eq!(status, 200, "{answer}");
        let answer: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer["result"], "accepted", "{answer}");
    }
}

/// The highest ledger transaction id, as the owner reads it.
async fn last_transaction(app: &TestApp) -> i64 {
    app.row("SELECT coalesce(max(id), 0) FROM ledger_transactions", &[]).await.get(0)
}

/// Waits until the seals cover every transaction id up to `id`; returns the verdict of
/// `/v1/ledger/verify` that showed it.
async fn wait_sealed_through(app: &TestApp, key: &str, id: i64) -> Value {
    let deadline = Instant::now() + SEALED_WITHIN;
    loop {
        let verdict = app.get_with(key, "/v1/ledger/verify").json_with(200).await;
        if verdict["sealed_through"].as_i64().is_some_and(|through| through >= id) {
            return verdict;
        }
        assert!(Instant::now() < deadline, "not sealed through {id}: {verdict}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every seal, oldest first, walking `GET /v1/ledger/seals` page by page.
async fn all_seals(app: &TestApp, key: &str) -> Vec<Value> {
    let mut seals = Vec::new();
    let mut path = "/v1/ledger/seals?limit=2".to_owned();
    loop {
        let page = app.get_with(key, &path).json_with(200).await;
        seals.extend(page["items"].as_array().expect("items").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/ledger/seals?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    seals.reverse();
    seals
}

/// Canonical JSON as the API guide defines it: keys sorted by code point at every level, no
/// whitespace, strings escaped only where JSON requires, numbers as integers.
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let members: Vec<String> = keys
                .into_iter()
                .map(|key| format!("{}:{}", Value::String(key.clone()), canonical(&map[key])))
                .collect();
            format!("{{{}}}", members.join(","))
        }
        Value::Array(items) => {
            format!("[{}]", items.iter().map(canonical).collect::<Vec<_>>().join(","))
        }
        Value::Number(number) => {
            assert!(number.is_i64() || number.is_u64(), "only integers are hashed: {number}");
            number.to_string()
        }
        other => other.to_string(),
    }
}

/// The hash of a seal as `GET /v1/ledger/seals/{seq}` answers it: SHA-256 of `prev_hash`
/// followed by the canonical JSON of the answer without `hash`, `signature` and `public_key`.
fn recompute_hash(content: &Value) -> String {
    let mut document = content.as_object().expect("a seal").clone();
    for member in ["hash", "signature", "public_key"] {
        document.remove(member);
    }
    let prev_hash = content["prev_hash"].as_str().expect("prev_hash");
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(canonical(&Value::Object(document)).as_bytes());
    hex::encode(hasher.finalize())
}

/// True when `signature` (hex) is the Ed25519 signature of the UTF-8 bytes of `hash` by
/// `public_key` (hex).
fn signature_verifies(public_key: &str, hash: &str, signature: &str) -> bool {
    let key: [u8; 32] = hex::decode(public_key).unwrap().try_into().unwrap();
    let signature: [u8; 64] = hex::decode(signature).unwrap().try_into().unwrap();
    VerifyingKey::from_bytes(&key)
        .unwrap()
        .verify(hash.as_bytes(), &Signature::from_bytes(&signature))
        .is_ok()
}

/// The hex public key of the Ed25519 seed `seed`.
fn public_key_of(seed: [u8; 32]) -> String {
    hex::encode(SigningKey::from_bytes(&seed).verifying_key().as_bytes())
}

/// Asserts that `seals` (oldest first) chain without a gap or fork from the first transaction
/// on, and that every id in `transactions` lies in exactly one of them.
fn assert_chain(seals: &[Value], transactions: &[i64]) {
    let mut previous_last = 0;
    let mut previous_hash = "0".repeat(64);
    for (index, seal) in seals.iter().enumerate() {
        assert_eq!(seal["seq"], index as i64 + 1, "{seal}");
        assert_eq!(seal["first_transaction"], previous_last + 1, "gap-free: {seal}");
        assert!(seal["last_transaction"].as_i64().unwrap() > previous_last, "{seal}");
        assert!(
            seal["transactions"].as_i64().unwrap() <= 10_000,
            "at most 10,000 transactions a seal: {seal}"
        );
        assert_eq!(seal["prev_hash"], previous_hash.as_str(), "{seal}");
        previous_last = seal["last_transaction"].as_i64().unwrap();
        previous_hash = seal["hash"].as_str().unwrap().to_owned();
    }
    for id in transactions {
        let covering = seals
            .iter()
            .filter(|seal| {
                seal["first_transaction"].as_i64().unwrap() <= *id
                    && *id <= seal["last_transaction"].as_i64().unwrap()
            })
            .count();
        assert_eq!(covering, 1, "transaction {id} is in exactly one seal");
    }
}

/// Every ledger transaction id, as the owner reads them.
async fn transaction_ids(app: &TestApp) -> Vec<i64> {
    app.rows("SELECT id FROM ledger_transactions ORDER BY id", &[])
        .await
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// The number of transactions each seal holds must be the number that exist in its range.
async fn assert_counts_match(app: &TestApp, seals: &[Value]) {
    for seal in seals {
        let present: i64 = app
            .row(
                "SELECT count(*) FROM ledger_transactions WHERE id BETWEEN $1 AND $2",
                &[
                    &seal["first_transaction"].as_i64().unwrap(),
                    &seal["last_transaction"].as_i64().unwrap(),
                ],
            )
            .await
            .get(0);
        assert_eq!(seal["transactions"], present, "{seal}");
    }
}
