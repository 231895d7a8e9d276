//! Load generator for payment callbacks (orders and signed callbacks), against a running
//! `paygate serve`.
//!
//! It creates an agency and a bank (random codes) through the admin API, then `--orders`
//! orders (concurrently: orders/s is reported as a side figure), then sends one signed
//! `succeeded` callback per order from `--concurrency` workers over one HTTP client, and prints
//! callbacks/s and the latency percentiles. Every answer must be 200 `accepted`; anything else
//! is counted (and the first few are shown) as an error. Finally it asks `GET /v1/ledger/verify`.
//!
//! ```sh
//! ADMIN_KEY=$(paygate admin create-key --role admin | tail -n 1)
//! loadgen --admin-key "$ADMIN_KEY" --orders 10000 --concurrency 32
//! ```

use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{json, Value};
use time::OffsetDateTime;

#[derive(Parser)]
#[command(about = "Creates orders, then sends signed callbacks for them at a chosen concurrency")]
struct Args {
    /// The running service.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    base_url: String,
    /// An admin API key (`paygate admin create-key --role admin`).
    #[arg(long)]
    admin_key: String,
    /// Orders to create, and callbacks to send (one per order).
    #[arg(long, default_value_t = 10_000)]
    orders: usize,
    /// Concurrent requests (workers), for the orders and for the callbacks.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// The code of the bank to create (default: a random one); a bank that exists already
    /// gets a further key.
    #[arg(long)]
    bank: Option<String>,
}

/// Errors shown in full; the rest are only counted.
const SHOWN_ERRORS: usize = 5;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("loadgen: {message}");
            ExitCode::FAILURE
        }
    }
}

struct Setup {
    client: reqwest::Client,
    base: String,
    agency_key: String,
    bank: String,
    kid: String,
    secret: String,
    tag: String,
}

struct Order {
    id: String,
    amount: String,
}

/// One phase's outcome: the latency of every request that succeeded, errors, wall time.
struct Phase<T> {
    items: Vec<T>,
    latencies: Vec<Duration>,
    errors: usize,
    wall: Duration,
}

async fn run(args: Args) -> Result<bool, String> {
    if args.concurrency == 0 {
        return Err("--concurrency must be at least 1".to_owned());
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|err| format!("cannot build the HTTP client: {err}"))?;
    let base = args.base_url.trim_end_matches('/').to_owned();
    // 8 hex digits, upper case: unique enough for codes, references and idempotency keys.
    let tag = paygate::domain::ids::random_id("x", 4)[2..].to_ascii_uppercase();
    let agency = format!("LOADGEN.{tag}");
    let bank = args.bank.clone().unwrap_or_else(|| format!("LG{tag}"));

    let created = admin_post(
        &client,
        &base,
        &args.admin_key,
        "/v1/agencies",
        Some(json!({"code": agency, "name": format!("Load generator {tag}")})),
    )
    .await?;
    let agency_key = string_field(&created, "api_key")?;
    let created = match admin_post(
        &client,
        &base,
        &args.admin_key,
        "/v1/banks",
        Some(json!({"code": bank, "name": format!("Load generator bank {tag}")})),
    )
    .await
    {
        // A bank that exists already signs with a further key of its own (its other keys stay
        // valid).
        Err(message) if args.bank.is_some() && message.contains("duplicate_code") => {
            let path = format!("/v1/banks/{bank}/keys");
            admin_post(&client, &base, &args.admin_key, &path, None).await?
        }
        other => other?,
    };
    let setup = Arc::new(Setup {
        client,
        base,
        agency_key,
        bank: bank.clone(),
        kid: string_field(&created, "key_id")?,
        secret: string_field(&created, "secret")?,
        tag,
    });
    println!("agency {agency}, bank {bank}");

    let orders = phase(args.orders, args.concurrency, setup.clone(), create_order).await;
    report("orders", &orders);
    if orders.items.is_empty() {
        return Err("no order was created".to_owned());
    }
    let orders = Arc::new(orders.items);

    let callbacks = {
        let orders = orders.clone();
        phase(orders.len(), args.concurrency, setup.clone(), move |setup, i| {
            let orders = orders.clone();
            async move { send_callback(&setup, &orders[i]).await }
        })
        .await
    };
    report("callbacks", &callbacks);

    let verify = setup
        .client
        .get(format!("{}/v1/ledger/verify", setup.base))
        .bearer_auth(&args.admin_key)
        .send()
        .await
        .map_err(|err| format!("GET /v1/ledger/verify: {err}"))?;
    let status = verify.status();
    let verify: Value =
        verify.json().await.map_err(|err| format!("GET /v1/ledger/verify: {err}"))?;
    let ok = status.is_success() && verify["ok"] == Value::Bool(true);
    println!(
        "ledger verify: ok={} transactions={} entries={}",
        verify["ok"], verify["transactions"], verify["entries"]
    );
    Ok(ok && callbacks.errors == 0 && orders.len() == args.orders)
}

async fn admin_post(
    client: &reqwest::Client,
    base: &str,
    admin_key: &str,
    path: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let mut request = client.post(format!("{base}{path}")).bearer_auth(admin_key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    created(request.send().await, &format!("POST {path}")).await
}

/// The JSON body of `answer`, which must be a 201; errors name `what` was asked.
async fn created(
    answer: Result<reqwest::Response, reqwest::Error>,
    what: &str,
) -> Result<Value, String> {
    let answer = answer.map_err(|err| format!("{what}: {err}"))?;
    let status = answer.status();
    let text = answer.text().await.unwrap_or_default();
    if status != reqwest::StatusCode::CREATED {
        return Err(format!("{what} answered {status}: {text}"));
    }
    serde_json::from_str(&text).map_err(|err| format!("{what}: {err}"))
}

fn string_field(value: &Value, name: &str) -> Result<String, String> {
    value[name]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("the answer lacks {name}: {value}"))
}

/// Runs `work(setup, i)` for every `i` in `0..count` on `concurrency` workers, timing each.
async fn phase<T, F, Fut>(count: usize, concurrency: usize, setup: Arc<Setup>, work: F) -> Phase<T>
where
    T: Send + 'static,
    F: Fn(Arc<Setup>, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<T, String>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let shown = Arc::new(AtomicUsize::new(0));
    let work = Arc::new(work);
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency.min(count.max(1)))
        .map(|_| {
            let (next, shown, work, setup) =
                (next.clone(), shown.clone(), work.clone(), setup.clone());
            tokio::spawn(async move {
                let mut items = Vec::new();
                let mut latencies = Vec::new();
                let mut errors = 0;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    let sent = Instant::now();
                    match work(setup.clone(), i).await {
                        Ok(item) => {
                            latencies.push(sent.elapsed());
                            items.push(item);
                        }
                        Err(message) => {
                            errors += 1;
                            if shown.fetch_add(1, Ordering::Relaxed) < SHOWN_ERRORS {
                                eprintln!("loadgen: {message}");
                            }
                        }
                    }
                }
                (items, latencies, errors)
            })
        })
        .collect();
    let mut all = Phase {
        items: Vec::with_capacity(count),
        latencies: Vec::with_capacity(count),
        errors: 0,
        wall: Duration::ZERO,
    };
    for worker in workers {
        match worker.await {
            Ok((items, latencies, errors)) => {
                all.items.extend(items);
                all.latencies.extend(latencies);
                all.errors += errors;
            }
            Err(err) => {
                eprintln!("loadgen: a worker failed: {err}");
                all.errors += 1;
            }
        }
    }
    all.wall = started.elapsed();
    all
}

fn report<T>(name: &str, phase: &Phase<T>) {
    let mut latencies = phase.latencies.clone();
    latencies.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    // Nearest rank: the smallest latency that at least p of the requests did not exceed.
    let percentile = |p: f64| {
        let rank = ((p * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len());
        ms(latencies[rank - 1])
    };
    let wall = phase.wall.as_secs_f64();
    println!("{name}:");
    println!("  succeeded    {}", phase.items.len());
    println!("  errors       {}", phase.errors);
    println!("  wall time    {wall:.3} s");
    println!("  throughput   {:.1} {name}/s", phase.items.len() as f64 / wall.max(f64::EPSILON));
    if !latencies.is_empty() {
        println!(
            "  latency ms   p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}",
            percentile(0.50),
            percentile(0.95),
            percentile(0.99),
            ms(latencies[latencies.len() - 1])
        );
    }
}

/// A valid order of each obligation in turn, with a realistic amount.
fn order_body(tag: &str, i: usize) -> Value {
    let reference = format!("LG-{tag}-{i}");
    let (obligation, amount, description, details) = match i % 6 {
        0 => (
            "fee",
            50_000 + (i % 191) * 5_000,
            "Lệ phí cấp đổi giấy phép lái xe",
            json!({"procedure_code": "1.002804", "dossier_code": reference}),
        ),
        1 => (
            "tax",
            500_000 + (i % 4_950) * 10_000,
            "Nộp thuế thu nhập cá nhân",
            json!({"tax_code": format!("{:010}", i % 10_000_000_000), "tax_period": "2026-10"}),
        ),
        2 => (
            "social_insurance",
            300_000 + (i % 470) * 10_000,
            "Đóng bảo hiểm xã hội tự nguyện",
            json!({"insurance_code": format!("{:010}", i % 10_000_000_000), "period": "2026-10"}),
        ),
        3 => (
            "fine",
            200_000 + (i % 197) * 50_000,
            "Nộp phạt vi phạm hành chính giao thông",
            json!({"decision_number": format!("{i}/QĐ-XPHC"), "violation_date": "2026-10-15"}),
        ),
        4 => (
            "electricity",
            80_000 + (i * 7_919) % 2_920_000,
            "Thanh toán tiền điện",
            json!({"customer_code": format!("PD{:011}", i % 100_000_000_000), "billing_period": "2026-10"}),
        ),
        _ => (
            "court_advance",
            300_000 + (i % 198) * 100_000,
            "Tạm ứng án phí dân sự sơ thẩm",
            json!({"case_number": format!("{i}/2026/TLST-DS"), "court_code": "TAND.HN"}),
        ),
    };
    json!({
        "obligation": obligation,
        "reference": reference,
        "amount": amount.to_string(),
        "currency": "VND",
        "description": description,
        "payer": {"name": "Nguyễn Văn An", "id_number": format!("{:012}", i)},
        "details": details,
    })
}

async fn create_order(setup: Arc<Setup>, i: usize) -> Result<Order, String> {
    let answer = setup
        .client
        .post(format!("{}/v1/payments", setup.base))
        .bearer_auth(&setup.agency_key)
        .header("Idempotency-Key", format!("loadgen-{}-{i}", setup.tag))
        .json(&order_body(&setup.tag, i))
        .send()
        .await;
    let payment = created(answer, &format!("order {i}")).await?;
    Ok(Order { id: string_field(&payment, "id")?, amount: string_field(&payment, "amount")? })
}

async fn send_callback(setup: &Setup, order: &Order) -> Result<(), String> {
    let now = OffsetDateTime::now_utc();
    let body = serde_json::to_vec(&json!({
        "bank_txn_id": format!("FT{}", &order.id[order.id.len().saturating_sub(24)..]),
        "payment_id": order.id,
        "amount": order.amount,
        "currency": "VND",
        "status": "succeeded",
        "paid_at": paygate::timefmt::format_utc(now),
    }))
    .expect("JSON serialises");
    let signature =
        paygate::signature::sign(setup.secret.as_bytes(), &setup.kid, now.unix_timestamp(), &body);
    let answer = setup
        .client
        .post(format!("{}/v1/banks/{}/callbacks", setup.base, setup.bank))
        .header(paygate::signature::HEADER, signature)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|err| format!("callback for {}: {err}", order.id))?;
    let status = answer.status();
    let text = answer.text().await.unwrap_or_default();
    let accepted = status == reqwest::StatusCode::OK
        && serde_json::from_str::<Value>(&text)
            .is_ok_and(|v| v["result"] == "accepted" && v["payment_status"] == "paid");
    if accepted {
        Ok(())
    } else {
        Err(format!("callback for {}: {status}: {text}", order.id))
    }
}
