//! A small bank simulator: it stands at a bank's `refund_url`, receives paygate's signed
//! `refund.requested` instructions, verifies each signature with the bank's own keys, and
//! answers each instruction once (by its `Paygate-Event-Id`) with the bank's signed result,
//! `POST /v1/banks/{bank}/refunds/{id}/result`, as a bank's integration would.
//!
//! Tests use it to follow a refund end to end; a bank's integrators can read it to see the
//! exchange: what arrives, how it is checked, and what goes back.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paygate::signature::SignatureHeader;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::clock::{now_s, rfc3339};
use crate::receiver::{Behaviour, Receiver};
use crate::signer::Signer;

/// How far a signature's time may be from the simulator's clock, as paygate allows banks.
const SIGNATURE_TOLERANCE_S: u64 = 300;
/// How often the simulator looks for new instructions.
const POLL_MS: u64 = 20;

/// What the simulated bank does with every instruction it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Returns the money: `completed`, with a `bank_refund_id` of its own.
    Complete,
    /// Cannot return it: `failed`, with this reason.
    Fail(String),
}

/// One instruction as the simulator handled it.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The instruction's body as received.
    pub instruction: Value,
    /// `None` when the signature verified with one of the bank's keys; the reason otherwise
    /// (and then no result is sent).
    pub signature_error: Option<String>,
    /// The result body sent back, when one was.
    pub result: Option<Value>,
    /// paygate's status and answer to the result.
    pub answer: Option<(u16, Value)>,
}

/// A running simulator; it stops when dropped.
pub struct BankSimulator {
    receiver: Arc<Receiver>,
    exchanges: Arc<Mutex<Vec<Exchange>>>,
    task: JoinHandle<()>,
}

impl BankSimulator {
    /// Starts a simulator of the bank of `keys` (its signing keys; results are signed with the
    /// first), answering paygate at `paygate_url` with `verdict`.
    pub async fn start(paygate_url: &str, keys: Vec<Signer>, verdict: Verdict) -> BankSimulator {
        assert!(!keys.is_empty(), "a bank has at least one key");
        let receiver = Arc::new(Receiver::start(Behaviour::status(200)).await);
        let exchanges = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(run(
            receiver.clone(),
            exchanges.clone(),
            paygate_url.to_owned(),
            keys,
            verdict,
        ));
        BankSimulator { receiver, exchanges, task }
    }

    /// The URL to set as the bank's `refund_url`.
    pub fn url(&self) -> String {
        self.receiver.url("/refunds")
    }

    /// Every instruction handled so far, in order of arrival (a redelivered one once).
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.exchanges.lock().expect("simulator exchanges").clone()
    }

    /// Waits until `n` instructions were handled and answered; panics when `within` passes.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Exchange> {
        let deadline = Instant::now() + within;
        loop {
            let exchanges = self.exchanges();
            let done = exchanges
                .iter()
                .filter(|e| e.answer.is_some() || e.signature_error.is_some())
                .count();
            if done >= n {
                return exchanges;
            }
            assert!(Instant::now() < deadline, "expected {n} exchanges, got {exchanges:#?}");
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
    }
}

impl Drop for BankSimulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(
    receiver: Arc<Receiver>,
    exchanges: Arc<Mutex<Vec<Exchange>>>,
    paygate_url: String,
    keys: Vec<Signer>,
    verdict: Verdict,
) {
    let http = reqwest::Client::new();
    let mut read = 0;
    let mut seen = HashSet::new();
    loop {
        let requests = receiver.requests();
        for request in &requests[read..] {
            // A bank processes each instruction once, whatever paygate redelivers.
            let event_id = request.header("paygate-event-id").unwrap_or_default().to_owned();
            if !seen.insert(event_id) {
                continue;
            }
            let instruction = request.json();
            let mut exchange = Exchange {
                instruction: instruction.clone(),
                signature_error: None,
                result: None,
                answer: None,
            };
            match verify(request.header("paygate-signature"), &request.body, &keys) {
                Err(reason) => exchange.signature_error = Some(reason),
                Ok(()) => {
                    let refund_id = instruction["refund"]["id"].as_str().unwrap_or_default();
                    let result = match &verdict {
                        Verdict::Complete => json!({
                            "status": "completed",
                            "bank_refund_id": format!("RF-{}", &refund_id[refund_id.len().saturating_sub(12)..]),
                            "completed_at": rfc3339(now_s()),
                        }),
                        Verdict::Fail(reason) => {
                            json!({"status": "failed", "failure_reason": reason})
                        }
                    };
                    let body = serde_json::to_vec(&result).expect("JSON");
                    let signer = &keys[0];
                    let url = format!(
                        "{paygate_url}/v1/banks/{}/refunds/{refund_id}/result",
                        signer.bank
                    );
                    let answer = http
                        .post(url)
                        .header("Content-Type", "application/json")
                        .header("Paygate-Signature", signer.signature(now_s(), &body))
                        .body(body)
                        .send()
                        .await;
                    exchange.result = Some(result);
                    exchange.answer = match answer {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            let body = response.json().await.unwrap_or(Value::Null);
                            Some((status, body))
                        }
                        Err(err) => Some((0, json!({"error": err.to_string()}))),
                    };
                }
            }
            exchanges.lock().expect("simulator exchanges").push(exchange);
        }
        read = requests.len();
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
    }
}

/// Checks the instruction's `Paygate-Signature` as a bank should: the key named by `kid` among
/// its own, the MAC over the raw body, the time within the tolerance.
fn verify(header: Option<&str>, body: &[u8], keys: &[Signer]) -> Result<(), String> {
    let header = SignatureHeader::parse(header.ok_or("no Paygate-Signature")?)
        .map_err(|err| format!("malformed signature: {err}"))?;
    let key = keys.iter().find(|k| k.kid == header.kid).ok_or("unknown kid")?;
    header
        .verify(key.secret.as_bytes(), body, now_s(), SIGNATURE_TOLERANCE_S)
        .map_err(|err| format!("signature does not verify: {err}"))
}
