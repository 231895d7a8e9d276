//! The `paygate` binary as an operator runs it: the embedded default database, the commands
//! that docs/operating.md describes, and configuration errors.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

mod common;

use common::{DataDir, Server, PAYGATE};

fn run(mut command: Command) -> Output {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Stops the server with SIGTERM, as Kubernetes does; it must exit cleanly.
fn assert_terminates_cleanly(server: Server) {
    let status = server.terminate();
    assert!(status.success(), "serve exited with {status}");
}

fn owner_uid(path: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().uid()
}

#[tokio::test]
async fn the_embedded_default_serves_shares_its_cluster_and_keeps_data_across_restarts() {
    let data = DataDir::new("paygate-cli");
    let server = Server::start(&data).await;
    if unsafe { libc::geteuid() } == 0 {
        assert_ne!(
            owner_uid(&data.0.join("postgres")),
            0,
            "the cluster does not belong to root"
        );
    }

    // A second command while serve is up uses the same cluster, and leaves it running.
    let output = run(data.command(&["admin", "create-key", "--role", "admin"]));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let key = stdout.lines().last().unwrap().to_owned();
    assert!(key.starts_with("pgk_"), "{stdout}");
    let http = reqwest::Client::new();
    let response = http
        .post(format!("{}/v1/banks", server.base))
        .bearer_auth(&key)
        .json(&serde_json::json!({"code": "VCB", "name": "Vietcombank"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        201,
        "the running server accepts the new key"
    );

    // The process that started the cluster stops it on a clean shutdown.
    assert_terminates_cleanly(server);
    assert!(
        !data.pid_file().exists(),
        "the cluster was stopped with serve"
    );

    // A crash leaves postmaster.pid behind, and its PID may since belong to another process
    // (here: this test). That must not block the next start.
    std::fs::write(
        data.pid_file(),
        format!(
            "{}\n{}\n",
            std::process::id(),
            data.0.join("postgres").display()
        ),
    )
    .unwrap();
    let server = Server::start(&data).await;
    let response = http
        .get(format!("{}/v1/banks/VCB", server.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "the key and the bank survived the restart"
    );
    assert_terminates_cleanly(server);
}

#[test]
fn a_command_alone_starts_the_cluster_and_stops_it_when_done() {
    let data = DataDir::new("paygate-cli");
    run(data.command(&["migrate"]));
    assert!(data.0.join("postgres/PG_VERSION").exists());
    assert!(!data.pid_file().exists(), "the cluster was stopped again");
    let output = run(data.command(&["admin", "create-key", "--role", "auditor"]));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        stdout.lines().count(),
        1,
        "stdout carries only the key: {stdout}"
    );
    assert!(stdout.starts_with("pgk_"));
}

/// Runs `paygate sign --kid VCB --timestamp 1700000000 <args>` on the body `{"a":1}`, with
/// `PAYGATE_SIGN_SECRET` set to `variable` (or unset).
fn sign_with(args: &[&str], variable: Option<&str>) -> Output {
    use std::io::Write;
    let mut command = Command::new(PAYGATE);
    command
        .args(["sign", "--kid", "VCB", "--timestamp", "1700000000"])
        .args(args)
        .env_remove("PAYGATE_SIGN_SECRET")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(secret) = variable {
        command.env("PAYGATE_SIGN_SECRET", secret);
    }
    let mut child = command.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"a":1}"#)
        .unwrap();
    child.wait_with_output().unwrap()
}

/// The header `paygate sign` must print for `{"a":1}` signed with `secret`.
fn expected_header(secret: &[u8]) -> String {
    let header = paygate::signature::sign(secret, "VCB", 1_700_000_000, br#"{"a":1}"#);
    assert!(header.starts_with("t=1700000000,kid=VCB,v1="));
    format!("{header}\n")
}

/// A file in the system's temporary directory holding `content`, removed when dropped.
struct SecretFile(std::path::PathBuf);

impl SecretFile {
    fn new(content: &[u8]) -> SecretFile {
        let path = std::env::temp_dir().join(paygate::domain::ids::random_id("paygate-secret", 6));
        std::fs::write(&path, content).unwrap();
        SecretFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for SecretFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn assert_refused(output: &Output, needles: &[&str]) {
    assert!(!output.status.success(), "{output:?}");
    assert_ne!(output.status.code(), Some(0));
    assert!(output.stdout.is_empty(), "nothing is printed: {output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    for needle in needles {
        assert!(stderr.contains(needle), "{needle:?} in {stderr}");
    }
}

#[test]
fn sign_prints_the_signature_header_for_stdin() {
    let output = sign_with(&["--secret", "bsk_test_secret"], None);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        expected_header(b"bsk_test_secret")
    );
}

#[test]
fn sign_reads_the_secret_from_the_environment_or_a_file_with_the_same_result() {
    let from_variable = sign_with(&[], Some("bsk_test_secret"));
    assert!(from_variable.status.success(), "{from_variable:?}");
    assert_eq!(
        String::from_utf8(from_variable.stdout).unwrap(),
        expected_header(b"bsk_test_secret")
    );
    // One trailing newline (as `echo` and editors write it) is not part of the secret; a
    // second one, or other white space, is.
    for (content, secret) in [
        (&b"bsk_test_secret"[..], &b"bsk_test_secret"[..]),
        (b"bsk_test_secret\n", b"bsk_test_secret"),
        (b"bsk_test_secret\r\n", b"bsk_test_secret"),
        (b"bsk_test_secret\n\n", b"bsk_test_secret\n"),
        (b" bsk_test_secret \n", b" bsk_test_secret "),
    ] {
        let file = SecretFile::new(content);
        let output = sign_with(&["--secret-file", file.path()], None);
        assert!(output.status.success(), "{content:?}: {output:?}");
        assert_eq!(
            String::from_utf8(output.stdout).unwrap(),
            expected_header(secret),
            "{content:?}"
        );
    }
}

#[test]
fn sign_without_a_secret_fails_and_names_the_ways_to_give_one() {
    let output = sign_with(&[], None);
    assert_refused(
        &output,
        &["no secret given", "PAYGATE_SIGN_SECRET", "--secret-file"],
    );
}

#[test]
fn sign_with_two_secrets_fails_and_names_both() {
    let file = SecretFile::new(b"bsk_test_secret\n");
    for (args, variable, named) in [
        (
            vec!["--secret", "bsk_test_secret"],
            Some("bsk_test_secret"),
            ["--secret", "PAYGATE_SIGN_SECRET"],
        ),
        (
            vec!["--secret-file", file.path()],
            Some("bsk_test_secret"),
            ["--secret-file", "PAYGATE_SIGN_SECRET"],
        ),
        (
            vec!["--secret", "bsk_test_secret", "--secret-file", file.path()],
            None,
            ["--secret", "--secret-file"],
        ),
    ] {
        let output = sign_with(&args, variable);
        assert_refused(&output, &["exactly one", named[0], named[1]]);
    }
}

#[test]
fn sign_with_an_empty_or_unreadable_secret_fails() {
    let empty = SecretFile::new(b"\n");
    let missing = std::env::temp_dir().join("paygate-no-such-secret-file");
    for (args, variable, needle) in [
        (vec![], Some(""), "empty"),
        (vec!["--secret", ""], None, "empty"),
        (vec!["--secret-file", empty.path()], None, "empty"),
        (
            vec!["--secret-file", missing.to_str().unwrap()],
            None,
            "cannot read --secret-file",
        ),
    ] {
        let output = sign_with(&args, variable);
        assert_refused(&output, &[needle]);
    }
}

#[test]
fn sign_help_calls_secret_the_least_safe_way() {
    let output = Command::new(PAYGATE)
        .args(["sign", "--help"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for needle in ["--secret-file", "PAYGATE_SIGN_SECRET", "least safe", "ps"] {
        assert!(help.contains(needle), "{needle:?} in {help}");
    }
}

#[test]
fn a_bad_configuration_value_stops_the_process_with_one_line_naming_it() {
    for (variable, value) in [
        ("PAYGATE_LISTEN", "nowhere"),
        ("PAYGATE_SIGNATURE_TOLERANCE_S", "abc"),
        ("PAYGATE_NOTIFY_BACKOFF_S", "10,x"),
        ("PAYGATE_NOTIFY_ALLOW_PRIVATE", "perhaps"),
        ("DATABASE_URL", "postgres://u:pw@h:notaport/db"),
    ] {
        let output = Command::new(PAYGATE)
            .args(["migrate"])
            .env(variable, value)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{variable}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(variable), "{stderr}");
        assert!(output.stdout.is_empty());
    }
}

/// Every command and subcommand as its words on the command line, read from the parser itself,
/// so that a new command is covered the day it is added.
fn command_paths() -> Vec<Vec<String>> {
    fn walk(command: &clap::Command, prefix: &[String], paths: &mut Vec<Vec<String>>) {
        for sub in command.get_subcommands() {
            let mut path = prefix.to_vec();
            path.push(sub.get_name().to_owned());
            paths.push(path.clone());
            walk(sub, &path, paths);
        }
    }
    let mut paths = vec![Vec::new()];
    walk(
        &<paygate::cli::Cli as clap::CommandFactory>::command(),
        &[],
        &mut paths,
    );
    paths
}

#[test]
fn every_command_has_help() {
    let paths = command_paths();
    for expected in [
        "serve",
        "migrate",
        "admin create-key",
        "sign",
        "reconcile",
        "openapi",
    ] {
        assert!(
            paths.iter().any(|path| path.join(" ") == expected),
            "{expected} is a command: {paths:?}"
        );
    }
    for path in paths {
        let output = Command::new(PAYGATE)
            .args(&path)
            .arg("--help")
            .output()
            .unwrap();
        assert!(output.status.success(), "{path:?}");
        let help = String::from_utf8(output.stdout).unwrap();
        assert!(help.contains("Usage"), "{path:?}: {help}");
    }
}

#[test]
fn openapi_prints_the_checked_in_document() {
    let mut command = Command::new(PAYGATE);
    command.arg("openapi");
    let output = run(command);
    let checked_in =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json"))
            .unwrap();
    let printed = String::from_utf8(output.stdout).unwrap();
    assert!(
        printed == checked_in,
        "openapi/openapi.json differs from `paygate openapi`; regenerate it with \
         `cargo run -q -- openapi > openapi/openapi.json`"
    );
    let document: serde_json::Value = serde_json::from_str(&printed).unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
}

/// The header row of every statement.
const STATEMENT_HEADER: &str = "bank_txn_id,payment_id,amount,paid_at,currency";
/// The header row of a CSV report.
const REPORT_HEADER: &str =
    "outcome,line,bank_txn_id,payment_id,statement_amount,gateway_amount,detail";

/// A served embedded database with an agency and a bank, as an operator and the parties would
/// set it up: the admin key from the command line, the rest through the API.
struct Parties {
    server: Server,
    http: reqwest::Client,
    admin_key: String,
    agency_key: String,
    bank_kid: String,
    bank_secret: String,
}

impl Parties {
    async fn new(data: &DataDir) -> Parties {
        let output = run(data.command(&["admin", "create-key", "--role", "admin"]));
        let admin_key = String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .last()
            .unwrap()
            .to_owned();
        let server = Server::start(data).await;
        let http = reqwest::Client::new();
        let agency = http
            .post(format!("{}/v1/agencies", server.base))
            .bearer_auth(&admin_key)
            .json(&serde_json::json!({"code": "000.00.00.H12", "name": "Sở Tư pháp"}))
            .send()
            .await
            .unwrap();
        assert_eq!(agency.status(), 201);
        let agency: serde_json::Value = agency.json().await.unwrap();
        let bank = http
            .post(format!("{}/v1/banks", server.base))
            .bearer_auth(&admin_key)
            .json(&serde_json::json!({"code": "VCB", "name": "Vietcombank"}))
            .send()
            .await
            .unwrap();
        assert_eq!(bank.status(), 201);
        let bank: serde_json::Value = bank.json().await.unwrap();
        Parties {
            server,
            http,
            admin_key,
            agency_key: agency["api_key"].as_str().unwrap().to_owned(),
            bank_kid: bank["key_id"].as_str().unwrap().to_owned(),
            bank_secret: bank["secret"].as_str().unwrap().to_owned(),
        }
    }

    /// Creates a pending `fee` order of 150000; returns its id.
    async fn order(&self, reference: &str) -> String {
        let response = self
            .http
            .post(format!("{}/v1/payments", self.server.base))
            .bearer_auth(&self.agency_key)
            .header("Idempotency-Key", reference)
            .json(&serde_json::json!({
                "obligation": "fee",
                "reference": reference,
                "amount": "150000",
                "currency": "VND",
                "description": "Lệ phí cấp đổi giấy phép lái xe",
                "payer": {"name": "Nguyễn Văn A"},
                "details": {"procedure_code": "1.002804", "dossier_code": reference},
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let payment: serde_json::Value = response.json().await.unwrap();
        payment["id"].as_str().unwrap().to_owned()
    }

    /// Delivers the bank's signed `succeeded` callback, which must be accepted.
    async fn pay(&self, bank_txn_id: &str, payment_id: &str, paid_at: &str) {
        let body = serde_json::to_vec(&serde_json::json!({
            "bank_txn_id": bank_txn_id, "payment_id": payment_id, "amount": "150000",
            "currency": "VND", "status": "succeeded", "paid_at": paid_at,
        }))
        .unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let signature =
            paygate::signature::sign(self.bank_secret.as_bytes(), &self.bank_kid, now, &body);
        let response = self
            .http
            .post(format!("{}/v1/banks/VCB/callbacks", self.server.base))
            .header("Content-Type", "application/json")
            .header("Paygate-Signature", signature)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let answer: serde_json::Value = response.json().await.unwrap();
        assert_eq!(answer["result"], "accepted", "{answer}");
    }

    async fn payment(&self, id: &str) -> serde_json::Value {
        self.http
            .get(format!("{}/v1/payments/{id}", self.server.base))
            .bearer_auth(&self.admin_key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// Now, whole seconds, as RFC 3339 in UTC, and its business day (the date in Vietnam time).
fn now_and_business_day() -> (String, String) {
    use time::format_description::well_known::Rfc3339;
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap();
    let vietnam = time::UtcOffset::from_hms(7, 0, 0).unwrap();
    let date = now.to_offset(vietnam).date();
    let day = format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    );
    (now.format(&Rfc3339).unwrap(), day)
}

/// `paygate reconcile` of bank VCB on `day`; returns the printed run.
fn reconcile(
    data: &DataDir,
    day: &str,
    statement: &Path,
    out: &Path,
    format: &str,
) -> serde_json::Value {
    let output = run(data.command(&[
        "reconcile",
        "--bank",
        "VCB",
        "--date",
        day,
        "--statement",
        statement.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--format",
        format,
    ]));
    let run: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "{err}: stdout is the run as JSON: {}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    assert_eq!(run["bank"], "VCB", "{run}");
    assert_eq!(run["date"], day, "{run}");
    assert_eq!(run["statement_lines"], 2, "{run}");
    run
}

/// The count and amount of `outcome` in a run's summary.
fn outcome_total(run: &serde_json::Value, outcome: &str) -> (i64, String) {
    let total = &run["summary"][outcome];
    (
        total["count"].as_i64().unwrap(),
        total["amount"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn reconcile_prints_the_run_writes_the_report_and_recovers_a_lost_callback() {
    let data = DataDir::new("paygate-cli-reconcile");
    let parties = Parties::new(&data).await;
    let reported = parties.order("H12-CLI-1").await;
    let lost = parties.order("H12-CLI-2").await;
    // A bank's time of payment may not come before its order was created.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (paid_at, day) = now_and_business_day();
    parties.pay("FT-CLI-1", &reported, &paid_at).await;
    let statement = data.0.join("statement.csv");
    std::fs::write(
        &statement,
        format!(
            "{STATEMENT_HEADER}\nFT-CLI-1,{reported},150000,{paid_at},VND\n\
             FT-CLI-2,{lost},150000,{paid_at},VND\n"
        ),
    )
    .unwrap();

    // The command line is trusted like an admin key: it recovers the lost callback.
    let json_report = data.0.join("report.json");
    let first = reconcile(&data, &day, &statement, &json_report, "json");
    assert_eq!(outcome_total(&first, "matched"), (1, "150000".to_owned()));
    assert_eq!(outcome_total(&first, "recovered"), (1, "150000".to_owned()));
    let items: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_report).unwrap()).unwrap();
    let items = items.as_array().unwrap();
    let brief: Vec<(&str, &str, &str)> = items
        .iter()
        .map(|item| {
            (
                item["outcome"].as_str().unwrap(),
                item["bank_txn_id"].as_str().unwrap(),
                item["payment_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        brief,
        [
            ("matched", "FT-CLI-1", reported.as_str()),
            ("recovered", "FT-CLI-2", lost.as_str())
        ]
    );
    let payment = parties.payment(&lost).await;
    assert_eq!(payment["status"], "paid", "{payment}");
    assert_eq!(payment["bank_txn_id"], "FT-CLI-2");
    assert_eq!(payment["paid_at"], paid_at.as_str());

    // The same statement again recovers nothing twice: both lines now match.
    let csv_report = data.0.join("report.csv");
    let second = reconcile(&data, &day, &statement, &csv_report, "csv");
    assert_ne!(second["id"], first["id"]);
    assert_eq!(outcome_total(&second, "matched"), (2, "300000".to_owned()));
    assert_eq!(outcome_total(&second, "recovered"), (0, "0".to_owned()));
    let report = std::fs::read_to_string(&csv_report).unwrap();
    let mut lines = report.lines();
    assert_eq!(lines.next(), Some(REPORT_HEADER), "{report}");
    let records: Vec<Vec<&str>> = lines.map(|line| line.split(',').collect()).collect();
    assert_eq!(records.len(), 2, "{report}");
    for (record, (line, txn, id)) in records
        .iter()
        .zip([("2", "FT-CLI-1", &reported), ("3", "FT-CLI-2", &lost)])
    {
        assert_eq!(
            record[..6],
            ["matched", line, txn, id, "150000", "150000"],
            "{report}"
        );
    }
    assert_terminates_cleanly(parties.server);
}

#[test]
fn reconcile_refuses_to_start_while_migrations_are_pending_and_applies_none() {
    let data = DataDir::new("paygate-cli-unmigrated");
    let statement = data.0.join("statement.csv");
    std::fs::write(&statement, format!("{STATEMENT_HEADER}\n")).unwrap();
    let out = data.0.join("report.csv");

    let output = data
        .command(&[
            "reconcile",
            "--bank",
            "VCB",
            "--date",
            "2026-11-22",
            "--statement",
            statement.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();

    assert_refused(&output, &["pending migrations", "paygate migrate"]);
    assert!(!out.exists(), "no report was written");
    // Every migration is still pending: `paygate migrate` applies them now.
    let migrated = run(data.command(&["migrate"]));
    let log = String::from_utf8_lossy(&migrated.stderr);
    assert!(log.contains("applied migration"), "{log}");
}

#[tokio::test]
async fn create_key_labels_the_key_and_an_invalid_label_creates_nothing() {
    let data = DataDir::new("paygate-cli-label");
    for label in [String::new(), "ệ".repeat(65)] {
        let output = data
            .command(&["admin", "create-key", "--role", "admin", "--label", &label])
            .output()
            .unwrap();
        assert!(!output.status.success(), "--label {label:?} was accepted");
        assert!(output.stdout.is_empty(), "no key printed");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--label"), "{stderr}");
    }
    let label = "Quản trị viên Lê Thị D";
    let output = run(data.command(&["admin", "create-key", "--role", "admin", "--label", label]));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let key = stdout.lines().last().unwrap().to_owned();
    assert!(key.starts_with("pgk_"), "{stdout}");

    let server = Server::start(&data).await;
    let page: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/v1/api-keys", server.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "only the valid command made a key: {page}");
    assert_eq!(items[0]["label"], label);
    assert_eq!(items[0]["role"], "admin");
    assert_terminates_cleanly(server);
}
