//! Each outcome on its own.

use super::*;

#[tokio::test]
async fn a_line_paygate_recorded_with_the_same_payment_and_amount_is_matched() {
    let (w, id) = World::with_order("MATCH-1").await;
    w.pay("FT26327001", &id, ON_DAY).await;
    let before = w.money_state().await;

    let run = w.run_day(&[&line("FT26327001", &id, AMOUNT, ON_DAY)]).await;

    assert_eq!(run["statement_lines"], 1);
    assert_summary(&run, &[("matched", 1, "150000")]);
    assert_by_obligation(&run, &[("fee", 1, "150000")]);
    let items = w.items(&run).await;
    assert_eq!(items.len(), 1);
    assert_eq!(
        brief(&items[0]),
        expect(
            "matched",
            Some(2),
            Some("FT26327001"),
            Some(id.as_str()),
            Some(AMOUNT),
            Some(AMOUNT)
        )
    );
    assert_eq!(w.money_state().await, before, "matching changes no money");
}

#[tokio::test]
async fn a_line_whose_callback_was_lost_is_recovered_and_pays_the_order_once() {
    let w = World::new().await;
    let id = w.order_of(&w.agency_key, ["electricity", "LOST-1", "275000"]).await;
    assert_eq!(w.payment(&id).await["status"], "pending");

    // 10:15 in Hà Nội is 03:15 UTC.
    let run = w.run_day(&[&line("FT-LOST", &id, "275000", "2026-11-22T10:15:00+07:00")]).await;

    assert_summary(&run, &[("recovered", 1, "275000")]);
    assert_by_obligation(&run, &[("electricity", 1, "275000")]);
    let items = w.items(&run).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["outcome"], "recovered");
    assert_eq!(items[0]["line"], 2);
    assert_eq!(items[0]["bank_txn_id"], "FT-LOST");
    assert_eq!(items[0]["payment_id"], id.as_str());
    assert_eq!(items[0]["statement_amount"], "275000");

    let payment = w.payment(&id).await;
    assert_eq!(payment["status"], "paid", "{payment}");
    assert_eq!(payment["bank"], BANK);
    assert_eq!(payment["bank_txn_id"], "FT-LOST");
    assert_eq!(payment["paid_at"], "2026-11-22T03:15:00Z");
    w.app.assert_count("SELECT count(*) FROM ledger_transactions", 1).await;
    w.app
        .assert_count(
            &format!(
                "SELECT count(*) FROM events WHERE payment_id = '{id}' AND type = 'payment.paid'"
            ),
            1,
        )
        .await;
    assert_eq!(w.app.count("SELECT count(*) FROM events").await, 1);
    assert_eq!(w.balance(&format!("bank:{BANK}")).await, "275000");
    assert_eq!(w.balance(&format!("agency:{AGENCY}:electricity")).await, "-275000");
    assert_eq!(w.balance(&format!("suspense:{BANK}")).await, "0");
    w.assert_ledger_ok().await;
}

#[tokio::test]
async fn a_line_for_a_cancelled_order_is_recovered_into_suspense_and_not_credited_to_an_agency() {
    let (w, id) = World::with_order("CANCELLED-1").await;
    w.cancel(&id).await;

    let run = w.run_day(&[&line("FT-SUSP", &id, AMOUNT, ON_DAY)]).await;

    assert_summary(&run, &[("recovered", 1, "150000")]);
    assert_by_obligation(&run, &[]);
    let items = w.items(&run).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["outcome"], "recovered");
    assert_eq!(items[0]["line"], 2);
    assert_eq!(items[0]["payment_id"], id.as_str());
    assert_eq!(items[0]["statement_amount"], AMOUNT);
    assert!(detail(&items[0]).contains("suspense"), "the detail names the suspense: {}", items[0]);
    let payment = w.payment(&id).await;
    assert_eq!(payment["status"], "cancelled");
    assert_eq!(payment["paid_at"], Value::Null);
    assert_eq!(w.balance(&format!("suspense:{BANK}")).await, "-150000");
    assert_eq!(w.balance(&format!("bank:{BANK}")).await, "150000");
    assert_eq!(w.balance(&format!("agency:{AGENCY}:fee")).await, "0");
    w.app.assert_count("SELECT count(*) FROM ledger_transactions", 1).await;
    w.app.assert_count("SELECT count(*) FROM events WHERE type = 'payment.paid'", 0).await;
    let exceptions = w.audit(&format!("/v1/exceptions?bank={BANK}")).await;
    let listed = exceptions["items"].as_array().expect("items");
    assert_eq!(listed.len(), 1, "{exceptions}");
    assert_eq!(listed[0]["bank_txn_id"], "FT-SUSP");
    w.assert_ledger_ok().await;
}

#[tokio::test]
async fn lines_that_cannot_be_applied_are_missing_in_gateway_and_change_nothing() {
    let (w, amount_differs) = World::with_order("MIG-1").await;
    let currency_differs = w.order("MIG-2").await;
    let before = w.money_state().await;

    let run = w
        .run_day(&[
            &line("FT-1", "pay_nonexistent", "99000", ON_DAY),
            &line("FT-2", &amount_differs, "150001", ON_DAY),
            &format!("FT-3,{currency_differs},{AMOUNT},{ON_DAY},USD"),
        ])
        .await;

    assert_eq!(run["statement_lines"], 3);
    assert_summary(&run, &[("missing_in_gateway", 3, "399001")]);
    assert_by_obligation(&run, &[]);
    let items = w.items(&run).await;
    assert_eq!(
        briefs(&items),
        [
            expect(
                "missing_in_gateway",
                Some(2),
                Some("FT-1"),
                Some("pay_nonexistent"),
                Some("99000"),
                None
            ),
            expect(
                "missing_in_gateway",
                Some(3),
                Some("FT-2"),
                Some(amount_differs.as_str()),
                Some("150001"),
                None
            ),
            expect(
                "missing_in_gateway",
                Some(4),
                Some("FT-3"),
                Some(currency_differs.as_str()),
                Some(AMOUNT),
                None
            ),
        ]
    );
    assert!(detail(&items[1]).contains("amount"), "{}", items[1]);
    assert!(detail(&items[2]).contains("currency"), "{}", items[2]);
    assert_eq!(w.money_state().await, before);
    for id in [&amount_differs, &currency_differs] {
        assert_eq!(w.payment(id).await["status"], "pending");
    }
}

#[tokio::test]
async fn money_paygate_recorded_that_day_but_absent_from_the_statement_is_missing_in_bank() {
    let (w, on_statement) = World::with_order("MIB-1").await;
    let absent = w.order_of(&w.agency_key, ["court_advance", "MIB-2", "480000"]).await;
    let [twice, failed, other_bank] = w.orders(["MIB-3", "MIB-4", "MIB-5"]).await;
    w.pay("FT-ON", &on_statement, ON_DAY).await;
    w.pay_with(&w.bank, "FT-ABSENT", &absent, "480000", "2026-11-22T08:00:00Z", "accepted").await;
    w.pay("FT-TWICE-1", &twice, "2026-11-22T04:00:00Z").await;
    // A second payment of a paid order went to suspense: money moved, so it counts too.
    w.pay_with(&w.bank, "FT-TWICE-2", &twice, AMOUNT, "2026-11-22T05:00:00Z", "exception").await;
    // A failed attempt moved no money, and another bank's money is another run's.
    let failure = json!({
        "bank_txn_id": "FT-FAILED", "payment_id": failed, "amount": AMOUNT,
        "status": "failed", "failure_reason": "Tài khoản không đủ số dư",
    });
    json_with(w.callback(&w.bank, &failure).await, 200).await;
    w.pay_with(&w.other_bank, "FT-OTHER", &other_bank, AMOUNT, ON_DAY, "accepted").await;

    let run = w.run_day(&[&line("FT-ON", &on_statement, AMOUNT, ON_DAY)]).await;

    assert_summary(&run, &[("matched", 1, "150000"), ("missing_in_bank", 3, "780000")]);
    assert_by_obligation(&run, &[("fee", 1, "150000")]);
    let items = w.items(&run).await;
    let missing: Vec<&Value> = items.iter().filter(|i| i["outcome"] == "missing_in_bank").collect();
    let mut briefs: Vec<Value> = missing.iter().map(|i| brief(i)).collect();
    briefs.sort_by_key(|b| b["bank_txn_id"].as_str().map(str::to_owned));
    assert_eq!(
        briefs,
        [
            expect(
                "missing_in_bank",
                None,
                Some("FT-ABSENT"),
                Some(absent.as_str()),
                None,
                Some("480000")
            ),
            expect(
                "missing_in_bank",
                None,
                Some("FT-TWICE-1"),
                Some(twice.as_str()),
                None,
                Some(AMOUNT)
            ),
            expect(
                "missing_in_bank",
                None,
                Some("FT-TWICE-2"),
                Some(twice.as_str()),
                None,
                Some(AMOUNT)
            ),
        ]
    );
}

#[tokio::test]
async fn a_known_bank_txn_id_with_another_payment_or_amount_is_a_mismatch_saying_which() {
    let w = World::new().await;
    let [first, second, third] = w.orders(["MM-1", "MM-2", "MM-3"]).await;
    w.pay("FT-1", &first, ON_DAY).await;
    w.pay("FT-2", &second, ON_DAY).await;
    w.pay("FT-3", &third, ON_DAY).await;
    let before = w.money_state().await;

    let run = w
        .run_day(&[
            &line("FT-1", &second, AMOUNT, ON_DAY),
            &line("FT-2", &second, "150500", ON_DAY),
            &line("FT-3", &first, "1", ON_DAY),
        ])
        .await;

    assert_summary(&run, &[("mismatch", 3, "300501")]);
    assert_by_obligation(&run, &[]);
    let items = w.items(&run).await;
    assert_eq!(items.len(), 3, "a mismatched record is not also missing_in_bank");
    assert_eq!(
        briefs(&items),
        [
            expect(
                "mismatch",
                Some(2),
                Some("FT-1"),
                Some(second.as_str()),
                Some(AMOUNT),
                Some(AMOUNT)
            ),
            expect(
                "mismatch",
                Some(3),
                Some("FT-2"),
                Some(second.as_str()),
                Some("150500"),
                Some(AMOUNT)
            ),
            expect(
                "mismatch",
                Some(4),
                Some("FT-3"),
                Some(first.as_str()),
                Some("1"),
                Some(AMOUNT)
            ),
        ]
    );
    let first_detail = detail(&items[0]);
    assert!(
        first_detail.contains("payment_id") && !first_detail.contains("amount"),
        "{first_detail}"
    );
    let second_detail = detail(&items[1]);
    assert!(
        second_detail.contains("amount") && !second_detail.contains("payment_id"),
        "{second_detail}"
    );
    let third_detail = detail(&items[2]);
    assert!(
        third_detail.contains("amount") && third_detail.contains("payment_id"),
        "{third_detail}"
    );
    assert_eq!(w.money_state().await, before);
}

#[tokio::test]
async fn a_repeated_bank_txn_id_is_a_duplicate_on_its_second_line_and_applied_once() {
    let (w, id) = World::with_order("DUP-1").await;

    let run = w
        .run_day(&[&line("FT-DUP", &id, AMOUNT, ON_DAY), &line("FT-DUP", &id, AMOUNT, ON_DAY)])
        .await;

    assert_eq!(run["statement_lines"], 2);
    assert_summary(&run, &[("recovered", 1, "150000"), ("duplicate_in_statement", 1, "150000")]);
    assert_by_obligation(&run, &[("fee", 1, "150000")]);
    let items = w.items(&run).await;
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["outcome"], "recovered");
    assert_eq!(items[0]["line"], 2);
    assert_eq!(items[1]["outcome"], "duplicate_in_statement");
    assert_eq!(items[1]["line"], 3);
    assert_eq!(items[1]["bank_txn_id"], "FT-DUP");
    assert_eq!(items[1]["statement_amount"], AMOUNT);
    assert!(detail(&items[1]).contains('2'), "{}", items[1]);
    w.app.assert_count("SELECT count(*) FROM ledger_transactions", 1).await;
    w.assert_ledger_ok().await;
}

#[tokio::test]
async fn an_unreadable_line_is_an_invalid_line_with_its_number_and_reason_and_no_amount() {
    let (w, id) = World::with_order("INV-1").await;

    let run = w
        .run_day(&[
            "FT-1,pay_short,150000",
            &line("FT-2", &id, "0", ON_DAY),
            &line("FT-3", &id, AMOUNT, "2026-11-22 10:00"),
        ])
        .await;

    assert_eq!(run["statement_lines"], 3);
    assert_summary(&run, &[("invalid_line", 3, "0")]);
    let items = w.items(&run).await;
    let lines: Vec<&Value> = items.iter().map(|i| &i["line"]).collect();
    assert_eq!(lines, [&json!(2), &json!(3), &json!(4)]);
    for item in &items {
        assert_eq!(item["outcome"], "invalid_line");
        assert!(!detail(item).is_empty());
    }
    assert!(detail(&items[1]).contains("amount"), "{}", items[1]);
    assert!(detail(&items[2]).contains("paid_at"), "{}", items[2]);
    assert_eq!(w.payment(&id).await["status"], "pending");
}

#[tokio::test]
async fn two_lost_payments_of_one_order_pay_it_once_and_put_the_other_in_suspense() {
    let (w, id) = World::with_order("TWICE-1").await;

    let run = w
        .run_day(&[
            &line("FT-1", &id, AMOUNT, "2026-11-22T03:00:00Z"),
            &line("FT-2", &id, AMOUNT, "2026-11-22T03:05:00Z"),
        ])
        .await;

    assert_summary(&run, &[("recovered", 2, "300000")]);
    assert_by_obligation(&run, &[("fee", 1, "150000")]);
    let items = w.items(&run).await;
    let in_suspense: Vec<&Value> = items
        .iter()
        .filter(|i| i["detail"].as_str().is_some_and(|d| d.contains("suspense")))
        .collect();
    assert_eq!(in_suspense.len(), 1, "{items:?}");
    let payment = w.payment(&id).await;
    assert_eq!(payment["status"], "paid");
    assert_ne!(payment["bank_txn_id"], in_suspense[0]["bank_txn_id"]);
    assert_eq!(w.balance(&format!("agency:{AGENCY}:fee")).await, "-150000");
    assert_eq!(w.balance(&format!("suspense:{BANK}")).await, "-150000");
    assert_eq!(w.balance(&format!("bank:{BANK}")).await, "300000");
    w.app.assert_count("SELECT count(*) FROM events WHERE type = 'payment.paid'", 1).await;
    w.assert_ledger_ok().await;
}

#[tokio::test]
async fn lost_payments_recovered_together_are_recorded_exactly_as_one_recovered_alone() {
    // One run recovers a single lost payment (decided alone); a run of the next day recovers
    // three at once (written together).
    let w = World::new().await;
    let [alone, a, b, c] = w.orders(["TOGETHER-0", "TOGETHER-1", "TOGETHER-2", "TOGETHER-3"]).await;
    let first = w.run_day(&[&line("FT-T0", &alone, AMOUNT, ON_DAY)]).await;
    assert_summary(&first, &[("recovered", 1, AMOUNT)]);
    let run = w
        .run(
            "2026-11-23",
            statement(&[
                &line("FT-T1", &a, AMOUNT, "2026-11-23T03:00:00Z"),
                &line("FT-T2", &b, AMOUNT, "2026-11-23T03:01:00Z"),
                &line("FT-T3", &c, AMOUNT, "2026-11-23T03:02:00Z"),
            ]),
        )
        .await;
    assert_summary(&run, &[("recovered", 3, "450000")]);
    assert_by_obligation(&run, &[("fee", 3, "450000")]);

    // Every recovered payment's records, alike whether decided alone or together.
    let recorded = |id: String| {
        let app = &w.app;
        async move {
            let row = app
                .row(
                    "SELECT c.source, c.status, c.outcome, c.exception IS NULL, p.status,
                            (SELECT count(*) FROM ledger_transactions t WHERE t.payment_id = p.id),
                            (SELECT count(*) FROM events e WHERE e.payment_id = p.id
                                                             AND e.type = 'payment.paid')
                     FROM bank_callbacks c JOIN payments p ON p.id = c.payment_id
                     WHERE c.payment_id = $1",
                    &[&id],
                )
                .await;
            let record: (String, String, String, bool, String, i64, i64) = (
                row.get(0),
                row.get(1),
                row.get(2),
                row.get(3),
                row.get(4),
                row.get(5),
                row.get(6),
            );
            record
        }
    };
    let expected = (
        "reconciliation".to_owned(),
        "succeeded".to_owned(),
        "paid".to_owned(),
        true,
        "paid".to_owned(),
        1,
        1,
    );
    assert_eq!(recorded(alone.clone()).await, expected);
    for id in [&a, &b, &c] {
        assert_eq!(recorded(id.clone()).await, expected, "{id}");
    }
    // The three were written by one statement of the run's transaction.
    let ids = vec![a.clone(), b.clone(), c.clone()];
    let writers: i64 = w
        .app
        .row(
            "SELECT count(DISTINCT (xmin::text, cmin::text)) FROM bank_callbacks
             WHERE payment_id = ANY($1)",
            &[&ids],
        )
        .await
        .get(0);
    assert_eq!(writers, 1);
    assert_eq!(w.balance(&format!("agency:{AGENCY}:fee")).await, "-600000");
    w.assert_ledger_ok().await;
}
