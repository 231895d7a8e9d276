//! Group commit: callbacks decided together in one transaction answer exactly as they would
//! alone, whatever their neighbours do.
//!
//! The apps here run one callback lane that gathers for 1.5 s, and the test sends its
//! callbacks 60 ms apart: they meet in one batch in the order sent, which each test confirms
//! through the batch-size metric.

use super::*;

/// How long the test apps' lane gathers a batch, and the gap between the callbacks sent.
const GATHER_MS: u64 = 1_500;
const GAP_MS: u64 = 60;

async fn one_lane_world() -> World {
    World::with(Config { callback_lanes: 1, callback_gather_ms: GATHER_MS, ..test_config() }).await
}

/// `(count, sum)` of the batch-size histogram: batches committed and the callbacks in them.
async fn batches(app: &TestApp) -> (u64, f64) {
    app.histogram("paygate_callback_batch_size").await
}

/// Sends each body, signed by the world's bank, `GAP_MS` after the one before, and returns
/// each answer's status and JSON body in the order sent; asserts that they were all decided in
/// one batch.
async fn in_one_batch(w: &World, bodies: &[Value]) -> Vec<(u16, Value)> {
    let (batches_before, callbacks_before) = batches(&w.app).await;
    let mut tasks = Vec::new();
    for body in bodies {
        let bytes = serde_json::to_vec(body).unwrap();
        let signature = w.bank.signature(now_s(), &bytes);
        let request = w.app.raw_request("/v1/banks/VCB/callbacks", &[header(&signature)], bytes);
        tasks.push(tokio::spawn(async move {
            let response = request.send().await.expect("POST callback");
            let status = response.status().as_u16();
            let text = response.text().await.expect("an answer");
            (status, serde_json::from_str::<Value>(&text).expect("JSON"))
        }));
        tokio::time::sleep(Duration::from_millis(GAP_MS)).await;
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("the request task"));
    }
    let (batches_after, callbacks_after) = batches(&w.app).await;
    assert_eq!(
        (batches_after - batches_before, callbacks_after - callbacks_before),
        (1, bodies.len() as f64),
        "the callbacks were not decided in one batch: {answers:?}"
    );
    answers
}

fn result(answer: &(u16, Value)) -> (u16, &str) {
    let label = answer.1["result"].as_str().or(answer.1["code"].as_str()).unwrap_or("?");
    (answer.0, label)
}

#[tokio::test]
async fn a_redelivery_inside_one_batch_answers_duplicate_and_posts_once() {
    let w = one_lane_world().await;
    let id = w.order("H12-GC-REDELIVER").await;
    let body = succeeded("FT-GC-1", &id, &paid_a_minute_ago());

    let answers = in_one_batch(&w, &[body.clone(), body]).await;

    assert_eq!(
        answers.iter().map(result).collect::<Vec<_>>(),
        [(200, "accepted"), (200, "duplicate")]
    );
    assert_eq!(answers[1].1["payment_status"], "paid");
    w.app.assert_count("SELECT count(*) FROM bank_callbacks", 1).await;
    w.app.assert_count("SELECT count(*) FROM ledger_transactions", 1).await;
    assert_eq!(count_events(&w.app, &id, "payment.paid").await, 1);
    assert_verified(&w.verify().await, 1, AMOUNT);
}

#[tokio::test]
async fn two_payments_of_one_order_inside_one_batch_pay_it_once_and_send_the_second_to_suspense() {
    let w = one_lane_world().await;
    let id = w.order("H12-GC-TWICE").await;
    let paid_at = paid_a_minute_ago();

    let answers = in_one_batch(
        &w,
        &[succeeded("FT-GC-A", &id, &paid_at), succeeded("FT-GC-B", &id, &paid_at)],
    )
    .await;

    assert_eq!(
        answers.iter().map(result).collect::<Vec<_>>(),
        [(200, "accepted"), (200, "exception")]
    );
    assert_eq!(answers[1].1["exception"], "double_payment");
    assert_eq!(w.payment(&id).await["bank_txn_id"], "FT-GC-A");
    let balances = w.balances().await;
    assert_eq!(balances["bank:VCB"], "300000");
    assert_eq!(balances["suspense:VCB"], "-150000");
    assert_eq!(balances[&agency_account("fee")], "-150000");
    w.app
        .assert_count("SELECT count(*) FROM callback_exceptions WHERE reason = 'double_payment'", 1)
        .await;
    w.app.assert_count("SELECT count(*) FROM cases", 1).await;
    assert_eq!(count_events(&w.app, &id, "payment.paid").await, 1);
    assert_verified(&w.verify().await, 2, "300000");
}

#[tokio::test]
async fn a_bank_txn_id_reused_for_another_order_inside_one_batch_is_a_conflict() {
    let w = one_lane_world().await;
    let [first, second] = w.orders(["H12-GC-REUSE-1", "H12-GC-REUSE-2"]).await;
    let paid_at = paid_a_minute_ago();

    let answers = in_one_batch(
        &w,
        &[succeeded("FT-GC-SAME", &first, &paid_at), succeeded("FT-GC-SAME", &second, &paid_at)],
    )
    .await;

    assert_eq!(
        answers.iter().map(result).collect::<Vec<_>>(),
        [(200, "accepted"), (409, "bank_txn_conflict")]
    );
    assert_eq!(w.app.stored_status(&first).await, "paid");
    assert_eq!(w.app.stored_status(&second).await, "pending");
    w.app.assert_count("SELECT count(*) FROM bank_callbacks", 1).await;
    assert_verified(&w.verify().await, 1, AMOUNT);
}

#[tokio::test]
async fn refused_and_failed_callbacks_inside_one_batch_get_their_own_answers_and_the_rest_commits()
{
    let w = one_lane_world().await;
    let [mismatched, failing, too_early, paying] =
        w.orders(["H12-GC-MISMATCH", "H12-GC-FAILED", "H12-GC-EARLY", "H12-GC-PAID"]).await;
    let paid_at = paid_a_minute_ago();
    let bodies = [
        succeeded("FT-GC-UNKNOWN", "pay_does_not_exist", &paid_at),
        changed(
            &succeeded("FT-GC-MISMATCH", &mismatched, &paid_at),
            "amount",
            Some(json!("150001")),
        ),
        failed("FT-GC-FAILED", &failing),
        succeeded("FT-GC-EARLY", &too_early, &rfc3339(now_s() - 3_600)),
        succeeded("FT-GC-PAID", &paying, &paid_at),
    ];

    let answers = in_one_batch(&w, &bodies).await;

    assert_eq!(
        answers.iter().map(result).collect::<Vec<_>>(),
        [
            (404, "payment_not_found"),
            (422, "amount_mismatch"),
            (200, "accepted"),
            (422, "validation_failed"),
            (200, "accepted"),
        ]
    );
    assert_eq!(invalid_fields(&answers[3].1), ["paid_at"]);
    assert_eq!(answers[2].1["payment_status"], "pending");
    assert_eq!(answers[4].1["payment_status"], "paid");
    // The unknown order and the wrong amount are kept for investigation, each with its case;
    // the failed callback is recorded and moves nothing; the early one reserves nothing.
    let kept: Vec<String> = w
        .app
        .rows("SELECT bank_txn_id FROM callback_exceptions ORDER BY bank_txn_id", &[])
        .await
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(kept, ["FT-GC-MISMATCH", "FT-GC-UNKNOWN"]);
    w.app.assert_count("SELECT count(*) FROM cases", 2).await;
    let recorded: Vec<String> = w
        .app
        .rows("SELECT bank_txn_id || ':' || outcome FROM bank_callbacks ORDER BY 1", &[])
        .await
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(recorded, ["FT-GC-FAILED:failed", "FT-GC-PAID:paid"]);
    for (id, status) in [
        (&mismatched, "pending"),
        (&failing, "pending"),
        (&too_early, "pending"),
        (&paying, "paid"),
    ] {
        assert_eq!(w.app.stored_status(id).await, status, "{id}");
    }
    assert_verified(&w.verify().await, 1, AMOUNT);
}

#[tokio::test]
async fn an_expired_order_paid_in_time_reclaims_its_reference_inside_a_batch_beside_others() {
    let w = one_lane_world().await;
    let [expired, pending] = w.orders(["H12-GC-EXPIRED", "H12-GC-PENDING"]).await;
    w.backdate(&expired).await;

    let answers = in_one_batch(
        &w,
        &[
            succeeded("FT-GC-LATE", &expired, PAID_IN_TIME),
            succeeded("FT-GC-NOW", &pending, &paid_a_minute_ago()),
        ],
    )
    .await;

    assert_eq!(
        answers.iter().map(result).collect::<Vec<_>>(),
        [(200, "accepted"), (200, "accepted")]
    );
    assert_eq!(w.app.stored_status(&expired).await, "paid");
    assert_eq!(w.app.stored_status(&pending).await, "paid");
    assert_verified(&w.verify().await, 2, "300000");
}

/// Makes inserting the callback `bank_txn_id` fail with `sqlstate`: on every attempt when
/// `times` is `None`, else on the first `times` attempts; `deferred` fails at commit instead.
async fn poison(
    app: &TestApp,
    bank_txn_id: &str,
    sqlstate: &str,
    times: Option<i64>,
    deferred: bool,
) {
    let limit = times.map_or("NULL".to_owned(), |n| n.to_string());
    let (timing, trigger) = if deferred {
        ("CONSTRAINT TRIGGER", "AFTER INSERT ON bank_callbacks DEFERRABLE INITIALLY DEFERRED")
    } else {
        ("TRIGGER", "BEFORE INSERT ON bank_callbacks")
    };
    // The function runs as its owner (the test's owner role), which owns the sequence; a
    // sequence's value survives the rollback of what failed, so it counts attempts.
    let sql = format!(
        "CREATE SEQUENCE poison_attempts;
         CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
         BEGIN
             IF NEW.bank_txn_id = '{bank_txn_id}' THEN
                 IF {limit}::bigint IS NULL THEN
                     RAISE EXCEPTION 'poisoned callback' USING ERRCODE = '{sqlstate}';
                 END IF;
                 IF nextval('poison_attempts') <= {limit}::bigint THEN
                     RAISE EXCEPTION 'poisoned callback' USING ERRCODE = '{sqlstate}';
                 END IF;
             END IF;
             RETURN NEW;
         END $$;
         CREATE {timing} poison {trigger} FOR EACH ROW EXECUTE FUNCTION poison();"
    );
    app.db.get().await.unwrap().batch_execute(&sql).await.expect("the poison trigger");
}

#[tokio::test]
async fn a_callback_whose_statement_fails_is_rolled_back_alone_and_its_neighbours_commit() {
    let w = one_lane_world().await;
    let [a, b, c] = w.orders(["H12-GC-P1", "H12-GC-P2", "H12-GC-P3"]).await;
    // A fault a retry would not cure: an error raised by the database for one callback.
    poison(&w.app, "FT-GC-P2", "P0001", None, false).await;
    let paid_at = paid_a_minute_ago();

    let answers = in_one_batch(
        &w,
        &[
            succeeded("FT-GC-P1", &a, &paid_at),
            succeeded("FT-GC-P2", &b, &paid_at),
            succeeded("FT-GC-P3", &c, &paid_at),
        ],
    )
    .await;

    assert_eq!(
        answers.iter().map(|(status, _)| *status).collect::<Vec<_>>(),
        [200, 500, 200],
        "{answers:?}"
    );
    assert_eq!(answers[0].1["result"], "accepted");
    assert_eq!(answers[2].1["result"], "accepted");
    for (id, status) in [(&a, "paid"), (&b, "pending"), (&c, "paid")] {
        assert_eq!(w.app.stored_status(id).await, status, "{id}");
    }
    w.app
        .assert_count("SELECT count(*) FROM bank_callbacks WHERE bank_txn_id = 'FT-GC-P2'", 0)
        .await;
    let posted: i64 = w
        .app
        .row("SELECT count(*) FROM ledger_transactions WHERE payment_id = $1", &[&b])
        .await
        .get(0);
    assert_eq!(posted, 0);
    assert_eq!(count_events(&w.app, &b, "payment.paid").await, 0);
    assert_verified(&w.verify().await, 2, "300000");
}

#[tokio::test]
async fn a_callback_that_loses_a_deadlock_inside_a_batch_is_decided_again_alone_and_accepted() {
    let w = one_lane_world().await;
    let [a, b, c] = w.orders(["H12-GC-D1", "H12-GC-D2", "H12-GC-D3"]).await;
    poison(&w.app, "FT-GC-D2", "40P01", Some(1), false).await;
    let paid_at = paid_a_minute_ago();

    let answers = in_one_batch(
        &w,
        &[
            succeeded("FT-GC-D1", &a, &paid_at),
            succeeded("FT-GC-D2", &b, &paid_at),
            succeeded("FT-GC-D3", &c, &paid_at),
        ],
    )
    .await;

    assert_eq!(answers.iter().map(result).collect::<Vec<_>>(), [(200, "accepted"); 3]);
    for id in [&a, &b, &c] {
        assert_eq!(w.app.stored_status(id).await, "paid", "{id}");
        assert_eq!(count_events(&w.app, id, "payment.paid").await, 1);
    }
    // The first attempt failed inside the batch, the second (alone) succeeded.
    w.app.assert_count("SELECT last_value FROM poison_attempts", 2).await;
    assert_verified(&w.verify().await, 3, "450000");
}

#[tokio::test]
async fn a_batch_whose_commit_fails_is_decided_again_callback_by_callback_each_exactly_once() {
    let w = one_lane_world().await;
    let [a, b, c] = w.orders(["H12-GC-C1", "H12-GC-C2", "H12-GC-C3"]).await;
    // The batch's commit fails (a serialization failure, checked at commit); nothing of the
    // batch is kept, so each callback is decided again alone.
    poison(&w.app, "FT-GC-C2", "40001", Some(1), true).await;
    let paid_at = paid_a_minute_ago();
    let body_a = succeeded("FT-GC-C1", &a, &paid_at);

    let answers = in_one_batch(
        &w,
        &[body_a.clone(), succeeded("FT-GC-C2", &b, &paid_at), succeeded("FT-GC-C3", &c, &paid_at)],
    )
    .await;

    assert_eq!(answers.iter().map(result).collect::<Vec<_>>(), [(200, "accepted"); 3]);
    for id in [&a, &b, &c] {
        assert_eq!(w.app.stored_status(id).await, "paid", "{id}");
        assert_eq!(count_events(&w.app, id, "payment.paid").await, 1);
    }
    w.app.assert_count("SELECT count(*) FROM bank_callbacks", 3).await;
    assert_verified(&w.verify().await, 3, "450000");
    assert_eq!(w.deliver_ok(&body_a).await["result"], "duplicate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_concurrent_callbacks_are_decided_in_batches_of_at_most_thirty_two() {
    let w = one_lane_world().await;
    let paid_at = paid_a_minute_ago();
    let mut bodies = Vec::new();
    for n in 0..40 {
        let id = w.order(&format!("H12-GC-MANY-{n}")).await;
        bodies.push(succeeded(&format!("FT-GC-MANY-{n}"), &id, &paid_at));
    }
    let before = batches(&w.app).await;

    let tasks: Vec<_> = bodies
        .iter()
        .map(|body| {
            let bytes = serde_json::to_vec(body).unwrap();
            let signature = w.bank.signature(now_s(), &bytes);
            let request =
                w.app.raw_request("/v1/banks/VCB/callbacks", &[header(&signature)], bytes);
            tokio::spawn(
                async move { request.send().await.expect("POST callback").status().as_u16() },
            )
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }

    let after = batches(&w.app).await;
    assert_eq!(after.1 - before.1, 40.0);
    assert!(after.0 - before.0 >= 2, "40 callbacks need two batches at least");
    let metrics = w.app.metrics().await;
    assert!(
        metrics.contains(&format!("paygate_callback_batch_size_bucket{{le=\"32.0\"}} {}", after.0)),
        "a batch held more than 32 callbacks:\n{metrics}"
    );
    w.app.assert_count("SELECT count(*) FROM payments WHERE status = 'paid'", 40).await;
    assert_verified(&w.verify().await, 40, "6000000");
}

/// The rows a paid order leaves: its callback, its stored order, its ledger entries and its
/// `payment.paid` event (without the order's creation and expiry times, which differ from app
/// to app).
async fn rows_of_payment(app: &TestApp, id: &str) -> Vec<String> {
    let rows = app
        .rows(
            "SELECT concat_ws(' | ', c.bank_code, c.amount, c.currency, c.status, c.paid_at,
                        c.outcome, c.exception, c.source, p.status, p.paid_at, p.bank_code,
                        p.bank_txn_id, p.closed_at IS NOT NULL, t.kind,
                        (SELECT string_agg(e.account || ' ' || e.debit || ' ' || e.credit, ', '
                                           ORDER BY e.id)
                         FROM ledger_entries e WHERE e.transaction_id = t.id),
                        (SELECT (v.payment::jsonb - 'created_at' - 'expires_at')::text FROM events v
                         WHERE v.payment_id = p.id AND v.type = 'payment.paid'))
             FROM payments p JOIN bank_callbacks c ON c.payment_id = p.id
             JOIN ledger_transactions t ON t.callback_id = c.id
             WHERE p.id = $1",
            &[&id],
        )
        .await;
    rows.iter().map(|row| row.get(0)).collect()
}

#[tokio::test]
async fn first_payments_decided_together_write_exactly_what_each_writes_alone() {
    let paid_at = paid_a_minute_ago();
    let alone = World::new().await;
    let together = one_lane_world().await;
    let mut ids = Vec::new();
    for w in [&alone, &together] {
        let [a, b, c] = w.orders(["H12-GC-SAME-1", "H12-GC-SAME-2", "H12-GC-SAME-3"]).await;
        // An open inquiry about an order resolves itself when the order is paid.
        let inquiry = json!({"payment_id": b, "message": "Người nộp báo đã chuyển khoản."});
        let opened =
            w.app.post_with(&w.agency_key, "/v1/cases").json(&inquiry).send().await.unwrap();
        assert_eq!(opened.status(), 201);
        ids.push([a, b, c]);
    }
    let bodies = |ids: &[String; 3]| -> Vec<Value> {
        ids.iter()
            .enumerate()
            .map(|(n, id)| succeeded(&format!("FT-GC-SAME-{n}"), id, &paid_at))
            .collect()
    };

    for body in bodies(&ids[0]) {
        assert_eq!(alone.deliver_ok(&body).await["result"], "accepted");
    }
    let answers = in_one_batch(&together, &bodies(&ids[1])).await;

    assert_eq!(answers.iter().map(result).collect::<Vec<_>>(), [(200, "accepted"); 3]);
    for (one, other) in ids[0].iter().zip(&ids[1]) {
        let expected: Vec<String> = rows_of_payment(&alone.app, one)
            .await
            .iter()
            .map(|row| row.replace(one.as_str(), "<id>"))
            .collect();
        let actual: Vec<String> = rows_of_payment(&together.app, other)
            .await
            .iter()
            .map(|row| row.replace(other.as_str(), "<id>"))
            .collect();
        assert_eq!(actual.len(), 1, "{actual:?}");
        assert_eq!(actual, expected);
    }
    for w in [&alone, &together] {
        w.app.assert_count("SELECT count(*) FROM cases WHERE kind = 'inquiry' AND status = 'resolved' AND resolution = 'paid'", 1).await;
        assert_verified(&w.verify().await, 3, "450000");
    }
}

#[tokio::test]
async fn first_payments_paid_together_mark_the_banks_checklist_in_their_transaction() {
    let w = one_lane_world().await;
    let checklist = || async {
        w.app.admin(reqwest::Method::GET, "/v1/banks/VCB/checklist").json_with(200).await
    };
    let accepted = |list: &Value| list["steps"][1].clone();
    assert_eq!(accepted(&checklist().await)["step"], "callback_accepted");
    assert_eq!(accepted(&checklist().await)["done"], false);
    let [first, second] = w.orders(["H12-GC-CL-1", "H12-GC-CL-2"]).await;
    let answers = in_one_batch(
        &w,
        &[
            succeeded("FT-GC-CL-1", &first, &paid_a_minute_ago()),
            succeeded("FT-GC-CL-2", &second, &paid_a_minute_ago()),
        ],
    )
    .await;
    assert_eq!(answers.iter().map(result).collect::<Vec<_>>(), [(200, "accepted"); 2]);
    let step = accepted(&checklist().await);
    assert_eq!(step["done"], true, "{step}");
    // Recorded by the batch's own transaction: at its start, before the answers came.
    let committed: String = w
        .app
        .row(
            "SELECT to_char(first_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')
             FROM bank_checklist WHERE bank_code = 'VCB' AND step = 'callback_accepted'",
            &[],
        )
        .await
        .get(0);
    let paid_rows: String = w
        .app
        .row(
            "SELECT to_char(min(received_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')
             FROM bank_callbacks WHERE bank_code = 'VCB'",
            &[],
        )
        .await
        .get(0);
    assert_eq!(committed, paid_rows, "the mark and the callbacks share one transaction");
}
