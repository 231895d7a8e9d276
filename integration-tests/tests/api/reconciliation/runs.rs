//! Runs, items, report.

use super::*;

#[tokio::test]
async fn a_run_reads_back_exactly_as_posted_and_runs_are_listed_by_bank_and_date() {
    let (w, _, posted) = mixed_run().await;
    let id = posted["id"].as_str().expect("id");

    assert_eq!(w.audit(&format!("/v1/reconciliations/{id}")).await, posted);
    let admin_read =
        w.app.admin(Method::GET, &format!("/v1/reconciliations/{id}")).json_with(200).await;
    assert_eq!(admin_read, posted);

    let again = w.run_day(&[]).await;
    let other_day = w.run("2026-11-23", statement(&[])).await;
    let other_bank = json_with(
        w.reconcile_as(
            Some(&w.auditor_key),
            &format!("bank={OTHER_BANK}&date={DAY}"),
            statement(&[]),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(other_bank["bank"], OTHER_BANK);

    let listed = |page: &Value| -> HashSet<String> {
        assert_eq!(page["next_cursor"], Value::Null, "{page}");
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|run| run["id"].as_str().expect("id").to_owned())
            .collect()
    };
    let ids = |runs: &[&Value]| -> HashSet<String> {
        runs.iter().map(|run| run["id"].as_str().expect("id").to_owned()).collect()
    };
    let page = w.audit(&format!("/v1/reconciliations?bank={BANK}&date={DAY}")).await;
    assert_eq!(listed(&page), ids(&[&posted, &again]));
    let found = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|run| run["id"] == posted["id"])
        .expect("listed");
    assert_eq!(found, &posted, "a listed run is the run");
    assert_eq!(
        listed(&w.audit(&format!("/v1/reconciliations?bank={BANK}")).await),
        ids(&[&posted, &again, &other_day])
    );
    assert_eq!(
        listed(&w.audit(&format!("/v1/reconciliations?date={DAY}")).await),
        ids(&[&posted, &again, &other_bank])
    );
    assert_eq!(
        listed(&w.audit("/v1/reconciliations").await),
        ids(&[&posted, &again, &other_day, &other_bank])
    );
    assert_eq!(
        listed(&w.audit("/v1/reconciliations?bank=VCB&date=2026-11-20").await),
        HashSet::new()
    );
    // Keyset pages walk every run once.
    let mut walked = Vec::new();
    let mut path = "/v1/reconciliations?limit=1".to_owned();
    loop {
        let page = w.audit(&path).await;
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 1);
        walked.extend(items.iter().map(|r| r["id"].as_str().expect("id").to_owned()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/reconciliations?limit=1&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(walked.len(), 4, "{walked:?}");
    assert_eq!(
        walked.into_iter().collect::<HashSet<_>>(),
        ids(&[&posted, &again, &other_day, &other_bank])
    );
    assert_eq!(
        invalid(w.get_as(Some(&w.auditor_key), "/v1/reconciliations?date=22-11-2026").await).await,
        ["date"]
    );
}

#[tokio::test]
async fn items_filter_by_outcome_and_page_through_every_item_once_in_order() {
    let (w, _, run) = mixed_run().await;
    let id = run["id"].as_str().expect("id");
    let all = w.items(&run).await;
    assert_eq!(all.len(), 11);

    let mut walked = Vec::new();
    let mut pages = 0;
    let mut path = format!("/v1/reconciliations/{id}/items?limit=2");
    loop {
        let page = w.audit(&path).await;
        pages += 1;
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 2, "{page}");
        walked.extend(items.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                assert!(!items.is_empty());
                path = format!("/v1/reconciliations/{id}/items?limit=2&cursor={cursor}");
            }
            None => break,
        }
        assert!(pages < 20, "the pages never end");
    }
    assert_eq!(walked, all, "every item once, in order");
    assert_eq!(pages, 6);

    let summary = summary_of(&run);
    for outcome in OUTCOMES {
        let page = w.audit(&format!("/v1/reconciliations/{id}/items?outcome={outcome}")).await;
        let items = page["items"].as_array().expect("items");
        assert!(items.iter().all(|i| i["outcome"] == outcome), "{page}");
        assert_eq!(items.len() as i64, summary[outcome].0, "{outcome}");
        let expected: Vec<&Value> = all.iter().filter(|i| i["outcome"] == outcome).collect();
        assert_eq!(items.iter().collect::<Vec<_>>(), expected);
    }
    // Filtered pages walk too.
    let first = w
        .audit(&format!("/v1/reconciliations/{id}/items?outcome=missing_in_gateway&limit=2"))
        .await;
    let cursor = first["next_cursor"].as_str().expect("a second page");
    let rest = w
        .audit(&format!(
            "/v1/reconciliations/{id}/items?outcome=missing_in_gateway&limit=2&cursor={cursor}"
        ))
        .await;
    assert_eq!(rest["items"].as_array().expect("items").len(), 1);
    assert_eq!(rest["items"][0]["line"], 7);
    assert_eq!(rest["next_cursor"], Value::Null);

    for (query, field) in [
        ("outcome=paid", "outcome"),
        ("outcome=MATCHED", "outcome"),
        ("outcome=", "outcome"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("cursor=%21", "cursor"),
    ] {
        let path = format!("/v1/reconciliations/{id}/items?{query}");
        assert_eq!(invalid(w.get_as(Some(&w.auditor_key), &path).await).await, [field], "{query}");
    }
}

#[tokio::test]
async fn an_unknown_run_is_reconciliation_not_found_everywhere() {
    let w = World::new().await;
    for tail in ["", "/items", "/items?outcome=matched", "/report.csv"] {
        let path = format!("/v1/reconciliations/rec_nosuchrun{tail}");
        let response = w.get_as(Some(&w.auditor_key), &path).await;
        assert_problem(response, 404, "reconciliation_not_found").await;
    }
}

#[tokio::test]
async fn the_csv_report_has_one_rfc_4180_record_per_item_with_nulls_empty() {
    let (w, _, run) = mixed_run().await;
    let id = run["id"].as_str().expect("id");
    let items = w.items(&run).await;

    let response =
        w.get_as(Some(&w.auditor_key), &format!("/v1/reconciliations/{id}/report.csv")).await;
    assert_eq!(response.status(), 200);
    let content_type = content_type(&response);
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    let bytes = response.bytes().await.expect("the report");
    assert!(!bytes.starts_with(b"\xEF\xBB\xBF"), "no BOM");
    let text = String::from_utf8(bytes.to_vec()).expect("UTF-8");
    let first_line = text.split('\n').next().expect("a header");
    assert_eq!(first_line.trim_end_matches('\r'), REPORT_HEADER);
    // A detail with a comma and quotes, and a bank_txn_id with both, are quoted.
    assert!(text.contains("such as \"\"150000\"\")\""), "{text}");
    assert!(text.contains("\"FT,\"\"X\"\"\""), "{text}");

    let records = parse_csv(&text);
    assert_eq!(records[0], REPORT_HEADER.split(',').collect::<Vec<_>>());
    assert_eq!(records.len(), items.len() + 1, "{text}");
    let field = |value: &Value| -> String {
        match value {
            Value::Null => String::new(),
            Value::String(s) => csv_cell(s),
            Value::Number(n) => n.to_string(),
            other => panic!("an unexpected item value {other}"),
        }
    };
    for (record, item) in records[1..].iter().zip(&items) {
        let expected: Vec<String> = ITEM_FIELDS.iter().map(|f| field(&item[*f])).collect();
        assert_eq!(record, &expected);
    }
    let invalid_amount = &records[9];
    assert_eq!(invalid_amount[0], "invalid_line");
    assert_eq!(invalid_amount[1], "11");
    assert!(
        invalid_amount[6].contains(',') && invalid_amount[6].contains('"'),
        "{invalid_amount:?}"
    );
    let missing = &records[11];
    assert_eq!(missing[0], "missing_in_bank");
    assert_eq!(missing[1], "", "a null line is an empty field");
    assert_eq!(missing[4], "", "a null statement_amount is an empty field");

    // A run without items is the header alone.
    let empty = w.run("2026-11-20", statement(&[])).await;
    let text = w.report_csv(&empty).await;
    assert_eq!(parse_csv(&text), [REPORT_HEADER.split(',').collect::<Vec<_>>()]);
}
