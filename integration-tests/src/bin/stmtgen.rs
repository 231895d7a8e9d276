//! Test data for reconciliation and its benchmark.
//!
//! `stmtgen seed` writes paid orders and their callbacks straight into a database migrated by
//! paygate (set-based SQL: a million in well under a minute), and optionally pending orders
//! that a statement may pay. `stmtgen statement` writes a bank's daily statement (CSV) from the
//! callbacks recorded for that bank and day, streamed from the database (flat memory), with
//! chosen shares of lines turned into each reconciliation outcome, and prints the summary that
//! `paygate reconcile` should answer for it.
//!
//! ```sh
//! stmtgen seed --database-url "$DATABASE_URL" --bank VCB --payments 1000000 --date 2026-11-22 --pending 10000
//! stmtgen statement --database-url "$DATABASE_URL" --bank VCB --date 2026-11-22 --out vcb.csv \
//!     --share-recovered 0.005
//! paygate reconcile --bank VCB --date 2026-11-22 --statement vcb.csv
//! ```

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use integration_tests::world::OUTCOMES;
use serde_json::{json, Map, Value};
use time::{Date, OffsetDateTime};
use tokio_postgres::{Client, NoTls};

#[derive(Parser)]
#[command(about = "Seeds paid orders and writes bank statements for reconciliation tests")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inserts paid orders (ids seed_<BANK>_<i>, bank_txn_id FT<i>) with their callbacks, paid
    /// over one business day, and pending orders (ids seed_<BANK>_p<i>).
    Seed(SeedArgs),
    /// Writes the bank's statement for a day from its recorded callbacks, with errors mixed in.
    Statement(StatementArgs),
}

#[derive(clap::Args)]
struct SeedArgs {
    /// PostgreSQL URL of a database migrated by paygate.
    #[arg(long)]
    database_url: String,
    /// The bank's code; it is created when missing.
    #[arg(long)]
    bank: String,
    /// Paid orders to insert.
    #[arg(long)]
    payments: i64,
    /// The business day (Vietnam time, UTC+07:00) the orders are paid on.
    #[arg(long, value_parser = parse_date)]
    date: Date,
    /// Pending orders to insert (for a statement's recovered lines).
    #[arg(long, default_value_t = 0)]
    pending: i64,
    /// The first order number: seed another day of the same bank with numbers not used yet.
    #[arg(long, default_value_t = 1)]
    first: i64,
    /// The agency the orders belong to; it is created when missing.
    #[arg(long, default_value = "000.00.00.SEED")]
    agency: String,
}

#[derive(clap::Args)]
struct StatementArgs {
    /// PostgreSQL URL of the database paygate uses.
    #[arg(long)]
    database_url: String,
    /// The bank's code.
    #[arg(long)]
    bank: String,
    /// The business day (Vietnam time) of the statement.
    #[arg(long, value_parser = parse_date)]
    date: Date,
    /// Take at most this many of the day's recorded callbacks (default: all); the rest are
    /// absent from the statement, so they count as missing_in_bank.
    #[arg(long)]
    lines: Option<u64>,
    /// The CSV file to write.
    #[arg(long)]
    out: PathBuf,
    /// Share of records left out of the statement (missing_in_bank).
    #[arg(long, default_value_t = 0.01)]
    share_missing_in_bank: f64,
    /// Share of records whose amount the statement alters (mismatch).
    #[arg(long, default_value_t = 0.005)]
    share_mismatch: f64,
    /// Share of records written twice (the second line is duplicate_in_statement).
    #[arg(long, default_value_t = 0.005)]
    share_duplicate: f64,
    /// Share (of records) of extra lines that cannot be read (invalid_line).
    #[arg(long, default_value_t = 0.005)]
    share_invalid: f64,
    /// Share (of records) of extra lines for unknown payments (missing_in_gateway).
    #[arg(long, default_value_t = 0.01)]
    share_missing_in_gateway: f64,
    /// Share (of records) of extra lines paying pending orders seed_<BANK>_p<i> (recovered).
    #[arg(long, default_value_t = 0.0)]
    share_recovered: f64,
    /// Seed of the pseudo-random choices: the same seed and data give the same file.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn parse_date(text: &str) -> Result<Date, String> {
    Date::parse(text, time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|_| "must be a date YYYY-MM-DD".to_owned())
}

fn check_code(code: &str) -> Result<(), String> {
    let bytes = code.as_bytes();
    let ok = (2..=32).contains(&bytes.len())
        && (bytes[0].is_ascii_uppercase() || bytes[0].is_ascii_digit())
        && bytes[1..]
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b"._-".contains(b));
    if ok {
        Ok(())
    } else {
        Err(format!("{code}: a code must match ^[A-Z0-9][A-Z0-9._-]{{1,31}}$"))
    }
}

/// `seed_<BANK>_`, with the `.` a bank code may hold (but a payment id may not) made `-`.
fn id_prefix(bank: &str) -> String {
    format!("seed_{}_", bank.replace('.', "-"))
}

/// The start of the business day `date` in Vietnam time, as text PostgreSQL reads.
fn day_start(date: Date) -> String {
    format!("{date}T00:00:00+07:00")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Seed(args) => seed(args).await,
        Command::Statement(args) => statement(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("stmtgen: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn connect(url: &str) -> Result<Client, String> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|err| format!("cannot connect to the database: {err}"))?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            eprintln!("stmtgen: database connection: {err}");
        }
    });
    Ok(client)
}

fn db(err: tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => format!("database: {} ({})", db.message(), db.code().code()),
        None => format!("database: {err}"),
    }
}

/// The columns of a seeded order that depend on its number `i` and obligation index `k`
/// (`i % 6`): realistic amounts, descriptions, payers and valid details for each obligation.
const ORDER_COLUMNS: &str = "
    (ARRAY['fee', 'tax', 'social_insurance', 'fine', 'electricity', 'court_advance'])[k + 1],
    CASE k WHEN 0 THEN (10 + floor(random() * 191)) * 5000
           WHEN 1 THEN (500 + floor(random() * 49500)) * 1000
           WHEN 2 THEN (300 + floor(random() * 4700)) * 1000
           WHEN 3 THEN (4 + floor(random() * 197)) * 50000
           WHEN 4 THEN 80000 + floor(random() * 2920000)
           ELSE (3 + floor(random() * 198)) * 100000 END,
    (ARRAY['Lệ phí cấp đổi giấy phép lái xe', 'Nộp thuế thu nhập cá nhân',
           'Đóng bảo hiểm xã hội tự nguyện', 'Nộp phạt vi phạm hành chính giao thông',
           'Thanh toán tiền điện', 'Tạm ứng án phí dân sự sơ thẩm'])[k + 1],
    (ARRAY['Nguyễn Văn An', 'Trần Thị Bình', 'Lê Hoàng Cường', 'Phạm Thu Dung',
           'Hoàng Minh Đức', 'Vũ Thị Hà', 'Đặng Quốc Huy', 'Bùi Thanh Lan'])[i % 8 + 1],
    CASE WHEN i % 5 = 0 THEN NULL ELSE '0' || lpad((i * 7919 % 100000000000)::text, 11, '0') END,
    CASE k
        WHEN 0 THEN json_build_object('procedure_code', '1.00' || (2800 + i % 97),
                                      'dossier_code', 'H12.99-' || $4::text || '-' || lpad(i::text, 7, '0'))
        WHEN 1 THEN json_build_object('tax_code', lpad((i * 104729 % 10000000000)::text, 10, '0'),
                                      'tax_period', $5::text)
        WHEN 2 THEN json_build_object('insurance_code', lpad((i * 15485863 % 10000000000)::text, 10, '0'),
                                      'period', $5::text)
        WHEN 3 THEN json_build_object('decision_number', i || '/QĐ-XPHC',
                                      'violation_date', $6::text)
        WHEN 4 THEN json_build_object('customer_code', 'PD' || lpad((i % 100000000000)::text, 11, '0'),
                                      'billing_period', $5::text)
        ELSE json_build_object('case_number', i || '/2026/TLST-DS', 'court_code', 'TAND.' || (i % 63 + 1))
    END";

async fn seed(args: SeedArgs) -> Result<(), String> {
    check_code(&args.bank)?;
    check_code(&args.agency)?;
    if args.payments < 0 || args.pending < 0 || args.first < 1 {
        return Err("--payments and --pending must be >= 0, --first >= 1".to_owned());
    }
    let mut client = connect(&args.database_url).await?;
    let started = Instant::now();
    let prefix = id_prefix(&args.bank);
    let date = args.date;
    // Text parameters the details use: the day as YYMMDD, the previous month, a violation date.
    let yymmdd = format!("{:02}{:02}{:02}", date.year() % 100, u8::from(date.month()), date.day());
    let previous_month = date.replace_day(1).map_err(|e| e.to_string())?.previous_day();
    let previous_month = previous_month.map_or_else(
        || "2026-01".to_owned(),
        |d| format!("{:04}-{:02}", d.year(), u8::from(d.month())),
    );
    let violation = (date - time::Duration::days(10)).to_string();

    let tx = client.transaction().await.map_err(db)?;
    tx.execute(
        "INSERT INTO agencies (code, name, notify_secret)
         VALUES ($1, 'Cổng dịch vụ công (dữ liệu mẫu)', 'nsk_seed_' || md5(random()::text))
         ON CONFLICT (code) DO NOTHING",
        &[&args.agency],
    )
    .await
    .map_err(db)?;
    tx.execute(
        "INSERT INTO banks (code, name) VALUES ($1, 'Ngân hàng ' || $1) ON CONFLICT (code) DO NOTHING",
        &[&args.bank],
    )
    .await
    .map_err(db)?;

    // Paid orders, their paid_at spread evenly (with jitter) over the business day, each
    // created 1 to 180 minutes before it was paid; and one paying callback each.
    let paid = tx
        .execute(
            &format!(
                "WITH s AS (
                     SELECT g.i, g.i % 6 AS k,
                            $7::text::timestamptz + make_interval(secs => least(86399.999999,
                                ((g.i - $8) + random()) * 86400.0 / $9)) AS paid_at
                     FROM generate_series($8::bigint, $8::bigint + $9::bigint - 1) AS g(i)),
                 p AS (
                     INSERT INTO payments (id, agency_code, obligation, amount, description,
                         payer_name, payer_id_number, details, reference, currency, status,
                         created_at, expires_at, paid_at, bank_code, bank_txn_id, closed_at)
                     SELECT $2::text || i, $1::text, {ORDER_COLUMNS}, $2::text || i, 'VND', 'paid',
                            paid_at - make_interval(mins => 1 + (i % 180)::int),
                            paid_at - make_interval(mins => 1 + (i % 180)::int) + interval '1 day',
                            paid_at, $3::text, 'FT' || i, paid_at + interval '2 seconds'
                     FROM s
                     RETURNING id, amount, paid_at, bank_txn_id, closed_at)
                 INSERT INTO bank_callbacks (bank_code, bank_txn_id, payment_id, amount, currency,
                     status, paid_at, outcome, source, received_at)
                 SELECT $3::text, bank_txn_id, id, amount, 'VND', 'succeeded', paid_at, 'paid',
                        'callback', closed_at
                 FROM p"
            ),
            &[
                &args.agency,
                &prefix,
                &args.bank,
                &yymmdd,
                &previous_month,
                &violation,
                &day_start(date),
                &args.first,
                &args.payments,
            ],
        )
        .await
        .map_err(db)?;
    // Pending orders, created before the business day starts (so a statement may pay them on
    // that day) and open for 30 days after it or after now, whichever is later.
    let pending = tx
        .execute(
            &format!(
                "INSERT INTO payments (id, agency_code, obligation, amount, description,
                     payer_name, payer_id_number, details, reference, currency, status,
                     created_at, expires_at)
                 SELECT $2::text || 'p' || i, $1::text, {ORDER_COLUMNS}, $2::text || 'p' || i,
                        'VND', 'pending',
                        least(now(), $8::text::timestamptz) - interval '1 hour',
                        greatest(now(), $8::text::timestamptz + interval '1 day') + interval '30 days'
                 FROM (SELECT g.i, g.i % 6 AS k
                       FROM generate_series($3::bigint, $3::bigint + $7::bigint - 1) AS g(i)) s"
            ),
            &[
                &args.agency,
                &prefix,
                &args.first,
                &yymmdd,
                &previous_month,
                &violation,
                &args.pending,
                &day_start(date),
            ],
        )
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)?;
    client.batch_execute("ANALYZE payments; ANALYZE bank_callbacks").await.map_err(db)?;
    let last = args.first + args.payments.max(args.pending) - 1;
    eprintln!(
        "stmtgen: seeded {paid} paid orders {prefix}{first}..{prefix}{last_paid} (bank_txn_id FT{first}..) \
         paid on {date} (UTC+07:00), and {pending} pending orders {prefix}p{first}.., in {:.1} s; \
         next --first {next}",
        started.elapsed().as_secs_f64(),
        first = args.first,
        last_paid = args.first + args.payments - 1,
        next = last + 1,
    );
    Ok(())
}

/// A small, fast, seedable generator (SplitMix64): the file depends only on `--seed` and data.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Default, Clone, Copy)]
struct Tally {
    count: u64,
    amount: u128,
}

struct Expected([Tally; 7]);

impl Expected {
    fn add(&mut self, outcome: &str, amount: i64) {
        let index = OUTCOMES.iter().position(|o| *o == outcome).expect("a known outcome");
        self.0[index].count += 1;
        self.0[index].amount += amount as u128;
    }

    fn to_json(&self) -> Value {
        let mut summary = Map::new();
        for (outcome, tally) in OUTCOMES.iter().zip(self.0.iter()) {
            summary.insert(
                (*outcome).to_owned(),
                json!({"count": tally.count, "amount": tally.amount.to_string()}),
            );
        }
        Value::Object(summary)
    }
}

/// Rows fetched per round trip from the server-side cursors.
const FETCH_ROWS: i32 = 10_000;

/// Pending orders a statement may pay, fetched a page at a time (keyset on `seq`).
struct PendingOrders {
    prefix: String,
    after_seq: i64,
    page: std::vec::IntoIter<(String, i64)>,
    exhausted: bool,
}

impl PendingOrders {
    async fn next(
        &mut self,
        client: &tokio_postgres::Transaction<'_>,
    ) -> Result<Option<(String, i64)>, String> {
        if let Some(order) = self.page.next() {
            return Ok(Some(order));
        }
        if self.exhausted {
            return Ok(None);
        }
        let rows = client
            .query(
                "SELECT id, amount::int8, seq FROM payments
                 WHERE status = 'pending' AND expires_at > now() + interval '1 hour'
                   AND starts_with(id, $1) AND seq > $2
                 ORDER BY seq LIMIT 1000",
                &[&self.prefix, &self.after_seq],
            )
            .await
            .map_err(db)?;
        if rows.len() < 1000 {
            self.exhausted = true;
        }
        if let Some(last) = rows.last() {
            self.after_seq = last.get(2);
        }
        self.page = rows
            .iter()
            .map(|row| (row.get::<_, String>(0), row.get::<_, i64>(1)))
            .collect::<Vec<_>>()
            .into_iter();
        Ok(self.page.next())
    }
}

fn format_micros(micros: i64) -> Result<String, String> {
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
        .map_err(|e| e.to_string())?;
    Ok(paygate::timefmt::format_utc(at))
}

async fn statement(args: StatementArgs) -> Result<(), String> {
    check_code(&args.bank)?;
    let shares = [
        ("--share-missing-in-bank", args.share_missing_in_bank),
        ("--share-mismatch", args.share_mismatch),
        ("--share-duplicate", args.share_duplicate),
        ("--share-invalid", args.share_invalid),
        ("--share-missing-in-gateway", args.share_missing_in_gateway),
        ("--share-recovered", args.share_recovered),
    ];
    for (name, share) in shares {
        if !(0.0..=1.0).contains(&share) {
            return Err(format!("{name} must be between 0 and 1"));
        }
    }
    if args.share_missing_in_bank + args.share_mismatch + args.share_duplicate > 1.0 {
        return Err("the shares of records left out, altered and repeated exceed 1".to_owned());
    }
    let started = Instant::now();
    let mut client = connect(&args.database_url).await?;
    let file = File::create(&args.out)
        .map_err(|err| format!("cannot create {}: {err}", args.out.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let io = |err: std::io::Error| format!("cannot write the statement: {err}");
    writeln!(out, "bank_txn_id,payment_id,amount,paid_at,currency").map_err(io)?;

    let day = day_start(args.date);
    let tx = client.transaction().await.map_err(db)?;
    // paid_at as microseconds since the epoch: exact, and cheap to format here.
    let records = tx
        .prepare(
            "SELECT c.bank_txn_id, c.payment_id, c.amount::int8,
                    (extract(epoch FROM c.paid_at) * 1000000)::int8,
                    EXISTS (SELECT 1 FROM reconciled_transactions r
                            WHERE r.bank_code = c.bank_code AND r.bank_txn_id = c.bank_txn_id)
             FROM bank_callbacks c
             WHERE c.bank_code = $1 AND c.outcome IN ('paid', 'exception')
               AND c.paid_at >= $2::text::timestamptz
               AND c.paid_at < $2::text::timestamptz + interval '1 day'
             ORDER BY c.paid_at, c.id",
        )
        .await
        .map_err(db)?;
    let portal = tx.bind(&records, &[&args.bank, &day]).await.map_err(db)?;
    let day_micros: i64 = tx
        .query_one("SELECT (extract(epoch FROM $1::text::timestamptz) * 1000000)::int8", &[&day])
        .await
        .map_err(db)?
        .get(0);

    let mut rng = Rng(args.seed);
    let mut expected = Expected([Tally::default(); 7]);
    let mut pending = PendingOrders {
        prefix: format!("{}p", id_prefix(&args.bank)),
        after_seq: 0,
        page: Vec::new().into_iter(),
        exhausted: false,
    };
    let date_tag = args.date.to_string().replace('-', "");
    let limit = args.lines.unwrap_or(u64::MAX);
    let (mut records_read, mut taken, mut lines, mut extra) = (0u64, 0u64, 0u64, 0u64);
    let mut pending_ran_out = false;
    loop {
        let rows = tx.query_portal(&portal, FETCH_ROWS).await.map_err(db)?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            records_read += 1;
            let bank_txn_id: &str = row.get(0);
            let payment_id: &str = row.get(1);
            let amount: i64 = row.get(2);
            let micros: i64 = row.get(3);
            let reconciled: bool = row.get(4);
            if taken >= limit {
                if !reconciled {
                    expected.add("missing_in_bank", amount);
                }
                continue;
            }
            taken += 1;
            let paid_at = format_micros(micros)?;
            let u = rng.next_f64();
            if u < args.share_missing_in_bank {
                // A record already matched by an earlier run is a timing difference, not a gap.
                if !reconciled {
                    expected.add("missing_in_bank", amount);
                }
            } else if u < args.share_missing_in_bank + args.share_mismatch {
                let altered = amount + 1000;
                writeln!(out, "{bank_txn_id},{payment_id},{altered},{paid_at},VND").map_err(io)?;
                lines += 1;
                expected.add("mismatch", altered);
            } else {
                let line = format!("{bank_txn_id},{payment_id},{amount},{paid_at},VND\n");
                out.write_all(line.as_bytes()).map_err(io)?;
                lines += 1;
                expected.add("matched", amount);
                if u < args.share_missing_in_bank + args.share_mismatch + args.share_duplicate {
                    out.write_all(line.as_bytes()).map_err(io)?;
                    lines += 1;
                    expected.add("duplicate_in_statement", amount);
                }
            }
            // Extra lines, after this record, at the same time of day.
            if rng.next_f64() < args.share_invalid {
                extra += 1;
                writeln!(out, "FTBAD{date_tag}-{extra},{payment_id},12O000,{paid_at},VND")
                    .map_err(io)?;
                lines += 1;
                expected.add("invalid_line", 0);
            }
            if rng.next_f64() < args.share_missing_in_gateway {
                extra += 1;
                let prefix = id_prefix(&args.bank);
                writeln!(
                    out,
                    "FTX{date_tag}-{extra},{prefix}x{date_tag}-{extra},{amount},{paid_at},VND"
                )
                .map_err(io)?;
                lines += 1;
                expected.add("missing_in_gateway", amount);
            }
            if rng.next_f64() < args.share_recovered && !pending_ran_out {
                match pending.next(&tx).await? {
                    Some((order_id, order_amount)) => {
                        // FTP<i> for the order seed_<BANK>_p<i>: never a seeded FT<i>.
                        let number =
                            order_id.strip_prefix(pending.prefix.as_str()).unwrap_or(&order_id);
                        // A minute later than the record, still on the same day.
                        let at = (micros + 60_000_000).min(day_micros + 86_400_000_000 - 1);
                        writeln!(
                            out,
                            "FTP{number},{order_id},{order_amount},{},VND",
                            format_micros(at)?
                        )
                        .map_err(io)?;
                        lines += 1;
                        expected.add("recovered", order_amount);
                    }
                    None => pending_ran_out = true,
                }
            }
        }
    }
    drop(portal);
    tx.commit().await.map_err(db)?;
    out.flush().map_err(io)?;
    if pending_ran_out {
        eprintln!(
            "stmtgen: warning: ran out of pending orders {}p<i> (seed more with --pending): \
             fewer recovered lines than asked",
            id_prefix(&args.bank)
        );
    }
    if records_read == 0 {
        eprintln!("stmtgen: warning: no callbacks of {} recorded on {}", args.bank, args.date);
    }
    eprintln!(
        "stmtgen: wrote {lines} lines to {} from {taken} of {records_read} recorded callbacks in {:.2} s",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    // What `paygate reconcile` should answer, provided no other statement lines or runs touch
    // this bank's day in between.
    let report = json!({
        "bank": args.bank,
        "date": args.date.to_string(),
        "statement_lines": lines,
        "summary": expected.to_json(),
    });
    println!("{}", serde_json::to_string_pretty(&report).expect("JSON serialises"));
    Ok(())
}
