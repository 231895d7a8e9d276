//! The bank's side: the signed `refund.requested` instruction delivered to a real receiver
//! (retried, and held until a `refund_url` exists), the bank's signed result (posted exactly
//! once, duplicates and conflicts, another bank's or an unapproved refund), the agency's
//! refund events, and the ledger after it all.

use super::*;

/// The world's bank's `refund_url` is a receiver answering as `behaviour` says.
async fn listening(r: &Refunds, behaviour: Behaviour) -> Receiver {
    let receiver = Receiver::start(behaviour).await;
    r.set_refund_url(Some(&receiver.url(REFUND_PATH))).await;
    receiver
}

/// A new signing key of the world's bank, which becomes its newest.
async fn newer_key(r: &Refunds) -> Signer {
    let answer =
        r.w.app
            .admin(Method::POST, &format!("/v1/banks/{BANK}/keys"))
            .json(&json!({}))
            .json_with(201)
            .await;
    Signer::from_answer(BANK, &answer)
}

#[tokio::test]
async fn an_approved_refund_is_delivered_to_the_refund_url_signed_with_the_banks_newest_key() {
    let r = Refunds::new().await;
    let receiver = listening(&r, Behaviour::status(200)).await;
    let newest = newer_key(&r).await;
    let id = r.paid_order("H12-BK-1", "FT-BK-1").await;
    let pending = id_of(&r.request(&id, "50000").await);
    // A refund waiting for approval is no instruction.
    assert_eq!(receiver.count(), 0);
    let approved = json_with(r.approve(&r.checker_key, &pending).await, 200).await;

    let requests = receiver.wait_for(1, WAIT).await;
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, REFUND_PATH);
    assert_signed_by(request, &newest);
    let instruction = request.json();
    assert_members(&instruction, &["id", "type", "created_at", "refund"]);
    assert_eq!(instruction["type"], "refund.requested");
    assert_eq!(instruction["created_at"], approved["approved_at"]);
    let instruction_id: String =
        r.w.app.row("SELECT instruction_id FROM refunds WHERE id = $1", &[&pending]).await.get(0);
    assert_eq!(instruction["id"], json!(instruction_id));
    assert_eq!(request.header("paygate-event-id"), Some(instruction_id.as_str()));
    assert_members(&instruction["refund"], &INSTRUCTION_REFUND_FIELDS);
    assert_eq!(
        instruction["refund"],
        json!({"id": pending, "bank_txn_id": "FT-BK-1", "payment_id": id, "amount": "50000",
               "currency": "VND", "reason": REASON})
    );
    // Delivered once: acknowledged, and not sent again.
    receiver.assert_no_more_than(1, Duration::from_millis(500)).await;
    let row =
        r.w.app
            .row("SELECT delivery_status, attempts FROM refunds WHERE id = $1", &[&pending])
            .await;
    assert_eq!(row.get::<_, String>(0), "delivered");
    assert_eq!(row.get::<_, i32>(1), 1);
}

#[tokio::test]
async fn an_instruction_answered_with_an_error_is_sent_again_on_the_schedule() {
    let r = Refunds::with(Config { notify_backoff_s: vec![1, 1], ..test_config() }).await;
    let receiver = listening(&r, Behaviour::sequence(&[503, 500, 200])).await;
    let id = r.paid_order("H12-BK-2", "FT-BK-2").await;
    let refund = id_of(&r.approved(&id, "1000").await);

    let requests = receiver.wait_for(3, WAIT).await;
    let ids: Vec<Value> = requests.iter().map(|q| q.json()["id"].clone()).collect();
    assert_eq!(ids[0], ids[1]);
    assert_eq!(ids[1], ids[2]);
    for request in &requests {
        assert_signed_by(request, &r.w.bank);
    }
    receiver.assert_no_more_than(3, Duration::from_millis(1500)).await;
    let row = r
        .w
        .app
        .row("SELECT delivery_status, attempts, last_error FROM refunds WHERE id = $1", &[&refund])
        .await;
    assert_eq!(row.get::<_, String>(0), "delivered");
    assert_eq!(row.get::<_, i32>(1), 3);
    assert_eq!(row.get::<_, Option<String>>(2), None);
}

#[tokio::test]
async fn an_instruction_the_bank_never_acknowledges_is_dead_after_the_schedule() {
    let r = Refunds::with(Config { notify_backoff_s: vec![1], ..test_config() }).await;
    let receiver = listening(&r, Behaviour::status(500)).await;
    let id = r.paid_order("H12-BK-3", "FT-BK-3").await;
    let refund = id_of(&r.approved(&id, "1000").await);
    receiver.wait_for(2, WAIT).await;
    receiver.assert_no_more_than(2, Duration::from_millis(1500)).await;
    let row = r
        .w
        .app
        .row("SELECT delivery_status, attempts, last_error FROM refunds WHERE id = $1", &[&refund])
        .await;
    assert_eq!(row.get::<_, String>(0), "dead");
    assert_eq!(row.get::<_, i32>(1), 2);
    assert_eq!(row.get::<_, Option<String>>(2).as_deref(), Some("answered HTTP 500"));
    // The refund itself still waits for the bank's result.
    assert_eq!(r.refund(&refund).await["status"], "approved");
    // Operators see the failed attempts and the instruction given up in the metrics.
    let metrics = r.w.app.get("/metrics").send().await.unwrap().text().await.unwrap();
    for line in [
        "paygate_refund_instructions_total{outcome=\"failed\"} 2",
        "paygate_refund_instructions_total{outcome=\"dead\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} missing from:\n{metrics}");
    }
}

#[tokio::test]
async fn a_bank_without_a_refund_url_gets_the_instruction_once_one_is_set() {
    let r = Refunds::new().await;
    let id = r.paid_order("H12-BK-4", "FT-BK-4").await;
    let refund = id_of(&r.approved(&id, "1000").await);
    // Several poll intervals pass without an attempt: there is nowhere to send it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let row =
        r.w.app
            .row("SELECT delivery_status, attempts FROM refunds WHERE id = $1", &[&refund])
            .await;
    assert_eq!(row.get::<_, String>(0), "pending");
    assert_eq!(row.get::<_, i32>(1), 0);

    let receiver = listening(&r, Behaviour::status(200)).await;
    let requests = receiver.wait_for(1, WAIT).await;
    assert_eq!(requests[0].json()["refund"]["id"], json!(refund));
    assert_signed_by(&requests[0], &r.w.bank);
}

#[tokio::test]
async fn a_completed_result_posts_the_refund_once_and_the_same_result_again_is_a_duplicate() {
    let r = Refunds::new().await;
    let id = r.paid_order("H12-BK-5", "FT-BK-5").await;
    let refund = id_of(&r.approved(&id, "50000").await);
    let ledger_before = r.w.app.count("SELECT count(*) FROM ledger_transactions").await;

    let result = completed("RF-0001");
    let answer = json_with(r.result(&refund, &result).await, 200).await;
    assert_eq!(answer, json!({"result": "accepted", "refund_status": "completed"}));
    let done = r.refund(&refund).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["bank_refund_id"], "RF-0001");
    assert_eq!(done["completed_at"], result["completed_at"]);
    assert_eq!(r.w.payment(&id).await["refunded_amount"], "50000");
    assert_eq!(r.reserved(&id).await, ("50000".to_owned(), "50000".to_owned()));

    // One ledger transaction: the agency gives back what the bank returns.
    let rows = r
        .w
        .app
        .rows(
            "SELECT t.kind, t.refund_id, t.callback_id IS NULL, e.account, e.debit::text, e.credit::text
             FROM ledger_transactions t JOIN ledger_entries e ON e.transaction_id = t.id
             WHERE t.refund_id IS NOT NULL ORDER BY e.id",
            &[],
        )
        .await;
    let entries: Vec<(String, String, bool, String, String, String)> = rows
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4), row.get(5)))
        .collect();
    assert_eq!(
        entries,
        vec![
            (
                "refund".into(),
                refund.clone(),
                true,
                format!("agency:{AGENCY}:fee"),
                "50000".into(),
                "0".into()
            ),
            (
                "refund".into(),
                refund.clone(),
                true,
                format!("bank:{BANK}"),
                "0".into(),
                "50000".into()
            ),
        ]
    );

    // The same result again changes nothing; a different one is a conflict.
    let before = r.state().await;
    let again = json_with(r.result(&refund, &result).await, 200).await;
    assert_eq!(again, json!({"result": "duplicate", "refund_status": "completed"}));
    for other in [completed("RF-0002"), failed("Tài khoản đã đóng")] {
        assert_problem(r.result(&refund, &other).await, 409, "refund_result_conflict").await;
    }
    assert_eq!(r.state().await, before);
    assert_eq!(r.w.app.count("SELECT count(*) FROM ledger_transactions").await, ledger_before + 1);

    // The ledger still verifies, and balances show the money gone back.
    let verdict = r.w.verify().await;
    assert_eq!(verdict["ok"], true, "{verdict}");
    let balances = r.w.balances().await;
    assert_eq!(balances[&format!("bank:{BANK}")], "100000");
    assert_eq!(balances[&format!("agency:{AGENCY}:fee")], "-100000");
    // The rest of the order may still be refunded; no more.
    assert_problem(
        r.request_with(&r.w.agency_key, &id, &new_key(), &refund_body("100001")).await,
        422,
        "refund_exceeds_payment",
    )
    .await;
    assert_eq!(r.request(&id, "100000").await["status"], "pending_approval");
}

#[tokio::test]
async fn concurrent_deliveries_of_a_completed_result_post_it_once() {
    let r = Refunds::new().await;
    let id = r.paid_order("H12-BK-6", "FT-BK-6").await;
    let refund = id_of(&r.approved(&id, AMOUNT).await);
    let body = serde_json::to_vec(&completed("RF-0006")).unwrap();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let signature = r.w.bank.signature(integration_tests::clock::now_s(), &body);
            let request = r.w.app.raw_request(
                &format!("/v1/banks/{BANK}/refunds/{refund}/result"),
                &[integration_tests::signer::header(&signature)],
                body.clone(),
            );
            tokio::spawn(async move {
                let response = request.send().await.unwrap();
                assert_eq!(response.status(), 200);
                response.json::<Value>().await.unwrap()["result"].as_str().unwrap().to_owned()
            })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        if task.await.unwrap() == "accepted" {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 1);
    r.w.app.assert_count("SELECT count(*) FROM ledger_transactions WHERE kind = 'refund'", 1).await;
    assert_eq!(r.w.payment(&id).await["refunded_amount"], AMOUNT);
    assert_eq!(r.w.verify().await["ok"], true);
}

#[tokio::test]
async fn a_failed_result_frees_the_amount_and_posts_nothing() {
    let r = Refunds::new().await;
    let id = r.paid_order("H12-BK-7", "FT-BK-7").await;
    let refund = id_of(&r.approved(&id, AMOUNT).await);
    let ledger_before = r.w.app.count("SELECT count(*) FROM ledger_transactions").await;
    let answer = json_with(r.result(&refund, &failed("Tài khoản đã đóng")).await, 200).await;
    assert_eq!(answer, json!({"result": "accepted", "refund_status": "failed"}));
    let done = r.refund(&refund).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["failure_reason"], "Tài khoản đã đóng");
    assert_eq!(done["completed_at"], Value::Null);
    assert_eq!(r.reserved(&id).await, ("0".to_owned(), "0".to_owned()));
    assert_eq!(r.w.app.count("SELECT count(*) FROM ledger_transactions").await, ledger_before);
    let again = json_with(r.result(&refund, &failed("Tài khoản đã đóng")).await, 200).await;
    assert_eq!(again["result"], "duplicate");
    assert_problem(r.result(&refund, &completed("RF-7")).await, 409, "refund_result_conflict")
        .await;
    // The whole amount may be asked for again.
    assert_eq!(r.request(&id, AMOUNT).await["status"], "pending_approval");
    assert_eq!(r.w.verify().await["ok"], true);
}

#[tokio::test]
async fn a_result_for_another_banks_unapproved_or_unknown_refund_is_refund_not_found() {
    let r = Refunds::new().await;
    let other_bank = r.w.app.new_bank(OTHER_BANK).await;
    let id = r.paid_order("H12-BK-8", "FT-BK-8").await;
    let approved = id_of(&r.approved(&id, "1000").await);
    let pending = id_of(&r.request(&id, "1000").await);
    let rejected = id_of(&r.request(&id, "1000").await);
    json_with(r.reject(&r.checker_key, &rejected, "không").await, 200).await;
    let before = r.state().await;

    let result = completed("RF-8");
    assert_problem(r.result_by(&other_bank, &approved, &result).await, 404, "refund_not_found")
        .await;
    for refund in [&pending, &rejected, "rfd_000000000000000000000000", "nope"] {
        assert_problem(r.result(refund, &result).await, 404, "refund_not_found").await;
    }
    // A signature by another bank's key for this bank's path, or none, is refused first.
    let body = serde_json::to_vec(&result).unwrap();
    let signature = other_bank.signature(integration_tests::clock::now_s(), &body);
    let response =
        r.w.app
            .post_raw(
                &format!("/v1/banks/{BANK}/refunds/{approved}/result"),
                &[integration_tests::signer::header(&signature)],
                body.clone(),
            )
            .await;
    assert_eq!(response.status(), 401);
    let response =
        r.w.app.post_raw(&format!("/v1/banks/{BANK}/refunds/{approved}/result"), &[], body).await;
    assert_eq!(response.status(), 401);
    assert_eq!(r.state().await, before);
}

#[tokio::test]
async fn every_invalid_result_is_refused_and_changes_nothing() {
    let r = Refunds::new().await;
    let id = r.paid_order("H12-BK-9", "FT-BK-9").await;
    let refund = id_of(&r.approved(&id, "1000").await);
    let before = r.state().await;
    let in_an_hour = integration_tests::clock::rfc3339(integration_tests::clock::now_s() + 3600);
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({}), vec!["status"]),
        (json!({"status": "done"}), vec!["status"]),
        (json!({"status": "completed"}), vec!["bank_refund_id"]),
        (json!({"status": "completed", "bank_refund_id": ""}), vec!["bank_refund_id"]),
        (json!({"status": "completed", "bank_refund_id": "x".repeat(65)}), vec!["bank_refund_id"]),
        (json!({"status": "completed", "bank_refund_id": 5}), vec!["bank_refund_id"]),
        (
            json!({"status": "completed", "bank_refund_id": "R", "completed_at": "yesterday"}),
            vec!["completed_at"],
        ),
        (
            json!({"status": "completed", "bank_refund_id": "R", "completed_at": in_an_hour}),
            vec!["completed_at"],
        ),
        (json!({"status": "failed", "failure_reason": ""}), vec!["failure_reason"]),
        (json!({"status": "failed", "failure_reason": "x".repeat(256)}), vec!["failure_reason"]),
        (json!({"status": 1, "bank_refund_id": 2}), vec!["bank_refund_id", "status"]),
    ];
    for (body, fields) in cases {
        let response = r.result(&refund, &body).await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        let mut invalid = invalid_fields(&problem);
        invalid.sort();
        assert_eq!(invalid, fields, "{body}");
    }
    let body = b"not json".to_vec();
    let signature = r.w.bank.signature(integration_tests::clock::now_s(), &body);
    let response =
        r.w.app
            .post_raw(
                &format!("/v1/banks/{BANK}/refunds/{refund}/result"),
                &[integration_tests::signer::header(&signature)],
                body,
            )
            .await;
    assert_problem(response, 400, "malformed_json").await;
    assert_eq!(r.state().await, before);
}

#[tokio::test]
async fn the_agency_hears_of_its_completed_and_failed_refunds() {
    let r = Refunds::new().await;
    let hooks = Receiver::start(Behaviour::status(200)).await;
    let id = r.paid_order("H12-BK-10", "FT-BK-10").await;
    let paid_events = r.w.app.count("SELECT count(*) FROM events").await;
    r.w.app
        .admin(Method::PATCH, &format!("/v1/agencies/{AGENCY}"))
        .json(&json!({"notify_url": hooks.url("/hooks")}))
        .json_with(200)
        .await;
    let to_complete = id_of(&r.approved(&id, "1000").await);
    let to_fail = id_of(&r.approved(&id, "2000").await);
    json_with(r.result(&to_complete, &completed("RF-10")).await, 200).await;
    json_with(r.result(&to_fail, &failed("Sai tài khoản")).await, 200).await;
    // A redelivered result announces nothing again.
    json_with(r.result(&to_complete, &completed("RF-10")).await, 200).await;

    let requests = hooks.wait_for(paid_events as usize + 2, WAIT).await;
    let refund_events: Vec<Value> = requests
        .iter()
        .map(ReceivedRequest::json)
        .filter(|event| event["type"].as_str().unwrap().starts_with("refund."))
        .collect();
    assert_eq!(refund_events.len(), 2, "{refund_events:?}");
    for (event, refund, kind, status) in [
        (&refund_events[0], &to_complete, "refund.completed", "completed"),
        (&refund_events[1], &to_fail, "refund.failed", "failed"),
    ] {
        assert_members(event, &["id", "type", "created_at", "refund"]);
        assert_eq!(event["type"], kind);
        assert_members(&event["refund"], &REFUND_FIELDS);
        assert_eq!(event["refund"]["id"], json!(refund));
        assert_eq!(event["refund"]["status"], status);
    }
    hooks.assert_no_more_than(paid_events as usize + 2, Duration::from_millis(500)).await;
    let listed = r.w.app.get_json(&r.w.agency_key, &format!("/v1/events?payment_id={id}")).await;
    let types: Vec<&str> =
        listed["items"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, vec!["refund.failed", "refund.completed", "payment.paid"]);
    // Another agency's refunds never reach this agency: the events are its own.
    r.w.app
        .assert_count(
            &format!("SELECT count(*) FROM events WHERE type LIKE 'refund.%' AND agency_code <> '{AGENCY}'"),
            0,
        )
        .await;
}

#[tokio::test]
async fn a_bank_simulator_verifies_the_instruction_and_completes_the_refund_with_a_signed_result() {
    use integration_tests::bank_simulator::{BankSimulator, Verdict};
    let r = Refunds::new().await;
    let bank =
        BankSimulator::start(&r.w.app.address, vec![r.w.bank.clone()], Verdict::Complete).await;
    r.set_refund_url(Some(&bank.url())).await;
    let id = r.paid_order("H12-SIM-1", "FT-SIM-1").await;
    let refund = id_of(&r.approved(&id, "30000").await);

    let exchanges = bank.wait_for(1, WAIT).await;
    let exchange = &exchanges[0];
    assert_eq!(exchange.signature_error, None);
    assert_eq!(exchange.instruction["refund"]["id"], json!(refund));
    let (status, answer) = exchange.answer.clone().expect("an answer");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, json!({"result": "accepted", "refund_status": "completed"}));
    let done = r.refund(&refund).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["bank_refund_id"], exchange.result.as_ref().unwrap()["bank_refund_id"]);
    assert_eq!(r.w.payment(&id).await["refunded_amount"], "30000");
    assert_eq!(r.w.balance(&format!("bank:{BANK}")).await, "120000");
    assert_eq!(r.w.verify().await["ok"], true);
}

#[tokio::test]
async fn a_bank_simulator_that_cannot_refund_fails_it_and_frees_the_amount() {
    use integration_tests::bank_simulator::{BankSimulator, Verdict};
    let r = Refunds::new().await;
    let bank = BankSimulator::start(
        &r.w.app.address,
        vec![r.w.bank.clone()],
        Verdict::Fail("Tài khoản người nộp đã đóng".to_owned()),
    )
    .await;
    r.set_refund_url(Some(&bank.url())).await;
    let id = r.paid_order("H12-SIM-2", "FT-SIM-2").await;
    let refund = id_of(&r.approved(&id, AMOUNT).await);
    let exchanges = bank.wait_for(1, WAIT).await;
    assert_eq!(exchanges[0].answer.as_ref().unwrap().1["refund_status"], "failed");
    let done = r.refund(&refund).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["failure_reason"], "Tài khoản người nộp đã đóng");
    assert_eq!(r.reserved(&id).await, ("0".to_owned(), "0".to_owned()));
}
