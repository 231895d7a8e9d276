//! Conformance checklists: each step is recorded as it happens, and a new agency or bank
//! reaches `ready` with the sandbox alone.

use integration_tests::answers::{json_with, RequestExt};
use integration_tests::assert_problem;
use integration_tests::clock::paid_a_minute_ago;
use integration_tests::orders::order_body;
use integration_tests::signer::Signer;
use integration_tests::world::{AMOUNT, OTHER_AGENCY};
use reqwest::Method;
use serde_json::json;

use super::{done, done_steps, Sandbox, SBX_AGENCY, SBX_BANK};

const AGENCY_STEPS: [&str; 8] = [
    "order_created",
    "idempotent_replay",
    "validation_error_seen",
    "order_cancelled",
    "notification_acknowledged",
    "redelivery_requested",
    "refund_requested",
    "inquiry_case_opened",
];
const BANK_STEPS: [&str; 8] = [
    "inquiry",
    "callback_accepted",
    "callback_failed_status",
    "redelivery_duplicate",
    "bad_signature_rejected",
    "expired_signature_rejected",
    "key_rotated",
    "refund_result",
];

#[tokio::test]
async fn a_new_agency_reaches_ready_using_only_the_sandbox() {
    let s = Sandbox::new().await;
    let party = format!("agencies/{SBX_AGENCY}");
    let list = s.checklist(&party).await;
    assert_eq!(list["agency"], SBX_AGENCY);
    assert_eq!(list["sandbox"], true);
    assert_eq!(list["ready"], false);
    let steps: Vec<&str> =
        list["steps"].as_array().unwrap().iter().map(|i| i["step"].as_str().unwrap()).collect();
    assert_eq!(steps, AGENCY_STEPS);
    assert!(done_steps(&list).is_empty(), "{list}");

    // A create, and its replay.
    let body = order_body("fee", "SBX-0001", AMOUNT);
    let create = || {
        s.w.app.post_with(&s.key, "/v1/payments").header("Idempotency-Key", "create-1").json(&body)
    };
    let order = create().json_with(201).await["id"].as_str().unwrap().to_owned();
    assert_eq!(done_steps(&s.checklist(&party).await), ["order_created"]);
    create().json_with(201).await;
    // A create refused as invalid.
    let mut invalid = order_body("fee", "SBX-0002", AMOUNT);
    invalid["amount"] = json!("-1");
    s.w.app.post_payment(&s.key, &invalid).await;
    let list = s.checklist(&party).await;
    assert_eq!(done_steps(&list), ["order_created", "idempotent_replay", "validation_error_seen"]);
    // A failed create is not a created order: first_at of order_created is unchanged.
    let created_at = list["steps"][0]["first_at"].clone();

    // A cancel.
    let cancelled = s.order("SBX-0003").await;
    s.w.app.cancel(&s.key, &cancelled).await;
    // A notification acknowledged by the agency's endpoint (the sandbox bank pays).
    s.pay(&order, "succeeded").await;
    s.wait_for_step(&party, "notification_acknowledged").await;
    // A redelivery asked for.
    let events = s.w.app.get_json(&s.key, &format!("/v1/events?payment_id={order}")).await;
    let event = events["items"][0]["id"].as_str().unwrap().to_owned();
    let answer = s.w.app.post_with(&s.key, &format!("/v1/events/{event}/redeliver")).send().await;
    assert_eq!(answer.unwrap().status(), 202);
    // A refund requested.
    s.approved_refund(&order, "50000").await;
    // An inquiry case.
    let other = s.order("SBX-0004").await;
    s.w.app
        .post_with(&s.key, "/v1/cases")
        .json(&json!({"payment_id": other, "message": "Người nộp báo đã chuyển tiền"}))
        .json_with(201)
        .await;

    let list = s.checklist(&party).await;
    assert_eq!(done_steps(&list), AGENCY_STEPS, "{list}");
    assert_eq!(list["ready"], true, "{list}");
    assert_eq!(list["steps"][0]["first_at"], created_at);
    for item in list["steps"].as_array().unwrap() {
        assert!(item["first_at"].as_str().unwrap() <= item["last_at"].as_str().unwrap(), "{item}");
    }

    // The agency reads its own; an auditor reads any; another agency's key finds nothing.
    let own = s.w.app.get_json(&s.key, &format!("/v1/{party}/checklist")).await;
    assert_eq!(own["ready"], true);
    let read = s.w.app.get_json(&s.w.auditor_key, &format!("/v1/{party}/checklist")).await;
    assert_eq!(read["ready"], true);
    let other_key =
        s.w.app.create_agency(OTHER_AGENCY).await["api_key"].as_str().unwrap().to_owned();
    let answer = s.w.app.get_with(&other_key, &format!("/v1/{party}/checklist")).send().await;
    assert_problem(answer.unwrap(), 404, "agency_not_found").await;
    let answer = s.w.app.admin(Method::GET, "/v1/agencies/NO.SUCH/checklist").send().await;
    assert_problem(answer.unwrap(), 404, "agency_not_found").await;
    let answer = s.w.app.get("/v1/agencies/NO.SUCH/checklist").send().await;
    assert_problem(answer.unwrap(), 401, "unauthenticated").await;
}

#[tokio::test]
async fn a_new_bank_reaches_ready_with_its_own_signed_requests() {
    let s = Sandbox::new().await;
    let party = format!("banks/{SBX_BANK}");
    let list = s.checklist(&party).await;
    assert_eq!(list["bank"], SBX_BANK);
    assert_eq!(list["sandbox"], true);
    let steps: Vec<&str> =
        list["steps"].as_array().unwrap().iter().map(|i| i["step"].as_str().unwrap()).collect();
    assert_eq!(steps, BANK_STEPS);
    assert!(done_steps(&list).is_empty(), "{list}");

    let order = s.order("SBX-0001").await;
    let app = &s.w.app;
    json_with(app.post_signed(&s.bank, "inquiry", &json!({"payment_id": order})).await, 200).await;
    // A callback refused (unknown order) is no accepted callback.
    let unknown = json!({"bank_txn_id": "SB0", "payment_id": "pay_unknown", "amount": AMOUNT,
                         "status": "succeeded", "paid_at": paid_a_minute_ago()});
    assert_problem(app.post_signed(&s.bank, "callbacks", &unknown).await, 404, "payment_not_found")
        .await;
    assert_eq!(done_steps(&s.checklist(&party).await), ["inquiry"]);

    let failed = json!({"bank_txn_id": "SB1", "payment_id": order, "amount": AMOUNT,
                        "status": "failed", "failure_reason": "Không đủ số dư"});
    json_with(app.post_signed(&s.bank, "callbacks", &failed).await, 200).await;
    let paid = json!({"bank_txn_id": "SB2", "payment_id": order, "amount": AMOUNT,
                      "status": "succeeded", "paid_at": paid_a_minute_ago()});
    json_with(app.post_signed(&s.bank, "callbacks", &paid).await, 200).await;
    let again = json_with(app.post_signed(&s.bank, "callbacks", &paid).await, 200).await;
    assert_eq!(again["result"], "duplicate");
    // Signatures refused: a wrong secret, and a right one too old.
    let wrong = Signer { secret: "not the secret".to_owned(), ..s.bank.clone() };
    let answer = app.post_signed(&wrong, "inquiry", &json!({"payment_id": order})).await;
    assert_problem(answer, 401, "invalid_signature").await;
    let bytes = serde_json::to_vec(&json!({"payment_id": order})).unwrap();
    let answer = app.post_signed_ago(&s.bank, "inquiry", 1_000, bytes).await;
    assert_problem(answer, 401, "signature_expired").await;
    let list = s.checklist(&party).await;
    assert!(!done(&list, "key_rotated"), "{list}");
    // A request signed with a key made after the first.
    let rotated =
        app.admin(Method::POST, &format!("/v1/banks/{SBX_BANK}/keys")).json_with(201).await;
    let rotated = Signer::from_answer(SBX_BANK, &rotated);
    json_with(app.post_signed(&rotated, "inquiry", &json!({"payment_id": order})).await, 200).await;
    // A refund result.
    let refund = s.approved_refund(&order, "50000").await;
    let result = json!({"status": "completed", "bank_refund_id": "RF1",
                        "completed_at": paid_a_minute_ago()});
    json_with(app.post_signed(&rotated, &format!("refunds/{refund}/result"), &result).await, 200)
        .await;

    let list = s.checklist(&party).await;
    assert_eq!(done_steps(&list), BANK_STEPS, "{list}");
    assert_eq!(list["ready"], true, "{list}");

    // Admins and auditors read a bank's checklist; an agency may not.
    let read = app.get_json(&s.w.auditor_key, &format!("/v1/{party}/checklist")).await;
    assert_eq!(read["ready"], true);
    let answer = app.get_with(&s.key, &format!("/v1/{party}/checklist")).send().await;
    assert_problem(answer.unwrap(), 403, "forbidden").await;
    let answer = app.admin(Method::GET, "/v1/banks/NOSUCH/checklist").send().await;
    assert_problem(answer.unwrap(), 404, "bank_not_found").await;
    // A refused signature on the path of a bank that does not exist records nothing.
    let ghost = Signer { bank: "NOSUCH".to_owned(), ..s.bank.clone() };
    let answer = app.post_signed(&ghost, "inquiry", &json!({"payment_id": order})).await;
    assert_problem(answer, 401, "invalid_signature").await;
    app.assert_count("SELECT count(*) FROM bank_checklist WHERE bank_code = 'NOSUCH'", 0).await;
}
