//! Who sees which cases, who may act on them, inquiries and notes.

use super::*;

#[tokio::test]
async fn an_agency_sees_only_its_own_cases_and_anothers_case_is_not_found() {
    let d = Desk::new().await;
    let (_, own) = d.double_payment("VIS-1").await;
    let other_order = d.w.app.create_order(&d.other_agency_key, "fee", "VIS-2", AMOUNT).await;
    d.pay("FT-VIS-2-1", &other_order, "accepted").await;
    d.pay("FT-VIS-2-2", &other_order, "exception").await;
    let others = d.case_of("double_payment", "FT-VIS-2-2").await;
    let nobodys = d.unknown_order_payment("FT-VIS-3").await;

    assert_eq!(d.ids(&d.w.agency_key, &[]).await, [id_of(&own)]);
    assert_eq!(d.ids(&d.other_agency_key, &[]).await, [id_of(&others)]);
    // Asking for another agency's cases by filter still shows only one's own.
    assert_eq!(d.ids(&d.w.agency_key, &[("agency", OTHER_AGENCY)]).await, [id_of(&own)]);
    let all = [id_of(&nobodys), id_of(&others), id_of(&own)];
    assert_eq!(d.ids(&d.w.auditor_key, &[]).await, all);
    assert_eq!(d.ids(d.admin_key(), &[]).await, all);

    let read = json_with(d.get_as(&d.w.agency_key, &id_of(&own)).await, 200).await;
    assert_eq!(read, own);
    for foreign in [&others, &nobodys] {
        let response = d.get_as(&d.w.agency_key, &id_of(foreign)).await;
        assert_problem(response, 404, "case_not_found").await;
    }
    assert_eq!(json_with(d.get_as(&d.w.auditor_key, &id_of(&others)).await, 200).await, others);
    for id in
        ["cas_doesnotexist", "cas_", "pay_1", "cas_%2e%2e", &format!("cas_{}", "a".repeat(61))]
    {
        assert_problem(d.get_as(d.admin_key(), id).await, 404, "case_not_found").await;
    }
}

#[tokio::test]
async fn filters_narrow_the_list_pages_follow_the_cursor_and_invalid_filters_are_named() {
    let d = Desk::new().await;
    let (order, double) = d.double_payment("FIL-1").await;
    let (_, _, closed) = d.closed_order_payment("FIL-2").await;
    let unknown = d.unknown_order_payment("FIL-3").await;
    d.resolve(d.admin_key(), &id_of(&unknown), json!({"resolution": "no_action", "note": "x"}))
        .await;

    let admin = d.admin_key();
    assert_eq!(d.ids(admin, &[("kind", "order_closed")]).await, [id_of(&closed)]);
    assert_eq!(d.ids(admin, &[("status", "resolved")]).await, [id_of(&unknown)]);
    assert_eq!(d.ids(admin, &[("status", "open")]).await, [id_of(&closed), id_of(&double)]);
    assert_eq!(d.ids(admin, &[("payment_id", &order)]).await, [id_of(&double)]);
    assert_eq!(d.ids(admin, &[("agency", AGENCY)]).await, [id_of(&closed), id_of(&double)]);
    assert_eq!(d.ids(admin, &[("bank", BANK)]).await.len(), 3);
    assert_eq!(d.ids(admin, &[("bank", "BIDV")]).await.len(), 0);
    assert_eq!(d.ids(admin, &[("kind", "inquiry")]).await.len(), 0);

    let first = d.page(admin, &[("limit", "2")]).await;
    assert_eq!(ids_of(&first), [id_of(&unknown), id_of(&closed)]);
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let second = d.page(admin, &[("limit", "2"), ("cursor", cursor)]).await;
    assert_eq!(ids_of(&second), [id_of(&double)]);
    assert_eq!(second["next_cursor"], Value::Null);

    for (name, value) in [
        ("status", "closed"),
        ("kind", "refund"),
        ("bank", "vcb"),
        ("agency", "h12!"),
        ("payment_id", "pay 1"),
        ("limit", "0"),
        ("limit", "501"),
        ("cursor", "abc"),
    ] {
        let response = d.w.app.list(admin, "/v1/cases", &[(name, value)]).await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(invalid_fields(&problem), [name], "{name}={value}");
    }
}

#[tokio::test]
async fn an_auditor_reads_and_notes_cases_but_may_not_resolve_approve_or_reject_them() {
    let d = Desk::new().await;
    let (_, _, case) = d.closed_order_payment("AUD-1").await;
    let target = d.w.order("AUD-2").await;
    let id = id_of(&case);
    let resolved = d
        .resolve(
            d.admin_key(),
            &id,
            json!({"resolution": "apply", "note": "x", "payment_id": target}),
        )
        .await;
    assert_eq!(json_with(resolved, 200).await["status"], "pending_approval");
    let before = d.state().await;

    for key in [&d.w.auditor_key, &d.w.agency_key] {
        let body = json!({"resolution": "no_action", "note": "x"});
        assert_problem(d.resolve(key, &id, body).await, 403, "forbidden").await;
        assert_problem(d.approve(key, &id).await, 403, "forbidden").await;
        assert_problem(d.reject(key, &id, "không đồng ý").await, 403, "forbidden").await;
    }
    assert_eq!(d.state().await, before);

    assert_eq!(d.case(&id).await["status"], "pending_approval");
    let noted =
        json_with(d.note(&d.w.auditor_key, &id, json!({"message": "Đã xem."})).await, 201).await;
    assert_eq!(noted["notes"][0]["message"], "Đã xem.");
}

#[tokio::test]
async fn an_agency_opens_an_inquiry_about_its_own_order_and_no_other() {
    let d = Desk::new().await;
    let own = d.w.order("INQ-1").await;
    let others = d.w.app.create_order(&d.other_agency_key, "fee", "INQ-2", AMOUNT).await;
    let message = "Người nộp báo đã chuyển khoản lúc 09:12 nhưng hồ sơ chưa ghi nhận.";

    let case = json_with(
        d.open(&d.w.agency_key, json!({"payment_id": own, "message": message})).await,
        201,
    )
    .await;

    assert_case(&case);
    assert_eq!(case["kind"], "inquiry");
    assert_eq!(case["status"], "open");
    assert_eq!(case["agency"], AGENCY);
    assert_eq!(case["payment_id"], own.as_str());
    assert_eq!(case["amount"], AMOUNT);
    assert_eq!(case["bank"], Value::Null);
    assert_eq!(case["bank_txn_id"], Value::Null);
    let key_id = d.key_id(&d.w.agency_key).await;
    assert_api_actor(&case["opened_by"], &key_id, "agency", Some(AGENCY));
    assert_eq!(case["notes"].as_array().expect("notes").len(), 1);
    assert_eq!(case["notes"][0]["message"], message);
    assert_eq!(case["notes"][0]["by"], case["opened_by"]);
    assert_eq!(case["notes"][0]["at"], case["opened_at"]);
    assert_eq!(d.case(&id_of(&case)).await, case);
    let audited = d.audited("case.open", &id_of(&case)).await;
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0].0.as_deref(), Some(key_id.as_str()));
    assert_eq!(audited[0].1["kind"], "inquiry");
    assert_eq!(audited[0].1["payment_id"], own.as_str());

    let before = d.state().await;
    for payment_id in [others.as_str(), "pay_nonexistent"] {
        let body = json!({"payment_id": payment_id, "message": message});
        assert_problem(d.open(&d.w.agency_key, body).await, 404, "payment_not_found").await;
    }
    let long = "a".repeat(2001);
    for (body, field) in [
        (json!({"message": message}), "payment_id"),
        (json!({"payment_id": own}), "message"),
        (json!({"payment_id": own, "message": ""}), "message"),
        (json!({"payment_id": own, "message": long}), "message"),
        (json!({"payment_id": own, "message": 7}), "message"),
        (json!({"payment_id": "pay/1", "message": message}), "payment_id"),
        // An agency's inquiry names its order; a bank alone does not do.
        (json!({"bank": BANK, "bank_txn_id": "FT-1", "message": message}), "payment_id"),
    ] {
        let problem =
            assert_problem(d.open(&d.w.agency_key, body.clone()).await, 422, "validation_failed")
                .await;
        assert_eq!(invalid_fields(&problem), [field], "{body}");
    }
    assert_eq!(d.state().await, before);
}

#[tokio::test]
async fn an_admin_or_auditor_opens_an_inquiry_naming_an_order_a_bank_or_a_transaction() {
    let d = Desk::new().await;
    let paid = d.w.order("INQ-3").await;
    d.pay("FT-INQ-3", &paid, "accepted").await;
    let message = "Ngân hàng đề nghị đối chiếu giao dịch.";

    // A recorded transaction names its order, and so the agency and the amount.
    let by_txn = json_with(
        d.open(d.admin_key(), json!({"bank": BANK, "bank_txn_id": "FT-INQ-3", "message": message}))
            .await,
        201,
    )
    .await;
    assert_eq!(by_txn["kind"], "inquiry");
    assert_eq!(by_txn["payment_id"], paid.as_str());
    assert_eq!(by_txn["agency"], AGENCY);
    assert_eq!(by_txn["amount"], AMOUNT);
    assert_eq!(by_txn["bank_txn_id"], "FT-INQ-3");
    let admin_key_id = d.key_id(d.admin_key()).await;
    assert_api_actor(&by_txn["opened_by"], &admin_key_id, "admin", None);
    // The agency sees an inquiry about its order, whoever opened it.
    assert_eq!(d.ids(&d.w.agency_key, &[]).await, [id_of(&by_txn)]);

    let unknown_txn = json_with(
        d.open(&d.w.auditor_key, json!({"bank_txn_id": "FT-UNKNOWN", "message": message})).await,
        201,
    )
    .await;
    assert_eq!(unknown_txn["payment_id"], Value::Null);
    assert_eq!(unknown_txn["agency"], Value::Null);
    assert_eq!(unknown_txn["bank"], Value::Null);
    let auditor_key_id = d.key_id(&d.w.auditor_key).await;
    assert_api_actor(&unknown_txn["opened_by"], &auditor_key_id, "auditor", None);
    assert_eq!(
        d.audited("case.open", &id_of(&unknown_txn)).await[0].0.as_deref(),
        Some(auditor_key_id.as_str())
    );

    let before = d.state().await;
    let problem = assert_problem(
        d.open(d.admin_key(), json!({"message": message})).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(invalid_fields(&problem), ["payment_id"]);
    let body = json!({"bank": "NOBANK", "message": message});
    assert_problem(d.open(d.admin_key(), body).await, 404, "bank_not_found").await;
    let body = json!({"payment_id": "pay_nonexistent", "message": message});
    assert_problem(d.open(d.admin_key(), body).await, 404, "payment_not_found").await;
    let body = json!({"bank_txn_id": "x".repeat(65), "bank": "vcb", "message": message});
    let problem = assert_problem(d.open(d.admin_key(), body).await, 422, "validation_failed").await;
    let mut fields = invalid_fields(&problem);
    fields.sort();
    assert_eq!(fields, ["bank", "bank_txn_id"]);
    assert_eq!(d.state().await, before);
}

#[tokio::test]
async fn notes_come_from_the_cases_agency_auditors_and_admins_within_their_length_limits() {
    let d = Desk::new().await;
    let (_, case) = d.double_payment("NOTE-1").await;
    let id = id_of(&case);

    let longest = "ư".repeat(2000);
    let by_agency =
        json_with(d.note(&d.w.agency_key, &id, json!({"message": "a"})).await, 201).await;
    assert_case(&by_agency);
    json_with(d.note(&d.w.auditor_key, &id, json!({"message": longest})).await, 201).await;
    let noted = json_with(
        d.note(d.admin_key(), &id, json!({"message": "Đã liên hệ ngân hàng."})).await,
        201,
    )
    .await;

    let notes = noted["notes"].as_array().expect("notes");
    let messages: Vec<&str> = notes.iter().map(|n| n["message"].as_str().unwrap()).collect();
    assert_eq!(messages, ["a", longest.as_str(), "Đã liên hệ ngân hàng."]);
    for note in notes {
        assert_members(note, &["at", "by", "message"]);
    }
    let agency_key_id = d.key_id(&d.w.agency_key).await;
    assert_api_actor(&notes[0]["by"], &agency_key_id, "agency", Some(AGENCY));
    assert_api_actor(&notes[1]["by"], &d.key_id(&d.w.auditor_key).await, "auditor", None);
    assert_api_actor(&notes[2]["by"], &d.key_id(d.admin_key()).await, "admin", None);
    assert_eq!(d.case(&id).await["notes"], noted["notes"]);
    let audited = d.audited("case.note", &id).await;
    assert_eq!(audited.len(), 3);
    assert_eq!(audited[0].0.as_deref(), Some(agency_key_id.as_str()));

    let before = d.state().await;
    for body in [
        json!({}),
        json!({"message": ""}),
        json!({"message": "ư".repeat(2001)}),
        json!({"message": null}),
        json!({"message": ["a"]}),
    ] {
        let problem = assert_problem(
            d.note(d.admin_key(), &id, body.clone()).await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(invalid_fields(&problem), ["message"], "{body}");
    }
    let response = d.note(&d.other_agency_key, &id, json!({"message": "x"})).await;
    assert_problem(response, 404, "case_not_found").await;
    let response = d.note(d.admin_key(), "cas_doesnotexist", json!({"message": "x"})).await;
    assert_problem(response, 404, "case_not_found").await;
    assert_eq!(d.state().await, before);
}
