//! Idempotency.

use super::*;

#[tokio::test]
async fn replaying_a_key_with_the_same_body_in_another_key_order_answers_the_same_and_creates_nothing(
) {
    let (app, key) = with_agency().await;
    let body = order("social_insurance", "BHXH-2026-11-0001");
    let response = post_order(&app, &key, "bhxh-0001", &body).await;
    assert_eq!(response.status(), 201);
    let first: Value = response.json().await.unwrap();
    let after_first = totals(&app).await;

    // The same JSON value, written with every object's members reversed and other spacing.
    let reordered = r#"{ "details" : {"period": "2026-11", "insurance_code": "0123456789"},
        "payer": {"id_number": "001099012345", "name": "Nguyễn Văn A"},
        "description": "Lệ phí cấp đổi giấy phép lái xe", "currency": "VND",
        "amount": "150000", "reference": "BHXH-2026-11-0001", "obligation": "social_insurance" }"#;
    assert_eq!(serde_json::from_str::<Value>(reordered).unwrap(), body);
    for _ in 0..2 {
        let response = app
            .post_with(&key, "/v1/payments")
            .header("Idempotency-Key", "bhxh-0001")
            .header("Content-Type", "application/json")
            .body(reordered)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        assert_eq!(response.headers().get("Idempotent-Replayed").unwrap(), "true");
        let replayed: Value = response.json().await.unwrap();
        assert_eq!(replayed, first);
    }
    assert_eq!(totals(&app).await, after_first);
    assert_eq!(after_first, Totals::of(1, 1, 0));
}

#[tokio::test]
async fn a_replay_answers_the_first_answer_byte_for_byte() {
    let (app, key) = with_agency().await;
    let body = order("fee", "H12.99-261122-0001");
    let response = post_order(&app, &key, "order-1", &body).await;
    assert_eq!(response.status(), 201);
    let first = response.text().await.unwrap();
    let response = post_order(&app, &key, "order-1", &body).await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers().get("Idempotent-Replayed").unwrap(), "true");
    assert_eq!(response.text().await.unwrap(), first, "the same body again");
}

#[tokio::test]
async fn a_replay_after_the_orders_expires_at_has_passed_still_answers_the_first_answer() {
    let (app, key) = with_agency().await;
    let soon = db_time(&app, "now() + interval '1 second'").await;
    let body = changed(&order("fee", "H12-1"), "expires_at", Some(json!(soon)));
    let response = post_order(&app, &key, "order-1", &body).await;
    assert_eq!(response.status(), 201);
    let first: Value = response.json().await.unwrap();
    let id = id_of(&first);
    let expired = eventually(|| async { stored(&app, &id).await.0 == "expired" }).await;
    assert!(expired, "{id} expired");
    let before = totals(&app).await;

    // A client retrying after a lost answer must learn that its order exists.
    let response = post_order(&app, &key, "order-1", &body).await;
    let status = response.status();
    let replayed = response.headers().get("Idempotent-Replayed").cloned();
    let text = response.text().await.unwrap();
    assert_eq!(status, 201, "{text}");
    assert_eq!(replayed.unwrap(), "true");
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), first);
    assert_eq!(totals(&app).await, before);
}

#[tokio::test]
async fn the_same_key_with_a_different_body_answers_422_idempotency_key_reused() {
    let (app, key) = with_agency().await;
    let body = order("fee", "H12-1");
    assert_eq!(post_order(&app, &key, "order-1", &body).await.status(), 201);
    let before = totals(&app).await;
    for other in [
        changed(&body, "amount", Some(json!("150001"))),
        changed(&body, "reference", Some(json!("H12-2"))),
        changed(&body, "currency", None),
        changed(&body, "note", Some(json!("x"))),
    ] {
        let response = post_order(&app, &key, "order-1", &other).await;
        assert_problem(response, 422, "idempotency_key_reused").await;
    }
    assert_eq!(totals(&app).await, before);
    app.assert_count("SELECT count(*) FROM payments WHERE reference = 'H12-2'", 0).await;
}

#[tokio::test]
async fn a_failed_request_leaves_its_key_free_for_the_corrected_request() {
    let (app, key) = with_agency().await;
    let body = order("tax", "THUE-2026-0001");

    let invalid = changed(&body, "details.tax_code", Some(json!("01012345")));
    let response = post_order(&app, &key, "thue-1", &invalid).await;
    assert_problem(response, 422, "validation_failed").await;
    assert_eq!(app.count("SELECT count(*) FROM idempotency_keys").await, 0);
    let response = post_order(&app, &key, "thue-1", &body).await;
    assert_eq!(response.status(), 201);
    assert!(response.headers().get("Idempotent-Replayed").is_none());

    // A conflict fails too, and frees its key as well.
    let clash = changed(&body, "amount", Some(json!("2000000")));
    let response = post_order(&app, &key, "thue-2", &clash).await;
    assert_problem(response, 409, "duplicate_reference").await;
    assert_eq!(app.count("SELECT count(*) FROM idempotency_keys").await, 1);
    let corrected = changed(&clash, "reference", Some(json!("THUE-2026-0002")));
    let response = post_order(&app, &key, "thue-2", &corrected).await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["amount"], "2000000");
    assert_eq!(totals(&app).await, Totals::of(2, 2, 0));
}

#[tokio::test]
async fn idempotency_keys_belong_to_one_agency() {
    let app = TestApp::spawn().await;
    let a = agency_key(&app, AGENCY).await;
    let b = agency_key(&app, OTHER_AGENCY).await;
    let body = order("fee", "HS-0001");
    let response = post_order(&app, &a, "order-1", &body).await;
    assert_eq!(response.status(), 201);
    let first: Value = response.json().await.unwrap();
    let response = post_order(&app, &b, "order-1", &body).await;
    assert_eq!(response.status(), 201);
    assert!(response.headers().get("Idempotent-Replayed").is_none());
    let second: Value = response.json().await.unwrap();
    assert_ne!(first["id"], second["id"]);
    assert_eq!(first["agency"], AGENCY);
    assert_eq!(second["agency"], OTHER_AGENCY);
    assert_eq!(totals(&app).await, Totals::of(2, 2, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_requests_with_one_key_create_exactly_one_order() {
    let (app, key) = with_agency().await;
    let body = order("court_advance", "TA-456-2026");
    let idempotency_keys = vec!["tam-ung-an-phi-456".to_owned(); 20];
    let mut ids = HashSet::new();
    let mut originals = 0;
    for (status, replayed, answer) in post_at_once(&app, &key, &body, idempotency_keys).await {
        match status {
            201 => {
                ids.insert(id_of(&answer));
                if !replayed {
                    originals += 1;
                }
            }
            409 => assert_eq!(answer["code"], "idempotency_key_in_use", "{answer}"),
            _ => panic!("unexpected {status}: {answer}"),
        }
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(originals, 1, "exactly one answer is not a replay");
    assert_eq!(totals(&app).await, Totals::of(1, 1, 0));
}
