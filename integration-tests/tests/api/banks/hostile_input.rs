//! Hostile input: times out of range, times before the order existed, NUL characters.

use super::*;

/// `text` (RFC 3339) moved by `seconds`, in the wire format.
fn shifted(text: &str, seconds: i64) -> String {
    let at = paygate::timefmt::parse_rfc3339(text).expect("an RFC 3339 time");
    paygate::timefmt::format_utc(at + time::Duration::seconds(seconds))
}

#[tokio::test]
async fn a_callback_paid_at_outside_the_years_2000_to_9998_answers_422_and_reserves_nothing() {
    let (w, id) = World::with_order("H12-PAID-AT-RANGE").await;
    let before = snapshot(&w.app).await;
    for paid_at in TIMES_OUT_OF_RANGE {
        for body in [
            succeeded("FT-RANGE", &id, paid_at),
            changed(&failed("FT-RANGE", &id), "paid_at", Some(json!(paid_at))),
            succeeded("FT-RANGE", "pay_does_not_exist", paid_at),
        ] {
            assert_eq!(invalid(w.deliver(&body).await).await, ["paid_at"], "{body}");
            assert_eq!(snapshot(&w.app).await, before, "{body}");
        }
    }
    // Nothing was reserved: the corrected callback with the same bank_txn_id pays the order.
    let answer = w.deliver_ok(&succeeded("FT-RANGE", &id, &paid_a_minute_ago())).await;
    assert_eq!(answer["result"], "accepted", "{answer}");
}

#[tokio::test]
async fn a_callback_paid_more_than_5_minutes_before_the_order_was_created_answers_422_and_reserves_nothing(
) {
    let (w, id) = World::with_order("H12-PAID-EARLY").await;
    let created_at = w.payment(&id).await["created_at"].as_str().expect("created_at").to_owned();
    let too_early = shifted(&created_at, -301);
    let before = snapshot(&w.app).await;
    for body in [
        succeeded("FT-EARLY", &id, &too_early),
        // Its redelivery gets the same answer: the first reserved nothing.
        succeeded("FT-EARLY", &id, &too_early),
        succeeded("FT-EARLY", &id, "2000-01-01T00:00:00Z"),
        changed(&failed("FT-EARLY", &id), "paid_at", Some(json!(too_early))),
    ] {
        assert_eq!(invalid(w.deliver(&body).await).await, ["paid_at"], "{body}");
        assert_eq!(snapshot(&w.app).await, before, "{body}");
    }
    // The order is looked up first: an unknown order is a 404 whatever its paid_at.
    let unknown = w.deliver(&succeeded("FT-EARLY-404", "pay_does_not_exist", &too_early)).await;
    assert_problem(unknown, 404, "payment_not_found").await;
    let before = snapshot(&w.app).await;

    // Exactly 5 minutes before creation is allowed, and the same bank_txn_id is free.
    let in_time = shifted(&created_at, -300);
    let answer = w.deliver_ok(&succeeded("FT-EARLY", &id, &in_time)).await;
    assert_eq!(answer, json!({"result": "accepted", "payment_id": id, "payment_status": "paid"}));
    assert_eq!(w.payment(&id).await["paid_at"], in_time.as_str());
    assert_eq!(snapshot(&w.app).await.ledger_transactions, before.ledger_transactions + 1);
    // Redelivery and conflict come before it: the same bank_txn_id with the early time is a
    // conflict now that the id is reserved.
    let conflict = w.deliver(&succeeded("FT-EARLY", &id, &too_early)).await;
    assert_problem(conflict, 409, "bank_txn_conflict").await;
}

#[tokio::test]
async fn a_nul_in_any_callback_or_inquiry_field_answers_422_naming_it_and_writes_nothing() {
    let (w, id) = World::with_order("H12-NUL").await;
    let valid = changed(
        &succeeded("FT-NUL", &id, &paid_a_minute_ago()),
        "failure_reason",
        Some(json!("Lý do")),
    );
    let before = snapshot(&w.app).await;
    for field in
        ["bank_txn_id", "payment_id", "amount", "currency", "status", "paid_at", "failure_reason"]
    {
        let text = valid[field].as_str().expect("a text field");
        for value in ["\u{0}".to_owned(), format!("{text}\u{0}"), format!("\u{0}{text}")] {
            let body = changed(&valid, field, Some(json!(value)));
            assert_eq!(invalid(w.deliver(&body).await).await, [field], "{body}");
        }
    }
    // A member paygate does not read is refused too: no text with NUL gets in anywhere.
    let extra = changed(&valid, "note", Some(json!("x\u{0}")));
    assert_eq!(invalid(w.deliver(&extra).await).await, ["note"]);
    let inquiry =
        w.app.post_signed(&w.bank, "inquiry", &json!({ "payment_id": format!("{id}\u{0}") })).await;
    assert_eq!(invalid(inquiry).await, ["payment_id"]);
    assert_eq!(snapshot(&w.app).await, before);
    // Nothing was reserved.
    let answer = w.deliver_ok(&valid).await;
    assert_eq!(answer["result"], "accepted", "{answer}");
}

#[tokio::test]
async fn exception_filters_outside_the_years_2000_to_9998_answer_422_naming_the_filter() {
    let w = World::new().await;
    for name in ["from", "to"] {
        for value in TIMES_OUT_OF_RANGE {
            assert_eq!(
                w.app
                    .http
                    .get(w.app.url("/v1/exceptions"))
                    .query(&[(name, value)])
                    .bearer_auth(&w.auditor_key)
                    .invalid()
                    .await,
                [name],
                "{name}={value}"
            );
        }
        for value in ["2000-01-01T00:00:00Z", "9998-12-31T23:59:59.999999Z"] {
            let page = w.exceptions(&format!("{name}={value}")).await;
            assert_eq!(page["items"], json!([]), "{name}={value}");
        }
    }
}
