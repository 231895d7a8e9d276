//! Inquiry.

use super::*;

#[tokio::test]
async fn inquiry_shows_the_payer_exactly_what_is_due() {
    let w = World::new().await;
    let other_agency_key =
        w.app.create_agency(OTHER_AGENCY).await["api_key"].as_str().unwrap().to_owned();
    let payment = w.create(&other_agency_key, &order_body("tax", "H29-TAX-1", "2500000")).await;
    let id = payment["id"].as_str().unwrap();
    let before = snapshot(&w.app).await;

    let answer =
        json_200(w.app.post_signed(&w.bank, "inquiry", &json!({"payment_id": id})).await).await;

    assert_members(&answer, &INQUIRY_FIELDS);
    assert_eq!(answer["payment_id"], id);
    assert_eq!(answer["agency"], OTHER_AGENCY);
    assert_eq!(answer["obligation"], "tax");
    assert_eq!(answer["amount"], "2500000");
    assert_eq!(answer["currency"], "VND");
    assert_eq!(answer["description"], DESCRIPTION);
    assert_eq!(answer["status"], "pending");
    assert_eq!(answer["expires_at"], payment["expires_at"]);
    assert_eq!(snapshot(&w.app).await, before, "an inquiry writes nothing");

    // It follows the order's state: paid, and an overdue order reads as expired.
    let body =
        changed(&succeeded("FT-INQ", id, &paid_a_minute_ago()), "amount", Some(json!("2500000")));
    w.deliver_ok(&body).await;
    let paid =
        json_200(w.app.post_signed(&w.bank, "inquiry", &json!({"payment_id": id})).await).await;
    assert_eq!(paid["status"], "paid");
    let overdue = w.order("H12-INQ-OVERDUE").await;
    w.backdate(&overdue).await;
    let expired =
        json_200(w.app.post_signed(&w.bank, "inquiry", &json!({"payment_id": overdue})).await)
            .await;
    assert_eq!(expired["status"], "expired");
    assert_eq!(expired["expires_at"], EXPIRED_AT);
}

#[tokio::test]
async fn inquiry_of_an_unknown_payment_is_404_an_invalid_one_422_and_an_unsigned_one_401() {
    let (w, id) = World::with_order("H12-INQ").await;
    let before = snapshot(&w.app).await;

    let unknown = w.app.post_signed(&w.bank, "inquiry", &json!({"payment_id": "pay_nope"})).await;
    assert_problem(unknown, 404, "payment_not_found").await;
    let missing = w.app.post_signed(&w.bank, "inquiry", &json!({})).await;
    assert_eq!(invalid(missing).await, vec!["payment_id"]);
    let bytes = serde_json::to_vec(&json!({ "payment_id": id })).unwrap();
    let unsigned = w.app.post_raw("/v1/banks/VCB/inquiry", &[], bytes.clone()).await;
    assert_problem(unsigned, 401, "invalid_signature").await;
    let stale = w.app.post_signed_ago(&w.bank, "inquiry", 400, bytes).await;
    assert_problem(stale, 401, "signature_expired").await;
    assert_eq!(snapshot(&w.app).await, before);
}
