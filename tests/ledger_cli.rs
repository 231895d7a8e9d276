//! The ledger commands as an operator or an outside auditor runs them against a served
//! embedded database: `paygate ledger checkpoint`, `paygate ledger verify [--checkpoint FILE]`
//! and `paygate ledger rotate-key`.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod common;

use common::{DataDir, Server};

/// `paygate <args>` on the data directory, with the seal key from the data directory.
fn paygate(data: &DataDir, args: &[&str]) -> Output {
    let mut command: Command = data.command(args);
    command
        .env_remove("PAYGATE_SEAL_KEY")
        .env_remove("PAYGATE_SEAL_PREVIOUS_KEYS");
    command.output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The verdict `paygate ledger verify` printed: one JSON document on stdout.
fn verdict(output: &Output) -> Value {
    serde_json::from_str(stdout(output).trim())
        .unwrap_or_else(|err| panic!("{err}: {}{}", stdout(output), stderr(output)))
}

/// A served data directory with an admin key and one paid order, sealed.
struct Sealed {
    data: DataDir,
    server: Server,
    http: reqwest::Client,
    admin_key: String,
}

impl Sealed {
    async fn new() -> Sealed {
        let data = DataDir::new("paygate-seals");
        let output = paygate(&data, &["admin", "create-key", "--role", "admin"]);
        assert!(output.status.success(), "{}", stderr(&output));
        let admin_key = stdout(&output).lines().last().unwrap().to_owned();
        // Nothing is sealed before the first transaction: there is no checkpoint to print.
        let output = paygate(&data, &["ledger", "checkpoint"]);
        assert!(!output.status.success());
        assert!(stderr(&output).contains("no seal"), "{}", stderr(&output));
        assert_eq!(stdout(&output), "");

        let server = Server::start(&data).await;
        let http = reqwest::Client::new();
        let sealed = Sealed {
            data,
            server,
            http,
            admin_key,
        };
        sealed.pay_one_order().await;
        sealed.wait_for_a_seal().await;
        sealed
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}{path}", self.server.base))
            .bearer_auth(&self.admin_key)
            .header("Idempotency-Key", "seal-test-order")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{path}");
        response.json().await.unwrap()
    }

    async fn pay_one_order(&self) {
        let agency = self
            .post(
                "/v1/agencies",
                json!({"code": "000.00.00.H12", "name": "Sở Tư pháp"}),
            )
            .await;
        let bank = self
            .post("/v1/banks", json!({"code": "VCB", "name": "Vietcombank"}))
            .await;
        let response = self
            .http
            .post(format!("{}/v1/payments", self.server.base))
            .bearer_auth(agency["api_key"].as_str().unwrap())
            .header("Idempotency-Key", "H12-SEAL-CLI")
            .json(&json!({
                "obligation": "fee", "reference": "H12-SEAL-CLI", "amount": "150000",
                "currency": "VND", "description": "Lệ phí", "payer": {"name": "Nguyễn Văn A"},
                "details": {"procedure_code": "1.002804", "dossier_code": "H12-SEAL-CLI"},
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let payment: Value = response.json().await.unwrap();
        let body = serde_json::to_vec(&json!({
            "bank_txn_id": "FT-SEAL-CLI", "payment_id": payment["id"], "amount": "150000",
            "currency": "VND", "status": "succeeded",
            "paid_at": time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap(),
        }))
        .unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let signature = paygate::signature::sign(
            bank["secret"].as_str().unwrap().as_bytes(),
            bank["key_id"].as_str().unwrap(),
            now,
            &body,
        );
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
    }

    /// Waits until the server's sealer (every 2 s by default) has sealed the transaction.
    async fn wait_for_a_seal(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let page: Value = self
                .http
                .get(format!("{}/v1/ledger/seals", self.server.base))
                .bearer_auth(&self.admin_key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if !page["items"].as_array().unwrap().is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nothing sealed: {}",
                self.data.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Runs `sql` as the embedded cluster's superuser with every trigger off.
    async fn behind_paygates_back(&self, sql: &str) {
        let mut settings = tokio_postgres::Config::new();
        settings
            .host_path(self.data.0.join("postgres"))
            .port(5432)
            .user("postgres")
            .dbname("paygate");
        let (mut client, connection) = settings.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        let transaction = client.transaction().await.unwrap();
        transaction
            .batch_execute("SET LOCAL session_replication_role = replica")
            .await
            .unwrap();
        transaction.batch_execute(sql).await.unwrap();
        transaction.commit().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_verifies_until_the_ledger_is_tampered_with_and_then_verify_exits_non_zero() {
    let sealed = Sealed::new().await;
    let data = &sealed.data;

    let output = paygate(data, &["ledger", "checkpoint"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let line = stdout(&output);
    assert_eq!(line.lines().count(), 1, "one JSON line: {line}");
    let checkpoint: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(checkpoint["seq"], 1, "{checkpoint}");
    assert_eq!(checkpoint["signature"].as_str().unwrap().len(), 128);
    let file = data.0.join("checkpoint.json");
    std::fs::write(&file, &line).unwrap();
    let file = file.display().to_string();

    let output = paygate(data, &["ledger", "verify"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let sound = verdict(&output);
    assert_eq!(sound["ok"], true, "{sound}");
    assert!(sound["seals"].as_i64().unwrap() >= 1, "{sound}");

    let output = paygate(data, &["ledger", "verify", "--checkpoint", &file]);
    assert!(output.status.success(), "{}", stderr(&output));
    let against = verdict(&output);
    assert_eq!(against["checkpoint"]["ok"], true, "{against}");
    assert_eq!(against["checkpoint"]["seq"], checkpoint["seq"]);
    assert_eq!(against["checkpoint"]["hash"], checkpoint["hash"]);

    // A checkpoint file that is not one is refused, and says why.
    let bad = data.0.join("bad-checkpoint.json");
    std::fs::write(&bad, r#"{"seq": 1, "hash": "not a hash"}"#).unwrap();
    let output = paygate(
        data,
        &[
            "ledger",
            "verify",
            "--checkpoint",
            &bad.display().to_string(),
        ],
    );
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("--checkpoint"),
        "{}",
        stderr(&output)
    );
    assert!(stderr(&output).contains("hash"), "{}", stderr(&output));

    sealed
        .behind_paygates_back(
            "UPDATE ledger_entries SET debit = debit + 1000 WHERE debit > 0;
             UPDATE ledger_entries SET credit = credit + 1000 WHERE credit > 0",
        )
        .await;
    let output = paygate(data, &["ledger", "verify", "--checkpoint", &file]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let tampered = verdict(&output);
    assert_eq!(tampered["ok"], false, "{tampered}");
    assert_eq!(tampered["broken_seal"]["seq"], 1, "{tampered}");
    assert_eq!(tampered["checkpoint"]["ok"], false, "{tampered}");
    let output = paygate(data, &["ledger", "verify"]);
    assert_eq!(output.status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_key_keeps_earlier_seals_verifiable_and_refuses_an_environment_key() {
    let sealed = Sealed::new().await;
    let data = &sealed.data;
    let key_file = data.0.join("seal.key");
    let old_seed = std::fs::read_to_string(&key_file).unwrap();
    let keys: Value = sealed
        .http
        .get(format!("{}/v1/ledger/seals/key", sealed.server.base))
        .bearer_auth(&sealed.admin_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let old_public = keys["public_key"].as_str().unwrap().to_owned();

    let output = paygate(data, &["ledger", "rotate-key"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let new_public = stdout(&output).trim().to_owned();
    assert_eq!(new_public.len(), 64);
    assert_ne!(new_public, old_public);
    assert_ne!(std::fs::read_to_string(&key_file).unwrap(), old_seed);
    let previous = std::fs::read_to_string(data.0.join("seal.previous-keys")).unwrap();
    assert_eq!(previous.trim(), old_public);

    // The seals signed with the old key still verify, since it is listed as previous.
    let output = paygate(data, &["ledger", "verify"]);
    assert!(output.status.success(), "{}", stdout(&output));
    assert_eq!(verdict(&output)["ok"], true);

    // Without the previous-keys file the old seals are signed by an unknown key.
    std::fs::remove_file(data.0.join("seal.previous-keys")).unwrap();
    let output = paygate(data, &["ledger", "verify"]);
    assert_eq!(output.status.code(), Some(1));
    let refused = verdict(&output);
    assert_eq!(
        refused["broken_seal"]["reason"], "signed by a key that is not trusted",
        "{refused}"
    );

    // With the key in the environment, rotation is the Secret's business, not the file's.
    let mut command = sealed.data.command(&["ledger", "rotate-key"]);
    command.env("PAYGATE_SEAL_KEY", "0a".repeat(32));
    let output = command.output().unwrap();
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("PAYGATE_SEAL_KEY"),
        "{}",
        stderr(&output)
    );
    assert_eq!(std::fs::read_to_string(&key_file).unwrap().trim().len(), 64);
}
