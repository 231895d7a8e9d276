//! Faults under load: a storm of callbacks for one order. A bank that times out resends the
//! same callback again and again, many at once, and a confused bank may pay one order under
//! many transaction ids: whatever arrives, the order is paid once, each transaction id is
//! posted once, and every other payment lands in suspense.
//!
//! The test prints its figures (counts, rates, durations) to stderr; run it with
//! `--nocapture` to see them. They are information, not assertions.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use integration_tests::clock::paid_a_minute_ago;
use integration_tests::signer::Signer;
use integration_tests::TestApp;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

const AGENCY: &str = "000.00.00.H12";
const BANK: &str = "VCB";
const AMOUNT_VND: i64 = 150_000;
/// Redeliveries of one and the same callback.
const IDENTICAL_CALLBACKS: usize = 1_000;
/// Further callbacks for the same order, each with its own `bank_txn_id`.
const DIFFERENT_CALLBACKS: usize = 200;
/// Requests in flight at once.
const IN_FLIGHT: usize = 256;
/// A callback answered 503 is sent again (as a bank does) at most this many times.
const MAX_RETRIES: usize = 50;

/// One callback's answer: the final status and body, the 503s before it, and how long it took.
struct Answer {
    status: u16,
    body: Value,
    unavailable: usize,
    took: Duration,
}

/// Sends one signed callback, again after each 503, until it gets another answer.
async fn deliver(http: reqwest::Client, url: String, signer: Signer, body: Vec<u8>) -> Answer {
    let started = Instant::now();
    let mut unavailable = 0;
    loop {
        let signature = signer.signature(integration_tests::clock::now_s(), &body);
        let response = http
            .post(&url)
            .header("Content-Type", "application/json")
            .header("Paygate-Signature", signature)
            .body(body.clone())
            .send()
            .await
            .expect("POST a callback");
        let status = response.status().as_u16();
        let text = response.text().await.expect("an answer");
        if status == 503 && unavailable < MAX_RETRIES {
            unavailable += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {status} {text}"));
        return Answer { status, body, unavailable, took: started.elapsed() };
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_identical_callbacks_and_two_hundred_other_payments_of_one_order_post_it_once_and_send_the_rest_to_suspense(
) {
    let app = TestApp::spawn().await;
    let agency_key =
        app.create_agency(AGENCY).await["api_key"].as_str().expect("api_key").to_owned();
    let bank = app.new_bank(BANK).await;
    let payment_id =
        app.create_order(&agency_key, "fee", "H12-STORM-1", &AMOUNT_VND.to_string()).await;

    let paid_at = paid_a_minute_ago();
    let callback = |bank_txn_id: &str| {
        serde_json::to_vec(&json!({
            "bank_txn_id": bank_txn_id,
            "payment_id": payment_id,
            "amount": AMOUNT_VND.to_string(),
            "currency": "VND",
            "status": "succeeded",
            "paid_at": paid_at,
        }))
        .expect("JSON")
    };
    // The different transaction ids are spread evenly through the identical redeliveries, so
    // that either kind may be the first to reach the order.
    let identical = callback("FT-STORM-SAME");
    let mut bodies = Vec::with_capacity(IDENTICAL_CALLBACKS + DIFFERENT_CALLBACKS);
    let every = IDENTICAL_CALLBACKS / DIFFERENT_CALLBACKS;
    for n in 0..IDENTICAL_CALLBACKS {
        if n % every == 0 {
            bodies.push(callback(&format!("FT-STORM-{:03}", n / every)));
        }
        bodies.push(identical.clone());
    }
    assert_eq!(bodies.len(), IDENTICAL_CALLBACKS + DIFFERENT_CALLBACKS);

    let url = app.url(&format!("/v1/banks/{BANK}/callbacks"));
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    let started = Instant::now();
    let tasks: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let (http, url, signer) = (app.http.clone(), url.clone(), bank.clone());
            let permits = permits.clone();
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await.expect("the semaphore stays open");
                deliver(http, url, signer, body).await
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(tasks.len());
    for task in tasks {
        answers.push(task.await.expect("a callback task"));
    }
    let elapsed = started.elapsed();

    let mut by_result: BTreeMap<String, usize> = BTreeMap::new();
    for answer in &answers {
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.body["payment_id"], payment_id.as_str(), "{}", answer.body);
        assert_eq!(answer.body["payment_status"], "paid", "{}", answer.body);
        let result = answer.body["result"].as_str().expect("result").to_owned();
        if result == "exception" {
            assert_eq!(answer.body["exception"], "double_payment", "{}", answer.body);
        }
        *by_result.entry(result).or_default() += 1;
    }
    let retried: usize = answers.iter().map(|a| a.unavailable).sum();
    let mut latencies: Vec<Duration> = answers.iter().map(|a| a.took).collect();
    latencies.sort();
    let percentile = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];
    eprintln!(
        "callback storm: {} callbacks ({IDENTICAL_CALLBACKS} identical, {DIFFERENT_CALLBACKS} \
         other bank_txn_ids), {IN_FLIGHT} in flight, in {elapsed:.2?} ({:.0}/s); answers {by_result:?}; \
         503s retried {retried}; latency p50 {:.1?}, p99 {:.1?}, max {:.1?}",
        answers.len(),
        answers.len() as f64 / elapsed.as_secs_f64(),
        percentile(50),
        percentile(99),
        latencies[latencies.len() - 1],
    );

    // Exactly one callback paid the order. Whichever came first, every other transaction id
    // is one exception (200 in all: the identical callback counts as one when it lost), and
    // every repetition of an id already seen is a duplicate.
    assert_eq!(by_result.get("accepted"), Some(&1), "{by_result:?}");
    assert_eq!(by_result.get("exception"), Some(&DIFFERENT_CALLBACKS), "{by_result:?}");
    assert_eq!(by_result.get("duplicate"), Some(&(IDENTICAL_CALLBACKS - 1)), "{by_result:?}");
    assert_eq!(by_result.len(), 3, "{by_result:?}");

    let postings = DIFFERENT_CALLBACKS as i64 + 1;
    let read = |path: String| {
        let request = app.admin(reqwest::Method::GET, &path);
        async move {
            let response = request.send().await.expect("GET as admin");
            assert_eq!(response.status(), 200, "{path}");
            response.json::<Value>().await.expect("JSON")
        }
    };
    let verify = read("/v1/ledger/verify".to_owned()).await;
    assert_eq!(verify["ok"], true, "{verify}");
    assert_eq!(verify["transactions"], postings, "{verify}");
    assert_eq!(verify["debits"], (postings * AMOUNT_VND).to_string(), "{verify}");
    let balances = read("/v1/ledger/balances".to_owned()).await;
    let account = |name: &str| -> Value {
        balances["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|item| item["account"] == name)
            .unwrap_or_else(|| panic!("no account {name} in {balances}"))
            .clone()
    };
    // The bank's debits: one accepted posting and 200 into suspense.
    assert_eq!(account(&format!("bank:{BANK}"))["debits"], (postings * AMOUNT_VND).to_string());
    assert_eq!(account(&format!("agency:{AGENCY}:fee"))["credits"], AMOUNT_VND.to_string());
    assert_eq!(
        account(&format!("suspense:{BANK}"))["credits"],
        (DIFFERENT_CALLBACKS as i64 * AMOUNT_VND).to_string()
    );
    let exceptions = read(format!("/v1/exceptions?bank={BANK}&limit=500")).await;
    let exceptions = exceptions["items"].as_array().expect("items");
    assert_eq!(exceptions.len(), DIFFERENT_CALLBACKS);
    assert!(exceptions
        .iter()
        .all(|item| item["reason"] == "double_payment" && item["kind"] == "suspense"));
    app.assert_count("SELECT count(*) FROM bank_callbacks", postings).await;
    app.assert_count(&format!(
            "SELECT count(*) FROM events WHERE payment_id = '{payment_id}' AND type = 'payment.paid'"
        ), 1).await;
    let paid = read(format!("/v1/payments/{payment_id}")).await;
    eprintln!(
        "callback storm: the order was paid by {}; ledger verify ok, {} transactions, bank \
         debits {}, suspense {} in {} exceptions",
        paid["bank_txn_id"],
        verify["transactions"],
        account(&format!("bank:{BANK}"))["debits"],
        account(&format!("suspense:{BANK}"))["credits"],
        exceptions.len()
    );
}
