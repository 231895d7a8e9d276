//! `apply`: a closed order's money in suspense pays another pending order of the same agency,
//! once a second admin approves.

use super::*;

#[tokio::test]
async fn an_approved_apply_pays_the_pending_order_with_the_cases_payment_and_moves_the_money_once()
{
    let d = Desk::new().await;
    let receiver = Receiver::start(Behaviour::status(200)).await;
    d.set_notify_url(&receiver.url("/hooks/paygate")).await;
    let (closed, paid_at, case) = d.closed_order_payment("AP-1").await;
    let id = id_of(&case);
    let target = d.w.order("AP-2").await;
    // An inquiry about the order that receives the money resolves itself when it is paid.
    let inquiry = json_with(
        d.open(&d.w.agency_key, json!({"payment_id": target, "message": "Đã nộp tiền."})).await,
        201,
    )
    .await;
    let note = "Hồ sơ đã được tạo lại; dùng khoản tiền cho lệnh mới.";

    let pending = json_with(
        d.resolve(
            d.admin_key(),
            &id,
            json!({"resolution": "apply", "note": note, "payment_id": target}),
        )
        .await,
        200,
    )
    .await;

    assert_case(&pending);
    assert_eq!(pending["status"], "pending_approval");
    assert_eq!(pending["resolution"]["kind"], "apply");
    assert_eq!(pending["resolution"]["payment_id"], target.as_str());
    assert_eq!(pending["resolution"]["note"], note);
    assert_eq!(pending["resolution"]["approved_by"], Value::Null);
    // Nothing moves before the second admin approves.
    assert_eq!(d.w.payment(&target).await["status"], "pending");
    assert_eq!(d.w.balance(&format!("suspense:{BANK}")).await, "-150000");
    let waiting = d.state().await;
    // The key that chose the apply cannot approve it.
    assert_problem(d.approve(d.admin_key(), &id).await, 403, "same_approver").await;
    assert_eq!(d.state().await, waiting);

    let approved = json_with(d.approve(&d.checker_key, &id).await, 200).await;

    assert_case(&approved);
    assert_eq!(approved["status"], "resolved");
    assert_eq!(approved["resolution"]["kind"], "apply");
    assert_eq!(approved["resolution"]["payment_id"], target.as_str());
    let checker_key_id = d.key_id(&d.checker_key).await;
    let admin_key_id = d.key_id(d.admin_key()).await;
    assert_api_actor(&approved["resolution"]["by"], &admin_key_id, "admin", None);
    assert_api_actor(&approved["resolution"]["approved_by"], &checker_key_id, "admin", None);
    let order = d.w.payment(&target).await;
    assert_eq!(order["status"], "paid");
    assert_eq!(order["bank"], BANK);
    assert_eq!(order["bank_txn_id"], "FT-AP-1");
    assert_eq!(order["paid_at"], paid_at.as_str());
    assert_eq!(d.w.payment(&closed).await["status"], "cancelled");
    // The money moved from suspense to the agency's account, in one `apply` transaction.
    let balances = d.w.balances().await;
    assert_eq!(balances[&format!("suspense:{BANK}")], "0");
    assert_eq!(balances[&format!("agency:{AGENCY}:fee")], "-150000");
    assert_eq!(balances[&format!("bank:{BANK}")], AMOUNT);
    let entries: Vec<(String, String, String, String)> =
        d.w.app
            .rows(
                "SELECT t.kind, e.account, e.debit::text, e.credit::text
             FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id
             WHERE t.case_id = $1 AND t.payment_id = $2 ORDER BY e.id",
                &[&id, &target],
            )
            .await
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
            .collect();
    let apply = |account: String, debit: &str, credit: &str| {
        ("apply".to_owned(), account, debit.to_owned(), credit.to_owned())
    };
    assert_eq!(
        entries,
        [
            apply(format!("suspense:{BANK}"), AMOUNT, "0"),
            apply(format!("agency:{AGENCY}:fee"), "0", AMOUNT),
        ]
    );
    let verify = d.w.verify().await;
    assert_eq!(verify["ok"], true, "{verify}");
    assert_eq!(verify["transactions"], 2, "{verify}");
    // The agency hears that its order is paid, from a real receiver.
    let deadline = std::time::Instant::now() + WAIT;
    let paid_event = loop {
        let events = events_of(&receiver.requests(), "payment.paid");
        if let Some(event) = events.into_iter().find(|e| e["payment"]["id"] == target.as_str()) {
            break event;
        }
        assert!(std::time::Instant::now() < deadline, "no payment.paid event for {target}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(paid_event["payment"]["status"], "paid");
    assert_eq!(paid_event["payment"]["bank_txn_id"], "FT-AP-1");
    assert_eq!(paid_event["payment"]["paid_at"], paid_at.as_str());
    let inquiry = d.case(&id_of(&inquiry)).await;
    assert_eq!(inquiry["status"], "resolved");
    assert_eq!(inquiry["resolution"]["kind"], "paid");
    assert_eq!(inquiry["resolution"]["by"], system_actor());

    // Approving again answers the case again and moves nothing.
    let settled = d.state().await;
    let again = json_with(d.approve(&d.checker_key, &id).await, 200).await;
    assert_eq!(again["status"], "resolved");
    assert_eq!(d.state().await, settled);
    assert_problem(d.reject(&d.checker_key, &id, "x").await, 409, "case_resolved").await;
    let body = json!({"resolution": "no_action", "note": "x"});
    assert_problem(d.resolve(d.admin_key(), &id, body).await, 409, "case_resolved").await;
    assert_eq!(d.state().await, settled);

    let audited = d.audited("case.resolve", &id).await;
    assert_eq!(audited.len(), 2, "{audited:?}");
    assert_eq!(audited[0].0.as_deref(), Some(admin_key_id.as_str()));
    assert_eq!(audited[0].1["resolution"], "apply");
    assert_eq!(audited[0].1["payment_id"], target.as_str());
    assert_eq!(audited[1].0.as_deref(), Some(checker_key_id.as_str()));
    assert_eq!(audited[1].1["step"], "approve");
    assert_eq!(audited[1].1["payment_id"], target.as_str());
}

#[tokio::test]
async fn a_rejected_apply_reopens_the_case_keeps_the_reason_as_a_note_and_moves_no_money() {
    let d = Desk::new().await;
    let (_, _, case) = d.closed_order_payment("RJ-1").await;
    let id = id_of(&case);
    let target = d.w.order("RJ-2").await;
    let body = json!({"resolution": "apply", "note": "x", "payment_id": target});
    json_with(d.resolve(d.admin_key(), &id, body).await, 200).await;
    let waiting = d.state().await;

    assert_problem(d.reject(d.admin_key(), &id, "tự từ chối").await, 403, "same_approver").await;
    for body in [json!({}), json!({"reason": ""}), json!({"reason": "a".repeat(256)})] {
        let response = d.act(&d.checker_key, &id, "reject", Some(body.clone())).await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(invalid_fields(&problem), ["reason"], "{body}");
    }
    assert_eq!(d.state().await, waiting);

    let reason = "Lệnh được chọn thuộc hồ sơ khác.";
    let reopened = json_with(d.reject(&d.checker_key, &id, reason).await, 200).await;

    assert_case(&reopened);
    assert_eq!(reopened["status"], "open");
    assert_eq!(reopened["resolution"], Value::Null);
    let notes = reopened["notes"].as_array().expect("notes");
    assert_eq!(notes.len(), 1);
    let message = notes[0]["message"].as_str().expect("message");
    assert!(message.contains(reason) && message.contains(&target), "{message}");
    let checker_key_id = d.key_id(&d.checker_key).await;
    assert_api_actor(&notes[0]["by"], &checker_key_id, "admin", None);
    assert_eq!(d.w.payment(&target).await["status"], "pending");
    assert_eq!(d.w.balance(&format!("suspense:{BANK}")).await, "-150000");
    d.w.app.assert_count("SELECT count(*) FROM ledger_transactions WHERE kind = 'apply'", 0).await;
    let audited = d.audited("case.resolve", &id).await;
    assert_eq!(audited.len(), 2);
    assert_eq!(audited[1].0.as_deref(), Some(checker_key_id.as_str()));
    assert_eq!(audited[1].1["step"], "reject");
    assert_eq!(audited[1].1["reason"], reason);

    // Nothing waits any more; the case may be resolved afresh.
    let open = d.state().await;
    assert_problem(d.approve(&d.checker_key, &id).await, 409, "refund_not_pending").await;
    assert_problem(d.reject(&d.checker_key, &id, "x").await, 409, "refund_not_pending").await;
    assert_eq!(d.state().await, open);
    let body = json!({"resolution": "apply", "note": "lần hai", "payment_id": target});
    let again = json_with(d.resolve(&d.checker_key, &id, body).await, 200).await;
    assert_eq!(again["status"], "pending_approval");
}

#[tokio::test]
async fn an_apply_to_anything_but_a_pending_order_of_the_same_agency_obligation_and_amount_is_refused(
) {
    let d = Desk::new().await;
    let (closed, _, case) = d.closed_order_payment("WR-1").await;
    let id = id_of(&case);
    let other_agency = d.w.app.create_order(&d.other_agency_key, "fee", "WR-2", AMOUNT).await;
    let other_obligation = d.w.app.create_order(&d.w.agency_key, "tax", "WR-3", AMOUNT).await;
    let other_amount = d.w.app.create_order(&d.w.agency_key, "fee", "WR-4", "149000").await;
    let paid = d.w.order("WR-5").await;
    d.pay("FT-WR-5", &paid, "accepted").await;
    let cancelled = d.w.order("WR-6").await;
    d.w.cancel(&cancelled).await;
    let expired = d.w.order("WR-7").await;
    d.w.expire(&expired).await;
    let before = d.state().await;

    for target in [
        other_agency.as_str(),
        other_obligation.as_str(),
        other_amount.as_str(),
        paid.as_str(),
        cancelled.as_str(),
        expired.as_str(),
        closed.as_str(),
        "pay_nonexistent",
    ] {
        let body = json!({"resolution": "apply", "note": "x", "payment_id": target});
        let response = d.resolve(d.admin_key(), &id, body).await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(invalid_fields(&problem), ["payment_id"], "{target}: {problem}");
    }

    assert_eq!(d.state().await, before);
    assert_eq!(d.case(&id).await["status"], "open");
}

#[tokio::test]
async fn an_order_that_stops_being_pending_before_approval_is_refused_at_approval() {
    let d = Desk::new().await;
    let (_, _, case) = d.closed_order_payment("ST-1").await;
    let id = id_of(&case);
    let target = d.w.order("ST-2").await;
    let body = json!({"resolution": "apply", "note": "x", "payment_id": target});
    json_with(d.resolve(d.admin_key(), &id, body).await, 200).await;
    // The payer paid the order itself meanwhile.
    d.pay("FT-ST-2", &target, "accepted").await;
    let before = d.state().await;

    let problem =
        assert_problem(d.approve(&d.checker_key, &id).await, 422, "validation_failed").await;

    assert_eq!(invalid_fields(&problem), ["payment_id"]);
    assert_eq!(d.state().await, before);
    assert_eq!(d.case(&id).await["status"], "pending_approval");
    assert_eq!(d.w.balance(&format!("suspense:{BANK}")).await, "-150000");
    let reopened =
        json_with(d.reject(&d.checker_key, &id, "Lệnh đã được thanh toán.").await, 200).await;
    assert_eq!(reopened["status"], "open");
}

#[tokio::test]
async fn one_order_receives_the_money_of_at_most_one_case() {
    let d = Desk::new().await;
    let (_, _, first) = d.closed_order_payment("ONE-1").await;
    let (_, _, second) = d.closed_order_payment("ONE-2").await;
    let target = d.w.order("ONE-3").await;
    let body = json!({"resolution": "apply", "note": "x", "payment_id": target});
    json_with(d.resolve(d.admin_key(), &id_of(&first), body.clone()).await, 200).await;
    let before = d.state().await;

    let problem = assert_problem(
        d.resolve(d.admin_key(), &id_of(&second), body).await,
        422,
        "validation_failed",
    )
    .await;

    assert_eq!(invalid_fields(&problem), ["payment_id"]);
    assert_eq!(d.state().await, before);
}

#[tokio::test]
async fn concurrent_approvals_of_one_apply_move_the_money_once() {
    let d = Desk::new().await;
    let (_, _, case) = d.closed_order_payment("CC-1").await;
    let id = id_of(&case);
    let target = d.w.order("CC-2").await;
    let body = json!({"resolution": "apply", "note": "x", "payment_id": target});
    json_with(d.resolve(d.admin_key(), &id, body).await, 200).await;

    let mut approvals = Vec::new();
    for _ in 0..8 {
        let request = d.w.app.post_with(&d.checker_key, &format!("/v1/cases/{id}/approve"));
        approvals.push(tokio::spawn(async move { request.send().await.expect("approve") }));
    }
    for approval in approvals {
        let case = json_with(approval.await.expect("the request task"), 200).await;
        assert_eq!(case["status"], "resolved", "{case}");
    }

    d.w.app.assert_count("SELECT count(*) FROM ledger_transactions WHERE kind = 'apply'", 1).await;
    let paid_events: i64 =
        d.w.app
            .row(
                "SELECT count(*) FROM events WHERE payment_id = $1 AND type = 'payment.paid'",
                &[&target],
            )
            .await
            .get(0);
    assert_eq!(paid_events, 1);
    assert_eq!(d.audited("case.resolve", &id).await.len(), 2);
    assert_eq!(d.w.balance(&format!("suspense:{BANK}")).await, "0");
    assert_eq!(d.w.verify().await["ok"], true);
}
