//! Daily report.

use super::*;

fn sorted_rows(rows: &Value, key: &str) -> Vec<(String, i64, String)> {
    let mut rows: Vec<(String, i64, String)> = rows
        .as_array()
        .expect("an array")
        .iter()
        .map(|row| {
            let object = row.as_object().expect("a row");
            assert_eq!(object.len(), 3, "{row}");
            (
                row[key].as_str().expect("key").to_owned(),
                row["count"].as_i64().expect("count"),
                row["amount"].as_str().expect("amount").to_owned(),
            )
        })
        .collect();
    rows.sort();
    rows
}

fn rows(expected: &[(&str, i64, &str)]) -> Vec<(String, i64, String)> {
    let mut rows: Vec<(String, i64, String)> =
        expected.iter().map(|(k, c, a)| ((*k).to_owned(), *c, (*a).to_owned())).collect();
    rows.sort();
    rows
}

#[tokio::test]
async fn the_daily_report_totals_orders_paid_that_business_day() {
    let w = World::new().await;
    let a = &w.agency_key;
    let b = &w.other_agency_key;
    let fee = w.order_of(a, ["fee", "DR-1", "150000"]).await;
    let tax = w.order_of(a, ["tax", "DR-2", "200000"]).await;
    let fine = w.order_of(b, ["fine", "DR-3", "50000"]).await;
    let electricity = w.order_of(b, ["electricity", "DR-4", "300000"]).await;
    let court = w.order_of(b, ["court_advance", "DR-5", "400000"]).await;
    let lost = w.order_of(a, ["social_insurance", "DR-6", "250000"]).await;
    let cancelled = w.order_of(a, ["fee", "DR-7", "99000"]).await;
    w.order_of(a, ["fee", "DR-8", "77000"]).await; // never paid
    w.cancel(&cancelled).await;
    w.pay_with(&w.bank, "FT-1", &fee, "150000", "2026-11-22T01:00:00Z", "accepted").await;
    // 00:00 in Hà Nội on the 22nd.
    w.pay_with(&w.other_bank, "FT-2", &tax, "200000", "2026-11-21T17:00:00Z", "accepted").await;
    w.pay_with(&w.bank, "FT-3", &fine, "50000", "2026-11-22T16:59:59Z", "accepted").await;
    w.pay_with(&w.bank, "FT-4", &electricity, "300000", "2026-11-22T17:00:00Z", "accepted").await;
    w.pay_with(&w.other_bank, "FT-5", &court, "400000", "2026-11-21T16:59:59Z", "accepted").await;
    // Money for a cancelled order is in suspense: no order was paid.
    w.pay_with(&w.bank, "FT-7", &cancelled, "99000", ON_DAY, "exception").await;
    // A payment recovered by reconciliation counts like any other.
    w.run_day(&[&line("FT-6", &lost, "250000", "2026-11-22T05:00:00Z")]).await;

    let day = w.audit(&format!("/v1/reports/daily?date={DAY}")).await;
    assert_eq!(day["date"], DAY);
    assert_eq!(day["totals"], json!({"count": 4, "amount": "650000"}));
    assert_totals(
        &day["by_obligation"],
        &OBLIGATIONS,
        &[
            ("fee", 1, "150000"),
            ("tax", 1, "200000"),
            ("social_insurance", 1, "250000"),
            ("fine", 1, "50000"),
        ],
    );
    assert_eq!(
        sorted_rows(&day["by_agency"], "agency"),
        rows(&[(AGENCY, 3, "600000"), (OTHER_AGENCY, 1, "50000")])
    );
    assert_eq!(
        sorted_rows(&day["by_bank"], "bank"),
        rows(&[(BANK, 3, "450000"), (OTHER_BANK, 1, "200000")])
    );

    let next = w.audit("/v1/reports/daily?date=2026-11-23").await;
    assert_eq!(next["totals"], json!({"count": 1, "amount": "300000"}));
    assert_totals(&next["by_obligation"], &OBLIGATIONS, &[("electricity", 1, "300000")]);
    assert_eq!(sorted_rows(&next["by_agency"], "agency"), rows(&[(OTHER_AGENCY, 1, "300000")]));
    assert_eq!(sorted_rows(&next["by_bank"], "bank"), rows(&[(BANK, 1, "300000")]));

    let before = w.audit("/v1/reports/daily?date=2026-11-21").await;
    assert_eq!(before["totals"], json!({"count": 1, "amount": "400000"}));
    assert_totals(&before["by_obligation"], &OBLIGATIONS, &[("court_advance", 1, "400000")]);
    assert_eq!(sorted_rows(&before["by_bank"], "bank"), rows(&[(OTHER_BANK, 1, "400000")]));
}

#[tokio::test]
async fn the_daily_report_of_a_day_without_paid_orders_is_all_zeros() {
    let w = World::new().await;
    // An order paid on another day, one never paid, and money in suspense on the day.
    let paid = w.order("Q-1").await;
    w.order("Q-2").await;
    let cancelled = w.order("Q-3").await;
    w.cancel(&cancelled).await;
    w.pay("FT-1", &paid, "2026-11-21T03:00:00Z").await;
    w.pay_with(&w.bank, "FT-2", &cancelled, AMOUNT, ON_DAY, "exception").await;

    for date in [DAY, "2026-11-20"] {
        let quiet = w.audit(&format!("/v1/reports/daily?date={date}")).await;
        assert_eq!(quiet["date"], date);
        assert_eq!(quiet["totals"], json!({"count": 0, "amount": "0"}));
        assert_totals(&quiet["by_obligation"], &OBLIGATIONS, &[]);
        assert_eq!(quiet["by_agency"], json!([]));
        assert_eq!(quiet["by_bank"], json!([]));
    }
}

#[tokio::test]
async fn the_daily_report_needs_a_valid_date() {
    let w = World::new().await;
    for query in ["", "?date=", "?date=2026-02-30", "?date=20261122", "?date=today"] {
        let path = format!("/v1/reports/daily{query}");
        assert_eq!(invalid(w.get_as(Some(&w.auditor_key), &path).await).await, ["date"], "{path}");
    }
}

#[tokio::test]
async fn concurrent_runs_never_record_a_line_they_could_apply_as_missing_in_gateway() {
    let w = World::new().await;
    // More runs at once than the app has database connections (4 in tests), each with a lost
    // callback to recover.
    let mut lost = Vec::new();
    for n in 0..8 {
        let id = w.order(&format!("CONC-{n}")).await;
        let body = statement(&[&line(&format!("FT-{n}"), &id, AMOUNT, ON_DAY)]);
        let request =
            w.reconcile_request(Some(&w.admin_key), &format!("bank={BANK}&date={DAY}"), body);
        lost.push((id, request));
    }
    let mut sent = Vec::new();
    for (id, request) in lost {
        sent.push((
            id,
            tokio::spawn(async move { request.send().await.expect("POST a statement") }),
        ));
    }

    let mut recorded = 0;
    for (id, handle) in sent {
        let response = handle.await.expect("the request task");
        if response.status() == 503 {
            // Refusing a run the database cannot serve now is fine: nothing is recorded.
            assert_problem(response, 503, "unavailable").await;
            continue;
        }
        let run = json_with(response, 201).await;
        recorded += 1;
        assert_summary(&run, &[("recovered", 1, "150000")]);
        assert_eq!(w.payment(&id).await["status"], "paid");
    }
    assert_eq!(w.runs().await, recorded);
    w.assert_ledger_ok().await;
}
