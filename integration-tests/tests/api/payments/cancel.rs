//! Cancel.

use super::*;

#[tokio::test]
async fn cancelling_a_pending_order_answers_cancelled_and_records_one_event() {
    let (app, key) = with_agency().await;
    let created = create(&app, &key, &order("fee", "H12-1")).await;
    let id = id_of(&created);

    let response = cancel(&app, &key, &id).await;
    assert_eq!(response.status(), 200);
    let cancelled: Value = response.json().await.unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    for field in PAYMENT_FIELDS {
        if field != "status" {
            assert_eq!(cancelled[field], created[field], "{field}");
        }
    }
    assert_eq!(stored(&app, &id).await, ("cancelled".to_owned(), true));
    assert_eq!(read(&app, &key, &id).await, cancelled);
    let events = events_of(&app, &id).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].kind, "payment.cancelled");
    assert_eq!(events[0].agency_code, AGENCY);
    assert_eq!(events[0].payment, cancelled);

    let response = cancel(&app, &key, &id).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), cancelled);
    assert_eq!(events_of(&app, &id).await.len(), 1);
    assert_eq!(totals(&app).await, Totals::of(1, 1, 1));
}

#[tokio::test]
async fn a_paid_order_is_not_cancellable() {
    let (app, key) = with_agency().await;
    app.create_bank("VCB").await;
    let id = id_of(&create(&app, &key, &order("tax", "THUE-1")).await);
    mark_paid(&app, &id).await;
    let before = totals(&app).await;
    for caller in [&key, &app.admin_key] {
        assert_problem(cancel(&app, caller, &id).await, 409, "not_cancellable").await;
    }
    assert_eq!(stored(&app, &id).await, ("paid".to_owned(), true));
    assert_eq!(totals(&app).await, before);
    let paid = read(&app, &key, &id).await;
    assert_eq!(paid["status"], "paid");
    assert_eq!(paid["bank"], "VCB");
    assert_eq!(paid["bank_txn_id"], "X");
    assert!(is_wire_time(paid["paid_at"].as_str().unwrap()), "{paid}");
}

#[tokio::test]
async fn an_overdue_pending_order_is_not_cancellable_and_cancel_changes_nothing() {
    let app = spawn_without_sweep().await;
    let key = agency_key(&app, AGENCY).await;
    let id = id_of(&create(&app, &key, &order("fine", "CSGT-1")).await);
    make_overdue(&app, &id).await;
    let before = totals(&app).await;
    assert_problem(cancel(&app, &key, &id).await, 409, "not_cancellable").await;
    assert_eq!(stored(&app, &id).await, ("pending".to_owned(), false));
    assert_eq!(totals(&app).await, before);
    assert_eq!(read(&app, &key, &id).await["status"], "expired");
}

#[tokio::test]
async fn an_auditor_cannot_cancel_and_an_admin_may_cancel_any_order() {
    let (app, key) = with_agency().await;
    let auditor = app.key_with_role("auditor").await;
    let id = id_of(&create(&app, &key, &order("electricity", "EVN-1")).await);
    let before = totals(&app).await;
    assert_problem(cancel(&app, &auditor, &id).await, 403, "forbidden").await;
    assert_eq!(stored(&app, &id).await, ("pending".to_owned(), false));
    assert_eq!(totals(&app).await, before);

    let response = cancel(&app, &app.admin_key, &id).await;
    assert_eq!(response.status(), 200);
    let cancelled: Value = response.json().await.unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["agency"], AGENCY);
    let events = events_of(&app, &id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, "payment.cancelled");
    assert_eq!(events[0].agency_code, AGENCY);
    assert_eq!(events[0].payment, cancelled);
    assert_problem(cancel(&app, &app.admin_key, "pay_missing").await, 404, "payment_not_found")
        .await;
}
