//! The daily report's `cases` and `refunds`.

use super::*;

/// Moves a case's opening (and, when given, its resolution) to the given times.
async fn move_case(d: &Desk, id: &str, opened_at: &str, resolved_at: Option<&str>) {
    let moved =
        d.w.app
            .execute(
                "UPDATE cases SET opened_at = $2::text::timestamptz,
                 resolved_at = coalesce($3::text::timestamptz, resolved_at)
             WHERE id = $1",
                &[&id, &opened_at, &resolved_at],
            )
            .await;
    assert_eq!(moved, 1);
}

async fn report(d: &Desk, date: &str) -> Value {
    d.w.audit(&format!("/v1/reports/daily?date={date}")).await
}

#[tokio::test]
async fn the_daily_report_counts_the_cases_opened_resolved_and_still_open_and_the_refunds_completed(
) {
    let d = Desk::new().await;
    // Refunded: opened and resolved on the day, its refund completed that day.
    let (_, refunded) = d.double_payment("REP-1").await;
    let body = json!({"resolution": "refund", "note": "Hoàn lại lần thanh toán thứ hai."});
    let resolving = json_with(d.resolve(d.admin_key(), &id_of(&refunded), body).await, 200).await;
    let refund_id = resolving["resolution"]["refund_id"].as_str().unwrap().to_owned();
    json_with(d.decide_refund(&d.checker_key, &refund_id, "approve", None).await, 200).await;
    let result = json!({
        "status": "completed", "bank_refund_id": "RF-REP-1",
        "completed_at": paid_a_minute_ago(), "failure_reason": null,
    });
    json_with(d.refund_result(&refund_id, &result).await, 200).await;
    // Resolved with no action on the day.
    let quiet = d.unknown_order_payment("FT-REP-2").await;
    let no_action = json!({"resolution": "no_action", "note": "x"});
    json_with(d.resolve(d.admin_key(), &id_of(&quiet), no_action.clone()).await, 200).await;
    // Opened on the day and resolved the next day.
    let late = d.unknown_order_payment("FT-REP-3").await;
    json_with(d.resolve(d.admin_key(), &id_of(&late), no_action).await, 200).await;
    // Opened on the day, still open.
    let order = d.w.order("REP-4").await;
    let open =
        json_with(d.open(&d.w.agency_key, json!({"payment_id": order, "message": "?"})).await, 201)
            .await;
    // Opened the day before, still open.
    let old =
        json_with(d.open(d.admin_key(), json!({"bank": BANK, "message": "?"})).await, 201).await;
    move_case(&d, &id_of(&refunded), ON_DAY, Some("2026-11-22T05:00:00Z")).await;
    move_case(&d, &id_of(&quiet), ON_DAY, Some("2026-11-22T16:59:59Z")).await;
    move_case(&d, &id_of(&late), ON_DAY, Some("2026-11-22T17:00:00Z")).await;
    move_case(&d, &id_of(&open), ON_DAY, None).await;
    move_case(&d, &id_of(&old), "2026-11-21T16:59:59Z", None).await;
    d.w.app
        .execute(
            "UPDATE refunds SET completed_at = '2026-11-22T05:00:00Z' WHERE id = $1",
            &[&refund_id],
        )
        .await;

    let day = report(&d, DAY).await;
    assert_eq!(day["refunds"], json!({"count": 1, "amount": AMOUNT}));
    assert_eq!(day["cases"], json!({"opened": 4, "resolved": 2, "open_at_end": 3}));

    let before = report(&d, "2026-11-21").await;
    assert_eq!(before["refunds"], json!({"count": 0, "amount": "0"}));
    assert_eq!(before["cases"], json!({"opened": 1, "resolved": 0, "open_at_end": 1}));

    let next = report(&d, NEXT_DAY).await;
    assert_eq!(next["refunds"], json!({"count": 0, "amount": "0"}));
    assert_eq!(next["cases"], json!({"opened": 0, "resolved": 1, "open_at_end": 2}));
}
