//! The built-in sandbox bank: every scenario answers as a real bank's callback would, through
//! the same code, and refund results rehearse a completed and a failed refund.

use integration_tests::answers::{json_with, RequestExt};
use integration_tests::assert_problem;
use integration_tests::world::{AMOUNT, EXPIRED_AT, OTHER_AGENCY};
use serde_json::{json, Value};

use super::{Sandbox, SANDBOX, SBX_AGENCY, WAIT};

/// The sandbox bank's cases of kind `kind`, as an admin lists them.
async fn cases(s: &Sandbox, kind: &str) -> Vec<Value> {
    let cases = s.admin_get(&format!("/v1/cases?kind={kind}&bank={SANDBOX}")).await;
    cases["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn every_scenario_answers_as_a_bank_would_through_the_callback_path() {
    let s = Sandbox::new().await;

    // succeeded: the order is paid by SANDBOX, and the agency hears of it (signed, as live).
    let paid = s.order("SBX-0001").await;
    let answer = s.pay(&paid, "succeeded").await;
    assert_eq!(answer, json!({"result": "accepted", "payment_id": paid, "payment_status": "paid"}));
    let payment = s.w.payment(&paid).await;
    assert_eq!(payment["status"], "paid");
    assert_eq!(payment["bank"], SANDBOX);
    assert!(payment["bank_txn_id"].as_str().unwrap().starts_with("SBX_"), "{payment}");
    let heard = s.receiver.wait_for(1, WAIT).await;
    let event = heard[0].json();
    assert_eq!(event["type"], "payment.paid");
    assert_eq!(event["payment"]["id"], paid.as_str());
    assert!(heard[0].header("Paygate-Signature").unwrap().contains(&format!("kid={SBX_AGENCY}")));
    let balances = s.admin_get("/v1/ledger/balances?account_prefix=sandbox:").await;
    assert_eq!(super::sandbox_balance(&balances, &format!("sandbox:bank:{SANDBOX}")), AMOUNT);

    // failed: accepted, and the order is unchanged.
    let failed = s.order("SBX-0002").await;
    let answer = s.pay(&failed, "failed").await;
    assert_eq!(
        answer,
        json!({"result": "accepted", "payment_id": failed, "payment_status": "pending"})
    );
    assert_eq!(s.w.payment(&failed).await["status"], "pending");

    // redelivered: the same callback twice, the second a duplicate.
    let twice = s.order("SBX-0003").await;
    let answer = s.pay(&twice, "redelivered").await;
    assert_eq!(
        answer,
        json!({"result": "duplicate", "payment_id": twice, "payment_status": "paid"})
    );
    s.w.app
        .assert_count(
            &format!("SELECT count(*) FROM bank_callbacks WHERE payment_id = '{twice}'"),
            1,
        )
        .await;

    // double_payment: on a pending order, a first payment then a second; on a paid one, the
    // second only. The money goes to the sandbox's suspense, and a case opens.
    let double = s.order("SBX-0004").await;
    let answer = s.pay(&double, "double_payment").await;
    assert_eq!(
        answer,
        json!({"result": "exception", "exception": "double_payment", "payment_id": double,
               "payment_status": "paid"})
    );
    let answer = s.pay(&paid, "double_payment").await;
    assert_eq!(answer["exception"], "double_payment", "{answer}");
    assert_eq!(cases(&s, "double_payment").await.len(), 2);
    let balances = s.admin_get("/v1/ledger/balances?account_prefix=sandbox:").await;
    assert_eq!(
        super::sandbox_balance(&balances, &format!("sandbox:suspense:{SANDBOX}")),
        "-300000"
    );

    // amount_mismatch: the callback's own 422, kept for investigation as a case.
    let mismatch = s.order("SBX-0005").await;
    let answer = s.pay_with(&s.key, &mismatch, "amount_mismatch").await;
    assert_problem(answer, 422, "amount_mismatch").await;
    assert_eq!(s.w.payment(&mismatch).await["status"], "pending");
    let opened = cases(&s, "amount_mismatch").await;
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0]["agency"], SBX_AGENCY, "{:?}", opened[0]);

    // late and paid_in_time need an order past its expiry.
    let late = s.order("SBX-0006").await;
    let answer = s.pay_with(&s.key, &late, "late").await;
    assert_problem(answer, 409, "order_not_expired").await;
    let answer = s.pay_with(&s.key, &late, "paid_in_time").await;
    assert_problem(answer, 409, "order_not_expired").await;
    assert_eq!(s.w.payment(&late).await["status"], "pending");
    s.w.backdate(&late).await;
    let answer = s.pay(&late, "late").await;
    assert_eq!(
        answer,
        json!({"result": "exception", "exception": "order_closed", "payment_id": late,
               "payment_status": "expired"})
    );
    let in_time = s.order("SBX-0007").await;
    s.w.backdate(&in_time).await;
    let answer = s.pay(&in_time, "paid_in_time").await;
    assert_eq!(
        answer,
        json!({"result": "accepted", "payment_id": in_time, "payment_status": "paid"})
    );
    let payment = s.w.payment(&in_time).await;
    assert_eq!(payment["paid_at"], "2025-03-01T23:59:59Z", "expires at {EXPIRED_AT}");

    let verified = s.admin_get("/v1/ledger/verify").await;
    assert_eq!(verified["ok"], true, "{verified}");
}

#[tokio::test]
async fn the_sandbox_bank_refuses_what_it_must_and_changes_nothing() {
    let s = Sandbox::new().await;
    let order = s.order("SBX-0001").await;
    let other_key =
        s.w.app.create_agency(OTHER_AGENCY).await["api_key"].as_str().unwrap().to_owned();
    let state = || async {
        s.w.app
            .row(
                "SELECT (SELECT count(*) FROM bank_callbacks) || '/' ||
                        (SELECT count(*) FROM callback_exceptions) || '/' ||
                        (SELECT string_agg(status, ',' ORDER BY id) FROM payments)",
                &[],
            )
            .await
            .get::<_, String>(0)
    };
    let before = state().await;
    // Another agency's key: the order does not exist for it.
    assert_problem(s.pay_with(&other_key, &order, "succeeded").await, 404, "payment_not_found")
        .await;
    assert_problem(
        s.pay_with(&s.w.agency_key, &order, "succeeded").await,
        404,
        "payment_not_found",
    )
    .await;
    // An auditor may not pay.
    let auditor = s.w.auditor_key.clone();
    assert_problem(s.pay_with(&auditor, &order, "succeeded").await, 403, "forbidden").await;
    // No such order.
    assert_problem(s.pay_with(&s.key, "pay_nothing", "succeeded").await, 404, "payment_not_found")
        .await;
    // A scenario that does not exist, or none.
    let problem = s.pay_with(&s.key, &order, "lost_in_the_post").await;
    let problem = assert_problem(problem, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "scenario", "{problem}");
    let problem =
        s.w.app
            .post_with(&s.key, &format!("/v1/sandbox/payments/{order}/pay"))
            .json(&json!({}))
            .problem(422, "validation_failed")
            .await;
    assert_eq!(problem["errors"][0]["field"], "scenario", "{problem}");
    assert_eq!(state().await, before);

    // An admin may play a scenario on any sandbox order.
    let answer = json_with(s.pay_with(&s.w.app.admin_key, &order, "succeeded").await, 200).await;
    assert_eq!(answer["result"], "accepted", "{answer}");
}

#[tokio::test]
async fn sandbox_refunds_are_completed_or_failed_as_a_banks_result_would() {
    let s = Sandbox::new().await;
    let order = s.order("SBX-0001").await;
    s.pay(&order, "succeeded").await;

    // Not approved yet: unknown to the bank.
    let pending =
        s.w.app
            .post_with(&s.key, &format!("/v1/payments/{order}/refunds"))
            .header("Idempotency-Key", "r-pending")
            .json(&json!({"amount": "10000", "reason": "Chờ duyệt"}))
            .json_with(201)
            .await;
    let pending_id = pending["id"].as_str().unwrap();
    let answer = s.refund_result(&s.key, pending_id, &json!({"status": "completed"})).await;
    assert_problem(answer, 404, "refund_not_found").await;

    // Completed: posted once; the same result again is a duplicate; another is a conflict.
    let refund = s.approved_refund(&order, "50000").await;
    let completed = json!({"status": "completed"});
    let answer = json_with(s.refund_result(&s.key, &refund, &completed).await, 200).await;
    assert_eq!(answer, json!({"result": "accepted", "refund_status": "completed"}));
    let answer = json_with(s.refund_result(&s.key, &refund, &completed).await, 200).await;
    assert_eq!(answer, json!({"result": "duplicate", "refund_status": "completed"}));
    let answer = s.refund_result(&s.key, &refund, &json!({"status": "failed"})).await;
    assert_problem(answer, 409, "refund_result_conflict").await;
    let read = s.admin_get(&format!("/v1/refunds/{refund}")).await;
    assert_eq!(read["status"], "completed", "{read}");
    assert_eq!(read["bank"], SANDBOX, "{read}");
    assert_eq!(read["bank_refund_id"], format!("SBX-{refund}"), "{read}");
    assert_eq!(s.w.payment(&order).await["refunded_amount"], "50000");
    let balances = s.admin_get("/v1/ledger/balances?account_prefix=sandbox:").await;
    assert_eq!(
        super::sandbox_balance(&balances, &format!("sandbox:agency:{SBX_AGENCY}:fee")),
        "-100000"
    );

    // Failed: the agency rehearses that too, with its own reason.
    let second = s.approved_refund(&order, "20000").await;
    let answer = json_with(
        s.refund_result(
            &s.checker,
            &second,
            &json!({"status": "failed", "failure_reason": "Tài khoản đã đóng"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(answer, json!({"result": "accepted", "refund_status": "failed"}));
    let read = s.admin_get(&format!("/v1/refunds/{second}")).await;
    assert_eq!(read["failure_reason"], "Tài khoản đã đóng", "{read}");
    // The agency heard of both ends.
    let events = s.w.app.get_json(&s.key, &format!("/v1/events?payment_id={order}")).await;
    let mut types: Vec<&str> =
        events["items"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    types.sort();
    assert_eq!(types, ["payment.paid", "refund.completed", "refund.failed"]);

    // An invalid status is named; an auditor may not report; another agency's key finds nothing.
    // None of them changes anything.
    let ledger = s.w.app.count("SELECT count(*) FROM ledger_entries").await;
    let pending_refund = s.approved_refund(&order, "10000").await;
    let problem = s.refund_result(&s.key, &pending_refund, &json!({"status": "done"})).await;
    let problem = assert_problem(problem, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "status", "{problem}");
    let answer = s.refund_result(&s.w.auditor_key, &second, &completed).await;
    assert_problem(answer, 403, "forbidden").await;
    let answer = s.refund_result(&s.w.agency_key, &pending_refund, &completed).await;
    assert_problem(answer, 404, "refund_not_found").await;
    let answer = s.refund_result(&s.w.auditor_key, &pending_refund, &completed).await;
    assert_problem(answer, 403, "forbidden").await;
    assert_eq!(s.admin_get(&format!("/v1/refunds/{pending_refund}")).await["status"], "approved");
    s.w.app.assert_count("SELECT count(*) FROM ledger_entries", ledger).await;
}
