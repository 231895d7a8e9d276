//! Cases that resolve themselves: an inquiry when its order is paid, a `missing_in_bank` case
//! when a later run matches its transaction.

use super::*;

#[tokio::test]
async fn an_inquiry_resolves_itself_as_paid_when_a_callback_pays_its_order() {
    let d = Desk::new().await;
    let id = d.w.order("SR-1").await;
    let other = d.w.order("SR-2").await;
    let body = json!({"payment_id": id, "message": "Người nộp báo đã thanh toán."});
    let inquiry = json_with(d.open(&d.w.agency_key, body).await, 201).await;
    let body = json!({"payment_id": other, "message": "Người nộp báo đã thanh toán."});
    let untouched = json_with(d.open(&d.w.agency_key, body).await, 201).await;

    d.pay("FT-SR-1", &id, "accepted").await;

    let resolved = d.case(&id_of(&inquiry)).await;
    assert_eq!(resolved["status"], "resolved");
    let resolution = &resolved["resolution"];
    assert_eq!(resolution["kind"], "paid");
    assert_eq!(resolution["by"], system_actor());
    assert_eq!(resolution["approved_by"], Value::Null);
    assert_eq!(d.case(&id_of(&untouched)).await["status"], "open");
    // paygate's own resolution is not an operator action.
    assert!(d.audited("case.resolve", &id_of(&inquiry)).await.is_empty());
    // A resolved inquiry takes no other resolution.
    let body = json!({"resolution": "no_action", "note": "x"});
    assert_problem(d.resolve(d.admin_key(), &id_of(&inquiry), body).await, 409, "case_resolved")
        .await;
}

#[tokio::test]
async fn an_inquiry_resolves_itself_when_reconciliation_recovers_its_orders_lost_callback() {
    let d = Desk::new().await;
    let id = d.order_before_day("SR-3").await;
    let body = json!({"payment_id": id, "message": "Ngân hàng đã trừ tiền."});
    let inquiry = json_with(d.open(&d.w.agency_key, body).await, 201).await;

    let run = d.run(DAY, &[line("FT-SR-3", &id, AMOUNT, ON_DAY)]).await;

    assert_eq!(run["summary"]["recovered"]["count"], 1, "{run}");
    let resolved = d.case(&id_of(&inquiry)).await;
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["resolution"]["kind"], "paid");
}

#[tokio::test]
async fn a_missing_in_bank_case_resolves_itself_when_a_later_run_matches_its_transaction() {
    let d = Desk::new().await;
    let [late, never] = [d.order_before_day("ML-1").await, d.order_before_day("ML-2").await];
    d.pay_at("FT-ML-1", &late, ON_DAY, "accepted").await;
    d.pay_at("FT-ML-2", &never, ON_DAY, "accepted").await;
    d.run(DAY, &[]).await;
    let late_case = d.case_of("missing_in_bank", "FT-ML-1").await;
    let never_case = d.case_of("missing_in_bank", "FT-ML-2").await;
    assert_eq!(late_case["status"], "open");

    // The bank's next statement carries the first transaction: a timing difference.
    let run = d.run(NEXT_DAY, &[line("FT-ML-1", &late, AMOUNT, ON_DAY)]).await;

    assert_eq!(run["summary"]["matched"]["count"], 1, "{run}");
    let resolved = d.case(&id_of(&late_case)).await;
    assert_eq!(resolved["status"], "resolved");
    let resolution = &resolved["resolution"];
    assert_eq!(resolution["kind"], "matched_later");
    assert_eq!(resolution["by"], system_actor());
    let note = resolution["note"].as_str().expect("note");
    assert!(note.contains(run["id"].as_str().unwrap()), "{note}");
    assert_eq!(d.case(&id_of(&never_case)).await["status"], "open");

    // A rerun of the first day reports only the transaction still missing, and opens nothing.
    let rerun = d.run(DAY, &[]).await;
    assert_eq!(rerun["summary"]["missing_in_bank"]["count"], 1, "{rerun}");
    d.w.app.assert_count("SELECT count(*) FROM cases", 2).await;
    assert_eq!(d.case(&id_of(&late_case)).await["status"], "resolved");
    assert_eq!(d.case_entries().await, 0);
}
