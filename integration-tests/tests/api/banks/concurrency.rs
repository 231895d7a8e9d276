//! Concurrency.

use super::*;

/// Sends every `(body, signature)` at once; returns each answer's status and JSON body.
async fn all_at_once(app: &TestApp, requests: Vec<(Vec<u8>, String)>) -> Vec<(u16, Value)> {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(requests.len()));
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|(body, signature)| {
            let request = app.raw_request("/v1/banks/VCB/callbacks", &[header(&signature)], body);
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let response = request.send().await.expect("POST callback");
                let status = response.status().as_u16();
                let text = response.text().await.expect("an answer");
                (status, serde_json::from_str(&text).expect("JSON"))
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("the request task"));
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_identical_callbacks_are_accepted_once_and_posted_once() {
    let (w, id) = World::with_order("H12-CONCURRENT-SAME").await;
    let body = serde_json::to_vec(&succeeded("FT-RACE", &id, &paid_a_minute_ago())).unwrap();
    let signature = w.bank.signature(now_s(), &body);

    let answers = all_at_once(&w.app, vec![(body, signature); 50]).await;

    for (status, answer) in &answers {
        assert_eq!(*status, 200, "{answer}");
        assert_eq!(answer["payment_id"], id.as_str());
        assert_eq!(answer["payment_status"], "paid");
    }
    let results: Vec<&str> =
        answers.iter().map(|(_, answer)| answer["result"].as_str().unwrap()).collect();
    assert_eq!(results.iter().filter(|r| **r == "accepted").count(), 1, "{results:?}");
    assert_eq!(results.iter().filter(|r| **r == "duplicate").count(), 49, "{results:?}");
    assert_eq!(w.app.count("SELECT count(*) FROM bank_callbacks").await, 1);
    w.app.assert_count("SELECT count(*) FROM ledger_transactions", 1).await;
    assert_eq!(count_events(&w.app, &id, "payment.paid").await, 1);
    w.app.assert_count("SELECT count(*) FROM callback_exceptions", 0).await;
    assert_verified(&w.verify().await, 1, AMOUNT);
    let balances = w.balances().await;
    assert_eq!(balances.len(), 2, "{balances:?}");
    assert_eq!(balances["bank:VCB"], AMOUNT);
    assert_eq!(balances[&agency_account("fee")], "-150000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_concurrent_callbacks_for_one_order_pay_it_once_and_send_nine_to_suspense() {
    let (w, id) = World::with_order("H12-CONCURRENT-MANY").await;
    let paid_at = paid_a_minute_ago();
    let requests = (0..10)
        .map(|n| {
            let body =
                serde_json::to_vec(&succeeded(&format!("FT-MANY-{n}"), &id, &paid_at)).unwrap();
            let signature = w.bank.signature(now_s(), &body);
            (body, signature)
        })
        .collect();

    let answers = all_at_once(&w.app, requests).await;

    let accepted: Vec<&Value> = answers
        .iter()
        .map(|(status, answer)| {
            assert_eq!(*status, 200, "{answer}");
            answer
        })
        .filter(|answer| answer["result"] == "accepted")
        .collect();
    assert_eq!(accepted.len(), 1, "{answers:?}");
    let exceptions: Vec<&Value> = answers
        .iter()
        .map(|(_, answer)| answer)
        .filter(|answer| answer["result"] == "exception")
        .collect();
    assert_eq!(exceptions.len(), 9, "{answers:?}");
    for answer in exceptions {
        assert_eq!(answer["exception"], "double_payment");
        assert_eq!(answer["payment_status"], "paid");
    }
    assert_eq!(w.app.count("SELECT count(*) FROM bank_callbacks").await, 10);
    assert_eq!(count_events(&w.app, &id, "payment.paid").await, 1);
    let listed = w.exceptions("").await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 9);
    assert!(listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|item| item["reason"] == "double_payment" && item["kind"] == "suspense"));
    assert_verified(&w.verify().await, 10, "1500000");
    let balances = w.balances().await;
    assert_eq!(balances["bank:VCB"], "1500000");
    assert_eq!(balances[&agency_account("fee")], "-150000");
    assert_eq!(balances["suspense:VCB"], "-1350000");
    // The order names the callback that paid it, and that one is not listed as an exception.
    let payment = w.payment(&id).await;
    let paid_by = payment["bank_txn_id"].as_str().unwrap();
    assert!(listed["items"].as_array().unwrap().iter().all(|item| item["bank_txn_id"] != paid_by));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_racing_a_callback_either_pays_the_order_or_sends_the_money_to_suspense() {
    let w = World::new().await;
    let paid_at = paid_a_minute_ago();
    let mut ids = Vec::new();
    for n in 0..10 {
        ids.push(w.order(&format!("H12-RACE-{n}")).await);
    }

    let mut races = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        let body = serde_json::to_vec(&succeeded(&format!("FT-RACE-{n}"), id, &paid_at)).unwrap();
        let signature = header(&w.bank.signature(now_s(), &body));
        let callback = w.app.raw_request("/v1/banks/VCB/callbacks", &[signature], body).send();
        let cancel = w.app.post_with(&w.agency_key, &format!("/v1/payments/{id}/cancel")).send();
        races.push(tokio::spawn(async move {
            let (callback, cancel) = tokio::join!(callback, cancel);
            let (callback_status, callback) = read_answer(callback, "POST callback").await;
            let (cancel_status, cancel) = read_answer(cancel, "POST cancel").await;
            let json = |text: String| serde_json::from_str::<Value>(&text).expect("JSON");
            (callback_status, json(callback), cancel_status, json(cancel))
        }));
    }

    let (mut paid, mut cancelled) = (0, 0);
    for (id, race) in ids.iter().zip(races) {
        let (callback_status, callback, cancel_status, cancel) = race.await.unwrap();
        assert_eq!(callback_status, 200, "{callback}");
        let status = w.payment(id).await["status"].clone();
        if status == "paid" {
            paid += 1;
            assert_eq!(callback["result"], "accepted", "{callback}");
            assert_eq!(cancel_status, 409, "{cancel}");
            assert_eq!(cancel["code"], "not_cancellable");
            assert_eq!(count_events(&w.app, id, "payment.cancelled").await, 0);
        } else {
            cancelled += 1;
            assert_eq!(status, "cancelled");
            assert_eq!(cancel_status, 200, "{cancel}");
            assert_eq!(
                callback,
                json!({"result": "exception", "exception": "order_closed", "payment_id": id,
                       "payment_status": "cancelled"})
            );
            assert_eq!(count_events(&w.app, id, "payment.paid").await, 0);
        }
    }
    assert_eq!(paid + cancelled, 10);
    assert_verified(&w.verify().await, 10, "1500000");
    let balances = w.balances().await;
    assert_eq!(balances["bank:VCB"], "1500000");
    let owed = |count: i64| {
        if count == 0 {
            None
        } else {
            Some(format!("-{}", 150_000 * count))
        }
    };
    assert_eq!(balances.get(&agency_account("fee")).cloned(), owed(paid), "{balances:?}");
    assert_eq!(balances.get("suspense:VCB").cloned(), owed(cancelled), "{balances:?}");
}
