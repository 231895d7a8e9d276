//! Signatures.

use super::*;

#[tokio::test]
async fn every_signature_failure_answers_401_and_writes_nothing() {
    const INVALID: &str = "invalid_signature";
    const EXPIRED: &str = "signature_expired";
    let w = World::new().await;
    let other_bank = w.app.new_bank(OTHER_BANK).await;
    let id = w.order("H12-SIGNATURES").await;
    let body = serde_json::to_vec(&succeeded("FT-SIGNED", &id, &paid_a_minute_ago())).unwrap();
    let now = now_s();
    let kid = w.bank.kid.clone();
    let good = w.bank.signature(now, &body);
    let mac = good.rsplit_once("v1=").expect("v1").1.to_owned();
    let stranger = Signer { secret: "bsk_not_the_secret".to_owned(), ..w.bank.clone() };
    let mut changed_body = body.clone();
    let last = changed_body.len() - 2;
    changed_body[last] ^= 1;
    let path = "/v1/banks/VCB/callbacks";

    let one = |value: String| vec![header(&value)];
    /// (what is wrong, path, `Paygate-Signature` values, body, the expected code)
    type Refusal<'a> = (&'a str, &'a str, Vec<HeaderValue>, &'a [u8], &'a str);
    // Each refusal of a request to `path` with `body` that only its headers make: what is wrong,
    // the `Paygate-Signature` values, and the expected code.
    let by_header: Vec<(&str, Vec<HeaderValue>, &str)> = vec![
        ("no header", vec![], INVALID),
        ("an empty header", one(String::new()), INVALID),
        ("garbage", one("garbage".into()), INVALID),
        ("v1 missing", one(format!("t={now},kid={kid}")), INVALID),
        ("t missing", one(format!("kid={kid},v1={mac}")), INVALID),
        ("kid missing", one(format!("t={now},v1={mac}")), INVALID),
        ("t repeated", one(format!("t={now},t={now},kid={kid},v1={mac}")), INVALID),
        ("v1 repeated", one(format!("{good},v1={mac}")), INVALID),
        ("an unknown field", one(format!("{good},v0={mac}")), INVALID),
        ("semicolons", one(good.replace(',', ";")), INVALID),
        ("uppercase hex", one(format!("t={now},kid={kid},v1={}", mac.to_uppercase())), INVALID),
        ("a short MAC", one(format!("t={now},kid={kid},v1={}", &mac[..62])), INVALID),
        ("t not digits", one(format!("t=now,kid={kid},v1={mac}")), INVALID),
        ("t with a leading zero", one(format!("t=0{now},kid={kid},v1={mac}")), INVALID),
        ("a negative t", one(format!("t=-{now},kid={kid},v1={mac}")), INVALID),
        ("an empty kid", one(format!("t={now},kid=,v1={mac}")), INVALID),
        ("a kid with a slash", one(format!("t={now},kid=a/b,v1={mac}")), INVALID),
        (
            "bytes that are not ASCII",
            vec![HeaderValue::from_bytes(format!("t={now},kid=k\u{e9},v1={mac}").as_bytes())
                .unwrap()],
            INVALID,
        ),
        ("two headers", vec![header(&good), header(&good)], INVALID),
        ("an unknown kid", one(sign(w.bank.secret.as_bytes(), "kid_unknown", now, &body)), INVALID),
        ("the kid of another bank", one(other_bank.signature(now, &body)), INVALID),
        ("a wrong MAC", one(stranger.signature(now, &body)), INVALID),
        (
            "the timestamp changed after signing",
            one(format!("t={},kid={kid},v1={mac}", now - 1)),
            INVALID,
        ),
        ("stale with the right MAC", one(w.bank.signature(now - 400, &body)), EXPIRED),
        ("stale with a wrong MAC", one(stranger.signature(now - 400, &body)), INVALID),
        ("from the future with the right MAC", one(w.bank.signature(now + 400, &body)), EXPIRED),
        ("from the future with a wrong MAC", one(stranger.signature(now + 400, &body)), INVALID),
        (
            "stale with an unknown kid",
            one(sign(w.bank.secret.as_bytes(), "kid_unknown", now - 400, &body)),
            INVALID,
        ),
        ("a t beyond 64 bits", one(format!("t=99999999999999999999,kid={kid},v1={mac}")), INVALID),
        (
            "a kid of 65 characters",
            one(format!("t={now},kid={},v1={mac}", "k".repeat(65))),
            INVALID,
        ),
    ];
    let mut cases: Vec<Refusal> = by_header
        .into_iter()
        .map(|(what, signatures, code)| (what, path, signatures, &body[..], code))
        .collect();
    cases.extend([
        (
            "an unknown bank in the path",
            "/v1/banks/NOPE/callbacks",
            one(good.clone()),
            &body[..],
            INVALID,
        ),
        (
            "a bank code that is not a code",
            "/v1/banks/vcb/callbacks",
            one(good.clone()),
            &body[..],
            INVALID,
        ),
        ("the body changed after signing", path, one(good.clone()), &changed_body[..], INVALID),
    ]);
    let before = snapshot(&w.app).await;
    for (what, path, signatures, body, code) in cases {
        let response = w.app.post_raw(path, &signatures, body.to_vec()).await;
        assert_eq!(response.status(), 401, "{what}");
        let problem = assert_problem(response, 401, code).await;
        assert!(problem.get("errors").is_none(), "{what}: {problem}");
        assert_eq!(snapshot(&w.app).await, before, "{what}");
    }

    // The same request properly signed is accepted: the failures above were the signatures'.
    let response = w.app.post_raw(path, &[header(&w.bank.signature(now_s(), &body))], body).await;
    assert_eq!(json_200(response).await["result"], "accepted");
}

#[tokio::test]
async fn a_signature_with_spaces_fields_in_any_order_and_a_timestamp_within_tolerance_is_accepted()
{
    let w = World::new().await;
    let now = now_s();
    // (what, signing time, how the header lays out t, kid and mac)
    type Layout = fn(i64, &str, &str) -> String;
    let canonical: Layout = |t, kid, mac| format!("t={t},kid={kid},v1={mac}");
    let spaced: Layout = |t, kid, mac| format!("t = {t} ,\tkid={kid} , v1= {mac}");
    let reordered: Layout = |t, kid, mac| format!("v1={mac},kid={kid},t={t}");
    let variants = [
        ("spaces around fields and equals signs", now, spaced),
        ("fields in another order", now, reordered),
        ("signed 290 seconds ago", now - 290, canonical),
        ("signed 290 seconds ahead", now + 290, canonical),
    ];
    for (n, (what, t, layout)) in variants.into_iter().enumerate() {
        let id = w.order(&format!("H12-FORMS-{n}")).await;
        let body =
            serde_json::to_vec(&succeeded(&format!("FT-FORM-{n}"), &id, &paid_a_minute_ago()))
                .unwrap();
        let signed = w.bank.signature(t, &body);
        let mac = signed.rsplit_once("v1=").unwrap().1;
        let value = layout(t, &w.bank.kid, mac);
        let response = w.app.post_raw("/v1/banks/VCB/callbacks", &[header(&value)], body).await;
        assert_eq!(json_200(response).await["result"], "accepted", "{what}");
    }
}

#[tokio::test]
async fn the_configured_tolerance_decides_which_timestamps_are_stale() {
    let w = World::with(Config { signature_tolerance_s: 30, ..test_config() }).await;
    let id = w.order("H12-TOLERANCE").await;
    let body = serde_json::to_vec(&succeeded("FT-TOL", &id, &paid_a_minute_ago())).unwrap();
    let before = snapshot(&w.app).await;

    let stale = w.app.post_signed_ago(&w.bank, "callbacks", 60, body.clone()).await;
    assert_problem(stale, 401, "signature_expired").await;
    assert_eq!(snapshot(&w.app).await, before);

    let fresh = w.app.post_signed_ago(&w.bank, "callbacks", 10, body).await;
    assert_eq!(json_200(fresh).await["result"], "accepted");
}

#[tokio::test]
async fn after_key_rotation_both_keys_verify_until_the_old_one_is_revoked() {
    let (w, id) = World::with_order("H12-ROTATION").await;
    let inquiry = json!({ "payment_id": id });
    let old = w.bank.clone();

    let response = w.app.admin(Method::POST, "/v1/banks/VCB/keys").send().await.unwrap();
    assert_eq!(response.status(), 201);
    let new = Signer::from_answer(BANK, &response.json().await.unwrap());
    assert_ne!(new.kid, old.kid);

    for signer in [&old, &new] {
        let response = w.app.post_signed(signer, "inquiry", &inquiry).await;
        assert_eq!(json_200(response).await["payment_id"], id.as_str());
    }

    let revoked = w
        .app
        .admin(Method::DELETE, &format!("/v1/banks/VCB/keys/{}", old.kid))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);

    let rejected = w.app.post_signed(&old, "inquiry", &inquiry).await;
    assert_problem(rejected, 401, "invalid_signature").await;
    let before = snapshot(&w.app).await;
    let callback = succeeded("FT-ROTATED", &id, &paid_a_minute_ago());
    let with_revoked = w.app.post_signed(&old, "callbacks", &callback).await;
    assert_problem(with_revoked, 401, "invalid_signature").await;
    assert_eq!(snapshot(&w.app).await, before);

    let response = w.app.post_signed(&new, "inquiry", &inquiry).await;
    assert_eq!(json_200(response).await["status"], "pending");
    let accepted = json_200(w.app.post_signed(&new, "callbacks", &callback).await).await;
    assert_eq!(accepted["result"], "accepted");
}

#[tokio::test]
async fn metrics_count_signature_failures_by_reason_and_callbacks_by_bank_and_result() {
    let (w, id) = World::with_order("H12-METRICS").await;
    let cancelled = w.order("H12-METRICS-CANCELLED").await;
    w.cancel(&cancelled).await;
    let paid_at = paid_a_minute_ago();
    let body = serde_json::to_vec(&succeeded("FT-M1", &id, &paid_at)).unwrap();
    let path = "/v1/banks/VCB/callbacks";
    let stranger = Signer { secret: "bsk_wrong".to_owned(), ..w.bank.clone() };

    // Signature failures: 2 malformed, 1 unknown key, 1 bad MAC, 1 expired.
    w.app.post_raw(path, &[], body.clone()).await;
    w.app.post_raw(path, &[header("t=1")], body.clone()).await;
    let unknown = sign(b"secret", "kid_unknown", now_s(), &body);
    w.app.post_raw(path, &[header(&unknown)], body.clone()).await;
    w.app.post_raw(path, &[header(&stranger.signature(now_s(), &body))], body.clone()).await;
    w.app.post_raw(path, &[header(&w.bank.signature(now_s() - 1_000, &body))], body.clone()).await;
    // Callbacks: one of each result.
    let callbacks: [(Value, u16); 8] = [
        (succeeded("FT-M1", &id, &paid_at), 200),
        (succeeded("FT-M1", &id, &paid_at), 200),
        (succeeded("FT-M2", &id, &paid_at), 200),
        (failed("FT-M3", &id), 200),
        (failed("FT-M1", &id), 409),
        (succeeded("FT-M4", "pay_nope", &paid_at), 404),
        (changed(&succeeded("FT-M5", &cancelled, &paid_at), "amount", Some(json!("7"))), 422),
        (json!({"bank_txn_id": "FT-M6"}), 422),
    ];
    for (callback, status) in &callbacks {
        let response = w.deliver(callback).await;
        assert_eq!(response.status().as_u16(), *status, "{callback}");
    }

    let text = w.app.metrics().await;
    for (reason, expected) in [("malformed", 2), ("unknown_key", 1), ("bad_mac", 1), ("expired", 1)]
    {
        let series = format!("paygate_signature_failures_total{{reason=\"{reason}\"}}");
        assert_eq!(counter(&text, &series), expected, "{series} in\n{text}");
    }
    for result in [
        "accepted",
        "duplicate",
        "exception",
        "failed",
        "conflict",
        "not_found",
        "amount_mismatch",
        "invalid",
    ] {
        let series = format!("paygate_bank_callbacks_total{{bank=\"VCB\",result=\"{result}\"}}");
        assert_eq!(counter(&text, &series), 1, "{series} in\n{text}");
    }
}
