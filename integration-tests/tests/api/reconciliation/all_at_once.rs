//! Everything at once, days, reruns.

use super::*;

#[tokio::test]
async fn every_outcome_in_one_statement_is_counted_and_summed_exactly() {
    let (w, m, run) = mixed_run().await;

    assert_mixed_totals(&run);
    let items = w.items(&run).await;
    let briefs: Vec<Value> = items.iter().map(brief).collect();
    let expected = [
        expect(
            "matched",
            Some(2),
            Some("FT-A"),
            Some(m.matched.as_str()),
            Some(AMOUNT),
            Some(AMOUNT),
        ),
        expect(
            "recovered",
            Some(3),
            Some("FT-B"),
            Some(m.lost.as_str()),
            Some("200000"),
            Some("200000"),
        ),
        expect(
            "recovered",
            Some(4),
            Some("FT-C"),
            Some(m.cancelled.as_str()),
            Some(AMOUNT),
            Some(AMOUNT),
        ),
        expect(
            "missing_in_gateway",
            Some(5),
            Some(m.odd_txn.as_str()),
            Some("pay_nonexistent"),
            Some("70000"),
            None,
        ),
    ];
    assert_eq!(briefs[..4], expected);
    let outcomes: Vec<(&str, Value)> = items
        .iter()
        .map(|i| (i["outcome"].as_str().expect("outcome"), i["line"].clone()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("matched", json!(2)),
            ("recovered", json!(3)),
            ("recovered", json!(4)),
            ("missing_in_gateway", json!(5)),
            ("missing_in_gateway", json!(6)),
            ("missing_in_gateway", json!(7)),
            ("mismatch", json!(9)),
            ("duplicate_in_statement", json!(10)),
            ("invalid_line", json!(11)),
            ("invalid_line", json!(12)),
            ("missing_in_bank", Value::Null),
        ]
    );
    assert_eq!(items[6]["payment_id"], m.mismatched.as_str());
    assert_eq!(items[6]["gateway_amount"], "300000");
    assert_eq!(items[10]["bank_txn_id"], "FT-F");
    assert_eq!(items[10]["payment_id"], m.absent.as_str());
    assert_eq!(items[10]["gateway_amount"], "50000");
    assert_eq!(items[10]["statement_amount"], Value::Null);
    assert_eq!(w.payment(&m.lost).await["status"], "paid");
    assert_eq!(w.payment(&m.cancelled).await["status"], "cancelled");
    w.assert_ledger_ok().await;
}

#[tokio::test]
async fn the_business_day_is_the_calendar_day_in_vietnam_time() {
    let w = World::new().await;
    // 23:30 in Hà Nội on the 22nd, and midnight starting the 23rd.
    let late = w.order("TZ-1").await;
    let next = w.order("TZ-2").await;
    // The first and last instants of the 22nd, and the last of the 21st.
    let [first, last, before] = w.orders(["TZ-3", "TZ-4", "TZ-5"]).await;
    w.pay("FT-LATE", &late, "2026-11-22T16:30:00Z").await;
    w.pay("FT-NEXT", &next, "2026-11-22T17:00:00Z").await;
    w.pay("FT-FIRST", &first, "2026-11-21T17:00:00Z").await;
    w.pay("FT-LAST", &last, "2026-11-22T16:59:59.999999Z").await;
    w.pay("FT-BEFORE", &before, "2026-11-21T16:59:59Z").await;

    let missing = |run: &Value, items: &[Value]| -> Vec<String> {
        let mut ids: Vec<String> = items
            .iter()
            .filter(|i| i["outcome"] == "missing_in_bank")
            .map(|i| i["bank_txn_id"].as_str().expect("bank_txn_id").to_owned())
            .collect();
        ids.sort();
        assert_eq!(run["summary"]["missing_in_bank"]["count"], ids.len(), "{run}");
        ids
    };
    let day = w.run("2026-11-22", statement(&[])).await;
    assert_eq!(missing(&day, &w.items(&day).await), ["FT-FIRST", "FT-LAST", "FT-LATE"]);
    assert_summary(&day, &[("missing_in_bank", 3, "450000")]);
    let next_day = w.run("2026-11-23", statement(&[])).await;
    assert_eq!(missing(&next_day, &w.items(&next_day).await), ["FT-NEXT"]);
    let day_before = w.run("2026-11-21", statement(&[])).await;
    assert_eq!(missing(&day_before, &w.items(&day_before).await), ["FT-BEFORE"]);
}

#[tokio::test]
async fn lines_match_by_bank_txn_id_whatever_day_paygate_recorded_them() {
    let w = World::new().await;
    let [early, lost, never, wrong] = w.orders(["XD-1", "XD-2", "XD-3", "XD-4"]).await;
    // Recorded on the 21st (Vietnam time).
    w.pay("FT-EARLY", &early, "2026-11-21T10:00:00Z").await;
    w.pay("FT-NEVER", &never, "2026-11-21T11:00:00Z").await;
    w.pay("FT-WRONG", &wrong, "2026-11-21T12:00:00Z").await;

    // The bank booked them on the 22nd.
    let day = w
        .run_day(&[
            &line("FT-EARLY", &early, AMOUNT, "2026-11-22T01:00:00Z"),
            &line("FT-LOST", &lost, AMOUNT, "2026-11-21T16:00:00Z"),
            &line("FT-WRONG", &wrong, "149000", "2026-11-22T01:00:00Z"),
        ])
        .await;
    assert_summary(
        &day,
        &[("matched", 1, "150000"), ("recovered", 1, "150000"), ("mismatch", 1, "149000")],
    );
    assert_eq!(w.payment(&lost).await["paid_at"], "2026-11-21T16:00:00Z");

    // The 21st's own statement carried none of them: the ones the 22nd's run matched or
    // recovered are timing differences, the others are gaps.
    let day_before = w.run("2026-11-21", statement(&[])).await;
    assert_summary(&day_before, &[("missing_in_bank", 2, "300000")]);
    let mut missing: Vec<String> = w
        .items(&day_before)
        .await
        .iter()
        .map(|i| i["bank_txn_id"].as_str().expect("bank_txn_id").to_owned())
        .collect();
    missing.sort();
    assert_eq!(missing, ["FT-NEVER", "FT-WRONG"]);
}

#[tokio::test]
async fn running_the_same_statement_again_applies_nothing_twice() {
    let (w, m, first) = mixed_run().await;
    let after_first = w.money_state().await;
    let first_items = w.items(&first).await;

    let second = w.run(DAY, m.statement.as_bytes()).await;

    assert_ne!(first["id"], second["id"]);
    assert_eq!(w.money_state().await, after_first, "nothing is applied twice");
    assert_eq!(second["statement_lines"], 10);
    // The lines recovered the first time are matched the second.
    assert_summary(&second, &mixed_summary(&[("matched", 3, "500000")]));
    assert_eq!(second["by_obligation"], first["by_obligation"]);
    let second_items = w.items(&second).await;
    let key = |i: &Value| {
        (
            i["line"].clone(),
            i["bank_txn_id"].clone(),
            i["payment_id"].clone(),
            i["statement_amount"].clone(),
        )
    };
    let expected: Vec<_> = first_items
        .iter()
        .map(|i| {
            let outcome =
                if i["outcome"] == "recovered" { json!("matched") } else { i["outcome"].clone() };
            (outcome, key(i))
        })
        .collect();
    let actual: Vec<_> = second_items.iter().map(|i| (i["outcome"].clone(), key(i))).collect();
    assert_eq!(actual, expected);
    w.assert_ledger_ok().await;
}

#[tokio::test]
async fn a_real_callback_after_recovery_is_a_duplicate_and_changes_nothing() {
    let (w, lost) = World::with_order("LATE-1").await;
    let cancelled = w.order("LATE-2").await;
    w.cancel(&cancelled).await;
    w.run_day(&[
        &line("FT-LOST", &lost, AMOUNT, "2026-11-22T03:00:00Z"),
        &line("FT-SUSP", &cancelled, AMOUNT, "2026-11-22T03:00:00Z"),
    ])
    .await;
    let before = w.money_state().await;

    // The bank's own time differs from its statement's: paid_at is not compared.
    let late = json!({
        "bank_txn_id": "FT-LOST", "payment_id": lost, "amount": AMOUNT,
        "status": "succeeded", "paid_at": "2026-11-22T03:00:07+07:00",
    });
    let answer = json_with(w.callback(&w.bank, &late).await, 200).await;
    assert_eq!(answer["result"], "duplicate", "{answer}");
    assert_eq!(answer["payment_id"], lost.as_str());
    assert_eq!(answer["payment_status"], "paid");
    let late_exception = json!({
        "bank_txn_id": "FT-SUSP", "payment_id": cancelled, "amount": AMOUNT,
        "currency": "VND", "status": "succeeded", "paid_at": "2026-11-22T04:00:00Z",
    });
    let answer = json_with(w.callback(&w.bank, &late_exception).await, 200).await;
    assert_eq!(answer["result"], "duplicate", "{answer}");
    assert_eq!(answer["payment_status"], "cancelled");
    // Other money under the same bank_txn_id is a conflict.
    let other_amount = json!({
        "bank_txn_id": "FT-LOST", "payment_id": lost, "amount": "150001",
        "status": "succeeded", "paid_at": "2026-11-22T03:00:00Z",
    });
    assert_problem(w.callback(&w.bank, &other_amount).await, 409, "bank_txn_conflict").await;
    let other_payment = json!({
        "bank_txn_id": "FT-LOST", "payment_id": cancelled, "amount": AMOUNT,
        "status": "succeeded", "paid_at": "2026-11-22T03:00:00Z",
    });
    assert_problem(w.callback(&w.bank, &other_payment).await, 409, "bank_txn_conflict").await;

    assert_eq!(w.money_state().await, before);
    assert_eq!(w.payment(&lost).await["paid_at"], "2026-11-22T03:00:00Z");
}
