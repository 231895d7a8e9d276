//! Bad input and limits.

use super::*;

#[tokio::test]
async fn an_auditors_run_applies_nothing_and_reports_recoverable_lines_that_an_admins_run_recovers()
{
    let (w, lost) = World::with_order("AUD-1").await;
    let cancelled = w.order("AUD-2").await;
    w.cancel(&cancelled).await;
    let body = statement(&[
        &line("FT-AUD-1", &lost, AMOUNT, ON_DAY),
        &line("FT-AUD-2", &cancelled, AMOUNT, ON_DAY),
        &line("FT-AUD-3", "pay_nonexistent", AMOUNT, ON_DAY),
    ]);
    let before = w.money_state().await;

    let audited = w.run_as(&w.auditor_key, DAY, body.clone()).await;

    assert_summary(&audited, &[("missing_in_gateway", 3, "450000")]);
    assert_by_obligation(&audited, &[]);
    let items = w.items(&audited).await;
    assert_eq!(
        briefs(&items),
        [
            expect(
                "missing_in_gateway",
                Some(2),
                Some("FT-AUD-1"),
                Some(lost.as_str()),
                Some(AMOUNT),
                None
            ),
            expect(
                "missing_in_gateway",
                Some(3),
                Some("FT-AUD-2"),
                Some(cancelled.as_str()),
                Some(AMOUNT),
                None
            ),
            expect(
                "missing_in_gateway",
                Some(4),
                Some("FT-AUD-3"),
                Some("pay_nonexistent"),
                Some(AMOUNT),
                None
            ),
        ]
    );
    let details: Vec<&str> = items.iter().map(detail).collect();
    assert_eq!(details, ["recoverable", "recoverable", "no such payment"]);
    assert_eq!(
        w.money_state().await,
        before,
        "an auditor's run changes no order, ledger, event or exception"
    );
    assert_eq!(w.payment(&lost).await["status"], "pending");
    assert_eq!(w.payment(&cancelled).await["status"], "cancelled");

    // The admin's run of the same statement recovers both lines.
    let applied = w.run(DAY, body.clone()).await;
    assert_summary(&applied, &[("recovered", 2, "300000"), ("missing_in_gateway", 1, AMOUNT)]);
    assert_by_obligation(&applied, &[("fee", 1, AMOUNT)]);
    assert_eq!(w.payment(&lost).await["status"], "paid");
    w.app.assert_count("SELECT count(*) FROM ledger_transactions", 2).await;
    w.assert_ledger_ok().await;

    // An auditor's later run finds them matched: nothing is left to apply.
    let again = w.run_as(&w.auditor_key, DAY, body).await;
    assert_summary(&again, &[("matched", 2, "300000"), ("missing_in_gateway", 1, AMOUNT)]);
    w.app.assert_count("SELECT count(*) FROM ledger_transactions", 2).await;
}

#[tokio::test]
async fn formula_cells_get_a_leading_quote_in_report_csv_and_stay_as_received_in_json_items() {
    let w = World::new().await;
    let formula = "=HYPERLINK(\"http://evil.example/\",\"click\")";
    let body = format!(
        "{HEADER}\n\"{}\",-pay,150000,{ON_DAY},VND\n@SUM(1+1),+pay,70000,{ON_DAY},VND\n",
        formula.replace('"', "\"\"")
    );

    let run = w.run(DAY, body).await;

    assert_summary(&run, &[("missing_in_gateway", 2, "220000")]);
    let items = w.items(&run).await;
    assert_eq!(items[0]["bank_txn_id"], formula, "JSON keeps the value");
    assert_eq!(items[0]["payment_id"], "-pay");
    assert_eq!(items[1]["bank_txn_id"], "@SUM(1+1)");
    assert_eq!(items[1]["payment_id"], "+pay");

    let text = w.report_csv(&run).await;
    assert!(text.contains("\"'=HYPERLINK(\"\"http://evil.example/\"\",\"\"click\"\")\""), "{text}");
    let records = parse_csv(&text);
    assert_eq!(records.len(), 3, "{text}");
    assert_eq!(records[1][2], format!("'{formula}"));
    assert_eq!(records[1][3], "'-pay");
    assert_eq!(records[2][2], "'@SUM(1+1)");
    assert_eq!(records[2][3], "'+pay");
    for record in &records {
        for cell in record {
            assert!(!cell.starts_with(['=', '+', '-', '@', '\t', '\r']), "{cell:?} in {text}");
        }
    }
}

#[tokio::test]
async fn a_line_over_64_kib_with_a_nul_or_a_time_outside_2000_to_9998_is_an_invalid_line() {
    let (w, id) = World::with_order("LIMIT-1").await;
    let before = w.money_state().await;
    // 65537 bytes: one more than a line may have. An extra column carries the padding.
    let good = line("FT-LONG", &id, AMOUNT, ON_DAY);
    let long = format!("{good},{}", "y".repeat(64 * 1024 - good.len()));
    let body = statement(&[
        &long,
        &line("FT-NUL\0", &id, AMOUNT, ON_DAY),
        &line("FT-FAR", &id, AMOUNT, "9999-12-31T23:30:00-01:00"),
        &line("FT-OLD", &id, AMOUNT, "1999-12-31T23:59:59Z"),
        &line("FT-GOOD", &id, AMOUNT, ON_DAY),
    ]);

    let run = w.run(DAY, body).await;

    assert_eq!(run["statement_lines"], 5);
    assert_summary(&run, &[("invalid_line", 4, "0"), ("recovered", 1, AMOUNT)]);
    let items = w.items(&run).await;
    let lines: Vec<&Value> = items.iter().map(|i| &i["line"]).collect();
    assert_eq!(lines, [&json!(2), &json!(3), &json!(4), &json!(5), &json!(6)]);
    assert_eq!(detail(&items[0]), "the line is longer than 65536 bytes");
    assert_eq!(detail(&items[1]), "the line contains a NUL character (U+0000)");
    for item in &items[2..4] {
        assert_eq!(item["outcome"], "invalid_line");
        assert!(detail(item).starts_with("paid_at must fall in the years 2000 to 9998"), "{item}");
    }
    assert_eq!(items[4]["bank_txn_id"], "FT-GOOD");
    let after = w.money_state().await;
    assert_eq!(after[0], before[0] + 1, "one callback recorded: {after:?}");
    assert_eq!(w.payment(&id).await["bank_txn_id"], "FT-GOOD");
}

/// A pool like the app's whose connections allow each statement `statement_timeout_ms`.
fn strict_pool(
    settings: &tokio_postgres::Config,
    statement_timeout_ms: u64,
) -> deadpool_postgres::Pool {
    let mut settings = settings.clone();
    settings.options(format!(
        "-c statement_timeout={statement_timeout_ms} -c lock_timeout={statement_timeout_ms}"
    ));
    let manager = deadpool_postgres::Manager::from_config(
        settings,
        tokio_postgres::NoTls,
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    deadpool_postgres::Pool::builder(manager).max_size(4).build().expect("a pool")
}

#[tokio::test]
async fn a_run_sets_its_own_limits_so_the_pools_statement_timeout_cannot_cut_it_short() {
    let (w, lost) = World::with_order("TIMEOUT-1").await;
    // A second app on the same database, whose connections allow each statement 50 ms.
    let pool = strict_pool(&w.app.db_settings, 50);
    let slow = pool
        .get()
        .await
        .expect("a connection")
        .query("SELECT pg_sleep(0.2)", &[])
        .await
        .expect_err("the pool's statements are cut at 50 ms");
    assert_eq!(slow.as_db_error().map(|e| e.code().code()), Some("57014"), "{slow}");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let app = paygate::startup::Application::build(
        integration_tests::test_config(),
        pool,
        w.app.db_settings.clone().into(),
        listener,
    )
    .expect("build the app");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    // Enough lines that copying and classifying them each take far longer than 50 ms.
    let mut body = format!("{HEADER}\n{}\n", line("FT-T-LOST", &lost, AMOUNT, ON_DAY));
    let unknown: i64 = 50_000;
    for n in 0..unknown {
        body.push_str(&line(&format!("FT-T-{n}"), &format!("pay_none_{n}"), "1000", ON_DAY));
        body.push('\n');
    }

    let response = w
        .app
        .http
        .post(format!("{address}/v1/reconciliations?bank={BANK}&date={DAY}"))
        .bearer_auth(&w.admin_key)
        .header("Content-Type", "text/csv")
        .body(body)
        .send()
        .await
        .expect("POST a statement");

    let run = json_with(response, 201).await;
    assert_eq!(run["statement_lines"], unknown + 1);
    assert_summary(&run, &[("recovered", 1, AMOUNT), ("missing_in_gateway", unknown, "50000000")]);
    assert_eq!(w.payment(&lost).await["status"], "paid");
}

#[tokio::test]
async fn a_run_that_loses_a_deadlock_runs_again_and_recovers_each_line_once() {
    let (w, first) = World::with_order("DEADLOCK-1").await;
    let second = w.order("DEADLOCK-2").await;
    let body = statement(&[
        &line("FT-DL-1", &first, AMOUNT, ON_DAY),
        &line("FT-DL-2", &second, AMOUNT, ON_DAY),
    ]);
    // Another session holds the second order, so the run waits there holding the first.
    let (mut client, connection) =
        w.app.db_settings.connect(tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(connection);
    // The blocker checks for deadlocks late (where its role may set that), so that PostgreSQL
    // picks the run as the deadlock's victim.
    let _ = client.batch_execute("SET deadlock_timeout = '20s'").await;
    let blocker = client.transaction().await.expect("begin");
    let lock = "SELECT 1 FROM payments WHERE id = $1 FOR UPDATE";
    blocker.query(lock, &[&second]).await.expect("lock the second order");
    let request = w.reconcile_request(Some(&w.admin_key), &format!("bank={BANK}&date={DAY}"), body);
    let sent = tokio::spawn(async move { request.send().await.expect("POST a statement") });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let waiting = w
            .app
            .count(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .await;
        if waiting == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the run never waited");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // Taking the first order closes the cycle; PostgreSQL fails the run's transaction.
    blocker
        .query(lock, &[&first])
        .await
        .expect("the run, not the blocker, is the deadlock's victim");
    blocker.rollback().await.expect("rollback");

    let run = json_with(sent.await.expect("the request task"), 201).await;
    assert_summary(&run, &[("recovered", 2, "300000")]);
    assert_eq!(w.runs().await, 1, "the failed attempt recorded nothing");
    w.app.assert_count("SELECT count(*) FROM ledger_transactions", 2).await;
    for id in [&first, &second] {
        assert_eq!(w.payment(id).await["status"], "paid");
    }
    w.assert_ledger_ok().await;
}
