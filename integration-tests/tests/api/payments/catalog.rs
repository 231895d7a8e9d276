//! Orders and the obligation catalog: an order's obligation must exist, be active and be allowed
//! for the agency, its details satisfy the entry's schema, and every list of obligations covers
//! entries added at run time.

use integration_tests::clock::paid_a_minute_ago;
use integration_tests::world::{World, BANK};

use super::*;

/// An entry added the way the catalog stores one, with a schema of two fields.
async fn add_hospital_fee(app: &TestApp) {
    app.execute(
        r#"INSERT INTO obligations (code, name, details_schema) VALUES ('hospital_fee',
           'Viện phí (hospital fees)',
           '{"type": "object",
             "properties": {"patient_code": {"type": "string", "pattern": "^BN[0-9]{6}$"},
                            "ward": {"type": "string", "minLength": 1, "maxLength": 8}},
             "required": ["patient_code"],
             "additionalProperties": false}')"#,
        &[],
    )
    .await;
}

fn hospital_order(reference: &str, details: Value) -> Value {
    let mut body = order_body("fee", reference, "320000");
    body["obligation"] = json!("hospital_fee");
    body["details"] = details;
    body
}

async fn stored_orders(app: &TestApp) -> i64 {
    app.count("SELECT count(*) FROM payments").await
}

#[tokio::test]
async fn an_order_of_an_added_obligation_is_validated_by_its_schema_paid_and_reported() {
    let w = World::new().await;
    add_hospital_fee(&w.app).await;

    // Every failure of the schema is a validation_failed error on details.<path>; nothing stored.
    let refused = w
        .app
        .post_payment(
            &w.agency_key,
            &hospital_order("BV-1", json!({"patient_code": "X1", "bed": 4})),
        )
        .await;
    let problem = assert_problem(refused, 422, "validation_failed").await;
    let mut fields = invalid_fields(&problem);
    fields.sort();
    assert_eq!(fields, ["details.bed", "details.patient_code"], "{problem}");
    let refused = w.app.post_payment(&w.agency_key, &hospital_order("BV-1", json!({}))).await;
    let problem = assert_problem(refused, 422, "validation_failed").await;
    assert_eq!(invalid_fields(&problem), ["details.patient_code"], "{problem}");
    assert_eq!(stored_orders(&w.app).await, 0);

    let details = json!({"patient_code": "BN000123", "ward": "A2"});
    let created = w.create(&w.agency_key, &hospital_order("BV-1", details.clone())).await;
    assert_eq!(created["obligation"], "hospital_fee");
    assert_eq!(created["details"], details);
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(w.payment(&id).await, created);

    let paid_at = paid_a_minute_ago();
    let answer = w
        .deliver_ok(&json!({
            "bank_txn_id": "BV-TXN-1", "payment_id": id, "amount": "320000",
            "currency": "VND", "status": "succeeded", "paid_at": paid_at,
        }))
        .await;
    assert_eq!(answer["result"], "accepted", "{answer}");
    // Credits are negative: the bank owes the agency the money.
    assert_eq!(w.balance(&format!("agency:{AGENCY}:hospital_fee")).await, "-320000");
    assert_eq!(w.verify().await["ok"], true);

    // The business day (Hà Nội) of the payment.
    let day: String = w
        .app
        .row(
            "SELECT to_char($1::text::timestamptz AT TIME ZONE 'Asia/Ho_Chi_Minh', 'YYYY-MM-DD')",
            &[&paid_at],
        )
        .await
        .get(0);
    let report = w.audit(&format!("/v1/reports/daily?date={day}")).await;
    let keys: Vec<&str> =
        report["by_obligation"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["fee", "tax", "social_insurance", "fine", "electricity", "court_advance", "hospital_fee"]
    );
    assert_eq!(report["by_obligation"]["hospital_fee"], json!({"count": 1, "amount": "320000"}));
    assert_eq!(report["by_obligation"]["fee"], json!({"count": 0, "amount": "0"}));

    // The bank's statement reconciles it, and the run totals it under its code.
    let statement = format!(
        "bank_txn_id,payment_id,amount,paid_at,currency\nBV-TXN-1,{id},320000,{paid_at},VND\n"
    );
    let run = w
        .app
        .http
        .post(w.app.url(&format!("/v1/reconciliations?bank={BANK}&date={day}")))
        .bearer_auth(&w.auditor_key)
        .header("Content-Type", "text/csv")
        .body(statement)
        .send()
        .await
        .unwrap();
    assert_eq!(run.status(), 201);
    let run: Value = run.json().await.unwrap();
    assert_eq!(run["summary"]["matched"], json!({"count": 1, "amount": "320000"}), "{run}");
    assert_eq!(run["by_obligation"]["hospital_fee"], json!({"count": 1, "amount": "320000"}));
    let keys: Vec<&str> =
        run["by_obligation"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys.last(), Some(&"hospital_fee"), "{run}");
    assert_eq!(keys.len(), 7, "{run}");

    // Deactivated, the entry still has its day's money in the report; a day without money for it
    // leaves it out.
    w.app.execute("UPDATE obligations SET active = false WHERE code = 'hospital_fee'", &[]).await;
    let report = w.audit(&format!("/v1/reports/daily?date={day}")).await;
    assert_eq!(report["by_obligation"]["hospital_fee"], json!({"count": 1, "amount": "320000"}));
    let earlier = w.audit("/v1/reports/daily?date=2020-01-01").await;
    assert!(earlier["by_obligation"].get("hospital_fee").is_none(), "{earlier}");
    assert_eq!(earlier["by_obligation"].as_object().unwrap().len(), 6, "{earlier}");
    // Its existing order reads as before.
    assert_eq!(w.payment(&id).await["details"], details);
}

#[tokio::test]
async fn an_order_of_an_inactive_obligation_is_refused_and_nothing_is_stored() {
    let (app, key) = with_agency().await;
    app.execute("UPDATE obligations SET active = false WHERE code = 'tax'", &[]).await;
    let problem = assert_problem(
        post_order(&app, &key, "inactive-1", &order("tax", "T-1")).await,
        422,
        "obligation_inactive",
    )
    .await;
    assert!(problem["detail"].as_str().unwrap().contains("tax"), "{problem}");
    assert_eq!(totals(&app).await, Totals::of(0, 0, 0));
    // The idempotency key was not used up: the same request succeeds once the entry is active.
    app.execute("UPDATE obligations SET active = true WHERE code = 'tax'", &[]).await;
    let created = post_order(&app, &key, "inactive-1", &order("tax", "T-1")).await;
    assert_eq!(created.status(), 201);
    // An unknown code is a validation error on `obligation`, as in v1.
    let problem = assert_problem(
        post_order(&app, &key, "unknown-1", &order("tax", "T-2").tap_obligation("hospital_fee"))
            .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(invalid_fields(&problem), ["obligation"]);
    assert_eq!(problem["errors"][0]["message"], "hospital_fee is not an obligation of the catalog");
    assert_eq!(totals(&app).await, Totals::of(1, 1, 0));
}

/// A body with another `obligation`.
trait TapObligation {
    fn tap_obligation(self, obligation: &str) -> Value;
}

impl TapObligation for Value {
    fn tap_obligation(mut self, obligation: &str) -> Value {
        self["obligation"] = json!(obligation);
        self
    }
}

async fn patch_agency(app: &TestApp, body: Value) -> Response {
    app.admin(Method::PATCH, &format!("/v1/agencies/{AGENCY}")).json(&body).send().await.unwrap()
}

#[tokio::test]
async fn an_agency_limited_to_some_obligations_is_refused_others_until_the_limit_is_lifted() {
    let (app, key) = with_agency().await;
    add_hospital_fee(&app).await;
    let agency = patch_agency(&app, json!({"obligations": ["fee", "hospital_fee"]})).await;
    assert_eq!(agency.status(), 200);
    let agency: Value = agency.json().await.unwrap();
    assert_eq!(agency["obligations"], json!(["fee", "hospital_fee"]));
    let audit = app
        .row(
            "SELECT detail FROM audit_log WHERE action = 'agency.update' ORDER BY seq DESC LIMIT 1",
            &[],
        )
        .await
        .get::<_, Value>(0);
    assert_eq!(audit["obligations"], json!({"from": null, "to": ["fee", "hospital_fee"]}));

    let problem = assert_problem(
        post_order(&app, &key, "limit-1", &order("tax", "L-1")).await,
        422,
        "obligation_not_allowed",
    )
    .await;
    assert!(problem["detail"].as_str().unwrap().contains("tax"), "{problem}");
    assert_eq!(totals(&app).await, Totals::of(0, 0, 0));
    assert_eq!(post_order(&app, &key, "limit-2", &order("fee", "L-2")).await.status(), 201);
    let hospital = hospital_order("L-3", json!({"patient_code": "BN000001"}));
    assert_eq!(post_order(&app, &key, "limit-3", &hospital).await.status(), 201);

    let agency: Value =
        patch_agency(&app, json!({"obligations": null})).await.json().await.unwrap();
    assert!(agency.get("obligations").is_none(), "{agency}");
    assert_eq!(post_order(&app, &key, "limit-1", &order("tax", "L-1")).await.status(), 201);
}

#[tokio::test]
async fn invalid_allowed_obligations_are_refused_and_change_nothing() {
    let (app, _key) = with_agency().await;
    let cases = [
        (json!({"obligations": ["fee", "hospital_fee"]}), "not an obligation of the catalog"),
        (json!({"obligations": ["fee", "fee"]}), "twice"),
        (json!({"obligations": "fee"}), "array"),
        (json!({"obligations": [1]}), "array"),
        (json!({"obligations": ["Fee"]}), "code"),
    ];
    for (body, message) in cases {
        let problem =
            assert_problem(patch_agency(&app, body.clone()).await, 422, "validation_failed").await;
        assert_eq!(invalid_fields(&problem), ["obligations"], "{body}");
        let text = problem["errors"][0]["message"].as_str().unwrap();
        assert!(text.contains(message), "{body}: {text}");
    }
    let stored: Option<Vec<String>> =
        app.row("SELECT obligations FROM agencies WHERE code = $1", &[&AGENCY]).await.get(0);
    assert_eq!(stored, None);
    app.assert_count("SELECT count(*) FROM audit_log WHERE action = 'agency.update'", 0).await;
}
