//! Validation after a valid signature.

use super::*;

#[tokio::test]
async fn an_invalid_callback_body_answers_422_naming_the_field_and_writes_nothing() {
    let (w, id) = World::with_order("H12-INVALID").await;
    let valid = succeeded("FT-VALID", &id, &paid_a_minute_ago());
    let cases = [
        ("bank_txn_id", changed(&valid, "bank_txn_id", None)),
        ("bank_txn_id", changed(&valid, "bank_txn_id", Some(json!("A".repeat(65))))),
        ("bank_txn_id", changed(&valid, "bank_txn_id", Some(json!("")))),
        ("bank_txn_id", changed(&valid, "bank_txn_id", Some(json!(26327001)))),
        ("payment_id", changed(&valid, "payment_id", None)),
        ("amount", changed(&valid, "amount", None)),
        ("amount", changed(&valid, "amount", Some(json!(150000)))),
        ("amount", changed(&valid, "amount", Some(json!("0")))),
        ("amount", changed(&valid, "amount", Some(json!("-150000")))),
        ("amount", changed(&valid, "amount", Some(json!("150000.5")))),
        ("amount", changed(&valid, "amount", Some(json!("1000000000000000")))),
        ("currency", changed(&valid, "currency", Some(json!(704)))),
        ("status", changed(&valid, "status", Some(json!("ok")))),
        ("status", changed(&valid, "status", None)),
        ("paid_at", changed(&valid, "paid_at", None)),
        ("paid_at", changed(&valid, "paid_at", Some(Value::Null))),
        ("paid_at", changed(&valid, "paid_at", Some(json!(rfc3339(now_s() + 600))))),
        ("paid_at", changed(&valid, "paid_at", Some(json!("2026-11-23 03:15:00")))),
        ("paid_at", changed(&valid, "paid_at", Some(json!("23/11/2026")))),
        ("paid_at", changed(&valid, "paid_at", Some(json!(1_763_867_700)))),
        ("failure_reason", changed(&valid, "failure_reason", Some(json!("")))),
    ];
    let before = snapshot(&w.app).await;
    for (field, body) in cases {
        let response = w.deliver(&body).await;
        assert_eq!(invalid(response).await, vec![field], "{body}");
        assert_eq!(snapshot(&w.app).await, before, "{body}");
    }

    let empty = w.deliver(&json!({})).await;
    let problem = assert_problem(empty, 422, "validation_failed").await;
    let fields: HashSet<String> = invalid_fields(&problem).into_iter().collect();
    for field in ["bank_txn_id", "payment_id", "amount", "status"] {
        assert!(fields.contains(field), "{field} in {problem}");
    }
    let not_an_object = w.deliver(&json!([valid])).await;
    assert_problem(not_an_object, 422, "validation_failed").await;
    assert_eq!(snapshot(&w.app).await, before);
}

#[tokio::test]
async fn callback_fields_at_their_limits_are_accepted() {
    let (w, id) = World::with_order("H12-LIMITS").await;
    // 64 characters, 128 bytes: lengths count characters.
    let bank_txn_id = "Đ".repeat(64);
    let paid_soon = rfc3339(now_s() + 240);

    let answer = w.deliver_ok(&succeeded(&bank_txn_id, &id, &paid_soon)).await;

    assert_eq!(answer["result"], "accepted");
    let payment = w.payment(&id).await;
    assert_eq!(payment["bank_txn_id"], bank_txn_id.as_str());
    assert_eq!(payment["paid_at"], paid_soon.as_str());
}

#[tokio::test]
async fn a_callback_body_over_1_mib_answers_413_and_writes_nothing() {
    let (w, id) = World::with_order("H12-OVERSIZED").await;
    let padding = "x".repeat(1024 * 1024);
    let body =
        changed(&succeeded("FT-BIG", &id, &paid_a_minute_ago()), "padding", Some(json!(padding)));
    let before = snapshot(&w.app).await;

    let response = w.deliver(&body).await;

    assert_problem(response, 413, "payload_too_large").await;
    assert_eq!(snapshot(&w.app).await, before);
}

#[tokio::test]
async fn malformed_json_with_a_valid_signature_answers_400_and_writes_nothing() {
    let w = World::new().await;
    w.order("H12-MALFORMED").await;
    let before = snapshot(&w.app).await;
    let bodies: [&[u8]; 5] =
        [b"{", b"not json", b"", b"{\"bank_txn_id\": \"FT1\",}", b"\xff\xfe{}"];
    for body in bodies {
        let signature = w.bank.signature(now_s(), body);
        let response =
            w.app.post_raw("/v1/banks/VCB/callbacks", &[header(&signature)], body.to_vec()).await;
        assert_problem(response, 400, "malformed_json").await;
        assert_eq!(snapshot(&w.app).await, before, "{body:?}");
    }
}
