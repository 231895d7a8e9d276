//! Sandbox and live money never meet: each kind of bank pays only orders of its kind, sandbox
//! money has `sandbox:` accounts, and no live balance, report or reconciliation counts it.

use integration_tests::answers::{json_with, RequestExt};
use integration_tests::assert_problem;
use integration_tests::clock::{now_s, paid_a_minute_ago, vietnam_date};
use integration_tests::signer::Signer;
use integration_tests::world::{balance_map, AGENCY, AMOUNT, BANK};
use reqwest::Method;
use serde_json::{json, Value};

use super::{Sandbox, SANDBOX, SBX_AGENCY, SBX_BANK};

#[tokio::test]
async fn the_sandbox_flag_is_shown_everywhere_and_fixed_at_creation() {
    let s = Sandbox::new().await;
    let agency = s.admin_get(&format!("/v1/agencies/{SBX_AGENCY}")).await;
    assert_eq!(agency["sandbox"], true, "{agency}");
    assert_eq!(s.admin_get(&format!("/v1/agencies/{AGENCY}")).await["sandbox"], false);
    assert_eq!(s.admin_get(&format!("/v1/banks/{SBX_BANK}")).await["sandbox"], true);
    assert_eq!(s.admin_get(&format!("/v1/banks/{BANK}")).await["sandbox"], false);
    let agencies = s.admin_get("/v1/agencies").await;
    let listed: Vec<(String, bool)> = agencies["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["code"].as_str().unwrap().to_owned(), a["sandbox"].as_bool().unwrap()))
        .collect();
    assert!(listed.contains(&(SBX_AGENCY.to_owned(), true)), "{listed:?}");
    assert!(listed.contains(&(AGENCY.to_owned(), false)), "{listed:?}");

    // A sandbox order says so; a live one says it is not.
    let sandbox_order = s.order("SBX-0001").await;
    assert_eq!(s.w.payment(&sandbox_order).await["sandbox"], true);
    let live_order = s.w.order("LIVE-0001").await;
    assert_eq!(s.w.payment(&live_order).await["sandbox"], false);

    // The flag is not something a PATCH changes, and the database refuses a change too.
    let patched =
        s.w.app
            .admin(Method::PATCH, &format!("/v1/agencies/{SBX_AGENCY}"))
            .json(&json!({"sandbox": false}))
            .json_with(200)
            .await;
    assert_eq!(patched["sandbox"], true, "{patched}");
    let client = s.w.app.db.get().await.unwrap();
    let refused = client
        .execute("UPDATE banks SET sandbox = false WHERE code = $1", &[&SBX_BANK])
        .await
        .expect_err("the flag is fixed");
    let refused = refused.as_db_error().expect("a database error").message().to_owned();
    assert!(refused.contains("fixed at its creation"), "{refused}");

    // A flag that is not a boolean is named, and nothing is created.
    let before = s.w.app.count("SELECT count(*) FROM agencies").await;
    let problem =
        s.w.app
            .admin(Method::POST, "/v1/agencies")
            .json(&json!({"code": "000.00.00.X01", "name": "X", "sandbox": "yes"}))
            .problem(422, "validation_failed")
            .await;
    assert_eq!(problem["errors"][0]["field"], "sandbox", "{problem}");
    s.w.app.assert_count("SELECT count(*) FROM agencies", before).await;
    let problem =
        s.w.app
            .admin(Method::POST, "/v1/banks")
            .json(&json!({"code": "X01", "name": "X", "sandbox": 1}))
            .problem(422, "validation_failed")
            .await;
    assert_eq!(problem["errors"][0]["field"], "sandbox", "{problem}");
    s.w.app.assert_count("SELECT count(*) FROM banks WHERE code = 'X01'", 0).await;
}

/// Everything a bank's request could have changed, as one text.
async fn money_state(s: &Sandbox) -> String {
    s.w.app
        .row(
            "SELECT concat_ws(' | ',
                (SELECT string_agg(concat_ws(',', id, status, bank_code), ';' ORDER BY id)
                 FROM payments),
                (SELECT count(*) FROM bank_callbacks),
                (SELECT count(*) FROM ledger_entries),
                (SELECT count(*) FROM events))",
            &[],
        )
        .await
        .get(0)
}

#[tokio::test]
async fn a_bank_pays_only_orders_of_its_own_kind() {
    let s = Sandbox::new().await;
    let sandbox_order = s.order("SBX-0001").await;
    let live_order = s.w.order("LIVE-0001").await;
    let inquiry = |id: &str| json!({ "payment_id": id });
    let callback = |txn: &str, id: &str| {
        json!({"bank_txn_id": txn, "payment_id": id, "amount": AMOUNT, "status": "succeeded",
               "paid_at": paid_a_minute_ago()})
    };

    // Each bank finds the orders of its kind...
    let found =
        json_with(s.w.app.post_signed(&s.bank, "inquiry", &inquiry(&sandbox_order)).await, 200)
            .await;
    assert_eq!(found["payment_id"], sandbox_order.as_str(), "{found}");
    json_with(s.w.app.post_signed(&s.w.bank, "inquiry", &inquiry(&live_order)).await, 200).await;

    // ...and no other: an inquiry or a callback for the other kind's order is unknown.
    let before = money_state(&s).await;
    for (bank, id) in [(&s.w.bank, &sandbox_order), (&s.bank, &live_order)] {
        let answer = s.w.app.post_signed(bank, "inquiry", &inquiry(id)).await;
        assert_problem(answer, 404, "payment_not_found").await;
    }
    // (A callback answered 404 is kept for investigation, and reserves nothing.)
    let kept = s.w.app.count("SELECT count(*) FROM callback_exceptions").await;
    let answer =
        s.w.app.post_signed(&s.w.bank, "callbacks", &callback("FT1", &sandbox_order)).await;
    assert_problem(answer, 404, "payment_not_found").await;
    let answer = s.w.app.post_signed(&s.bank, "callbacks", &callback("SB1", &live_order)).await;
    assert_problem(answer, 404, "payment_not_found").await;
    assert_eq!(money_state(&s).await, before, "a refused callback changed something");
    s.w.app.assert_count("SELECT count(*) FROM callback_exceptions", kept + 2).await;

    // The sandbox bank endpoint of the built-in bank refuses a live order too.
    let answer = s.pay_with(&s.key, &live_order, "succeeded").await;
    assert_problem(answer, 404, "payment_not_found").await;
    let answer = s.pay_with(&s.w.app.admin_key, &live_order, "succeeded").await;
    assert_problem(answer, 404, "payment_not_found").await;
    assert_eq!(money_state(&s).await, before);
}

/// A payment object without what differs between a sandbox order and a live one by nature.
fn comparable(payment: &Value) -> Value {
    let mut payment = payment.clone();
    let object = payment.as_object_mut().unwrap();
    for field in ["id", "agency", "bank", "bank_txn_id", "sandbox", "created_at", "expires_at"] {
        object.remove(field);
    }
    payment
}

#[tokio::test]
async fn the_same_lifecycle_in_sandbox_and_live_differs_only_in_its_isolation() {
    let s = Sandbox::new().await;
    let live_checker =
        s.w.app.admin(Method::POST, &format!("/v1/agencies/{AGENCY}/keys")).json_with(201).await
            ["api_key"]
            .as_str()
            .unwrap()
            .to_owned();
    // One life each: created, paid by a bank of its kind, refunded in part.
    let paid_at = paid_a_minute_ago();
    let mut lives = Vec::new();
    for (key, checker, bank, txn) in [
        (&s.w.agency_key, &live_checker, &s.w.bank, "FT26001"),
        (&s.key, &s.checker, &s.bank, "FT26001"),
    ] {
        let id = s.w.app.create_order(key, "fee", "H12.99-0001", AMOUNT).await;
        let answer = json_with(
            s.w.app
                .post_signed(
                    bank,
                    "callbacks",
                    &json!({"bank_txn_id": txn, "payment_id": id, "amount": AMOUNT,
                            "status": "succeeded", "paid_at": paid_at}),
                )
                .await,
            200,
        )
        .await;
        assert_eq!(answer["result"], "accepted", "{answer}");
        let refund =
            s.w.app
                .post_with(key, &format!("/v1/payments/{id}/refunds"))
                .header("Idempotency-Key", "refund-1")
                .json(&json!({"amount": "50000", "reason": "Hoàn một phần lệ phí"}))
                .json_with(201)
                .await;
        let refund_id = refund["id"].as_str().unwrap().to_owned();
        s.w.app
            .post_with(checker, &format!("/v1/refunds/{refund_id}/approve"))
            .json_with(200)
            .await;
        let result = json_with(
            s.w.app
                .post_signed(
                    bank,
                    &format!("refunds/{refund_id}/result"),
                    &json!({"status": "completed", "bank_refund_id": "RF1",
                            "completed_at": paid_a_minute_ago()}),
                )
                .await,
            200,
        )
        .await;
        assert_eq!(result["refund_status"], "completed", "{result}");
        let events = s.w.app.get_json(key, &format!("/v1/events?payment_id={id}")).await;
        let mut types: Vec<String> = events["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap().to_owned())
            .collect();
        types.sort();
        lives.push((s.w.payment(&id).await, types));
    }
    let (live, sandbox) = (&lives[0], &lives[1]);
    assert_eq!(comparable(&live.0), comparable(&sandbox.0));
    assert_eq!(live.1, sandbox.1);
    assert_eq!(live.1, ["payment.paid", "refund.completed"]);
    assert_eq!(live.0["sandbox"], false);
    assert_eq!(sandbox.0["sandbox"], true);
    assert_eq!(live.0["refunded_amount"], "50000");

    // The same money, in accounts of their own.
    let live_balances = balance_map(&s.admin_get("/v1/ledger/balances").await);
    assert!(live_balances.keys().all(|a| !a.starts_with("sandbox:")), "{live_balances:?}");
    let sandbox_balances =
        balance_map(&s.admin_get("/v1/ledger/balances?account_prefix=sandbox:").await);
    assert!(sandbox_balances.keys().all(|a| a.starts_with("sandbox:")), "{sandbox_balances:?}");
    assert_eq!(live_balances[&format!("bank:{BANK}")], "100000");
    assert_eq!(live_balances[&format!("agency:{AGENCY}:fee")], "-100000");
    assert_eq!(sandbox_balances[&format!("sandbox:bank:{SBX_BANK}")], "100000");
    assert_eq!(sandbox_balances[&format!("sandbox:agency:{SBX_AGENCY}:fee")], "-100000");
    let verified = s.admin_get("/v1/ledger/verify").await;
    assert_eq!(verified["ok"], true, "{verified}");

    // The day's report counts the live order and the live refund only.
    let date = vietnam_date(now_s() - 60);
    let report = s.admin_get(&format!("/v1/reports/daily?date={date}")).await;
    assert_eq!(report["totals"], json!({"count": 1, "amount": AMOUNT}), "{report}");
    assert_eq!(report["refunds"], json!({"count": 1, "amount": "50000"}), "{report}");
    let agencies: Vec<&str> = report["by_agency"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["agency"].as_str().unwrap())
        .collect();
    assert_eq!(agencies, [AGENCY], "{report}");
    let banks: Vec<&str> =
        report["by_bank"].as_array().unwrap().iter().map(|b| b["bank"].as_str().unwrap()).collect();
    assert_eq!(banks, [BANK], "{report}");
}

#[tokio::test]
async fn a_live_statement_never_recovers_a_sandbox_order() {
    let s = Sandbox::new().await;
    let sandbox_order = s.order("SBX-0001").await;
    let date = vietnam_date(now_s());
    let statement = format!(
        "bank_txn_id,payment_id,amount,paid_at\nFT9001,{sandbox_order},{AMOUNT},{}\n",
        paid_a_minute_ago()
    );
    let run =
        s.w.app
            .admin(Method::POST, &format!("/v1/reconciliations?bank={BANK}&date={date}"))
            .header("Content-Type", "text/csv")
            .body(statement)
            .json_with(201)
            .await;
    assert_eq!(run["summary"]["missing_in_gateway"]["count"], 1, "{run}");
    assert_eq!(run["summary"]["recovered"]["count"], 0, "{run}");
    assert_eq!(s.w.payment(&sandbox_order).await["status"], "pending");
    s.w.app.assert_count("SELECT count(*) FROM ledger_entries", 0).await;
}

#[tokio::test]
async fn the_builtin_sandbox_bank_exists_and_nobody_can_sign_as_it() {
    let s = Sandbox::new().await;
    let bank = s.admin_get(&format!("/v1/banks/{SANDBOX}")).await;
    assert_eq!(bank["sandbox"], true, "{bank}");
    assert_eq!(bank["keys"], json!([]), "{bank}");

    let answer = s.w.app.admin(Method::POST, &format!("/v1/banks/{SANDBOX}/keys")).send().await;
    assert_problem(answer.unwrap(), 409, "builtin_bank").await;
    s.w.app.assert_count("SELECT count(*) FROM bank_keys WHERE bank_code = 'SANDBOX'", 0).await;

    // Whatever key id and secret one tries, the sandbox bank's path refuses the signature.
    let order = s.order("SBX-0001").await;
    let body = json!({"bank_txn_id": "X1", "payment_id": order, "amount": AMOUNT,
                      "status": "succeeded", "paid_at": paid_a_minute_ago()});
    for kid in ["paygate-sandbox", "kid_0000000000000000"] {
        let forger =
            Signer { bank: SANDBOX.to_owned(), kid: kid.to_owned(), secret: "guess".to_owned() };
        let answer = s.w.app.post_signed(&forger, "callbacks", &body).await;
        assert_problem(answer, 401, "invalid_signature").await;
    }
    assert_eq!(s.w.payment(&order).await["status"], "pending");
    s.w.app.assert_count("SELECT count(*) FROM bank_callbacks", 0).await;
}
