//! A late callback racing a new order for the same reference.

use super::*;

/// Makes an order stored as expired at `EXPIRED_AT` (as the sweep would leave it, without its
/// event, which these tests do not look at).
async fn expired_by_sql(app: &TestApp, id: &str) {
    let client = app.db.get().await.expect("a test database connection");
    let changed = client
        .execute(
            &format!(
                "UPDATE payments SET created_at = '{CREATED_AT}', expires_at = '{EXPIRED_AT}',
                     status = 'expired', closed_at = now()
                 WHERE id = $1"
            ),
            &[&id],
        )
        .await
        .expect("expire the order");
    assert_eq!(changed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_callback_waiting_on_an_uncommitted_order_with_the_same_reference_is_order_closed_if_it_commits(
) {
    let w = World::with(Config { expiry_interval_ms: 3_600_000, ..test_config() }).await;
    for commit in [true, false] {
        let reference = format!("H12-UNCOMMITTED-{commit}");
        let old = w.order(&reference).await;
        expired_by_sql(&w.app, &old).await;
        // Another order takes the reference in a transaction that stays open while the
        // callback is decided, exactly as a create in flight would.
        let mut holder = w.app.db.get().await.expect("a test database connection");
        let creating = holder.transaction().await.expect("BEGIN");
        creating
            .execute(
                "INSERT INTO payments (id, agency_code, obligation, reference, amount, currency,
                     description, payer_name, details, status, expires_at)
                 VALUES ($1, $2, 'fee', $3, 150000, 'VND', 'Lệ phí', 'Nguyễn Văn A',
                     '{\"procedure_code\": \"1.002804\", \"dossier_code\": \"D-1\"}',
                     'pending', now() + interval '1 day')",
                &[&format!("pay_holder_{commit}"), &AGENCY, &reference],
            )
            .await
            .expect("insert the competing order");
        let callback = succeeded(&format!("FT-LATE-{commit}"), &old, PAID_IN_TIME);
        let bytes = serde_json::to_vec(&callback).unwrap();
        let signature = w.bank.signature(now_s(), &bytes);
        let request = w.app.raw_request("/v1/banks/VCB/callbacks", &[header(&signature)], bytes);
        let delivery = tokio::spawn(async move {
            let response = request.send().await.expect("POST callback");
            let status = response.status().as_u16();
            (status, response.text().await.expect("an answer"))
        });
        // Give the callback time to reach the unique index and wait there.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!delivery.is_finished(), "the callback must wait for the create");
        if commit {
            creating.commit().await.expect("COMMIT");
        } else {
            creating.rollback().await.expect("ROLLBACK");
        }
        let (status, text) = delivery.await.expect("the delivery task");
        assert_eq!(status, 200, "{text}");
        let answer: Value = serde_json::from_str(&text).expect("JSON");
        if commit {
            assert_eq!(
                answer,
                json!({"result": "exception", "exception": "order_closed", "payment_id": old,
                       "payment_status": "expired"})
            );
            assert_eq!(w.app.stored_status(&old).await, "expired");
            assert_eq!(
                entries_of(&w.app, &old).await,
                vec![entry("bank:VCB", AMOUNT, "0"), entry("suspense:VCB", "0", AMOUNT)]
            );
        } else {
            assert_eq!(
                answer,
                json!({"result": "accepted", "payment_id": old, "payment_status": "paid"})
            );
            assert_eq!(w.app.stored_status(&old).await, "paid");
        }
    }
    assert_eq!(w.verify().await["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_callback_racing_a_new_order_with_the_same_reference_is_accepted_or_order_closed_never_an_error(
) {
    const RACES: usize = 40;
    let w = World::with(Config { expiry_interval_ms: 3_600_000, ..test_config() }).await;
    let mut olds = Vec::new();
    for n in 0..RACES {
        let old = w.order(&format!("H12-REF-RACE-{n}")).await;
        // Half stored as expired (as after the sweep), half only overdue (before it).
        if n % 2 == 0 {
            expired_by_sql(&w.app, &old).await;
        } else {
            w.backdate(&old).await;
        }
        olds.push(old);
    }

    let mut races = Vec::new();
    for (n, old) in olds.iter().enumerate() {
        let reference = format!("H12-REF-RACE-{n}");
        let body =
            serde_json::to_vec(&succeeded(&format!("FT-REF-RACE-{n}"), old, PAID_IN_TIME)).unwrap();
        let signature = header(&w.bank.signature(now_s(), &body));
        let callback = w.app.raw_request("/v1/banks/VCB/callbacks", &[signature], body).send();
        let create = w
            .app
            .post_with(&w.agency_key, "/v1/payments")
            .header("Idempotency-Key", paygate::domain::ids::random_id("idem", 8))
            .json(&order_body("fee", &reference, AMOUNT))
            .send();
        // The callback starts up to 38 ms after the create (about as long as a create takes
        // here), so that either may win the race and many land in between.
        let delay = Duration::from_millis(2 * (n % 20) as u64);
        let callback = async move {
            tokio::time::sleep(delay).await;
            callback.await
        };
        races.push(tokio::spawn(async move {
            let (callback, create) = tokio::join!(callback, create);
            let (callback_status, callback) = read_answer(callback, "POST callback").await;
            let (create_status, create) = read_answer(create, "POST /v1/payments").await;
            (callback_status, callback, create_status, create)
        }));
    }

    let (mut accepted, mut closed) = (0, 0);
    for (n, (old, race)) in olds.iter().zip(races).enumerate() {
        let (callback_status, callback, create_status, create) = race.await.unwrap();
        assert_eq!(callback_status, 200, "race {n}: {callback}");
        let callback: Value = serde_json::from_str(&callback).expect("JSON");
        let create: Value = serde_json::from_str(&create).expect("JSON");
        let reference = format!("H12-REF-RACE-{n}");
        let holders = w
            .app
            .count(&format!(
                "SELECT count(*) FROM payments WHERE reference = '{reference}'
                   AND status IN ('pending', 'paid')"
            ))
            .await;
        assert_eq!(holders, 1, "race {n}");
        match callback["result"].as_str() {
            Some("accepted") => {
                accepted += 1;
                assert_eq!(callback["payment_status"], "paid", "{callback}");
                assert_eq!(w.app.stored_status(old).await, "paid");
                assert_eq!(create_status, 409, "race {n}: {create}");
                assert_eq!(create["code"], "duplicate_reference", "{create}");
            }
            Some("exception") => {
                closed += 1;
                assert_eq!(callback["exception"], "order_closed", "{callback}");
                assert_eq!(w.app.stored_status(old).await, "expired");
                assert_eq!(create_status, 201, "race {n}: {create}");
                assert_eq!(create["status"], "pending", "{create}");
            }
            _ => panic!("race {n}: {callback}"),
        }
    }
    println!("{RACES} races: {accepted} accepted, {closed} order_closed");
    assert_eq!(accepted + closed, RACES);
    let total = (150_000 * RACES).to_string();
    assert_verified(&w.verify().await, RACES as i64, &total);
    let balances = w.balances().await;
    assert_eq!(balances["bank:VCB"], total);
}
