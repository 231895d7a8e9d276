//! Every way paygate opens a case by itself, at most one per difference.

use super::*;

#[tokio::test]
async fn a_double_payment_opens_one_case_with_its_money_and_a_redelivery_opens_nothing_new() {
    let d = Desk::new().await;
    let id = d.w.order("DP-1").await;
    d.pay("FT-DP-1", &id, "accepted").await;
    let second = succeeded("FT-DP-2", &id, &paid_a_minute_ago());
    assert_eq!(d.w.deliver_ok(&second).await["result"], "exception");

    let case = d.case_of("double_payment", "FT-DP-2").await;
    assert_eq!(case["status"], "open");
    assert_eq!(case["agency"], AGENCY);
    assert_eq!(case["bank"], BANK);
    assert_eq!(case["payment_id"], id.as_str());
    assert_eq!(case["amount"], AMOUNT);
    assert_eq!(case["opened_by"], system_actor());
    assert_eq!(case["notes"], json!([]));
    assert_eq!(case["resolution"], Value::Null);
    // The case names the exception that opened it.
    let exception: i64 =
        d.w.app
            .row(
                "SELECT count(*) FROM cases c JOIN callback_exceptions e ON e.id = c.exception_id
             WHERE c.id = $1 AND e.bank_txn_id = 'FT-DP-2' AND e.reason = 'double_payment'",
                &[&id_of(&case)],
            )
            .await
            .get(0);
    assert_eq!(exception, 1);

    let before = d.state().await;
    assert_eq!(d.w.deliver_ok(&second).await["result"], "duplicate");
    assert_eq!(d.state().await, before);
    d.w.app.assert_count("SELECT count(*) FROM cases", 1).await;
    // paygate's own cases are not operator actions: no audit entry.
    assert_eq!(d.case_entries().await, 0);
}

#[tokio::test]
async fn a_payment_of_a_cancelled_order_opens_an_order_closed_case_with_the_orders_agency() {
    let d = Desk::new().await;
    let (id, _, case) = d.closed_order_payment("OC-1").await;

    assert_eq!(case["kind"], "order_closed");
    assert_eq!(case["status"], "open");
    assert_eq!(case["agency"], AGENCY);
    assert_eq!(case["payment_id"], id.as_str());
    assert_eq!(case["amount"], AMOUNT);
    assert_eq!(d.w.balance(&format!("suspense:{BANK}")).await, "-150000");
}

#[tokio::test]
async fn a_callback_for_an_unknown_order_opens_a_payment_not_found_case_once_whatever_is_redelivered(
) {
    let d = Desk::new().await;
    let body = succeeded("FT-NF-1", "pay_nonexistent", &paid_a_minute_ago());
    assert_problem(d.w.deliver(&body).await, 404, "payment_not_found").await;

    let case = d.case_of("payment_not_found", "FT-NF-1").await;
    assert_eq!(case["agency"], Value::Null);
    assert_eq!(case["payment_id"], "pay_nonexistent");
    assert_eq!(case["amount"], AMOUNT);

    for _ in 0..2 {
        assert_problem(d.w.deliver(&body).await, 404, "payment_not_found").await;
    }
    // Each delivery is kept for investigation; the difference has one case.
    d.w.app.assert_count("SELECT count(*) FROM callback_exceptions", 3).await;
    d.w.app.assert_count("SELECT count(*) FROM cases", 1).await;
}

#[tokio::test]
async fn a_callback_with_the_wrong_amount_opens_an_amount_mismatch_case_of_the_orders_agency() {
    let d = Desk::new().await;
    let id = d.w.order("AM-1").await;
    let mut body = succeeded("FT-AM-1", &id, &paid_a_minute_ago());
    body["amount"] = json!("149999");
    assert_problem(d.w.deliver(&body).await, 422, "amount_mismatch").await;
    assert_problem(d.w.deliver(&body).await, 422, "amount_mismatch").await;

    let case = d.case_of("amount_mismatch", "FT-AM-1").await;
    assert_eq!(case["agency"], AGENCY);
    assert_eq!(case["payment_id"], id.as_str());
    assert_eq!(case["amount"], "149999");
    d.w.app.assert_count("SELECT count(*) FROM cases", 1).await;
    assert_eq!(d.w.payment(&id).await["status"], "pending");
}

#[tokio::test]
async fn a_reconciliation_run_opens_a_case_for_each_difference_and_a_rerun_opens_nothing_new() {
    let d = Desk::new().await;
    let [mismatched, missing] =
        [d.order_before_day("RC-1").await, d.order_before_day("RC-2").await];
    d.pay_at("FT-RC-1", &mismatched, ON_DAY, "accepted").await;
    d.pay_at("FT-RC-2", &missing, ON_DAY, "accepted").await;
    let lines = [
        // paygate recorded 150000 for this transaction.
        line("FT-RC-1", &mismatched, "140000", ON_DAY),
        // No such order.
        line("FT-RC-9", "pay_unknown", "70000", ON_DAY),
    ];

    let run = d.run(DAY, &lines).await;
    assert_eq!(run["summary"]["mismatch"]["count"], 1, "{run}");
    assert_eq!(run["summary"]["missing_in_gateway"]["count"], 1, "{run}");
    assert_eq!(run["summary"]["missing_in_bank"]["count"], 1, "{run}");

    let mismatch = d.case_of("mismatch", "FT-RC-1").await;
    assert_eq!(mismatch["agency"], AGENCY);
    assert_eq!(mismatch["payment_id"], mismatched.as_str());
    assert_eq!(mismatch["amount"], "140000");
    let in_gateway = d.case_of("missing_in_gateway", "FT-RC-9").await;
    assert_eq!(in_gateway["agency"], Value::Null);
    assert_eq!(in_gateway["payment_id"], "pay_unknown");
    assert_eq!(in_gateway["amount"], "70000");
    let in_bank = d.case_of("missing_in_bank", "FT-RC-2").await;
    assert_eq!(in_bank["agency"], AGENCY);
    assert_eq!(in_bank["payment_id"], missing.as_str());
    assert_eq!(in_bank["amount"], AMOUNT);
    for case in [&mismatch, &in_gateway, &in_bank] {
        assert_eq!(case["status"], "open", "{case}");
        assert_eq!(case["opened_by"], system_actor(), "{case}");
    }
    let from_run: i64 =
        d.w.app.row("SELECT count(*) FROM cases WHERE run_id = $1", &[&id_of(&run)]).await.get(0);
    assert_eq!(from_run, 3);

    let rerun = d.run(DAY, &lines).await;
    assert_eq!(rerun["summary"], run["summary"]);
    d.w.app.assert_count("SELECT count(*) FROM cases", 3).await;
    assert_eq!(d.case_entries().await, 0);
}

#[tokio::test]
async fn a_line_that_reconciliation_recovers_into_suspense_opens_an_order_closed_case() {
    let d = Desk::new().await;
    let id = d.order_before_day("RV-1").await;
    d.w.cancel(&id).await;

    let run = d.run(DAY, &[line("FT-RV-1", &id, AMOUNT, ON_DAY)]).await;

    assert_eq!(run["summary"]["recovered"]["count"], 1, "{run}");
    let case = d.case_of("order_closed", "FT-RV-1").await;
    assert_eq!(case["payment_id"], id.as_str());
    assert_eq!(case["agency"], AGENCY);
    d.w.app.assert_count("SELECT count(*) FROM cases", 1).await;
    d.run(DAY, &[line("FT-RV-1", &id, AMOUNT, ON_DAY)]).await;
    d.w.app.assert_count("SELECT count(*) FROM cases", 1).await;
}
