//! References.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_orders_with_one_reference_and_different_keys_create_exactly_one() {
    let (app, key) = with_agency().await;
    let body = order("tax", "THUE-2026-Q4-0101234567");
    let idempotency_keys = (0..10).map(|n| format!("thue-q4-{n}")).collect();
    let mut created = 0;
    for (status, _, answer) in post_at_once(&app, &key, &body, idempotency_keys).await {
        match status {
            201 => created += 1,
            409 => assert_eq!(answer["code"], "duplicate_reference", "{answer}"),
            _ => panic!("unexpected {status}: {answer}"),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(totals(&app).await, Totals::of(1, 1, 0));
}

#[tokio::test]
async fn a_reference_is_refused_while_its_order_is_pending_or_paid() {
    let (app, key) = with_agency().await;
    app.create_bank("VCB").await;
    let body = order("fine", "CSGT-HN-0001");
    let first = create(&app, &key, &body).await;
    let again = changed(&body, "amount", Some(json!("250000")));

    let before = totals(&app).await;
    let response = post_order(&app, &key, &new_idempotency_key(), &again).await;
    assert_problem(response, 409, "duplicate_reference").await;
    assert_eq!(totals(&app).await, before);

    mark_paid(&app, &id_of(&first)).await;
    let response = post_order(&app, &key, &new_idempotency_key(), &again).await;
    assert_problem(response, 409, "duplicate_reference").await;
    assert_eq!(totals(&app).await, before);

    // References are the agency's own: another agency may use the same text.
    let other = agency_key(&app, OTHER_AGENCY).await;
    let created = create(&app, &other, &body).await;
    assert_eq!(created["agency"], OTHER_AGENCY);
}

#[tokio::test]
async fn a_reference_is_free_again_after_its_order_is_cancelled() {
    let (app, key) = with_agency().await;
    let body = order("fee", "H12.99-261122-0001");
    let first = create(&app, &key, &body).await;
    assert_eq!(cancel(&app, &key, &id_of(&first)).await.status(), 200);
    let second = create(&app, &key, &body).await;
    assert_ne!(first["id"], second["id"]);
    assert_eq!(second["status"], "pending");
    assert_eq!(read(&app, &key, &id_of(&first)).await["status"], "cancelled");
    let page = page(&app, &key, &[("reference", "H12.99-261122-0001")]).await;
    assert_eq!(ids(&page), [id_of(&second), id_of(&first)]);
}

#[tokio::test]
async fn an_overdue_pending_order_frees_its_reference_and_then_reads_as_expired() {
    let app = spawn_without_sweep().await;
    let key = agency_key(&app, AGENCY).await;
    let body = order("electricity", "EVN-PE01000123456-2026-11");
    let first = create(&app, &key, &body).await;
    let first_id = id_of(&first);
    make_overdue(&app, &first_id).await;
    assert_eq!(stored(&app, &first_id).await, ("pending".to_owned(), false));

    let second = create(&app, &key, &body).await;
    assert_ne!(id_of(&second), first_id);
    assert_eq!(second["status"], "pending");

    let old = read(&app, &key, &first_id).await;
    assert_eq!(old["status"], "expired");
    assert_eq!(stored(&app, &first_id).await, ("expired".to_owned(), true));
    let events = events_of(&app, &first_id).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].kind, "payment.expired");
    assert_eq!(events[0].agency_code, AGENCY);
    assert_eq!(events[0].payment, old);
    assert!(events_of(&app, &id_of(&second)).await.is_empty());
}
