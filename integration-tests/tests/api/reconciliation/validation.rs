//! Validation and roles.

use super::*;

#[tokio::test]
async fn a_run_with_a_missing_or_invalid_bank_or_date_is_refused_naming_it() {
    let w = World::new().await;
    let body = statement(&[]);
    let cases: [(&str, &[&str]); 10] = [
        ("", &["bank", "date"]),
        ("bank=VCB", &["date"]),
        ("date=2026-11-22", &["bank"]),
        ("bank=vcb&date=2026-11-22", &["bank"]),
        ("bank=V&date=2026-11-22", &["bank"]),
        ("bank=VCB&date=2026-11-31", &["date"]),
        ("bank=VCB&date=22%2F11%2F2026", &["date"]),
        ("bank=VCB&date=2026-11-22T00%3A00%3A00Z", &["date"]),
        ("bank=VCB&date=", &["date"]),
        ("bank=ACB&date=2026-11-22", &["bank"]),
    ];
    for (query, fields) in cases {
        let problem = w.refused(query, body.clone()).await;
        let mut named = invalid_fields(&problem);
        named.sort();
        assert_eq!(named, fields, "{query}: {problem}");
    }
    assert_eq!(w.runs().await, 0);
    // Any date may be reconciled, future ones included.
    let future = w.run("2030-01-01", body).await;
    assert_summary(&future, &[]);
}

#[tokio::test]
async fn only_auditors_and_admins_reconcile_and_read_runs_and_reports() {
    let w = World::new().await;
    // A paid order, so that the daily report has something to total.
    let paid = w.order("ROLE-1").await;
    w.pay("FT-1", &paid, ON_DAY).await;
    let run = w.run_day(&[]).await;
    let id = run["id"].as_str().expect("id");
    let query = format!("bank={BANK}&date={DAY}");

    assert_problem(
        w.reconcile_as(Some(&w.agency_key), &query, statement(&[])).await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(w.reconcile_as(None, &query, statement(&[])).await, 401, "unauthenticated")
        .await;
    assert_problem(
        w.reconcile_as(Some("not-a-key"), &query, statement(&[])).await,
        401,
        "unauthenticated",
    )
    .await;
    assert_eq!(w.runs().await, 1, "refused runs record nothing");
    let admin_run = w
        .app
        .admin(Method::POST, &format!("/v1/reconciliations?{query}"))
        .header("Content-Type", "text/csv")
        .body(statement(&[]))
        .send()
        .await
        .expect("POST as admin");
    json_with(admin_run, 201).await;

    let paths = [
        format!("/v1/reconciliations?{query}"),
        format!("/v1/reconciliations/{id}"),
        format!("/v1/reconciliations/{id}/items"),
        format!("/v1/reconciliations/{id}/report.csv"),
        format!("/v1/reports/daily?date={DAY}"),
    ];
    for path in &paths {
        assert_problem(w.get_as(Some(&w.agency_key), path).await, 403, "forbidden").await;
        assert_problem(w.get_as(Some(&w.other_agency_key), path).await, 403, "forbidden").await;
        assert_problem(w.get_as(None, path).await, 401, "unauthenticated").await;
        let admin = w.app.admin(Method::GET, path).send().await.expect("GET as admin");
        assert_eq!(admin.status(), 200, "{path}");
        assert_eq!(w.get_as(Some(&w.auditor_key), path).await.status(), 200, "{path}");
    }
}
