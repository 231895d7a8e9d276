//! The callback table, row by row.

use super::*;

#[tokio::test]
async fn first_succeeded_callback_for_a_pending_order_pays_it_posts_one_transaction_and_one_event()
{
    let (w, id) = World::with_order("H12.99-261122-0001").await;
    let paid_at = paid_a_minute_ago();

    let answer = w.deliver_ok(&succeeded("FT26327001", &id, &paid_at)).await;

    assert_eq!(answer, json!({"result": "accepted", "payment_id": id, "payment_status": "paid"}));
    let payment = w.payment(&id).await;
    assert_eq!(payment["status"], "paid");
    assert_eq!(payment["bank"], BANK);
    assert_eq!(payment["bank_txn_id"], "FT26327001");
    assert_eq!(payment["paid_at"], paid_at.as_str());
    assert_eq!(w.app.count("SELECT count(*) FROM bank_callbacks").await, 1);
    w.app.assert_count("SELECT count(*) FROM ledger_transactions", 1).await;
    assert_eq!(
        entries_of(&w.app, &id).await,
        vec![entry("bank:VCB", AMOUNT, "0"), entry(&agency_account("fee"), "0", AMOUNT)]
    );
    assert_eq!(count_events(&w.app, &id, "payment.paid").await, 1);
    assert_eq!(w.app.count("SELECT count(*) FROM events").await, 1);
    let client = w.app.db.get().await.unwrap();
    let event_payment: Value = client
        .query_one("SELECT payment FROM events WHERE payment_id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(event_payment["status"], "paid");
    assert_eq!(event_payment["bank_txn_id"], "FT26327001");
    assert_eq!(event_payment["paid_at"], paid_at.as_str());
    w.app.assert_count("SELECT count(*) FROM callback_exceptions", 0).await;
    assert_verified(&w.verify().await, 1, AMOUNT);
    assert_eq!(
        w.audit("/v1/ledger/balances").await,
        json!({"items": [
            {"account": agency_account("fee"), "debits": "0", "credits": AMOUNT,
             "balance": "-150000"},
            {"account": "bank:VCB", "debits": AMOUNT, "credits": "0", "balance": AMOUNT},
        ]})
    );
    assert_eq!(w.exceptions("").await["items"], json!([]));
}

#[tokio::test]
async fn paid_at_with_an_offset_becomes_the_same_instant_in_utc() {
    let (w, id) = World::with_order("H12-OFFSET").await;
    let t = now_s() - 120;

    w.deliver_ok(&succeeded("FT-OFFSET", &id, &rfc3339_at_offset(t, 7))).await;

    assert_eq!(w.payment(&id).await["paid_at"], rfc3339(t).as_str());
}

#[tokio::test]
async fn each_obligation_is_credited_to_the_agency_account_of_that_obligation() {
    let w = World::new().await;
    let paid_at = paid_a_minute_ago();
    for (n, obligation) in OBLIGATIONS.iter().enumerate() {
        let amount = format!("{}000", n + 1);
        let payment = w
            .create(&w.agency_key, &order_body(obligation, &format!("REF-{obligation}"), &amount))
            .await;
        let id = payment["id"].as_str().unwrap();
        let body = changed(
            &succeeded(&format!("FT-{obligation}"), id, &paid_at),
            "amount",
            Some(json!(amount)),
        );
        let answer = w.deliver_ok(&body).await;
        assert_eq!(answer["result"], "accepted", "{obligation}: {answer}");
        assert_eq!(
            entries_of(&w.app, id).await,
            vec![entry("bank:VCB", &amount, "0"), entry(&agency_account(obligation), "0", &amount)],
            "{obligation}"
        );
    }

    let balances = w.balances().await;
    for (n, obligation) in OBLIGATIONS.iter().enumerate() {
        assert_eq!(balances[&agency_account(obligation)], format!("-{}000", n + 1), "{obligation}");
    }
    assert_eq!(balances["bank:VCB"], "21000");
    assert_verified(&w.verify().await, 6, "21000");
}

#[tokio::test]
async fn a_succeeded_callback_for_an_expired_order_paid_by_its_expiry_pays_the_order() {
    let w = World::new().await;
    // Paid one second before the expiry, and exactly at it: both in time.
    for (reference, paid_at) in [("H12-IN-TIME", PAID_IN_TIME), ("H12-AT-EXPIRY", EXPIRED_AT)] {
        let id = w.order(reference).await;
        w.expire(&id).await;
        assert_eq!(w.payment(&id).await["status"], "expired");

        let answer = w.deliver_ok(&succeeded(&format!("FT-{reference}"), &id, paid_at)).await;

        assert_eq!(
            answer,
            json!({"result": "accepted", "payment_id": id, "payment_status": "paid"}),
            "{reference}"
        );
        let payment = w.payment(&id).await;
        assert_eq!(payment["status"], "paid", "{reference}");
        assert_eq!(payment["paid_at"], paid_at, "{reference}");
        assert_eq!(payment["bank"], BANK);
        assert_eq!(count_events(&w.app, &id, "payment.paid").await, 1);
        assert_eq!(
            entries_of(&w.app, &id).await,
            vec![entry("bank:VCB", AMOUNT, "0"), entry(&agency_account("fee"), "0", AMOUNT)]
        );
    }
    assert_verified(&w.verify().await, 2, "300000");
    w.app.assert_count("SELECT count(*) FROM callback_exceptions", 0).await;
}

#[tokio::test]
async fn an_overdue_order_the_sweep_has_not_reached_yet_is_judged_expired_by_the_callback() {
    // The sweep's first round runs at start-up, the next an hour later: the overdue orders
    // below stay stored as pending throughout.
    let w = World::with(Config { expiry_interval_ms: 3_600_000, ..test_config() }).await;
    let in_time = w.order("H12-OVERDUE-1").await;
    let too_late = w.order("H12-OVERDUE-2").await;
    w.backdate(&in_time).await;
    w.backdate(&too_late).await;
    assert_eq!(w.app.stored_status(&in_time).await, "pending");
    assert_eq!(w.payment(&in_time).await["status"], "expired");

    let paid = w.deliver_ok(&succeeded("FT-OVERDUE-1", &in_time, PAID_IN_TIME)).await;
    let closed = w.deliver_ok(&succeeded("FT-OVERDUE-2", &too_late, PAID_TOO_LATE)).await;

    assert_eq!(
        paid,
        json!({"result": "accepted", "payment_id": in_time, "payment_status": "paid"})
    );
    assert_eq!(w.payment(&in_time).await["status"], "paid");
    assert_eq!(count_events(&w.app, &in_time, "payment.paid").await, 1);
    assert_eq!(
        closed,
        json!({"result": "exception", "exception": "order_closed", "payment_id": too_late,
               "payment_status": "expired"})
    );
    assert_eq!(w.payment(&too_late).await["status"], "expired");
    assert_eq!(count_events(&w.app, &too_late, "payment.paid").await, 0);
    let balances = w.balances().await;
    assert_eq!(balances["bank:VCB"], "300000");
    assert_eq!(balances[&agency_account("fee")], "-150000");
    assert_eq!(balances["suspense:VCB"], "-150000");
}

#[tokio::test]
async fn a_callback_paid_after_the_order_expired_goes_to_suspense_as_order_closed() {
    let (w, id) = World::with_order("H12-LATE").await;
    w.expire(&id).await;
    let before = snapshot(&w.app).await;

    let answer = w.deliver_ok(&succeeded("FT-LATE", &id, PAID_TOO_LATE)).await;

    assert_eq!(
        answer,
        json!({"result": "exception", "exception": "order_closed", "payment_id": id,
               "payment_status": "expired"})
    );
    let after = snapshot(&w.app).await;
    assert_eq!(after.payments, before.payments, "the order is unchanged");
    assert_eq!(after.events, before.events, "no event");
    assert_eq!(after.bank_callbacks, before.bank_callbacks + 1);
    assert_eq!(after.callback_exceptions, before.callback_exceptions + 1);
    let payment = w.payment(&id).await;
    assert_eq!(payment["status"], "expired");
    assert_eq!(payment["paid_at"], Value::Null);
    assert_eq!(payment["bank_txn_id"], Value::Null);
    assert_eq!(
        entries_of(&w.app, &id).await,
        vec![entry("bank:VCB", AMOUNT, "0"), entry("suspense:VCB", "0", AMOUNT)]
    );
    let listed = w.exceptions("").await;
    let item = exception_for(&listed, "FT-LATE");
    assert_eq!(item["kind"], "suspense");
    assert_eq!(item["reason"], "order_closed");
    assert_eq!(item["bank"], BANK);
    assert_eq!(item["payment_id"], id.as_str());
    assert_eq!(item["amount"], AMOUNT);
    assert_eq!(item["currency"], "VND");
    assert_eq!(item["paid_at"], PAID_TOO_LATE);
    let balances = w.balances().await;
    assert_eq!(balances["bank:VCB"], AMOUNT);
    assert_eq!(balances["suspense:VCB"], "-150000");
    assert!(!balances.contains_key(&agency_account("fee")));
    assert_verified(&w.verify().await, 1, AMOUNT);
}

#[tokio::test]
async fn an_expired_order_paid_in_time_whose_reference_is_now_held_by_another_order_is_order_closed(
) {
    let w = World::new().await;
    let paid_at = paid_a_minute_ago();
    // (the holder's fate, whether the old order's reference is taken)
    for (holder_fate, taken) in [("pending", true), ("paid", true), ("cancelled", false)] {
        let reference = format!("H12-REUSED-{holder_fate}");
        let old = w.order(&reference).await;
        w.expire(&old).await;
        let holder = w.order(&reference).await;
        match holder_fate {
            "paid" => {
                let answer = w
                    .deliver_ok(&succeeded(&format!("FT-HOLDER-{holder_fate}"), &holder, &paid_at))
                    .await;
                assert_eq!(answer["result"], "accepted");
            }
            "cancelled" => w.cancel(&holder).await,
            _ => {}
        }
        let before = snapshot(&w.app).await;

        let answer =
            w.deliver_ok(&succeeded(&format!("FT-OLD-{holder_fate}"), &old, PAID_IN_TIME)).await;

        if taken {
            assert_eq!(
                answer,
                json!({"result": "exception", "exception": "order_closed", "payment_id": old,
                       "payment_status": "expired"}),
                "holder {holder_fate}"
            );
            let after = snapshot(&w.app).await;
            assert_eq!(after.payments, before.payments, "holder {holder_fate}");
            assert_eq!(
                entries_of(&w.app, &old).await,
                vec![entry("bank:VCB", AMOUNT, "0"), entry("suspense:VCB", "0", AMOUNT)]
            );
            let listed = w.exceptions("").await;
            let item = exception_for(&listed, &format!("FT-OLD-{holder_fate}"));
            assert_eq!(item["reason"], "order_closed");
            assert_eq!(item["kind"], "suspense");
        } else {
            assert_eq!(
                answer,
                json!({"result": "accepted", "payment_id": old, "payment_status": "paid"}),
                "a cancelled holder gives the reference back"
            );
            assert_eq!(w.payment(&old).await["status"], "paid");
        }
        assert_eq!(w.payment(&holder).await["status"], holder_fate);
    }
    assert_eq!(w.verify().await["ok"], true);
}

#[tokio::test]
async fn a_failed_callback_is_accepted_and_changes_neither_the_order_nor_the_ledger() {
    let (w, id) = World::with_order("H12-FAILED").await;
    let before = snapshot(&w.app).await;

    let answer = w.deliver_ok(&failed("FT-FAIL-1", &id)).await;

    assert_eq!(answer["result"], "accepted", "{answer}");
    assert_eq!(answer["payment_status"], "pending", "{answer}");
    assert!(answer.get("exception").is_none(), "{answer}");
    if let Some(payment_id) = answer.get("payment_id") {
        assert_eq!(payment_id, id.as_str());
    }
    let after = snapshot(&w.app).await;
    assert_eq!(
        after,
        Snapshot { bank_callbacks: before.bank_callbacks + 1, ..before.clone() },
        "only the attempt is recorded"
    );
    assert_eq!(w.payment(&id).await["status"], "pending");

    // `failed` is decided before the amount: a failed attempt of another amount is recorded too.
    let other_amount = changed(&failed("FT-FAIL-2", &id), "amount", Some(json!("1")));
    assert_eq!(w.deliver_ok(&other_amount).await["payment_status"], "pending");
    // The order can still be paid, and a later failed attempt leaves it paid.
    let paid = w.deliver_ok(&succeeded("FT-PAY", &id, &paid_a_minute_ago())).await;
    assert_eq!(paid["result"], "accepted");
    let late_failure = w.deliver_ok(&failed("FT-FAIL-3", &id)).await;
    assert_eq!(late_failure["result"], "accepted");
    assert_eq!(late_failure["payment_status"], "paid");
    // And a failed attempt for a cancelled order leaves it cancelled.
    let cancelled = w.order("H12-FAILED-CANCELLED").await;
    w.cancel(&cancelled).await;
    let answer = w.deliver_ok(&failed("FT-FAIL-4", &cancelled)).await;
    assert_eq!(answer["result"], "accepted");
    assert_eq!(answer["payment_status"], "cancelled");
    assert_eq!(w.payment(&cancelled).await["status"], "cancelled");

    assert_eq!(w.app.count("SELECT count(*) FROM bank_callbacks").await, 5);
    assert_verified(&w.verify().await, 1, AMOUNT);
    w.app.assert_count("SELECT count(*) FROM callback_exceptions", 0).await;
    // A failed callback reserves its bank_txn_id for ever.
    let reuse = w.deliver(&succeeded("FT-FAIL-4", &cancelled, &paid_a_minute_ago())).await;
    assert_problem(reuse, 409, "bank_txn_conflict").await;
}

#[tokio::test]
async fn an_exact_redelivery_answers_duplicate_and_changes_nothing() {
    let (w, id) = World::with_order("H12-REDELIVERY").await;
    let t = now_s() - 60;
    // The first delivery leaves currency and failure_reason out.
    let first = json!({
        "bank_txn_id": "FT-DUP", "payment_id": id, "amount": AMOUNT,
        "status": "succeeded", "paid_at": rfc3339(t),
    });
    let accepted = w.deliver_ok(&first).await;
    assert_eq!(accepted["result"], "accepted");
    let before = snapshot(&w.app).await;

    let redeliveries = [
        ("the same body", first.clone()),
        ("currency VND given", changed(&first, "currency", Some(json!("VND")))),
        ("failure_reason null given", changed(&first, "failure_reason", Some(Value::Null))),
        ("paid_at at +07:00", changed(&first, "paid_at", Some(json!(rfc3339_at_offset(t, 7))))),
        (
            "paid_at at -05:00 with a zero fraction",
            changed(
                &first,
                "paid_at",
                Some(json!(rfc3339_at_offset(t, -5).replace("-05:00", ".000000-05:00"))),
            ),
        ),
        ("every field given", succeeded("FT-DUP", &id, &rfc3339(t))),
    ];
    for (what, body) in redeliveries {
        let answer = w.deliver_ok(&body).await;
        assert_eq!(
            answer,
            json!({"result": "duplicate", "payment_id": id, "payment_status": "paid"}),
            "{what}"
        );
        assert_eq!(snapshot(&w.app).await, before, "{what}");
    }
    // The very same bytes with members reordered and spaced out are the same content too.
    let spaced = format!(
        "{{ \"paid_at\" : \"{}\", \"status\":\"succeeded\", \"amount\":\"{AMOUNT}\",\n \
         \"payment_id\":\"{id}\", \"bank_txn_id\":\"FT-DUP\" }}",
        rfc3339(t)
    )
    .into_bytes();
    let signature = w.bank.signature(now_s(), &spaced);
    let response = w.app.post_raw("/v1/banks/VCB/callbacks", &[header(&signature)], spaced).await;
    assert_eq!(json_200(response).await["result"], "duplicate");
    assert_eq!(snapshot(&w.app).await, before);
    assert_verified(&w.verify().await, 1, AMOUNT);
}

#[tokio::test]
async fn redeliveries_of_failed_and_exception_callbacks_are_duplicates_too() {
    let (w, id) = World::with_order("H12-DUP-KINDS").await;
    let paid_at = paid_a_minute_ago();
    w.deliver_ok(&failed("FT-F", &id)).await;
    w.deliver_ok(&succeeded("FT-P", &id, &paid_at)).await;
    let exception = w.deliver_ok(&succeeded("FT-X", &id, &paid_at)).await;
    assert_eq!(exception["exception"], "double_payment");
    let before = snapshot(&w.app).await;

    for body in
        [failed("FT-F", &id), succeeded("FT-P", &id, &paid_at), succeeded("FT-X", &id, &paid_at)]
    {
        let answer = w.deliver_ok(&body).await;
        assert_eq!(
            answer,
            json!({"result": "duplicate", "payment_id": id, "payment_status": "paid"}),
            "{body}"
        );
    }
    assert_eq!(snapshot(&w.app).await, before);
    assert_verified(&w.verify().await, 2, "300000");
}

#[tokio::test]
async fn the_same_bank_txn_id_with_different_content_is_a_409_conflict_and_changes_nothing() {
    let (w, id) = World::with_order("H12-CONFLICT").await;
    let other = w.order("H12-CONFLICT-OTHER").await;
    let t = now_s() - 60;
    let original = succeeded("FT-CONFLICT", &id, &rfc3339(t));
    w.deliver_ok(&original).await;
    let before = snapshot(&w.app).await;

    let conflicting = [
        ("another payment_id", changed(&original, "payment_id", Some(json!(other)))),
        ("another amount", changed(&original, "amount", Some(json!("150001")))),
        ("another currency", changed(&original, "currency", Some(json!("USD")))),
        ("another paid_at", changed(&original, "paid_at", Some(json!(rfc3339(t + 1))))),
        ("a failure_reason", changed(&original, "failure_reason", Some(json!("Giao dịch bị hủy")))),
        ("status failed", failed("FT-CONFLICT", &id)),
        (
            "an unknown payment_id",
            changed(&original, "payment_id", Some(json!("pay_does_not_exist"))),
        ),
    ];
    for (what, body) in conflicting {
        let response = w.deliver(&body).await;
        assert_problem(response, 409, "bank_txn_conflict").await;
        assert_eq!(snapshot(&w.app).await, before, "{what}");
    }
    assert_eq!(w.payment(&other).await["status"], "pending");
}

#[tokio::test]
async fn a_bank_txn_id_is_unique_per_bank_not_across_banks() {
    let w = World::new().await;
    let other_bank = w.app.new_bank(OTHER_BANK).await;
    let first = w.order("H12-PER-BANK-1").await;
    let second = w.order("H12-PER-BANK-2").await;
    let paid_at = paid_a_minute_ago();

    w.deliver_ok(&succeeded("FT-SHARED", &first, &paid_at)).await;
    let answer = json_200(
        w.app
            .post_signed(&other_bank, "callbacks", &succeeded("FT-SHARED", &second, &paid_at))
            .await,
    )
    .await;

    assert_eq!(answer["result"], "accepted");
    assert_eq!(w.payment(&second).await["bank"], OTHER_BANK);
    let balances = w.balances().await;
    assert_eq!(balances["bank:VCB"], AMOUNT);
    assert_eq!(balances["bank:BIDV"], AMOUNT);
    assert_eq!(balances[&agency_account("fee")], "-300000");
}

#[tokio::test]
async fn a_callback_for_an_unknown_payment_answers_404_and_is_kept_for_investigation_only() {
    let w = World::new().await;
    let paid_at = paid_a_minute_ago();
    let body = succeeded("FT-UNKNOWN", "pay_does_not_exist", &paid_at);
    let before = snapshot(&w.app).await;

    let response = w.deliver(&body).await;

    assert_problem(response, 404, "payment_not_found").await;
    assert_eq!(snapshot(&w.app).await, plus_one_kept(&before));
    let listed = w.exceptions("").await;
    let item = exception_for(&listed, "FT-UNKNOWN");
    assert_eq!(item["reason"], "payment_not_found");
    assert_eq!(item["kind"], "rejected");
    assert_eq!(item["bank"], BANK);
    assert_eq!(item["payment_id"], "pay_does_not_exist");
    assert_eq!(item["amount"], AMOUNT);
    assert_eq!(item["paid_at"], paid_at.as_str());

    // A 404 reserves nothing: the redelivery gets the same answer, and nothing is posted.
    let again = w.deliver(&body).await;
    assert_problem(again, 404, "payment_not_found").await;
    let after = snapshot(&w.app).await;
    assert_eq!(after.bank_callbacks, 0);
    assert_eq!(after.ledger_transactions, 0);
    assert_eq!(after.events, 0);
    assert!((1..=2).contains(&after.callback_exceptions), "{after:?}");
    // An unknown order is decided before `failed`.
    let failed_unknown = w.deliver(&failed("FT-UNKNOWN-F", "pay_nope")).await;
    assert_problem(failed_unknown, 404, "payment_not_found").await;
    assert_eq!(w.app.count("SELECT count(*) FROM bank_callbacks").await, 0);
    // Nor is the bank_txn_id reserved: the bank may use it for a real order.
    let id = w.order("H12-AFTER-404").await;
    let answer = w.deliver_ok(&succeeded("FT-UNKNOWN", &id, &paid_at)).await;
    assert_eq!(answer["result"], "accepted");
}

#[tokio::test]
async fn an_amount_or_currency_mismatch_answers_422_and_is_kept_for_investigation_only() {
    let (w, id) = World::with_order("H12-MISMATCH").await;
    let paid_at = paid_a_minute_ago();
    let cases = [
        ("FT-MORE", changed(&succeeded("FT-MORE", &id, &paid_at), "amount", Some(json!("150001")))),
        ("FT-LESS", changed(&succeeded("FT-LESS", &id, &paid_at), "amount", Some(json!("149999")))),
        ("FT-USD", changed(&succeeded("FT-USD", &id, &paid_at), "currency", Some(json!("USD")))),
    ];
    for (bank_txn_id, body) in &cases {
        let before = snapshot(&w.app).await;

        let response = w.deliver(body).await;

        assert_problem(response, 422, "amount_mismatch").await;
        assert_eq!(snapshot(&w.app).await, plus_one_kept(&before), "{bank_txn_id}");
        let listed = w.exceptions("").await;
        let item = exception_for(&listed, bank_txn_id);
        assert_eq!(item["reason"], "amount_mismatch");
        assert_eq!(item["kind"], "rejected");
        assert_eq!(item["payment_id"], id.as_str());
        assert_eq!(item["amount"], body["amount"]);
        assert_eq!(item["currency"], body["currency"]);
    }
    assert_eq!(w.payment(&id).await["status"], "pending");

    // A 422 reserves nothing: the corrected callback may reuse the bank_txn_id.
    let corrected = w.deliver_ok(&succeeded("FT-MORE", &id, &paid_at)).await;
    assert_eq!(corrected["result"], "accepted");
    // The amount is decided before the order's state: a wrong amount for a paid order is still
    // a mismatch, not a double payment.
    let wrong_after_paid =
        changed(&succeeded("FT-WRONG-AFTER", &id, &paid_at), "amount", Some(json!("1")));
    assert_problem(w.deliver(&wrong_after_paid).await, 422, "amount_mismatch").await;
    assert_verified(&w.verify().await, 1, AMOUNT);
}

#[tokio::test]
async fn a_second_succeeded_callback_with_another_bank_txn_id_goes_to_suspense_as_double_payment() {
    let w = World::new().await;
    let other_bank = w.app.new_bank(OTHER_BANK).await;
    let id = w.order("H12-DOUBLE").await;
    let paid_at = paid_a_minute_ago();
    w.deliver_ok(&succeeded("FT-FIRST", &id, &paid_at)).await;
    let paid = w.payment(&id).await;
    let before = snapshot(&w.app).await;

    let answer = w.deliver_ok(&succeeded("FT-SECOND", &id, &paid_at)).await;
    let from_other_bank = json_200(
        w.app.post_signed(&other_bank, "callbacks", &succeeded("FT-THIRD", &id, &paid_at)).await,
    )
    .await;

    for answer in [&answer, &from_other_bank] {
        assert_eq!(
            answer,
            &json!({"result": "exception", "exception": "double_payment", "payment_id": id,
                    "payment_status": "paid"})
        );
    }
    assert_eq!(w.payment(&id).await, paid, "the order is unchanged");
    let after = snapshot(&w.app).await;
    assert_eq!(after.payments, before.payments);
    assert_eq!(after.events, before.events);
    assert_eq!(after.bank_callbacks, before.bank_callbacks + 2);
    assert_eq!(after.callback_exceptions, 2);
    assert_eq!(count_events(&w.app, &id, "payment.paid").await, 1);
    let listed = w.exceptions("").await;
    for (bank_txn_id, bank) in [("FT-SECOND", BANK), ("FT-THIRD", OTHER_BANK)] {
        let item = exception_for(&listed, bank_txn_id);
        assert_eq!(item["reason"], "double_payment");
        assert_eq!(item["kind"], "suspense");
        assert_eq!(item["bank"], bank);
    }
    let balances = w.balances().await;
    assert_eq!(balances["bank:VCB"], "300000");
    assert_eq!(balances["bank:BIDV"], AMOUNT);
    assert_eq!(balances[&agency_account("fee")], "-150000");
    assert_eq!(balances["suspense:VCB"], "-150000");
    assert_eq!(balances["suspense:BIDV"], "-150000");
    let banks_only = integration_tests::world::balance_map(
        &w.audit("/v1/ledger/balances?account_prefix=bank:").await,
    );
    assert_eq!(
        banks_only.keys().collect::<HashSet<_>>(),
        HashSet::from([&"bank:BIDV".to_owned(), &"bank:VCB".to_owned()])
    );
    assert_verified(&w.verify().await, 3, "450000");
}

#[tokio::test]
async fn a_succeeded_callback_for_a_cancelled_order_goes_to_suspense_as_order_closed() {
    let (w, id) = World::with_order("H12-CANCELLED").await;
    w.cancel(&id).await;
    let before = snapshot(&w.app).await;

    let answer = w.deliver_ok(&succeeded("FT-CANCELLED", &id, &paid_a_minute_ago())).await;

    assert_eq!(
        answer,
        json!({"result": "exception", "exception": "order_closed", "payment_id": id,
               "payment_status": "cancelled"})
    );
    let after = snapshot(&w.app).await;
    assert_eq!(after.payments, before.payments);
    assert_eq!(after.events, before.events);
    assert_eq!(w.payment(&id).await["status"], "cancelled");
    assert_eq!(
        entries_of(&w.app, &id).await,
        vec![entry("bank:VCB", AMOUNT, "0"), entry("suspense:VCB", "0", AMOUNT)]
    );
    let listed = w.exceptions("").await;
    assert_eq!(exception_for(&listed, "FT-CANCELLED")["reason"], "order_closed");
}
