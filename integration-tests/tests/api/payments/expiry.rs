//! Expiry.

use super::*;

#[tokio::test]
async fn the_sweep_expires_an_overdue_order_with_exactly_one_event() {
    let (app, key) = with_agency().await;
    let overdue = id_of(&create(&app, &key, &order("social_insurance", "BHXH-1")).await);
    let current = id_of(&create(&app, &key, &order("social_insurance", "BHXH-2")).await);
    make_overdue(&app, &overdue).await;

    let expired = eventually(|| async { stored(&app, &overdue).await.0 == "expired" }).await;
    assert!(expired, "the sweep did not expire {overdue} within 10 s");
    // A few more rounds of the sweep must not record it again.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(stored(&app, &overdue).await, ("expired".to_owned(), true));
    let read = read(&app, &key, &overdue).await;
    assert_eq!(read["status"], "expired");
    let events = events_of(&app, &overdue).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].kind, "payment.expired");
    assert_eq!(events[0].agency_code, AGENCY);
    assert_eq!(events[0].payment, read);

    assert_eq!(stored(&app, &current).await, ("pending".to_owned(), false));
    assert!(events_of(&app, &current).await.is_empty());
    assert_eq!(app.count("SELECT count(*) FROM events").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_racing_the_sweep_ends_cancelled_or_expired_never_both() {
    const ORDERS: usize = 20;
    let (app, key) = with_agency().await;
    let mut ids = Vec::new();
    for n in 0..ORDERS {
        ids.push(id_of(&create(&app, &key, &order("fee", &format!("RACE-{n:02}"))).await));
    }
    // Order n falls due 200 + 40n ms from now, and its cancel arrives 50 (19 - n) ms from now:
    // the first ones are due long before their cancel, the last ones long after, and those in
    // between race the sweep (every 200 ms).
    let client = app.db.get().await.unwrap();
    client
        .execute(
            "UPDATE payments SET expires_at = clock_timestamp()
                 + make_interval(secs => 0.2 + 0.04 * (substring(reference from 6)::int))
             WHERE reference LIKE 'RACE-%'",
            &[],
        )
        .await
        .unwrap();
    let tasks: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| {
            let request = app.post_with(&key, &format!("/v1/payments/{id}/cancel"));
            let delay = Duration::from_millis(50 * (ORDERS - 1 - n) as u64);
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let response = request.send().await.expect("cancel");
                let status = response.status().as_u16();
                let answer: Value = response.json().await.expect("a JSON answer");
                (status, answer)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    let settled = eventually(|| async {
        app.count("SELECT count(*) FROM payments WHERE status = 'pending'").await == 0
    })
    .await;
    assert!(settled, "every order left pending within 10 s");
    // Let the sweep run a few more rounds, then look.
    tokio::time::sleep(Duration::from_millis(600)).await;

    let (mut cancelled, mut expired) = (0, 0);
    for (id, (status, answer)) in ids.iter().zip(answers) {
        let (state, closed) = stored(&app, id).await;
        assert!(closed, "{id}");
        let events = events_of(&app, id).await;
        assert_eq!(events.len(), 1, "{id} ({state}): {events:?}");
        match status {
            200 => {
                cancelled += 1;
                assert_eq!(answer["status"], "cancelled", "{answer}");
                assert_eq!(state, "cancelled", "{id}");
                assert_eq!(events[0].kind, "payment.cancelled");
                assert_eq!(events[0].payment, answer);
            }
            409 => {
                expired += 1;
                assert_eq!(answer["code"], "not_cancellable", "{answer}");
                assert_eq!(state, "expired", "{id}");
                assert_eq!(events[0].kind, "payment.expired");
                assert_eq!(events[0].payment["status"], "expired");
            }
            _ => panic!("cancel of {id} answered {status}: {answer}"),
        }
    }
    assert_eq!(cancelled + expired, ORDERS);
    app.assert_count("SELECT count(*) FROM events", ORDERS as i64).await;
}
