//! Resolving: `no_action` and its limit, what each kind allows, and the body's rules.

use super::*;

#[tokio::test]
async fn no_action_on_a_case_whose_money_is_in_suspense_is_refused_and_changes_nothing() {
    let d = Desk::new().await;
    let (_, double) = d.double_payment("NA-1").await;
    let (_, _, closed) = d.closed_order_payment("NA-2").await;
    let before = d.state().await;

    for case in [&double, &closed] {
        let body = json!({"resolution": "no_action", "note": "Bỏ qua."});
        let response = d.resolve(d.admin_key(), &id_of(case), body).await;
        assert_problem(response, 422, "money_in_suspense").await;
    }

    assert_eq!(d.state().await, before);
    assert_eq!(d.w.balance(&format!("suspense:{BANK}")).await, "-300000");
}

#[tokio::test]
async fn no_action_resolves_a_case_without_money_and_a_resolved_case_answers_case_resolved() {
    let d = Desk::new().await;
    let case = d.unknown_order_payment("NA-3").await;
    let id = id_of(&case);
    let note = "Ngân hàng xác nhận giao dịch gửi nhầm, đã tự hoàn.";

    let resolved = json_with(
        d.resolve(d.admin_key(), &id, json!({"resolution": "no_action", "note": note})).await,
        200,
    )
    .await;

    assert_case(&resolved);
    assert_eq!(resolved["status"], "resolved");
    let resolution = &resolved["resolution"];
    assert_eq!(resolution["kind"], "no_action");
    assert_eq!(resolution["note"], note);
    assert_eq!(resolution["payment_id"], Value::Null);
    assert_eq!(resolution["refund_id"], Value::Null);
    assert_eq!(resolution["approved_by"], Value::Null);
    let admin_key_id = d.key_id(d.admin_key()).await;
    assert_api_actor(&resolution["by"], &admin_key_id, "admin", None);
    assert!(resolution["at"].as_str().expect("at").ends_with('Z'));
    assert_eq!(d.case(&id).await, resolved);
    let audited = d.audited("case.resolve", &id).await;
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0].0.as_deref(), Some(admin_key_id.as_str()));
    assert_eq!(audited[0].1["resolution"], "no_action");

    let before = d.state().await;
    for body in [
        json!({"resolution": "no_action", "note": "again"}),
        json!({"resolution": "refund", "note": "again"}),
    ] {
        let response = d.resolve(&d.checker_key, &id, body).await;
        assert_problem(response, 409, "case_resolved").await;
    }
    assert_problem(d.approve(&d.checker_key, &id).await, 409, "case_resolved").await;
    assert_problem(d.reject(&d.checker_key, &id, "x").await, 409, "case_resolved").await;
    assert_eq!(d.state().await, before);
}

#[tokio::test]
async fn a_resolution_the_cases_kind_does_not_allow_is_refused_and_changes_nothing() {
    let d = Desk::new().await;
    let unknown = d.unknown_order_payment("KIND-1").await;
    let (_, double) = d.double_payment("KIND-2").await;
    let target = d.w.order("KIND-3").await;
    let before = d.state().await;

    let refused = [
        // Only money in suspense is refunded.
        (&unknown, json!({"resolution": "refund", "note": "x"})),
        // Only a closed order's money is applied to another order.
        (&unknown, json!({"resolution": "apply", "note": "x", "payment_id": target})),
        (&double, json!({"resolution": "apply", "note": "x", "payment_id": target})),
    ];
    for (case, body) in refused {
        let response = d.resolve(d.admin_key(), &id_of(case), body.clone()).await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(invalid_fields(&problem), ["resolution"], "{} {body}", case["kind"]);
    }
    assert_eq!(d.state().await, before);
}

#[tokio::test]
async fn an_invalid_resolution_body_names_every_invalid_field_and_changes_nothing() {
    let d = Desk::new().await;
    let (_, _, case) = d.closed_order_payment("BODY-1").await;
    let id = id_of(&case);
    let before = d.state().await;

    let cases: [(Value, &[&str]); 9] = [
        (json!({}), &["resolution", "note"]),
        (json!({"resolution": "matched_later", "note": "x"}), &["resolution"]),
        (json!({"resolution": "paid", "note": "x"}), &["resolution"]),
        (json!({"resolution": "no_action", "note": ""}), &["note"]),
        (json!({"resolution": "no_action", "note": "a".repeat(2001)}), &["note"]),
        // A refund's note is the refund's reason, which the bank receives.
        (json!({"resolution": "refund", "note": "a".repeat(256)}), &["note"]),
        (json!({"resolution": "apply", "note": "x"}), &["payment_id"]),
        (json!({"resolution": "refund", "note": "x", "payment_id": "pay_1"}), &["payment_id"]),
        (json!({"resolution": "apply", "note": "x", "payment_id": "pay 1"}), &["payment_id"]),
    ];
    for (body, fields) in cases {
        let response = d.resolve(d.admin_key(), &id, body.clone()).await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(invalid_fields(&problem), fields, "{body}");
    }
    let response = d
        .resolve(d.admin_key(), "cas_doesnotexist", json!({"resolution": "no_action", "note": "x"}))
        .await;
    assert_problem(response, 404, "case_not_found").await;
    assert_eq!(d.state().await, before);
}

#[tokio::test]
async fn approving_or_rejecting_a_case_without_an_apply_waiting_is_refused() {
    let d = Desk::new().await;
    let (_, _, case) = d.closed_order_payment("NOAP-1").await;
    let id = id_of(&case);
    let before = d.state().await;

    assert_problem(d.approve(&d.checker_key, &id).await, 409, "refund_not_pending").await;
    assert_problem(d.reject(&d.checker_key, &id, "x").await, 409, "refund_not_pending").await;
    assert_problem(d.approve(&d.checker_key, "cas_doesnotexist").await, 404, "case_not_found")
        .await;
    assert_eq!(d.state().await, before);
}
