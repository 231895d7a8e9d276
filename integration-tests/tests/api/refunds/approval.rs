//! Maker-checker: who may approve or reject a refund, approving twice, rejecting, and reading
//! and listing refunds per role.

use super::*;

#[tokio::test]
async fn the_requesters_own_key_may_neither_approve_nor_reject() {
    let r = Refunds::new().await;
    let id = r.paid_order("H12-AP-1", "FT-AP-1").await;
    let refund = id_of(&r.request(&id, "50000").await);
    let before = r.state().await;
    assert_problem(r.approve(&r.w.agency_key, &refund).await, 403, "same_approver").await;
    assert_problem(r.reject(&r.w.agency_key, &refund, "sai").await, 403, "same_approver").await;
    assert_eq!(r.state().await, before);
    assert_eq!(r.refund(&refund).await["status"], "pending_approval");
}

#[tokio::test]
async fn another_key_of_the_agency_approves_and_approving_again_answers_the_same_refund() {
    let r = Refunds::new().await;
    let id = r.paid_order("H12-AP-2", "FT-AP-2").await;
    let refund = id_of(&r.request(&id, "50000").await);
    let checker = key_id(&r.w, &r.checker_key).await;

    let approved = json_with(r.approve(&r.checker_key, &refund).await, 200).await;
    assert_members(&approved, &REFUND_FIELDS);
    assert_eq!(approved["status"], "approved");
    assert_eq!(approved["approved_by"]["key_id"], json!(checker));
    assert_eq!(approved["approved_by"]["role"], "agency");
    assert!(approved["approved_at"].is_string(), "{approved}");
    assert_eq!(r.audited("refund.approve", &refund).await, vec![Some(checker.clone())]);
    // The approval is an instruction to the bank, waiting for a refund_url.
    let row =
        r.w.app
            .row("SELECT instruction_id, delivery_status FROM refunds WHERE id = $1", &[&refund])
            .await;
    assert!(row.get::<_, Option<String>>(0).is_some());
    assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some("pending"));

    // Approving again, by the same checker or by an admin, answers the refund unchanged and
    // records nothing.
    let before = r.state().await;
    let admin = r.w.app.admin_key.clone();
    for key in [&r.checker_key, &admin] {
        let again = json_with(r.approve(key, &refund).await, 200).await;
        assert_eq!(again, approved);
    }
    assert_eq!(r.state().await, before);
    // But the requester still may not, and it cannot be rejected any more.
    assert_problem(r.approve(&r.w.agency_key, &refund).await, 403, "same_approver").await;
    assert_problem(r.reject(&r.checker_key, &refund, "muộn").await, 409, "refund_not_pending")
        .await;
    assert_eq!(r.state().await, before);
}

#[tokio::test]
async fn an_admin_approves_an_agency_refund_and_an_auditor_or_another_agency_cannot() {
    let r = Refunds::new().await;
    let id = r.paid_order("H12-AP-3", "FT-AP-3").await;
    let refund = id_of(&r.request(&id, "50000").await);
    let before = r.state().await;
    // An auditor's role may not decide; another agency cannot see the refund at all.
    assert_problem(r.approve(&r.w.auditor_key, &refund).await, 403, "forbidden").await;
    assert_problem(r.reject(&r.w.auditor_key, &refund, "không").await, 403, "forbidden").await;
    assert_problem(r.approve(&r.other_agency_key, &refund).await, 404, "refund_not_found").await;
    assert_problem(r.reject(&r.other_agency_key, &refund, "không").await, 404, "refund_not_found")
        .await;
    let response = r.w.app.post(&format!("/v1/refunds/{refund}/approve")).send().await.unwrap();
    assert_problem(response, 401, "unauthenticated").await;
    let admin = r.w.app.admin_key.clone();
    for unknown in ["rfd_000000000000000000000000", "rfd_a%20b", "pay_1"] {
        assert_problem(r.approve(&admin, unknown).await, 404, "refund_not_found").await;
        assert_problem(r.reject(&admin, unknown, "không").await, 404, "refund_not_found").await;
    }
    assert_eq!(r.state().await, before);

    let approved = json_with(r.approve(&r.w.app.admin_key.clone(), &refund).await, 200).await;
    assert_eq!(approved["approved_by"]["role"], "admin");
    let admin = key_id(&r.w, &r.w.app.admin_key).await;
    assert_eq!(r.audited("refund.approve", &refund).await, vec![Some(admin)]);
}

#[tokio::test]
async fn a_rejected_refund_frees_its_amount_and_can_be_neither_approved_nor_rejected_again() {
    let r = Refunds::new().await;
    let id = r.paid_order("H12-AP-4", "FT-AP-4").await;
    let refund = id_of(&r.request(&id, AMOUNT).await);
    assert_eq!(r.reserved(&id).await.0, "150000");

    let rejected =
        json_with(r.reject(&r.checker_key, &refund, "Số tiền hoàn không đúng").await, 200).await;
    assert_eq!(rejected["status"], "rejected");
    assert_eq!(rejected["approved_by"], Value::Null);
    assert_eq!(r.reserved(&id).await.0, "0");
    let checker = key_id(&r.w, &r.checker_key).await;
    assert_eq!(r.audited("refund.reject", &refund).await, vec![Some(checker)]);
    let row =
        r.w.app
            .row(
                "SELECT rejection_reason, instruction_id IS NULL FROM refunds WHERE id = $1",
                &[&refund],
            )
            .await;
    assert_eq!(row.get::<_, String>(0), "Số tiền hoàn không đúng");
    assert!(row.get::<_, bool>(1), "a rejected refund is no instruction");

    let before = r.state().await;
    let admin = r.w.app.admin_key.clone();
    assert_problem(r.approve(&admin, &refund).await, 409, "refund_not_pending").await;
    assert_problem(r.approve(&r.checker_key, &refund).await, 409, "refund_not_pending").await;
    assert_problem(r.reject(&admin, &refund, "lại").await, 409, "refund_not_pending").await;
    assert_eq!(r.state().await, before);
    // The amount is free: the whole order may be asked for again.
    assert_eq!(r.request(&id, AMOUNT).await["status"], "pending_approval");
}

#[tokio::test]
async fn a_rejection_needs_a_reason_of_1_to_255_characters() {
    let r = Refunds::new().await;
    let id = r.paid_order("H12-AP-5", "FT-AP-5").await;
    let refund = id_of(&r.request(&id, "1000").await);
    let before = r.state().await;
    for body in [
        json!({}),
        json!({"reason": ""}),
        json!({"reason": "x".repeat(256)}),
        json!({"reason": 7}),
        json!({"reason": null}),
    ] {
        let response = r.decide(&r.checker_key, &refund, "reject", Some(body.clone())).await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(invalid_fields(&problem), vec!["reason"], "{body}");
    }
    let response = r.decide(&r.checker_key, &refund, "reject", None).await;
    assert_eq!(response.status(), 400);
    assert_eq!(r.state().await, before);
}

#[tokio::test]
async fn refunds_are_read_and_listed_by_their_agency_auditors_and_admins_only() {
    let r = Refunds::new().await;
    let first_order = r.paid_order("H12-LS-1", "FT-LS-1").await;
    let second_order = r.paid_order("H12-LS-2", "FT-LS-2").await;
    let first = id_of(&r.request(&first_order, "1000").await);
    let second = id_of(&r.approved(&second_order, "2000").await);

    for key in [&r.w.agency_key, &r.w.auditor_key, &r.checker_key] {
        let refund = r.w.app.get_json(key, &format!("/v1/refunds/{first}")).await;
        assert_eq!(refund["id"], json!(first));
        let page = r.w.app.get_json(key, "/v1/refunds").await;
        let ids: Vec<&str> =
            page["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
        assert_eq!(ids, vec![second.as_str(), first.as_str()], "newest first");
    }
    // Another agency sees none of them.
    let response =
        r.w.app
            .get_with(&r.other_agency_key, &format!("/v1/refunds/{first}"))
            .send()
            .await
            .unwrap();
    assert_problem(response, 404, "refund_not_found").await;
    let page = r.w.app.get_json(&r.other_agency_key, &format!("/v1/refunds?agency={AGENCY}")).await;
    assert_eq!(page["items"], json!([]));
    for id in ["rfd_000000000000000000000000", "rfd_x%20y", "pay_1"] {
        let response =
            r.w.app.get_with(&r.w.auditor_key, &format!("/v1/refunds/{id}")).send().await.unwrap();
        assert_problem(response, 404, "refund_not_found").await;
    }

    // Filters and pages.
    let only = |query: &str| format!("/v1/refunds?{query}");
    let ids_of = |page: &Value| -> Vec<String> {
        page["items"].as_array().unwrap().iter().map(id_of).collect()
    };
    let page = r.w.audit(&only("status=approved")).await;
    assert_eq!(ids_of(&page), vec![second.clone()]);
    let page = r.w.audit(&only(&format!("payment_id={first_order}"))).await;
    assert_eq!(ids_of(&page), vec![first.clone()]);
    let page = r.w.audit(&only("kind=suspense")).await;
    assert_eq!(ids_of(&page), Vec::<String>::new());
    let page = r.w.audit(&only(&format!("bank={OTHER_BANK}"))).await;
    assert_eq!(ids_of(&page), Vec::<String>::new());
    let page = r.w.audit(&only(&format!("agency={AGENCY}&bank={BANK}&kind=payment&limit=1"))).await;
    assert_eq!(ids_of(&page), vec![second.clone()]);
    let cursor = page["next_cursor"].as_str().expect("a next page").to_owned();
    let page = r.w.audit(&only(&format!("kind=payment&limit=1&cursor={cursor}"))).await;
    assert_eq!(ids_of(&page), vec![first.clone()]);
    assert_eq!(page["next_cursor"], Value::Null);
    for (query, field) in [
        ("status=paid", "status"),
        ("kind=other", "kind"),
        ("bank=x", "bank"),
        ("agency=%20", "agency"),
        ("limit=0", "limit"),
        ("cursor=zz", "cursor"),
    ] {
        let response = r.w.app.get_with(&r.w.auditor_key, &only(query)).send().await.unwrap();
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(invalid_fields(&problem), vec![field], "{query}");
    }
}

#[tokio::test]
async fn only_another_admin_key_decides_a_suspense_refund() {
    let r = Refunds::new().await;
    // A double payment: its second payment's money waits in suspense, in a case.
    let id = r.paid_order("H12-SU-1", "FT-SU-1").await;
    let again =
        r.w.deliver_ok(&json!({
            "bank_txn_id": "FT-SU-2", "payment_id": id, "amount": AMOUNT,
            "status": "succeeded", "paid_at": paid_a_minute_ago(),
        }))
        .await;
    assert_eq!(again["exception"], "double_payment", "{again}");
    let cases = r.w.audit("/v1/cases?kind=double_payment").await;
    let case = id_of(&cases["items"][0]);
    let resolving =
        r.w.app
            .admin(Method::POST, &format!("/v1/cases/{case}/resolve"))
            .json(&json!({"resolution": "refund", "note": "Hoàn lại lần nộp thứ hai"}))
            .json_with(200)
            .await;
    let refund = resolving["resolution"]["refund_id"].as_str().expect("refund_id").to_owned();
    let requested = r.refund(&refund).await;
    assert_eq!(requested["kind"], "suspense");
    assert_eq!(requested["case_id"], json!(case));
    assert_eq!(requested["bank_txn_id"], "FT-SU-2");
    assert_eq!(requested["status"], "pending_approval");

    // The order's agency sees it, but neither of its keys may decide it; nor an auditor; nor
    // the admin who asked for it.
    let before = r.state().await;
    assert_eq!(
        r.w.app.get_json(&r.w.agency_key, &format!("/v1/refunds/{refund}")).await["id"],
        json!(refund)
    );
    for key in [&r.w.agency_key, &r.checker_key, &r.w.auditor_key] {
        assert_problem(r.approve(key, &refund).await, 403, "forbidden").await;
        assert_problem(r.reject(key, &refund, "không").await, 403, "forbidden").await;
    }
    assert_problem(r.approve(&r.other_agency_key, &refund).await, 404, "refund_not_found").await;
    let admin = r.w.app.admin_key.clone();
    assert_problem(r.approve(&admin, &refund).await, 403, "same_approver").await;
    assert_eq!(r.state().await, before);

    let second_admin = r.w.app.key_with_role("admin").await;
    let approved = json_with(r.approve(&second_admin, &refund).await, 200).await;
    assert_eq!(approved["status"], "approved");
    assert_eq!(approved["approved_by"]["role"], "admin");
    let second_admin_id = key_id(&r.w, &second_admin).await;
    assert_eq!(r.audited("refund.approve", &refund).await, vec![Some(second_admin_id)]);
}
