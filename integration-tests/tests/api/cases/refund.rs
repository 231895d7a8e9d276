//! `refund`: a double payment's money goes back to the payer through a suspense refund, a
//! second admin's approval, the bank's instruction and the bank's signed result.

use super::*;

/// A double payment whose case an admin resolved as `refund`, with the bank's `refund_url` at
/// a receiver: the desk, the receiver, the case (`resolving`) and the refund id.
async fn refund_requested(reference: &str) -> (Desk, Receiver, Value, String) {
    let d = Desk::new().await;
    let receiver = Receiver::start(Behaviour::status(200)).await;
    d.set_refund_url(&receiver.url("/refunds/instructions")).await;
    let (_, case) = d.double_payment(reference).await;
    let note = "Người nộp thanh toán hai lần; hoàn lại lần thứ hai.";
    let body = json!({"resolution": "refund", "note": note});
    let resolving = json_with(d.resolve(d.admin_key(), &id_of(&case), body).await, 200).await;
    let refund_id = resolving["resolution"]["refund_id"].as_str().expect("refund_id").to_owned();
    (d, receiver, resolving, refund_id)
}

/// The `refund.requested` instructions the bank's receiver got for `refund_id`, waiting for
/// the first.
async fn instructions_for(receiver: &Receiver, refund_id: &str) -> Vec<Value> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let instructions: Vec<Value> = events_of(&receiver.requests(), "refund.requested")
            .into_iter()
            .filter(|body| body["refund"]["id"] == refund_id)
            .collect();
        if !instructions.is_empty() {
            return instructions;
        }
        assert!(std::time::Instant::now() < deadline, "no instruction for {refund_id}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn completed(bank_refund_id: &str) -> Value {
    json!({
        "status": "completed", "bank_refund_id": bank_refund_id,
        "completed_at": paid_a_minute_ago(), "failure_reason": null,
    })
}

#[tokio::test]
async fn a_double_payment_goes_back_to_the_payer_and_suspense_returns_to_zero() {
    let (d, receiver, resolving, refund_id) = refund_requested("RF-1").await;
    let id = id_of(&resolving);
    let order = resolving["payment_id"].as_str().expect("payment_id").to_owned();

    assert_case(&resolving);
    assert_eq!(resolving["status"], "resolving");
    assert_eq!(resolving["resolution"]["kind"], "refund");
    assert_eq!(resolving["resolution"]["approved_by"], Value::Null);
    let refund = d.refund(&refund_id).await;
    assert_eq!(refund["kind"], "suspense");
    assert_eq!(refund["status"], "pending_approval");
    assert_eq!(refund["case_id"], id.as_str());
    assert_eq!(refund["payment_id"], order.as_str());
    assert_eq!(refund["bank_txn_id"], "FT-RF-1-2");
    assert_eq!(refund["amount"], AMOUNT);
    assert_eq!(refund["agency"], AGENCY);
    // While the refund is under way the case takes no other resolution.
    let waiting = d.state().await;
    for body in [
        json!({"resolution": "refund", "note": "x"}),
        json!({"resolution": "no_action", "note": "x"}),
    ] {
        assert_problem(d.resolve(&d.checker_key, &id, body).await, 409, "case_resolved").await;
    }
    assert_problem(d.approve(&d.checker_key, &id).await, 409, "refund_not_pending").await;
    // The admin who chose the refund cannot approve it.
    let response = d.decide_refund(d.admin_key(), &refund_id, "approve", None).await;
    assert_problem(response, 403, "same_approver").await;
    assert_eq!(d.state().await, waiting);

    let approved =
        json_with(d.decide_refund(&d.checker_key, &refund_id, "approve", None).await, 200).await;
    assert_eq!(approved["status"], "approved");
    let instructions = instructions_for(&receiver, &refund_id).await;
    assert_eq!(instructions[0]["refund"]["bank_txn_id"], "FT-RF-1-2");
    assert_eq!(instructions[0]["refund"]["amount"], AMOUNT);
    // Nothing is posted before the bank says it returned the money.
    assert_eq!(d.w.balance(&format!("suspense:{BANK}")).await, "-150000");
    assert_eq!(d.case(&id).await["status"], "resolving");

    let answer = json_with(d.refund_result(&refund_id, &completed("RF-VCB-0001")).await, 200).await;

    assert_eq!(answer["result"], "accepted", "{answer}");
    let resolved = d.case(&id).await;
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["resolution"]["kind"], "refund");
    assert_eq!(resolved["resolution"]["refund_id"], refund_id.as_str());
    let checker_key_id = d.key_id(&d.checker_key).await;
    assert_api_actor(&resolved["resolution"]["approved_by"], &checker_key_id, "admin", None);
    let balances = d.w.balances().await;
    assert_eq!(balances[&format!("suspense:{BANK}")], "0");
    // Two payments in, one back out: the bank holds the first.
    assert_eq!(balances[&format!("bank:{BANK}")], AMOUNT);
    assert_eq!(balances[&format!("agency:{AGENCY}:fee")], "-150000");
    let verify = d.w.verify().await;
    assert_eq!(verify["ok"], true, "{verify}");
    assert_eq!(verify["transactions"], 3, "{verify}");

    // The bank's redelivered result changes nothing.
    let settled = d.state().await;
    let again = json_with(d.refund_result(&refund_id, &completed("RF-VCB-0001")).await, 200).await;
    assert_eq!(again["result"], "duplicate", "{again}");
    assert_eq!(d.state().await, settled);
    let body = json!({"resolution": "no_action", "note": "x"});
    assert_problem(d.resolve(&d.checker_key, &id, body).await, 409, "case_resolved").await;

    let admin_key_id = d.key_id(d.admin_key()).await;
    let audited = d.audited("case.resolve", &id).await;
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0].0.as_deref(), Some(admin_key_id.as_str()));
    assert_eq!(audited[0].1["resolution"], "refund");
    assert_eq!(audited[0].1["refund_id"], refund_id.as_str());
    let approvals: i64 =
        d.w.app
            .row(
                "SELECT count(*) FROM audit_log WHERE action = 'refund.approve' AND target = $1
               AND actor_key_id = $2",
                &[&format!("refund:{refund_id}"), &checker_key_id],
            )
            .await
            .get(0);
    assert_eq!(approvals, 1);
}

#[tokio::test]
async fn a_failed_suspense_refund_reopens_the_case_and_the_money_stays_in_suspense() {
    let (d, receiver, resolving, refund_id) = refund_requested("RF-2").await;
    let id = id_of(&resolving);
    json_with(d.decide_refund(&d.checker_key, &refund_id, "approve", None).await, 200).await;
    instructions_for(&receiver, &refund_id).await;

    let body = json!({"status": "failed", "failure_reason": "Tài khoản người nộp đã đóng"});
    let answer = json_with(d.refund_result(&refund_id, &body).await, 200).await;

    assert_eq!(answer["result"], "accepted", "{answer}");
    let reopened = d.case(&id).await;
    assert_eq!(reopened["status"], "open");
    assert_eq!(reopened["resolution"], Value::Null);
    let notes = reopened["notes"].as_array().expect("notes");
    assert_eq!(notes.len(), 1, "{reopened}");
    assert_eq!(notes[0]["by"], system_actor());
    let message = notes[0]["message"].as_str().expect("message");
    assert!(message.contains(&refund_id) && message.contains("failed"), "{message}");
    assert_eq!(d.refund(&refund_id).await["status"], "failed");
    assert_eq!(d.w.balance(&format!("suspense:{BANK}")).await, "-150000");
    assert_eq!(d.w.verify().await["ok"], true);
    // The case may be refunded again.
    let body = json!({"resolution": "refund", "note": "Hoàn lại vào tài khoản khác."});
    let again = json_with(d.resolve(&d.checker_key, &id, body).await, 200).await;
    assert_eq!(again["status"], "resolving");
    assert_ne!(again["resolution"]["refund_id"], refund_id.as_str());
}

#[tokio::test]
async fn a_rejected_suspense_refund_reopens_the_case_and_moves_nothing() {
    let (d, _receiver, resolving, refund_id) = refund_requested("RF-3").await;
    let id = id_of(&resolving);

    let body = json!({"reason": "Chưa đủ chứng từ."});
    let rejected =
        json_with(d.decide_refund(&d.checker_key, &refund_id, "reject", Some(body)).await, 200)
            .await;

    assert_eq!(rejected["status"], "rejected");
    let reopened = d.case(&id).await;
    assert_eq!(reopened["status"], "open");
    assert_eq!(reopened["resolution"], Value::Null);
    let message = reopened["notes"][0]["message"].as_str().expect("a note");
    assert!(message.contains(&refund_id) && message.contains("rejected"), "{message}");
    assert_eq!(d.w.balance(&format!("suspense:{BANK}")).await, "-150000");
    d.w.app.assert_count("SELECT count(*) FROM ledger_transactions", 2).await;
}
