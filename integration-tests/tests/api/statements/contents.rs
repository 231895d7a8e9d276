//! What a statement lists: exactly the agency's ledger movements of the day.

use super::*;

/// Sums the debits and credits of every account of `balances` (`GET /v1/ledger/balances`).
fn debits_and_credits(balances: &Value) -> (i64, i64) {
    let sum = |column: &str| -> i64 {
        balances["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|item| item[column].as_str().expect(column).parse::<i64>().expect("digits"))
            .sum()
    };
    (sum("debits"), sum("credits"))
}

#[tokio::test]
async fn a_statement_lists_exactly_the_days_payments_and_completed_refunds_and_equals_the_ledger() {
    let d = Day::new().await;
    let fee = d.paid("fee", "ST-1", "150000", "FT-1", "2026-11-22T02:00:00Z").await;
    // Paid at 16:30:00.5 in Hà Nội: fractions of a second are kept.
    let tax = d.paid("tax", "ST-2", "2350000", "FT-2", "2026-11-22T09:30:00.5Z").await;
    // A double payment: the order is paid once, the second payment goes to suspense.
    let doubled = d.paid("fee", "ST-3", "150000", "FT-3", "2026-11-22T03:00:00Z").await;
    d.pay("FT-3-AGAIN", &doubled, "150000", "2026-11-22T04:00:00Z", "exception").await;
    // A partial refund the bank completed that day, and a refund the bank failed.
    let refunded = d.completed_refund(&fee, "50000", "2026-11-22T10:00:00Z").await;
    let failed = d.approved_refund(&tax, "100000").await;
    d.refund_result(&failed, None).await;
    // The money in suspense goes back to the payer that day too: a refund, but not of the
    // agency's money.
    let cases = d.app.get_json(&d.app.admin_key, "/v1/cases?kind=double_payment").await;
    let case_id = cases["items"][0]["id"].as_str().expect("a double payment case").to_owned();
    let resolving = d
        .app
        .admin(Method::POST, &format!("/v1/cases/{case_id}/resolve"))
        .json(&json!({"resolution": "refund", "note": "Người nộp thanh toán hai lần."}))
        .json_with(200)
        .await;
    let suspense_refund = resolving["resolution"]["refund_id"].as_str().unwrap().to_owned();
    d.approve_refund(&d.second_admin_key, &suspense_refund).await;
    d.refund_result(&suspense_refund, Some("2026-11-22T11:00:00Z")).await;
    // An order that expired unpaid, and one still pending.
    let expired = d.order_of(&d.agency_key, "fee", "ST-4", "150000").await;
    d.expire(&expired).await;
    d.order_of(&d.agency_key, "fine", "ST-5", "500000").await;
    // Another agency's payment that day.
    let other = d.order_of(&d.other_agency_key, "fee", "ST-1", "70000").await;
    d.pay("FT-9", &other, "70000", "2026-11-22T05:00:00Z", "accepted").await;

    let statement = d.own(DAY).await;
    assert_eq!(statement["agency"], AGENCY);
    assert_eq!(statement["date"], DAY);
    assert_eq!(
        ids(&statement),
        [payment(&fee), payment(&doubled), payment(&tax), refund(&refunded)],
        "{statement:#}"
    );
    let listed = items(&statement);
    assert_eq!(
        listed[0],
        json!({
            "type": "payment", "payment_id": fee, "reference": "ST-1", "obligation": "fee",
            "amount": "150000", "bank": BANK, "bank_txn_id": "FT-1",
            "at": "2026-11-22T02:00:00Z", "refund_id": null,
        })
    );
    assert_eq!(listed[2]["at"], "2026-11-22T09:30:00.500000Z");
    assert_eq!(listed[2]["at"], d.payment(&tax).await["paid_at"]);
    assert_eq!(
        listed[3],
        json!({
            "type": "refund", "payment_id": fee, "reference": "ST-1", "obligation": "fee",
            "amount": "50000", "bank": BANK, "bank_txn_id": "FT-1",
            "at": "2026-11-22T10:00:00Z", "refund_id": refunded,
        })
    );
    let (payments, refunds, net) = totals(&statement);
    assert_eq!(payments, (3, "2650000".to_owned()));
    assert_eq!(refunds, (1, "50000".to_owned()));
    assert_eq!(net, "2600000");

    // The agency's ledger accounts moved by exactly these amounts (every movement of theirs
    // happened that day).
    let balances = d
        .app
        .get_json(&d.app.admin_key, &format!("/v1/ledger/balances?account_prefix=agency:{AGENCY}:"))
        .await;
    let (debits, credits) = debits_and_credits(&balances);
    assert_eq!(credits.to_string(), payments.1);
    assert_eq!(debits.to_string(), refunds.1);
    assert_eq!((credits - debits).to_string(), net);

    // The other agency's statement has its own payment only.
    let theirs = d.statement(&d.auditor_key, &[("date", DAY), ("agency", OTHER_AGENCY)]).await;
    assert_eq!(theirs["agency"], OTHER_AGENCY);
    assert_eq!(ids(&theirs), [payment(&other)]);
    assert_eq!(totals(&theirs), ((1, "70000".to_owned()), (0, "0".to_owned()), "70000".to_owned()));
    // Admins and auditors read the same statement as the agency.
    let by_admin = d.statement(&d.app.admin_key, &[("date", DAY), ("agency", AGENCY)]).await;
    assert_eq!(by_admin, statement);
}

#[tokio::test]
async fn a_day_that_refunds_more_than_it_collects_has_a_negative_net_and_an_empty_day_is_zero() {
    let d = Day::new().await;
    let id = d.paid("fee", "ST-1", "150000", "FT-1", "2026-11-21T03:00:00Z").await;
    let refunded = d.completed_refund(&id, "150000", "2026-11-22T03:00:00Z").await;
    let small = d.paid("fee", "ST-2", "100000", "FT-2", "2026-11-22T04:00:00Z").await;

    let statement = d.own(DAY).await;
    assert_eq!(ids(&statement), [refund(&refunded), payment(&small)]);
    assert_eq!(
        totals(&statement),
        ((1, "100000".to_owned()), (1, "150000".to_owned()), "-50000".to_owned())
    );
    let before = d.own("2026-11-21").await;
    assert_eq!(ids(&before), [payment(&id)]);

    let empty = d.own("2026-11-20").await;
    assert_eq!(
        empty,
        json!({
            "agency": AGENCY, "date": "2026-11-20", "items": [],
            "totals": {"payments": {"count": 0, "amount": "0"},
                       "refunds": {"count": 0, "amount": "0"}, "net": "0"},
        })
    );
}

#[tokio::test]
async fn the_business_day_runs_from_midnight_to_midnight_in_vietnam_time() {
    let d = Day::new().await;
    let first = d.paid("fee", "ST-1", "150000", "FT-1", "2026-11-22T00:00:00+07:00").await;
    let last = d.paid("fee", "ST-2", "150000", "FT-2", "2026-11-22T23:59:59+07:00").await;
    let next = d.paid("fee", "ST-3", "150000", "FT-3", "2026-11-23T00:00:00+07:00").await;
    let before = d.paid("fee", "ST-4", "150000", "FT-4", "2026-11-21T16:59:59.999999Z").await;
    let refunded = d.completed_refund(&first, "10000", "2026-11-22T23:59:59.999999+07:00").await;
    let refunded_next = d.completed_refund(&last, "20000", "2026-11-22T17:00:00Z").await;

    let day = d.own(DAY).await;
    assert_eq!(ids(&day), [payment(&first), payment(&last), refund(&refunded)]);
    assert_eq!(items(&day)[1]["at"], "2026-11-22T16:59:59Z");
    assert_eq!(items(&day)[2]["at"], "2026-11-22T16:59:59.999999Z");
    let next_day = d.own(NEXT_DAY).await;
    assert_eq!(ids(&next_day), [payment(&next), refund(&refunded_next)]);
    let day_before = d.own("2026-11-21").await;
    assert_eq!(ids(&day_before), [payment(&before)]);
}

#[tokio::test]
async fn items_at_the_same_instant_list_payments_first_then_by_id() {
    let d = Day::new().await;
    let at = "2026-11-22T03:00:00Z";
    let mut paid = Vec::new();
    for n in 1..=4 {
        paid.push(d.paid("fee", &format!("ST-{n}"), "150000", &format!("FT-{n}"), at).await);
    }
    let refunded = d.completed_refund(&paid[0], "1000", at).await;

    let statement = d.own(DAY).await;
    let mut expected: Vec<(String, String)> = paid.iter().map(|id| payment(id)).collect();
    expected.sort();
    expected.push(refund(&refunded));
    assert_eq!(ids(&statement), expected);
    // The same answer on every read.
    assert_eq!(d.own(DAY).await, statement);
}
