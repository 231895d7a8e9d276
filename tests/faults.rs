//! Faults under load, on the real binary: `paygate serve` killed with SIGKILL in the middle of
//! a callback load and started again, and its PostgreSQL stopped in immediate mode (a crash) in
//! the middle of the same load and started 5 s later.
//!
//! Eight bank clients deliver one succeeded callback for each of a few thousand orders, and
//! retry each callback (the same body, signed again) until they get an answer. Whatever the
//! fault, in the end every order is paid, the bank's ledger debits hold exactly one posting per
//! order, and every `payment.paid` event reached the agency's receiver. While the database is
//! down the service answers 503 and nothing else.
//!
//! The tests print their figures (counts, rates, durations) to stderr; run them with
//! `--nocapture` to see them. The figures are information, never assertions.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use paygate::db::embedded::{Cluster, ClusterOptions};
use paygate::signature::sign;
use serde_json::{json, Value};

mod common;

use common::{free_port, DataDir};

const AGENCY: &str = "000.00.00.H12";
const BANK: &str = "VCB";
const AMOUNT_VND: i64 = 150_000;
/// Orders paid by the load, one callback each.
const ORDERS: usize = 2_000;
/// Bank clients delivering callbacks at once.
const CLIENTS: usize = 8;
/// The fault strikes once this share of the callbacks has been answered.
const FAULT_AFTER_ANSWERS: usize = ORDERS / 3;
/// How long PostgreSQL stays down.
const DATABASE_DOWN: Duration = Duration::from_secs(5);
/// Bounds on every wait, so a broken server fails the test instead of hanging it.
const READY_WITHIN: Duration = Duration::from_secs(90);
const LOAD_WITHIN: Duration = Duration::from_secs(180);
/// Deliveries claimed by a killed server wait out their lease (60 s) before another attempt.
const DELIVERED_WITHIN: Duration = Duration::from_secs(150);

// ---------------------------------------------------------------------------------------------
// The agency's receiver: a small real HTTP/1.1 server that acknowledges every notification.
// ---------------------------------------------------------------------------------------------

/// One notification as the receiver read it.
#[derive(Debug, Clone)]
struct Notification {
    event_id: String,
    event_type: String,
    payment_id: String,
}

struct Receiver {
    address: SocketAddr,
    received: Arc<Mutex<Vec<Notification>>>,
}

impl Receiver {
    /// Listens on 127.0.0.1:0; each connection is served on its own thread, kept alive for as
    /// many requests as the caller sends. The threads end with the test process.
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
        let address = listener.local_addr().expect("the receiver's address");
        let received = Arc::new(Mutex::new(Vec::new()));
        let shared = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let received = shared.clone();
                std::thread::spawn(move || {
                    if let Err(err) = serve_connection(stream, &received) {
                        eprintln!("receiver: {err}");
                    }
                });
            }
        });
        Receiver { address, received }
    }

    fn url(&self) -> String {
        format!("http://{}/paygate/events", self.address)
    }

    fn received(&self) -> Vec<Notification> {
        self.received.lock().expect("the receiver's record").clone()
    }
}

/// Reads requests (bodies by `Content-Length`, which paygate always sends) and answers each
/// with 200, until the caller closes the connection.
fn serve_connection(stream: TcpStream, received: &Mutex<Vec<Notification>>) -> Result<(), String> {
    let mut writer = stream.try_clone().map_err(|err| err.to_string())?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).map_err(|err| err.to_string())? == 0 {
            return Ok(());
        }
        let mut length = 0;
        let mut event_id = String::new();
        loop {
            let mut header = String::new();
            if reader
                .read_line(&mut header)
                .map_err(|err| err.to_string())?
                == 0
            {
                return Err("the connection closed inside the headers".to_owned());
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').ok_or("a bad header line")?;
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => {
                    length = value.trim().parse().map_err(|_| "a bad content-length")?;
                }
                "paygate-event-id" => event_id = value.trim().to_owned(),
                _ => {}
            }
        }
        let mut body = vec![0; length];
        reader
            .read_exact(&mut body)
            .map_err(|err| err.to_string())?;
        let event: Value = serde_json::from_slice(&body).map_err(|err| err.to_string())?;
        received
            .lock()
            .expect("the receiver's record")
            .push(Notification {
                event_id,
                event_type: event["type"].as_str().unwrap_or_default().to_owned(),
                payment_id: event["payment"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            });
        writer
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .map_err(|err| err.to_string())?;
    }
}

// ---------------------------------------------------------------------------------------------
// The server under test
// ---------------------------------------------------------------------------------------------

/// A running `paygate serve`; killed (SIGKILL) when dropped.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The last lines of the servers' log, for failure messages.
fn log_tail(data: &DataDir) -> String {
    let log = data.log();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Starts `paygate serve` on `address`, its stderr appended to the data directory's log, and
/// waits until `/readyz` answers 200.
async fn start_serve(data: &DataDir, address: SocketAddr, http: &reqwest::Client) -> Serve {
    let log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(data.log_file())
        .expect("open the server log");
    let mut serve = Serve(
        data.command(&["serve"])
            .env("PAYGATE_LISTEN", address.to_string())
            // Failed deliveries come back within seconds, not minutes.
            .env("PAYGATE_NOTIFY_BACKOFF_S", "1,1,1")
            // The receiver listens on loopback.
            .env("PAYGATE_NOTIFY_ALLOW_PRIVATE", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn paygate serve"),
    );
    let deadline = Instant::now() + READY_WITHIN;
    loop {
        if let Ok(response) = http.get(format!("http://{address}/readyz")).send().await {
            if response.status() == 200 {
                return serve;
            }
        }
        if let Some(status) = serve.0.try_wait().expect("poll serve") {
            panic!(
                "serve exited with {status} before it was ready:\n{}",
                log_tail(data)
            );
        }
        assert!(
            Instant::now() < deadline,
            "serve was not ready within {READY_WITHIN:?}:\n{}",
            log_tail(data)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn now_s() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    i64::try_from(since_epoch.as_secs()).expect("seconds fit in i64")
}

/// A server with an agency (notified at a receiver), a bank and `ORDERS` pending orders.
struct World {
    /// First, so that it is dropped (killed) before its data directory is removed.
    serve: Option<Serve>,
    data: DataDir,
    address: SocketAddr,
    http: reqwest::Client,
    admin_key: String,
    kid: String,
    secret: String,
    receiver: Receiver,
    orders: Vec<String>,
}

impl World {
    async fn new(name: &str) -> World {
        let data = DataDir::new(&format!("paygate-faults-{name}"));
        let address = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("an HTTP client");
        let started = Instant::now();
        let serve = start_serve(&data, address, &http).await;
        let ready_after = started.elapsed();

        let output = data
            .command(&["admin", "create-key", "--role", "admin"])
            .output()
            .expect("run paygate admin create-key");
        assert!(
            output.status.success(),
            "admin create-key failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8(output.stdout).expect("UTF-8");
        let admin_key = stdout.lines().last().expect("a key line").to_owned();

        let receiver = Receiver::start();
        let mut world = World {
            data,
            address,
            http,
            serve: Some(serve),
            admin_key,
            kid: String::new(),
            secret: String::new(),
            receiver,
            orders: Vec::new(),
        };
        let agency = world
            .admin_post(
                "/v1/agencies",
                &json!({"code": AGENCY, "name": "Sở Tư pháp", "notify_url": world.receiver.url()}),
            )
            .await;
        let agency_key = agency["api_key"].as_str().expect("api_key").to_owned();
        let bank = world
            .admin_post(
                "/v1/banks",
                &json!({"code": BANK, "name": "Ngân hàng Ngoại thương"}),
            )
            .await;
        world.kid = bank["key_id"].as_str().expect("key_id").to_owned();
        world.secret = bank["secret"].as_str().expect("secret").to_owned();

        let started = Instant::now();
        world.orders = world.create_orders(&agency_key).await;
        let took = started.elapsed();
        eprintln!(
            "{name}: serve ready in {ready_after:.2?}; {ORDERS} orders created by {CLIENTS} \
             clients in {took:.2?} ({:.0}/s)",
            ORDERS as f64 / took.as_secs_f64()
        );
        world
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    async fn admin_post(&self, path: &str, body: &Value) -> Value {
        let response = self
            .http
            .post(self.url(path))
            .bearer_auth(&self.admin_key)
            .json(body)
            .send()
            .await
            .unwrap_or_else(|err| panic!("POST {path}: {err}"));
        let status = response.status();
        let text = response.text().await.expect("an answer");
        assert_eq!(status, 201, "POST {path}: {text}");
        serde_json::from_str(&text).expect("JSON")
    }

    /// GET `path` as admin; must answer 200.
    async fn admin_get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(&self.admin_key)
            .send()
            .await
            .unwrap_or_else(|err| panic!("GET {path}: {err}"));
        let status = response.status();
        let text = response.text().await.expect("an answer");
        assert_eq!(status, 200, "GET {path}: {text}");
        serde_json::from_str(&text).expect("JSON")
    }

    /// Every item of a paginated list.
    async fn admin_list(&self, path: &str) -> Vec<Value> {
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = match &cursor {
                None => self.admin_get(&format!("{path}{separator}limit=500")).await,
                Some(cursor) => {
                    self.admin_get(&format!("{path}{separator}limit=500&cursor={cursor}"))
                        .await
                }
            };
            items.extend(page["items"].as_array().expect("items").iter().cloned());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return items,
            }
        }
    }

    /// Creates `ORDERS` pending orders through the API, `CLIENTS` at a time; returns their ids.
    async fn create_orders(&self, agency_key: &str) -> Vec<String> {
        let next = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let (http, url, key, next) = (
                    self.http.clone(),
                    self.url("/v1/payments"),
                    agency_key.to_owned(),
                    next.clone(),
                );
                tokio::spawn(async move {
                    let mut created = Vec::new();
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= ORDERS {
                            return created;
                        }
                        let reference = format!("H12-FAULT-{n:05}");
                        let response = http
                            .post(&url)
                            .bearer_auth(&key)
                            .header("Idempotency-Key", &reference)
                            .json(&json!({
                                "obligation": "fee",
                                "reference": reference,
                                "amount": AMOUNT_VND.to_string(),
                                "description": "Lệ phí cấp đổi giấy phép lái xe",
                                "payer": {"name": "Nguyễn Văn A"},
                                "details": {"procedure_code": "1.002804", "dossier_code": reference},
                            }))
                            .send()
                            .await
                            .expect("POST /v1/payments");
                        let status = response.status();
                        let text = response.text().await.expect("an answer");
                        assert_eq!(status, 201, "{text}");
                        let payment: Value = serde_json::from_str(&text).expect("JSON");
                        created.push((n, payment["id"].as_str().expect("id").to_owned()));
                    }
                })
            })
            .collect();
        let mut orders = vec![String::new(); ORDERS];
        for task in tasks {
            for (n, id) in task.await.expect("an order client") {
                orders[n] = id;
            }
        }
        orders
    }
}

// ---------------------------------------------------------------------------------------------
// The load
// ---------------------------------------------------------------------------------------------

/// What one attempt to deliver a callback got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    /// No HTTP answer: refused, reset or cut off.
    NoAnswer,
    Status(u16),
}

/// One attempt: when it was sent, when it ended, and what it got.
#[derive(Debug, Clone, Copy)]
struct Attempt {
    sent: Instant,
    ended: Instant,
    outcome: Outcome,
}

/// The load's record: every attempt, and the final answer to each order's callback.
#[derive(Default)]
struct Record {
    attempts: Vec<Attempt>,
    results: BTreeMap<String, usize>,
}

/// `CLIENTS` bank clients deliver one succeeded callback per order, each retried until it is
/// answered 200. Returns the shared record and the count of callbacks answered so far, which
/// the test watches to strike its fault.
fn start_load(
    world: &World,
) -> (
    Arc<Mutex<Record>>,
    Arc<AtomicUsize>,
    Vec<tokio::task::JoinHandle<()>>,
) {
    let record = Arc::new(Mutex::new(Record::default()));
    let answered = Arc::new(AtomicUsize::new(0));
    let next = Arc::new(AtomicUsize::new(0));
    let orders = Arc::new(world.orders.clone());
    let paid_at =
        paygate::timefmt::format_utc(time::OffsetDateTime::now_utc() - time::Duration::minutes(1));
    let deadline = Instant::now() + LOAD_WITHIN;
    let tasks = (0..CLIENTS)
        .map(|_| {
            let (http, url, kid, secret) = (
                world.http.clone(),
                world.url(&format!("/v1/banks/{BANK}/callbacks")),
                world.kid.clone(),
                world.secret.clone(),
            );
            let (record, answered, next, orders, paid_at) = (
                record.clone(),
                answered.clone(),
                next.clone(),
                orders.clone(),
                paid_at.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let Some(payment_id) = orders.get(n) else {
                        return;
                    };
                    let body = serde_json::to_vec(&json!({
                        "bank_txn_id": format!("FT-FAULT-{n:05}"),
                        "payment_id": payment_id,
                        "amount": AMOUNT_VND.to_string(),
                        "currency": "VND",
                        "status": "succeeded",
                        "paid_at": paid_at,
                    }))
                    .expect("JSON");
                    loop {
                        assert!(
                            Instant::now() < deadline,
                            "the load did not finish within {LOAD_WITHIN:?}"
                        );
                        let sent = Instant::now();
                        let signature = sign(secret.as_bytes(), &kid, now_s(), &body);
                        let answer = async {
                            let response = http
                                .post(&url)
                                .header("Content-Type", "application/json")
                                .header("Paygate-Signature", signature)
                                .body(body.clone())
                                .send()
                                .await?;
                            let status = response.status().as_u16();
                            let text = response.text().await?;
                            Ok::<_, reqwest::Error>((status, text))
                        }
                        .await;
                        let ended = Instant::now();
                        let outcome = match &answer {
                            Ok((status, _)) => Outcome::Status(*status),
                            Err(_) => Outcome::NoAnswer,
                        };
                        let done = {
                            let mut shared = record.lock().expect("the load's record");
                            shared.attempts.push(Attempt {
                                sent,
                                ended,
                                outcome,
                            });
                            match &answer {
                                Ok((200, text)) => {
                                    let answer: Value = serde_json::from_str(text).expect("JSON");
                                    let result = answer["result"].as_str().unwrap_or("?");
                                    *shared.results.entry(result.to_owned()).or_default() += 1;
                                    answered.fetch_add(1, Ordering::Relaxed);
                                    true
                                }
                                _ => false,
                            }
                        };
                        if done {
                            break;
                        }
                        // A bank backs off briefly before it sends the callback again.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            })
        })
        .collect();
    (record, answered, tasks)
}

/// Waits until `count` reaches `target`; panics after `within`.
async fn wait_for_count(count: &AtomicUsize, target: usize, within: Duration, what: &str) {
    let deadline = Instant::now() + within;
    while count.load(Ordering::Relaxed) < target {
        assert!(
            Instant::now() < deadline,
            "{what}: not reached within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn finish_load(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for task in tasks {
        task.await.expect("a bank client");
    }
}

/// How many attempts got each outcome.
fn tally<'a>(attempts: impl Iterator<Item = &'a Attempt>) -> BTreeMap<Outcome, usize> {
    let mut counts = BTreeMap::new();
    for attempt in attempts {
        *counts.entry(attempt.outcome).or_default() += 1;
    }
    counts
}

// ---------------------------------------------------------------------------------------------
// The checks after a fault
// ---------------------------------------------------------------------------------------------

/// Every order paid, exactly one posting per order in the bank's ledger account, and every
/// `payment.paid` event delivered to the receiver.
async fn assert_every_order_paid_once_and_notified(world: &World, name: &str, since: Instant) {
    let paid: HashSet<String> = world
        .admin_list(&format!("/v1/payments?agency={AGENCY}&status=paid"))
        .await
        .iter()
        .map(|payment| payment["id"].as_str().expect("id").to_owned())
        .collect();
    let missing = world.orders.iter().filter(|id| !paid.contains(*id)).count();
    assert_eq!(missing, 0, "{missing} orders are not paid");
    assert_eq!(paid.len(), ORDERS);

    // Every order paid needs at least one posting, and there are as many postings as orders
    // (none to suspense): so exactly one each.
    let verify = world.admin_get("/v1/ledger/verify").await;
    assert_eq!(verify["ok"], true, "{verify}");
    assert_eq!(verify["transactions"], ORDERS, "{verify}");
    let total = (ORDERS as i64 * AMOUNT_VND).to_string();
    let balances = world
        .admin_get(&format!("/v1/ledger/balances?account_prefix=bank:{BANK}"))
        .await;
    let bank = balances["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|item| item["account"] == format!("bank:{BANK}"))
        .unwrap_or_else(|| panic!("no bank account in {balances}"))
        .clone();
    assert_eq!(bank["debits"], total.as_str(), "{bank}");
    let exceptions = world.admin_get("/v1/exceptions").await;
    assert_eq!(exceptions["items"], json!([]), "{exceptions}");

    // Every event is delivered in the end, those claimed at the moment of the fault included
    // (their lease runs out and another attempt is made).
    let deadline = Instant::now() + DELIVERED_WITHIN;
    let all_received_after = loop {
        let received = world.receiver.received();
        let notified: HashSet<&str> = received
            .iter()
            .filter(|n| n.event_type == "payment.paid")
            .map(|n| n.payment_id.as_str())
            .collect();
        let unnotified = world
            .orders
            .iter()
            .filter(|id| !notified.contains(id.as_str()))
            .count();
        if unnotified == 0 {
            break since.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "{unnotified} payment.paid events not delivered within {DELIVERED_WITHIN:?}:\n{}",
            log_tail(&world.data)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let deadline = Instant::now() + DELIVERED_WITHIN;
    let mut awaiting_lease = None;
    let events = loop {
        // No order expires or is cancelled here, so every event is a `payment.paid`.
        let events = world.admin_list("/v1/events").await;
        let open = events
            .iter()
            .filter(|event| event["type"] != "payment.paid" || event["status"] != "delivered")
            .count();
        if open == 0 {
            break events;
        }
        // Events received but not recorded: the fault struck between an attempt and its
        // record, so their claim must run out before they are sent (and received) again.
        awaiting_lease.get_or_insert(open);
        assert!(
            Instant::now() < deadline,
            "{open} events are not recorded as delivered within {DELIVERED_WITHIN:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let all_recorded_after = since.elapsed();
    assert_eq!(events.len(), ORDERS);
    let received = world.receiver.received();
    let distinct: HashSet<&str> = received.iter().map(|n| n.event_id.as_str()).collect();
    eprintln!(
        "{name}: {ORDERS} orders paid, ledger verify ok with {} transactions, bank debits {} \
         (= {ORDERS} x {AMOUNT_VND}); every payment.paid received {all_received_after:.1?} and \
         recorded delivered {all_recorded_after:.1?} after the fault ({} received before they \
         were recorded waited for their claim to run out); {} deliveries of {} distinct events \
         ({} repeated: delivery is at least once)",
        verify["transactions"],
        bank["debits"],
        awaiting_lease.unwrap_or(0),
        received.len(),
        distinct.len(),
        received.len() - distinct.len(),
    );
}

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_killed_with_sigkill_during_a_callback_load_and_restarted_pays_every_order_once_and_notifies_each(
) {
    let name = "sigkill";
    let mut world = World::new(name).await;
    let started = Instant::now();
    let (record, answered, tasks) = start_load(&world);

    wait_for_count(
        &answered,
        FAULT_AFTER_ANSWERS,
        LOAD_WITHIN,
        "answers before the kill",
    )
    .await;
    let mut serve = world.serve.take().expect("a running server");
    serve.0.kill().expect("SIGKILL serve");
    let killed = Instant::now();
    let answered_before_kill = answered.load(Ordering::Relaxed);
    drop(serve);
    world.serve = Some(start_serve(&world.data, world.address, &world.http).await);
    let restarted_after = killed.elapsed();

    finish_load(tasks).await;
    let took = started.elapsed();
    let record = std::mem::take(&mut *record.lock().expect("the load's record"));
    let counts = tally(record.attempts.iter());
    eprintln!(
        "{name}: {ORDERS} callbacks by {CLIENTS} clients in {took:.2?} ({:.0}/s answered); \
         SIGKILL after {answered_before_kill} answers, ready again {restarted_after:.2?} later; \
         {} attempts: {counts:?}; final answers {:?}",
        ORDERS as f64 / took.as_secs_f64(),
        record.attempts.len(),
        record.results,
    );
    // Only answers a bank can act on: a result, or nothing at all while the server is down.
    let unexpected: Vec<_> = counts
        .keys()
        .filter(|outcome| !matches!(outcome, Outcome::Status(200) | Outcome::NoAnswer))
        .collect();
    assert!(
        unexpected.is_empty(),
        "unexpected answers {unexpected:?}: {counts:?}"
    );
    // Each callback was answered once in the end: accepted, or a duplicate when its first
    // delivery was recorded but the answer died with the server.
    assert_eq!(
        record.results.values().sum::<usize>(),
        ORDERS,
        "{:?}",
        record.results
    );
    assert!(
        record
            .results
            .keys()
            .all(|result| result == "accepted" || result == "duplicate"),
        "{:?}",
        record.results
    );

    assert_every_order_paid_once_and_notified(&world, name, killed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_in_immediate_mode_during_a_callback_load_gives_only_503s_and_every_order_is_paid_once_when_it_returns(
) {
    let name = "pg-down";
    let world = World::new(name).await;
    // This process joins the embedded cluster to take it away and bring it back, as a crash
    // and an operator's restart would.
    let cluster_dir = world.data.0.join("postgres");
    let cluster = tokio::task::spawn_blocking(move || {
        Cluster::start(&cluster_dir, &ClusterOptions::default())
    })
    .await
    .expect("join the cluster")
    .expect("the embedded cluster");
    let cluster = Arc::new(cluster);

    let started = Instant::now();
    let (record, answered, tasks) = start_load(&world);
    wait_for_count(
        &answered,
        FAULT_AFTER_ANSWERS,
        LOAD_WITHIN,
        "answers before the stop",
    )
    .await;
    let stopping = cluster.clone();
    tokio::task::spawn_blocking(move || stopping.stop_now())
        .await
        .expect("pg_ctl stop")
        .expect("stop PostgreSQL in immediate mode");
    let down_from = Instant::now();
    let answered_before_stop = answered.load(Ordering::Relaxed);

    // While it is down, readiness says so.
    let mut readiness = BTreeMap::<u16, usize>::new();
    while down_from.elapsed() < DATABASE_DOWN {
        let response = world
            .http
            .get(world.url("/readyz"))
            .send()
            .await
            .expect("GET /readyz while the database is down");
        *readiness.entry(response.status().as_u16()).or_default() += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let down_until = Instant::now();
    let starting = cluster.clone();
    tokio::task::spawn_blocking(move || starting.start_again())
        .await
        .expect("pg_ctl start")
        .expect("start PostgreSQL again");
    let back = Instant::now();

    finish_load(tasks).await;
    let took = started.elapsed();
    let record = std::mem::take(&mut *record.lock().expect("the load's record"));
    let counts = tally(record.attempts.iter());
    // The attempts sent after the database was gone and answered before it was started again.
    let while_down = tally(
        record
            .attempts
            .iter()
            .filter(|a| a.sent >= down_from && a.ended <= down_until),
    );
    let recovered_after = record
        .attempts
        .iter()
        .filter(|a| a.sent >= back && a.outcome == Outcome::Status(200))
        .map(|a| a.ended.duration_since(back))
        .min();
    let count_of = |counts: &BTreeMap<Outcome, usize>, status: u16| {
        counts.get(&Outcome::Status(status)).copied().unwrap_or(0)
    };
    eprintln!(
        "{name}: {ORDERS} callbacks by {CLIENTS} clients in {took:.2?} ({:.0}/s answered); \
         PostgreSQL stopped after {answered_before_stop} answers, down {:.2?}, accepting again \
         {:.2?} after the start began; {} attempts: {counts:?} (500s: {}); while down: \
         {while_down:?}; /readyz while down: {readiness:?}; first 200 {recovered_after:.2?} \
         after it was back; final answers {:?}",
        ORDERS as f64 / took.as_secs_f64(),
        down_until.duration_since(down_from),
        back.duration_since(down_until),
        record.attempts.len(),
        count_of(&counts, 500),
        record.results,
    );
    assert_eq!(count_of(&counts, 500), 0, "500s: {counts:?}");
    let unexpected: Vec<_> = counts
        .keys()
        .filter(|outcome| !matches!(outcome, Outcome::Status(200 | 503)))
        .collect();
    assert!(
        unexpected.is_empty(),
        "unexpected answers {unexpected:?}: {counts:?}"
    );
    assert!(
        count_of(&while_down, 503) > 0,
        "no request was answered while the database was down: {while_down:?}"
    );
    assert_eq!(
        while_down.keys().collect::<Vec<_>>(),
        vec![&Outcome::Status(503)],
        "only 503 while the database is down"
    );
    assert!(!readiness.is_empty());
    assert_eq!(
        readiness.keys().collect::<Vec<_>>(),
        vec![&503],
        "/readyz while the database is down: {readiness:?}"
    );
    assert_eq!(
        record.results.values().sum::<usize>(),
        ORDERS,
        "{:?}",
        record.results
    );
    // Each callback was answered once in the end: accepted, or a duplicate when the crash
    // struck after its commit but before its answer.
    assert!(
        record
            .results
            .keys()
            .all(|result| result == "accepted" || result == "duplicate"),
        "{:?}",
        record.results
    );

    assert_every_order_paid_once_and_notified(&world, name, down_from).await;
}
