//! The audit trail across processes: two `paygate serve` replicas appending at once on one
//! database, and `paygate audit verify` as an outside auditor's cron job runs it.

use std::collections::BTreeSet;

use paygate::db::Settings;
use serde_json::{json, Value};

mod common;

use common::{DataDir, Server};

/// `paygate admin create-key --role admin` on `data`: the key (its last line of stdout).
fn create_admin_key(data: &DataDir) -> String {
    let output = data
        .command(&["admin", "create-key", "--role", "admin"])
        .env("USER", "kiem-toan")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    stdout.trim().lines().last().unwrap().to_owned()
}

/// `paygate audit verify` on `data`: its exit code and the verdict it printed.
fn audit_verify(data: &DataDir) -> (i32, Value) {
    let output = data.command(&["audit", "verify"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let verdict = serde_json::from_str(stdout.trim()).unwrap_or_else(|err| {
        panic!(
            "{err}: {stdout} / {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().unwrap(), verdict)
}

/// The embedded database as its owner (the superuser), who can switch the triggers off.
async fn owner(data: &DataDir) -> tokio_postgres::Client {
    let mut config = tokio_postgres::Config::new();
    config
        .host_path(data.0.join("postgres"))
        .port(5432)
        .user("postgres")
        .dbname("paygate");
    Settings::from(config).connect().await.unwrap()
}

/// Every seq the trail lists, walked page by page through `base`.
async fn listed_seqs(http: &reqwest::Client, base: &str, key: &str) -> Vec<i64> {
    let mut seqs = Vec::new();
    let mut url = format!("{base}/v1/audit?limit=500");
    loop {
        let page: Value = http
            .get(&url)
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for entry in page["items"].as_array().unwrap() {
            seqs.push(entry["seq"].as_i64().unwrap());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => url = format!("{base}/v1/audit?limit=500&cursor={cursor}"),
            None => return seqs,
        }
    }
}

#[tokio::test]
async fn two_replicas_appending_200_concurrent_admin_actions_keep_one_gap_free_chain() {
    let data = DataDir::new("paygate-audit-replicas");
    let key = create_admin_key(&data);
    let replicas = [Server::start(&data).await, Server::start(&data).await];
    let http = reqwest::Client::new();

    // 200 bank creations at once, alternating between the replicas.
    let actions = (0..200).map(|i| {
        let url = format!("{}/v1/banks", replicas[i % 2].base);
        let request = http
            .post(url)
            .bearer_auth(&key)
            .json(&json!({"code": format!("B{i:03}"), "name": format!("Ngân hàng {i}")}))
            .send();
        async move { request.await.unwrap().status().as_u16() }
    });
    let statuses = futures_util::future::join_all(actions).await;
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");

    for replica in &replicas {
        let verdict: Value = http
            .get(format!("{}/v1/audit/verify", replica.base))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(verdict["ok"], true, "{verdict}");
        assert_eq!(verdict["entries"], 201, "the key's creation and 200 banks");
    }
    let seqs = listed_seqs(&http, &replicas[0].base, &key).await;
    let expected: Vec<i64> = (1..=201).rev().collect();
    assert_eq!(seqs, expected, "seq 1..201 without gaps, newest first");
    let owner = owner(&data).await;
    let targets: BTreeSet<String> = owner
        .query(
            "SELECT target FROM audit_log WHERE action = 'bank.create'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(targets.len(), 200, "one entry per bank");

    let (code, verdict) = audit_verify(&data);
    assert_eq!((code, verdict["ok"].clone()), (0, json!(true)), "{verdict}");
    assert_eq!(verdict["entries"], 201);
}

#[tokio::test]
async fn audit_verify_exits_non_zero_naming_the_entry_changed_or_removed_behind_paygates_back() {
    let data = DataDir::new("paygate-audit-tamper");
    // Four entries from the command line; the server keeps the embedded cluster up meanwhile.
    let key = create_admin_key(&data);
    let server = Server::start(&data).await;
    for _ in 0..3 {
        create_admin_key(&data);
    }
    let (code, verdict) = audit_verify(&data);
    assert_eq!(code, 0, "{verdict}");
    assert_eq!(verdict["ok"], true);
    assert_eq!(verdict["entries"], 4);
    let owner = owner(&data).await;
    let first: Value = owner
        .query_one(
            "SELECT jsonb_build_object('role', actor_role, 'label', actor_label, 'via', actor_via,
                                       'key_id', actor_key_id, 'request_id', request_id)
             FROM audit_log WHERE seq = 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        first,
        json!({"role": "admin", "label": "kiem-toan", "via": "cli", "key_id": null, "request_id": null})
    );

    owner
        .batch_execute(
            "ALTER TABLE audit_log DISABLE TRIGGER USER;
             UPDATE audit_log SET detail = jsonb_set(detail, '{role}', '\"auditor\"') WHERE seq = 2;",
        )
        .await
        .unwrap();
    let (code, verdict) = audit_verify(&data);
    assert_eq!(code, 1, "{verdict}");
    assert_eq!(
        (verdict["ok"].clone(), verdict["broken_seq"].clone()),
        (json!(false), json!(2))
    );
    // The service's own answer agrees.
    let answered: Value = reqwest::Client::new()
        .get(format!("{}/v1/audit/verify", server.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answered, verdict);

    owner
        .batch_execute(
            "UPDATE audit_log SET detail = jsonb_set(detail, '{role}', '\"admin\"') WHERE seq = 2;
             DELETE FROM audit_log WHERE seq = 3;",
        )
        .await
        .unwrap();
    let (code, verdict) = audit_verify(&data);
    assert_eq!(code, 1, "{verdict}");
    assert_eq!(verdict["broken_seq"], 3, "{verdict}");
    assert_eq!(verdict["entries"], 3);
}

#[tokio::test]
async fn paygate_reconcile_records_its_run_as_the_command_line_user() {
    let data = DataDir::new("paygate-audit-cli");
    let key = create_admin_key(&data);
    let server = Server::start(&data).await;
    let response = reqwest::Client::new()
        .post(format!("{}/v1/banks", server.base))
        .bearer_auth(&key)
        .json(&json!({"code": "VCB", "name": "Ngân hàng Ngoại thương"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let statement = data.0.join("statement.csv");
    std::fs::write(&statement, "bank_txn_id,payment_id,amount,paid_at\n").unwrap();
    let output = data
        .command(&[
            "reconcile",
            "--bank",
            "VCB",
            "--date",
            "2026-11-22",
            "--statement",
            statement.to_str().unwrap(),
        ])
        .env("USER", "nguyen.van.a")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let run: Value = serde_json::from_slice(&output.stdout).unwrap();

    let owner = owner(&data).await;
    let row = owner
        .query_one(
            "SELECT jsonb_build_object('key_id', actor_key_id, 'role', actor_role,
                                       'label', actor_label, 'via', actor_via,
                                       'request_id', request_id, 'target', target)
                    , detail
             FROM audit_log WHERE action = 'reconciliation.run'",
            &[],
        )
        .await
        .unwrap();
    let (actor, detail): (Value, Value) = (row.get(0), row.get(1));
    let target = format!("reconciliation:{}", run["id"].as_str().unwrap());
    assert_eq!(
        actor,
        json!({"key_id": null, "role": "admin", "label": "nguyen.van.a", "via": "cli",
               "request_id": null, "target": target})
    );
    assert_eq!(detail["bank"], "VCB");
    assert_eq!(detail["applies_recoveries"], true);
    assert_eq!(detail["summary"], run["summary"]);
    let (code, verdict) = audit_verify(&data);
    assert_eq!(
        (code, verdict["entries"].clone()),
        (0, json!(3)),
        "{verdict}"
    );
}
