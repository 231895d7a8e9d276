//! Requesting a payment refund: full and partial, the paid amount as a ceiling (under
//! concurrency too), idempotency, which orders are refundable, and every invalid request.

use super::*;

#[tokio::test]
async fn an_agency_refunds_a_paid_order_in_parts_up_to_its_amount_each_waiting_for_approval() {
    let r = Refunds::new().await;
    let id = r.paid_order("H12-RF-1", "FT-RF-1").await;
    let agency_key_id = key_id(&r.w, &r.w.agency_key).await;

    let first = r.request(&id, "50000").await;
    assert_members(&first, &REFUND_FIELDS);
    assert!(id_of(&first).starts_with("rfd_"), "{first}");
    assert_eq!(first["kind"], "payment");
    assert_eq!(first["payment_id"], json!(id));
    assert_eq!(first["case_id"], Value::Null);
    assert_eq!(first["agency"], AGENCY);
    assert_eq!(first["bank"], BANK);
    assert_eq!(first["bank_txn_id"], "FT-RF-1");
    assert_eq!(first["amount"], "50000");
    assert_eq!(first["reason"], REASON);
    assert_eq!(first["status"], "pending_approval");
    assert_eq!(first["requested_by"]["key_id"], json!(agency_key_id));
    assert_eq!(first["requested_by"]["role"], "agency");
    assert_eq!(first["requested_by"]["agency"], AGENCY);
    for unset in ["approved_by", "approved_at", "completed_at", "bank_refund_id", "failure_reason"]
    {
        assert_eq!(first[unset], Value::Null, "{unset}");
    }
    assert_eq!(r.audited("refund.request", &id_of(&first)).await, vec![Some(agency_key_id)]);

    // The rest of the amount may still be asked for; one đồng more may not.
    let second = r.request(&id, "100000").await;
    assert_eq!(second["status"], "pending_approval");
    assert_eq!(r.reserved(&id).await, ("150000".to_owned(), "0".to_owned()));
    let before = r.state().await;
    let response = r.request_with(&r.w.agency_key, &id, &new_key(), &refund_body("1")).await;
    assert_problem(response, 422, "refund_exceeds_payment").await;
    assert_eq!(r.state().await, before);

    // Nothing is refunded before the bank says so.
    let payment = r.w.payment(&id).await;
    assert_eq!(payment["refunded_amount"], "0");
    assert_eq!(payment["status"], "paid");
    assert_eq!(
        r.w.app.count("SELECT count(*) FROM ledger_transactions WHERE kind = 'refund'").await,
        0
    );
}

#[tokio::test]
async fn a_refund_of_more_than_the_paid_amount_is_refused_and_changes_nothing() {
    let r = Refunds::new().await;
    let id = r.paid_order("H12-RF-2", "FT-RF-2").await;
    let before = r.state().await;
    let response = r.request_with(&r.w.agency_key, &id, &new_key(), &refund_body("150001")).await;
    assert_problem(response, 422, "refund_exceeds_payment").await;
    assert_eq!(r.state().await, before);
    // The whole amount at once is fine.
    assert_eq!(r.request(&id, AMOUNT).await["amount"], AMOUNT);
}

#[tokio::test]
async fn the_same_idempotency_key_and_body_replays_the_refund_and_another_body_is_refused() {
    let r = Refunds::new().await;
    let id = r.paid_order("H12-RF-3", "FT-RF-3").await;
    let other = r.paid_order("H12-RF-3B", "FT-RF-3B").await;
    let key = new_key();

    let response = r.request_with(&r.w.agency_key, &id, &key, &refund_body("40000")).await;
    assert_eq!(response.status(), 201);
    assert!(response.headers().get("Idempotent-Replayed").is_none());
    let first = response.text().await.unwrap();
    let before = r.state().await;

    // The same body again, with the members in another order: the stored bytes, replayed.
    let same = json!({ "reason": REASON, "amount": "40000" });
    let response = r.request_with(&r.w.agency_key, &id, &key, &same).await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["Idempotent-Replayed"], "true");
    assert_eq!(response.text().await.unwrap(), first);
    assert_eq!(r.state().await, before);

    // Another amount, or the same body for another order, under the same key: refused.
    for (order, body) in [(&id, refund_body("40001")), (&other, refund_body("40000"))] {
        let response = r.request_with(&r.w.agency_key, order, &key, &body).await;
        assert_problem(response, 422, "idempotency_key_reused").await;
    }
    assert_eq!(r.state().await, before);
    assert_eq!(r.w.app.count("SELECT count(*) FROM refunds").await, 1);

    // Without a key, or with one that is not printable ASCII: refused before anything.
    let response =
        r.w.app
            .post_with(&r.w.agency_key, &format!("/v1/payments/{id}/refunds"))
            .json(&refund_body("1"))
            .send()
            .await
            .unwrap();
    assert_problem(response, 400, "idempotency_key_required").await;
    let response = r.request_with(&r.w.agency_key, &id, "tab\tkey", &refund_body("1")).await;
    assert_problem(response, 400, "idempotency_key_required").await;
    assert_eq!(r.state().await, before);
}

#[tokio::test]
async fn twenty_concurrent_requests_for_sixty_percent_of_one_order_leave_exactly_one_standing() {
    let r = Refunds::new().await;
    let id = r.paid_order("H12-RF-4", "FT-RF-4").await;
    let body = refund_body("90000");
    let requests: Vec<_> = (0..20)
        .map(|_| {
            r.w.app
                .post_with(&r.w.agency_key, &format!("/v1/payments/{id}/refunds"))
                .header("Idempotency-Key", new_key())
                .json(&body)
        })
        .collect();
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|request| {
            tokio::spawn(async move {
                let response = request.send().await.expect("POST refunds");
                let status = response.status().as_u16();
                let answer: Value = response.json().await.expect("a JSON answer");
                (status, answer)
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        let (status, answer) = task.await.unwrap();
        match status {
            201 => created += 1,
            422 => assert_eq!(answer["code"], "refund_exceeds_payment", "{answer}"),
            other => panic!("unexpected {other}: {answer}"),
        }
    }
    assert_eq!(created, 1);
    r.w.app.assert_count("SELECT count(*) FROM refunds", 1).await;
    r.w.app.assert_count("SELECT count(*) FROM idempotency_keys WHERE payment_id IS NOT NULL AND response_status = 201", 2).await;
    assert_eq!(r.reserved(&id).await, ("90000".to_owned(), "0".to_owned()));
    r.w.app.assert_count("SELECT count(*) FROM audit_log WHERE action = 'refund.request'", 1).await;
}

#[tokio::test]
async fn only_a_paid_order_of_the_agency_can_be_refunded() {
    let r = Refunds::new().await;
    let pending = r.w.order("H12-RF-5A").await;
    let expired = r.w.order("H12-RF-5B").await;
    r.w.expire(&expired).await;
    let cancelled = r.w.order("H12-RF-5C").await;
    r.w.cancel(&cancelled).await;
    let paid = r.paid_order("H12-RF-5D", "FT-RF-5D").await;
    let before = r.state().await;

    for (id, status) in [(&pending, "pending"), (&expired, "expired"), (&cancelled, "cancelled")] {
        let response = r.request_with(&r.w.agency_key, id, &new_key(), &refund_body("1")).await;
        let problem = assert_problem(response, 409, "payment_not_refundable").await;
        assert!(problem["detail"].as_str().unwrap().contains(status), "{problem}");
    }
    // Another agency's order, an unknown one and an impossible id are not found.
    let response = r.request_with(&r.other_agency_key, &paid, &new_key(), &refund_body("1")).await;
    assert_problem(response, 404, "payment_not_found").await;
    for id in ["pay_000000000000000000000000", "x%20y"] {
        let response = r.request_with(&r.w.agency_key, id, &new_key(), &refund_body("1")).await;
        assert_problem(response, 404, "payment_not_found").await;
    }
    // Only agencies ask for payment refunds.
    let auditor = r.w.auditor_key.clone();
    let admin = r.w.app.admin_key.clone();
    for key in [&auditor, &admin] {
        let response = r.request_with(key, &paid, &new_key(), &refund_body("1")).await;
        assert_problem(response, 403, "forbidden").await;
    }
    let response =
        r.w.app
            .post(&format!("/v1/payments/{paid}/refunds"))
            .header("Idempotency-Key", new_key())
            .json(&refund_body("1"))
            .send()
            .await
            .unwrap();
    assert_problem(response, 401, "unauthenticated").await;
    assert_eq!(r.state().await, before);
}

#[tokio::test]
async fn every_invalid_refund_request_is_refused_and_changes_nothing() {
    let r = Refunds::new().await;
    let id = r.paid_order("H12-RF-6", "FT-RF-6").await;
    let before = r.state().await;
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({}), vec!["amount", "reason"]),
        (json!({"reason": REASON}), vec!["amount"]),
        (json!({"amount": "1"}), vec!["reason"]),
        (json!({"amount": "0", "reason": REASON}), vec!["amount"]),
        (json!({"amount": 1000, "reason": REASON}), vec!["amount"]),
        (json!({"amount": "1.5", "reason": REASON}), vec!["amount"]),
        (json!({"amount": "-1", "reason": REASON}), vec!["amount"]),
        (json!({"amount": "01", "reason": REASON}), vec!["amount"]),
        (json!({"amount": "1000000000000000", "reason": REASON}), vec!["amount"]),
        (json!({"amount": "1", "reason": ""}), vec!["reason"]),
        (json!({"amount": "1", "reason": "x".repeat(256)}), vec!["reason"]),
        (json!({"amount": "1", "reason": 5}), vec!["reason"]),
        (json!({"amount": "1", "reason": "a\u{0}b"}), vec!["reason"]),
        (json!({"amount": null, "reason": null}), vec!["amount", "reason"]),
    ];
    for (body, fields) in cases {
        let response = r.request_with(&r.w.agency_key, &id, &new_key(), &body).await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        let mut invalid = invalid_fields(&problem);
        invalid.sort();
        assert_eq!(invalid, fields, "{body}");
    }
    for raw in ["", "not json", "[1]"] {
        let response =
            r.w.app
                .post_with(&r.w.agency_key, &format!("/v1/payments/{id}/refunds"))
                .header("Idempotency-Key", new_key())
                .header("Content-Type", "application/json")
                .body(raw)
                .send()
                .await
                .unwrap();
        let status = response.status().as_u16();
        assert!(status == 400 || status == 422, "{raw:?}: {status}");
    }
    // 255 characters is the longest reason.
    assert_eq!(r.state().await, before);
    let long = json!({"amount": "1", "reason": "ế".repeat(255)});
    let response = r.request_with(&r.w.agency_key, &id, &new_key(), &long).await;
    assert_eq!(response.status(), 201);
}
