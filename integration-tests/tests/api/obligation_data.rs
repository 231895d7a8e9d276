//! Orders stored before the obligation catalog existed read exactly as they did then.
//!
//! `integration-tests/fixtures/obligations_before_catalog.json` was written by
//! `the_before_fixture_is_written_from_orders_the_app_made`, run once with the code from before
//! the catalog (when the six obligations were a fixed list in Rust). It holds the stored rows of
//! orders of every obligation (some paid, one cancelled) and the answers that code gave for them.
//! The migration test loads those rows into a database at the last schema version before the
//! catalog, migrates it to the head and compares the answers of today's code with the recorded
//! ones.

use std::path::PathBuf;

use integration_tests::orders::order_body;
use integration_tests::world::{World, AGENCY, BANK, OBLIGATIONS};
use integration_tests::{details, empty_database, repository_root, test_config, TestApp};
use paygate::db::migrate::{self, MIGRATIONS};
use reqwest::Method;
use serde_json::{json, Value};

/// The business day (Hà Nội) the fixture's paid orders were paid on.
const DAY: &str = "2026-11-22";

fn fixture_path() -> PathBuf {
    repository_root().join("integration-tests/fixtures/obligations_before_catalog.json")
}

/// The bodies of the fixture's orders: one of each obligation with every detail, and the
/// variants whose optional details are absent.
fn fixture_orders() -> Vec<Value> {
    let mut bodies: Vec<Value> = OBLIGATIONS
        .iter()
        .enumerate()
        .map(|(n, obligation)| {
            let mut body = order_body(obligation, &format!("FX-{n}"), &format!("{}000", n + 100));
            body["details"] = details(obligation);
            body
        })
        .collect();
    for (n, (obligation, details)) in [
        ("tax", json!({"tax_code": "0101234567-001"})),
        ("fine", json!({"decision_number": "123/QĐ-XPVPHC"})),
        ("tax", json!({"tax_code": "0101234567"})),
    ]
    .into_iter()
    .enumerate()
    {
        let mut body = order_body(obligation, &format!("FX-V{n}"), "50000");
        body["details"] = details;
        bodies.push(body);
    }
    bodies
}

/// Writes the fixture from orders made through the API. Run it only to record the "before" of a
/// schema change, with the code of before the change:
/// `api the_before_fixture_is_written_from_orders_the_app_made --ignored`.
#[tokio::test]
#[ignore = "records the fixture; run by hand with the code from before a schema change"]
async fn the_before_fixture_is_written_from_orders_the_app_made() {
    let w = World::new().await;
    let mut ids = Vec::new();
    for body in fixture_orders() {
        let payment = w.create(&w.agency_key, &body).await;
        ids.push(payment["id"].as_str().expect("id").to_owned());
    }
    // Pay the first four (fee, tax, social_insurance, fine) and the tax variant, and cancel the
    // electricity order, so that the report has non-zero and zero obligations.
    for (n, index) in [0usize, 1, 2, 3, 6].into_iter().enumerate() {
        // A bank's paid_at may not precede the order, so the order moves to the day before.
        let moved = w
            .app
            .execute(
                "UPDATE payments SET created_at = '2026-11-21T12:00:00Z',
                                     expires_at = '2026-11-22T12:00:00Z'
                 WHERE id = $1",
                &[&ids[index]],
            )
            .await;
        assert_eq!(moved, 1);
        let payment = w.payment(&ids[index]).await;
        let answer = w
            .deliver_ok(&json!({
                "bank_txn_id": format!("FX-TXN-{n}"),
                "payment_id": ids[index],
                "amount": payment["amount"],
                "currency": "VND",
                "status": "succeeded",
                "paid_at": format!("{DAY}T0{n}:00:00Z"),
            }))
            .await;
        assert_eq!(answer["result"], "accepted", "{answer}");
    }
    w.cancel(&ids[4]).await;

    let mut orders = Vec::new();
    for id in &ids {
        let row: Value =
            w.app.row("SELECT to_jsonb(p) FROM payments p WHERE id = $1", &[id]).await.get(0);
        orders.push(json!({"row": row, "answer": w.payment(id).await}));
    }
    let agencies: Vec<Value> = w
        .app
        .rows("SELECT to_jsonb(a) FROM agencies a ORDER BY code", &[])
        .await
        .iter()
        .map(|r| r.get(0))
        .collect();
    let banks: Vec<Value> = w
        .app
        .rows("SELECT to_jsonb(b) FROM banks b ORDER BY code", &[])
        .await
        .iter()
        .map(|r| r.get(0))
        .collect();
    let report = w.audit(&format!("/v1/reports/daily?date={DAY}")).await;
    let fixture = json!({
        "agency": AGENCY,
        "bank": BANK,
        "day": DAY,
        "agencies": agencies,
        "banks": banks,
        "orders": orders,
        "daily_report": report,
    });
    let path = fixture_path();
    std::fs::create_dir_all(path.parent().expect("a folder")).expect("the fixtures folder");
    std::fs::write(&path, serde_json::to_string_pretty(&fixture).expect("json") + "\n")
        .expect("write the fixture");
}

/// The last migration before the catalog: the fixture's rows have this schema.
const BEFORE_CATALOG: &str = "0010_cases_and_refunds.sql";

pub(crate) async fn connect(settings: &tokio_postgres::Config) -> tokio_postgres::Client {
    let (client, connection) = settings.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// Applies the migrations up to and including `last`, recording them as `migrate::run` does, so
/// that a later run applies only the ones after it.
pub(crate) async fn migrate_up_to(client: &tokio_postgres::Client, last: &str) {
    client
        .batch_execute(
            "CREATE TABLE schema_migrations (
                name text PRIMARY KEY,
                sha256 text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await
        .unwrap();
    let upto = MIGRATIONS.iter().position(|(name, _)| *name == last).expect("a migration") + 1;
    for (name, sql) in &MIGRATIONS[..upto] {
        client.batch_execute(sql).await.unwrap_or_else(|err| panic!("{name}: {err}"));
        client
            .execute(
                "INSERT INTO schema_migrations (name, sha256)
                 VALUES ($1, encode(sha256(convert_to($2, 'UTF8')), 'hex'))",
                &[name, sql],
            )
            .await
            .unwrap();
    }
}

/// Inserts `rows` (each a `to_jsonb` of a row of `table`) as they were stored.
async fn load(client: &tokio_postgres::Client, table: &str, rows: &Value) {
    for row in rows.as_array().expect("rows") {
        client
            .execute(
                &format!(
                    "INSERT INTO {table} OVERRIDING SYSTEM VALUE
                     SELECT * FROM jsonb_populate_record(NULL::{table}, $1)"
                ),
                &[row],
            )
            .await
            .unwrap_or_else(|err| panic!("{table} {row}: {err}"));
    }
}

#[tokio::test]
async fn orders_of_every_obligation_stored_before_the_catalog_read_identically_after_migrating() {
    let fixture: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture_path()).expect("the fixture"))
            .expect("fixture JSON");
    let settings = empty_database().await;
    let mut client = connect(&settings).await;
    migrate_up_to(&client, BEFORE_CATALOG).await;
    load(&client, "agencies", &fixture["agencies"]).await;
    load(&client, "banks", &fixture["banks"]).await;
    let orders = fixture["orders"].as_array().expect("orders");
    let rows: Vec<Value> = orders.iter().map(|order| order["row"].clone()).collect();
    load(&client, "payments", &Value::Array(rows)).await;
    let obligations: std::collections::BTreeSet<&str> =
        orders.iter().map(|order| order["row"]["obligation"].as_str().unwrap()).collect();
    assert_eq!(obligations.len(), 6, "the fixture has orders of every built-in obligation");

    let applied = migrate::run(&mut client).await.unwrap();
    assert!(!applied.is_empty(), "the migrations after {BEFORE_CATALOG} ran on the loaded data");
    let app = TestApp::spawn_on(test_config(), settings).await;

    for order in orders {
        let id = order["row"]["id"].as_str().unwrap();
        let response = app.admin(Method::GET, &format!("/v1/payments/{id}")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{id}");
        // Byte for byte: the same members, in the same order, with the same values, but for the
        // one that time changes: a pending order whose `expires_at` has passed since the fixture
        // was recorded reads as expired.
        let mut answer = order["answer"].clone();
        let expires_at = answer["expires_at"].as_str().expect("expires_at");
        let overdue = paygate::timefmt::parse_rfc3339(expires_at).expect("a time")
            <= time::OffsetDateTime::now_utc();
        if answer["status"] == "pending" && overdue {
            answer["status"] = json!("expired");
        }
        // And the member added since: these agencies are live.
        answer["sandbox"] = json!(false);
        let expected = serde_json::to_string(&answer).unwrap();
        assert_eq!(response.text().await.unwrap(), expected);
    }
    let day = fixture["day"].as_str().unwrap();
    let auditor = app.key_with_role("auditor").await;
    let report =
        app.get_with(&auditor, &format!("/v1/reports/daily?date={day}")).send().await.unwrap();
    assert_eq!(report.status(), 200);
    let expected = serde_json::to_string(&fixture["daily_report"]).unwrap();
    assert_eq!(report.text().await.unwrap(), expected);

    // The orders' agency can still list them by obligation, and the stored rows are untouched.
    let stored = app.count("SELECT count(*) FROM payments").await;
    assert_eq!(stored as usize, orders.len());
}
