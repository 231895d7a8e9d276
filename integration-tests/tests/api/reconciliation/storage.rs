//! How a run stores its items: their ids are the statement's line numbers (then paygate's
//! records no statement carried), every item names a recorded run, and a run that fails leaves
//! nothing behind, not even its temporary tables.

use super::*;

/// The start of a subquery for a run's number by its id (items are keyed by the number).
const SEQ_OF: &str = "SELECT seq FROM reconciliation_runs WHERE id =";

#[tokio::test]
async fn item_ids_are_the_line_numbers_then_follow_the_last_line_for_records_no_statement_carried()
{
    let w = World::new().await;
    let [paid, unpaid, lost] = w.orders(["IDS-1", "IDS-2", "IDS-3"]).await;
    w.pay("FT-IDS-1", &paid, ON_DAY).await;
    w.pay("FT-IDS-2", &unpaid, ON_DAY).await;
    // Line 2 matches, line 3 is blank, line 4 cannot be read, line 5 is recovered; FT-IDS-2 is
    // in no statement.
    let body = format!(
        "{HEADER}\n{}\n\n{}\n{}\n",
        line("FT-IDS-1", &paid, AMOUNT, ON_DAY),
        line("FT-IDS-X", &paid, "12O000", ON_DAY),
        line("FT-IDS-3", &lost, AMOUNT, ON_DAY),
    );
    let run = w.run(DAY, body).await;
    assert_summary(
        &run,
        &[
            ("matched", 1, AMOUNT),
            ("recovered", 1, AMOUNT),
            ("missing_in_bank", 1, AMOUNT),
            ("invalid_line", 1, "0"),
        ],
    );
    let run_id = run["id"].as_str().expect("id");
    let rows = w
        .app
        .rows(
            "SELECT id, line, outcome FROM reconciliation_items
             WHERE run_seq = (SELECT seq FROM reconciliation_runs WHERE id = $1) ORDER BY id",
            &[&run_id],
        )
        .await;
    let ids: Vec<(i64, Option<i32>, String)> =
        rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    assert_eq!(
        ids,
        [
            (2, Some(2), "matched".to_owned()),
            (4, Some(4), "invalid_line".to_owned()),
            (5, Some(5), "recovered".to_owned()),
            (6, None, "missing_in_bank".to_owned()),
        ]
    );
    // The API pages through them in that order.
    let outcomes: Vec<Value> = w.items(&run).await.iter().map(|i| i["outcome"].clone()).collect();
    assert_eq!(
        outcomes,
        [json!("matched"), json!("invalid_line"), json!("recovered"), json!("missing_in_bank")]
    );
}

#[tokio::test]
async fn a_refused_statement_leaves_no_run_no_item_no_case_and_no_temporary_table() {
    let (w, lost) = World::with_order("LEFT-1").await;
    let paid = w.order("LEFT-2").await;
    w.pay("FT-LEFT-2", &paid, "2026-11-21T03:00:00Z").await;
    // A match of another day's record and a recoverable line, then a line that is not UTF-8.
    let mut body = statement(&[
        &line("FT-LEFT-2", &paid, AMOUNT, ON_DAY),
        &line("FT-LEFT-1", &lost, AMOUNT, ON_DAY),
        &line("FT-LEFT-3", "pay_unknown", AMOUNT, ON_DAY),
    ])
    .into_bytes();
    body.extend_from_slice(b"FT-LEFT-4,pay_x,1000,2026-11-22T03:00:00Z,VND,H\xe0 N\xf4i\n");
    w.refused(&format!("bank={BANK}&date={DAY}"), body).await;

    assert_eq!(w.runs().await, 0);
    for table in ["reconciliation_items", "reconciled_transactions", "cases"] {
        w.app.assert_count(&format!("SELECT count(*) FROM {table}"), 0).await;
    }
    assert_eq!(w.payment(&lost).await["status"], "pending");
    w.app
        .assert_count(
            "SELECT count(*) FROM pg_class
             WHERE relpersistence = 't' AND relname IN ('statement_lines', 'recoverable_lines')",
            0,
        )
        .await;
}

/// The SQLSTATE of `sql` run as the owner, or None when it succeeded.
async fn sqlstate_of(w: &World, sql: &str) -> Option<String> {
    let client = w.app.db.get().await.expect("a test database connection");
    match client.batch_execute(sql).await {
        Ok(()) => None,
        Err(err) => Some(err.code().expect("a database error").code().to_owned()),
    }
}

#[tokio::test]
async fn every_item_names_a_recorded_run_and_a_run_with_items_stays() {
    let (w, id) = World::with_order("KEEP-1").await;
    let run = w.run_day(&[&line("FT-KEEP-1", &id, AMOUNT, ON_DAY)]).await;
    let run_id = run["id"].as_str().expect("id");
    let empty = w.run("2026-11-23", statement(&[])).await;
    let empty_id = empty["id"].as_str().expect("id");

    // An item of no run is refused as a foreign key would refuse it, and so is moving one.
    let orphan =
        "INSERT INTO reconciliation_items (run_seq, outcome, line) VALUES (-1, 'invalid_line', 2)";
    assert_eq!(sqlstate_of(&w, orphan).await.as_deref(), Some("23503"));
    let moved = format!(
        "UPDATE reconciliation_items SET run_seq = -1 WHERE run_seq = ({SEQ_OF} '{run_id}')"
    );
    assert_eq!(sqlstate_of(&w, &moved).await.as_deref(), Some("23503"));
    // A run with items can be neither removed nor renamed.
    for sql in [
        format!("DELETE FROM reconciliation_runs WHERE id = '{run_id}'"),
        format!("UPDATE reconciliation_runs SET id = 'rec_renamed' WHERE id = '{run_id}'"),
    ] {
        assert_eq!(sqlstate_of(&w, &sql).await.as_deref(), Some("23503"), "{sql}");
    }
    w.app
        .assert_count(
            &format!(
                "SELECT count(*) FROM reconciliation_items WHERE run_seq = ({SEQ_OF} '{run_id}')"
            ),
            1,
        )
        .await;
    // A run without items (an empty statement of a day without records) has nothing to keep.
    let removed = format!("DELETE FROM reconciliation_runs WHERE id = '{empty_id}'");
    assert_eq!(sqlstate_of(&w, &removed).await, None);
}

#[tokio::test]
async fn a_record_an_earlier_run_of_the_day_matched_is_not_missing_from_a_later_shorter_statement()
{
    let w = World::new().await;
    let [first, second, never] = w.orders(["EARLY-1", "EARLY-2", "EARLY-3"]).await;
    w.pay("FT-EARLY-1", &first, ON_DAY).await;
    w.pay("FT-EARLY-2", &second, ON_DAY).await;
    w.pay("FT-EARLY-3", &never, ON_DAY).await;
    let both = w
        .run_day(&[
            &line("FT-EARLY-1", &first, AMOUNT, ON_DAY),
            &line("FT-EARLY-2", &second, AMOUNT, ON_DAY),
        ])
        .await;
    assert_summary(&both, &[("matched", 2, "300000"), ("missing_in_bank", 1, AMOUNT)]);

    // The bank's corrected statement of the same day carries only the first transaction: the
    // second was matched by the earlier run, so it is no gap; the third never was.
    let shorter = w.run_day(&[&line("FT-EARLY-1", &first, AMOUNT, ON_DAY)]).await;
    assert_summary(&shorter, &[("matched", 1, AMOUNT), ("missing_in_bank", 1, AMOUNT)]);
    let missing: Vec<Value> = w
        .items(&shorter)
        .await
        .iter()
        .filter(|i| i["outcome"] == "missing_in_bank")
        .map(|i| i["bank_txn_id"].clone())
        .collect();
    assert_eq!(missing, [json!("FT-EARLY-3")]);
}

#[tokio::test]
async fn items_stored_under_their_runs_text_id_read_the_same_after_the_run_number_migration() {
    let settings = integration_tests::empty_database().await;
    let mut client = crate::obligation_data::connect(&settings).await;
    crate::obligation_data::migrate_up_to(&client, "0013_reconciliation_speed.sql").await;
    client
        .batch_execute(
            "INSERT INTO banks (code, name) VALUES ('VCB', 'Vietcombank');
             INSERT INTO reconciliation_runs (id, bank_code, date, statement_lines, summary,
                 by_obligation)
             VALUES ('rec_before_a', 'VCB', '2026-11-22', 2, '{}', '{}'),
                    ('rec_before_b', 'VCB', '2026-11-23', 1, '{}', '{}');
             INSERT INTO reconciliation_items (id, run_id, outcome, line, bank_txn_id,
                 statement_amount, detail) OVERRIDING SYSTEM VALUE
             VALUES (2, 'rec_before_a', 'missing_in_gateway', 2, 'FT-A2', 150000, 'no such payment'),
                    (3, 'rec_before_a', 'invalid_line', 3, NULL, NULL, 'amount: not a number'),
                    (2, 'rec_before_b', 'missing_in_gateway', 2, 'FT-B2', 99000, 'no such payment');",
        )
        .await
        .unwrap();
    let applied = paygate::db::migrate::run(&mut client).await.unwrap();
    assert!(applied.iter().any(|name| name.starts_with("0014_")), "{applied:?}");
    let app =
        integration_tests::TestApp::spawn_on(integration_tests::test_config(), settings).await;

    let items = |run: &'static str| {
        let request = app.admin(reqwest::Method::GET, &format!("/v1/reconciliations/{run}/items"));
        async move {
            let page = request.json_with(200).await;
            page["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|i| {
                    (
                        i["line"].as_i64(),
                        i["outcome"].as_str().unwrap().to_owned(),
                        i["bank_txn_id"].as_str().map(str::to_owned),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        items("rec_before_a").await,
        [
            (Some(2), "missing_in_gateway".to_owned(), Some("FT-A2".to_owned())),
            (Some(3), "invalid_line".to_owned(), None),
        ]
    );
    assert_eq!(
        items("rec_before_b").await,
        [(Some(2), "missing_in_gateway".to_owned(), Some("FT-B2".to_owned()))]
    );
    // The rules still hold for the migrated runs: a run with items stays.
    let removed = app
        .db
        .get()
        .await
        .unwrap()
        .execute("DELETE FROM reconciliation_runs WHERE id = 'rec_before_a'", &[])
        .await
        .unwrap_err();
    assert_eq!(removed.code().map(|c| c.code()), Some("23503"));
}
