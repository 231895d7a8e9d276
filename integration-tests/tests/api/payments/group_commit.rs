//! Group commit: new orders created together in one transaction answer exactly as they would
//! alone, whatever their neighbours do.
//!
//! The apps here run one order lane that gathers for 1.5 s, and the test sends its orders 60 ms
//! apart: they meet in one batch in the order sent, which each test confirms through the
//! batch-size metric.

use super::*;

/// How long the test apps' lane gathers a batch, and the gap between the orders sent.
const GATHER_MS: u64 = 1_500;
const GAP_MS: u64 = 60;

/// An app with one gathering order lane, no expiry sweep after the first, and the agency's key.
async fn one_lane_app() -> (TestApp, String) {
    let app = TestApp::spawn_with(Config {
        order_lanes: 1,
        order_gather_ms: GATHER_MS,
        expiry_interval_ms: 3_600_000,
        ..test_config()
    })
    .await;
    let key = agency_key(&app, AGENCY).await;
    (app, key)
}

/// `(count, sum)` of the order batch-size histogram: batches and the orders in them.
async fn batches(app: &TestApp) -> (u64, f64) {
    app.histogram("paygate_order_batch_size").await
}

/// An answer: status, whether it was a replay, and the body's exact text.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    replayed: bool,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).expect("a JSON answer")
    }

    /// The status and the problem's code, or `created` for a 201.
    fn outcome(&self) -> (u16, String) {
        let code = match self.status {
            201 => "created".to_owned(),
            _ => self.json()["code"].as_str().unwrap_or("?").to_owned(),
        };
        (self.status, code)
    }
}

/// Posts each `(idempotency key, body)` `GAP_MS` after the one before and returns the answers
/// in the order sent; asserts that they were all decided in one batch.
async fn in_one_batch(app: &TestApp, api_key: &str, orders: &[(&str, Value)]) -> Vec<Answer> {
    let (batches_before, orders_before) = batches(app).await;
    let mut tasks = Vec::new();
    for (idempotency_key, body) in orders {
        let request = app
            .post_with(api_key, "/v1/payments")
            .header("Idempotency-Key", *idempotency_key)
            .json(body);
        tasks.push(tokio::spawn(async move {
            let response = request.send().await.expect("POST /v1/payments");
            let status = response.status().as_u16();
            let replayed = response.headers().get("Idempotent-Replayed").is_some();
            Answer { status, replayed, text: response.text().await.expect("an answer") }
        }));
        tokio::time::sleep(Duration::from_millis(GAP_MS)).await;
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("the request task"));
    }
    let (batches_after, orders_after) = batches(app).await;
    assert_eq!(
        (batches_after - batches_before, orders_after - orders_before),
        (1, orders.len() as f64),
        "the orders were not decided in one batch: {answers:?}"
    );
    answers
}

/// How many transactions wrote the orders with these references (their rows' `xmin`).
async fn transactions_of(app: &TestApp, references: &[&str]) -> i64 {
    let references: Vec<String> = references.iter().map(|r| (*r).to_owned()).collect();
    app.row(
        "SELECT count(DISTINCT xmin::text) FROM payments WHERE reference = ANY($1)",
        &[&references],
    )
    .await
    .get(0)
}

fn outcomes(answers: &[Answer]) -> Vec<(u16, String)> {
    answers.iter().map(Answer::outcome).collect()
}

fn outcome(status: u16, code: &str) -> (u16, String) {
    (status, code.to_owned())
}

#[tokio::test]
async fn orders_created_together_are_answered_stored_and_replayed_as_alone() {
    let (app, key) = one_lane_app().await;
    let orders: Vec<(String, Value)> = OBLIGATIONS
        .iter()
        .enumerate()
        .map(|(n, obligation)| (format!("gc-{n}"), order(obligation, &format!("GC-{n}"))))
        .collect();
    let sent: Vec<(&str, Value)> = orders.iter().map(|(k, b)| (k.as_str(), b.clone())).collect();

    let answers = in_one_batch(&app, &key, &sent).await;

    assert!(answers.iter().all(|a| a.status == 201 && !a.replayed), "{answers:?}");
    let references: Vec<&str> =
        orders.iter().map(|(_, b)| b["reference"].as_str().unwrap()).collect();
    assert_eq!(transactions_of(&app, &references).await, 1, "written together");
    for ((idempotency_key, body), answer) in orders.iter().zip(&answers) {
        let created = answer.json();
        assert_members(&created, &PAYMENT_FIELDS);
        assert!(is_paygate_id(created["id"].as_str().unwrap()), "{created}");
        assert_eq!(created["status"], "pending");
        assert_eq!(created["reference"], body["reference"]);
        assert_eq!(created["obligation"], body["obligation"]);
        assert_eq!(created["details"], body["details"]);
        // The order reads as answered, and its key replays the answer byte for byte.
        let id = id_of(&created);
        assert_eq!(read(&app, &key, &id).await, created);
        let replay = post_order(&app, &key, idempotency_key, body).await;
        assert_eq!(replay.status(), 201);
        assert_eq!(replay.headers().get("Idempotent-Replayed").unwrap(), "true");
        assert_eq!(replay.text().await.unwrap(), answer.text);
    }
    assert_eq!(totals(&app).await, Totals::of(orders.len() as i64, orders.len() as i64, 0));
    // Each key names its own order, with the answer kept as sent.
    let kept = app
        .rows("SELECT k.key, k.payment_id, k.response_status, k.response_body FROM idempotency_keys k", &[])
        .await;
    for row in kept {
        let (idempotency_key, payment_id): (String, String) = (row.get(0), row.get(1));
        let n: usize = idempotency_key.trim_start_matches("gc-").parse().unwrap();
        assert_eq!(id_of(&answers[n].json()), payment_id);
        assert_eq!(row.get::<_, i16>(2), 201);
        assert_eq!(row.get::<_, String>(3), answers[n].text);
    }
}

#[tokio::test]
async fn a_retry_inside_one_batch_replays_the_first_answer_and_creates_once() {
    let (app, key) = one_lane_app().await;
    let body = order("fee", "GC-RETRY");

    let answers = in_one_batch(&app, &key, &[("gc-retry", body.clone()), ("gc-retry", body)]).await;

    assert_eq!(outcomes(&answers), [outcome(201, "created"), outcome(201, "created")]);
    assert!(!answers[0].replayed && answers[1].replayed, "{answers:?}");
    assert_eq!(answers[1].text, answers[0].text);
    assert_eq!(totals(&app).await, Totals::of(1, 1, 0));
}

#[tokio::test]
async fn a_key_reused_with_another_body_inside_one_batch_is_refused_and_changes_nothing() {
    let (app, key) = one_lane_app().await;
    let first = order("fee", "GC-REUSE");
    let other = changed(&first, "amount", Some(json!("250000")));

    let answers = in_one_batch(&app, &key, &[("gc-reuse", first), ("gc-reuse", other)]).await;

    assert_eq!(
        outcomes(&answers),
        [outcome(201, "created"), outcome(422, "idempotency_key_reused")]
    );
    assert_eq!(totals(&app).await, Totals::of(1, 1, 0));
    let kept = app.row("SELECT payment_id FROM idempotency_keys", &[]).await;
    assert_eq!(kept.get::<_, String>(0), id_of(&answers[0].json()));
}

#[tokio::test]
async fn two_orders_for_one_reference_inside_one_batch_create_one_and_keep_one_key() {
    let (app, key) = one_lane_app().await;
    let body = order("tax", "GC-SAME-REF");

    let answers =
        in_one_batch(&app, &key, &[("gc-ref-1", body.clone()), ("gc-ref-2", body.clone())]).await;

    assert_eq!(outcomes(&answers), [outcome(201, "created"), outcome(409, "duplicate_reference")]);
    assert_eq!(totals(&app).await, Totals::of(1, 1, 0));
    // The refused request's key was not kept: with another reference it creates an order.
    let again = post_order(&app, &key, "gc-ref-2", &order("tax", "GC-OTHER-REF")).await;
    assert_eq!(again.status(), 201);
    assert!(again.headers().get("Idempotent-Replayed").is_none());
}

#[tokio::test]
async fn a_reference_held_by_an_active_order_refuses_only_its_order_and_gives_its_key_back() {
    let (app, key) = one_lane_app().await;
    let holder = create(&app, &key, &order("fee", "GC-HELD")).await;
    let before = totals(&app).await;

    let answers = in_one_batch(
        &app,
        &key,
        &[
            ("gc-held-a", order("fee", "GC-HELD-A")),
            ("gc-held", order("fee", "GC-HELD")),
            ("gc-held-b", order("fee", "GC-HELD-B")),
        ],
    )
    .await;

    assert_eq!(
        outcomes(&answers),
        [outcome(201, "created"), outcome(409, "duplicate_reference"), outcome(201, "created")]
    );
    assert_eq!(totals(&app).await, Totals::of(before.payments + 2, before.idempotency_keys + 2, 0));
    assert_eq!(transactions_of(&app, &["GC-HELD-A", "GC-HELD-B"]).await, 1, "written together");
    app.assert_count("SELECT count(*) FROM idempotency_keys WHERE key = 'gc-held'", 0).await;
    assert_eq!(stored(&app, &id_of(&holder)).await, ("pending".to_owned(), false));
}

#[tokio::test]
async fn an_overdue_holder_is_expired_with_its_event_by_an_order_of_a_batch_taking_its_reference() {
    let (app, key) = one_lane_app().await;
    let holder = id_of(&create(&app, &key, &order("fine", "GC-OVERDUE")).await);
    make_overdue(&app, &holder).await;

    let answers = in_one_batch(
        &app,
        &key,
        &[("gc-overdue", order("fine", "GC-OVERDUE")), ("gc-fresh", order("fine", "GC-FRESH"))],
    )
    .await;

    assert_eq!(outcomes(&answers), [outcome(201, "created"), outcome(201, "created")]);
    assert_eq!(stored(&app, &holder).await, ("expired".to_owned(), true));
    // The holder was expired in the transaction that wrote the two new orders.
    let holder_xmin: String =
        app.row("SELECT xmin::text FROM payments WHERE id = $1", &[&holder]).await.get(0);
    let new_xmins: Vec<String> = app
        .rows("SELECT DISTINCT xmin::text FROM payments WHERE id <> $1", &[&holder])
        .await
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(new_xmins, [holder_xmin]);
    let events = events_of(&app, &holder).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].kind, "payment.expired");
    assert_eq!(events[0].agency_code, AGENCY);
    assert_eq!(events[0].payment["status"], "expired");
    assert_eq!(events[0].payment["id"], holder.as_str());
    assert_eq!(totals(&app).await, Totals::of(3, 3, 1));
}

#[tokio::test]
async fn an_inactive_obligation_inside_a_batch_refuses_only_its_order_and_keeps_no_key() {
    let (app, key) = one_lane_app().await;
    let patched = app
        .admin(Method::PATCH, "/v1/obligations/electricity")
        .json(&json!({"active": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);

    let answers = in_one_batch(
        &app,
        &key,
        &[
            ("gc-ob-1", order("fee", "GC-OB-1")),
            ("gc-ob-2", order("electricity", "GC-OB-2")),
            ("gc-ob-3", order("tax", "GC-OB-3")),
        ],
    )
    .await;

    assert_eq!(
        outcomes(&answers),
        [outcome(201, "created"), outcome(422, "obligation_inactive"), outcome(201, "created")]
    );
    assert_eq!(totals(&app).await, Totals::of(2, 2, 0));
    assert_eq!(transactions_of(&app, &["GC-OB-1", "GC-OB-3"]).await, 1, "written together");
    app.assert_count("SELECT count(*) FROM idempotency_keys WHERE key = 'gc-ob-2'", 0).await;
}

#[tokio::test]
async fn an_order_whose_write_fails_fails_alone_and_its_neighbours_are_created() {
    let (app, key) = one_lane_app().await;
    // Refuses, every time, to write the order with one reference.
    app.db
        .get()
        .await
        .unwrap()
        .batch_execute(
            "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.reference = 'GC-POISON' THEN
                     RAISE EXCEPTION 'poisoned order' USING ERRCODE = 'P0001';
                 END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER poison BEFORE INSERT ON payments
                 FOR EACH ROW EXECUTE FUNCTION poison();",
        )
        .await
        .expect("the poison trigger");

    let answers = in_one_batch(
        &app,
        &key,
        &[
            ("gc-p-1", order("fee", "GC-P-1")),
            ("gc-p-2", order("fee", "GC-POISON")),
            ("gc-p-3", order("fee", "GC-P-3")),
        ],
    )
    .await;

    assert_eq!(
        outcomes(&answers),
        [outcome(201, "created"), outcome(500, "internal_error"), outcome(201, "created")]
    );
    assert_eq!(totals(&app).await, Totals::of(2, 2, 0));
    app.assert_count("SELECT count(*) FROM idempotency_keys WHERE key = 'gc-p-2'", 0).await;
    // The batch failed as a whole, so its orders were created one by one.
    assert_eq!(transactions_of(&app, &["GC-P-1", "GC-P-3"]).await, 2);
    // Each created order replays its own answer.
    for (idempotency_key, reference, answer) in
        [("gc-p-1", "GC-P-1", &answers[0]), ("gc-p-3", "GC-P-3", &answers[2])]
    {
        let replay = post_order(&app, &key, idempotency_key, &order("fee", reference)).await;
        assert_eq!(replay.text().await.unwrap(), answer.text);
    }
}

#[tokio::test]
async fn many_concurrent_orders_are_each_created_once() {
    let app = TestApp::spawn_with(Config { order_lanes: 2, ..test_config() }).await;
    let key = agency_key(&app, AGENCY).await;
    let tasks: Vec<_> = (0..60)
        .map(|n| {
            let request = app
                .post_with(&key, "/v1/payments")
                .header("Idempotency-Key", format!("many-{}", n % 40))
                .json(&order("fee", &format!("MANY-{}", n % 40)));
            tokio::spawn(async move {
                let response = request.send().await.expect("POST /v1/payments");
                (response.status().as_u16(), response.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut ids = HashSet::new();
    for task in tasks {
        let (status, answer) = task.await.unwrap();
        // A retry racing its first request may be told to retry (409), never given a second
        // order.
        match status {
            201 => {
                ids.insert(id_of(&answer));
            }
            409 => assert_eq!(answer["code"], "idempotency_key_in_use", "{answer}"),
            _ => panic!("{status} {answer}"),
        }
    }
    assert_eq!(ids.len(), 40);
    assert_eq!(totals(&app).await, Totals::of(40, 40, 0));
}
