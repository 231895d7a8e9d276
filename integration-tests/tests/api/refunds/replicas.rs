//! Refund instructions across restarts and replicas: a pending instruction outlives the app
//! that approved it, and two apps on one database send each instruction once.

use std::collections::HashSet;

use integration_tests::TestApp;

use super::*;

/// Sets `bank`'s `refund_url` through `app`'s admin key.
async fn set_refund_url(app: &TestApp, url: &str) {
    app.admin(Method::PATCH, &format!("/v1/banks/{BANK}"))
        .json(&json!({ "refund_url": url }))
        .json_with(200)
        .await;
}

#[tokio::test]
async fn an_instruction_approved_before_a_restart_is_delivered_by_the_restarted_app() {
    let r = Refunds::new().await;
    let id = r.paid_order("H12-RS-1", "FT-RS-1").await;
    let refund = id_of(&r.approved(&id, "1000").await);
    let signer = r.w.bank.clone();
    let old_address = r.w.app.address.clone();
    let settings = r.w.app.stop_keeping_database();
    // The first app is gone (and its workers with it) before the second starts.
    let deadline = std::time::Instant::now() + WAIT;
    while reqwest::get(format!("{old_address}/healthz")).await.is_ok() {
        assert!(std::time::Instant::now() < deadline, "the first app did not stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let app = TestApp::spawn_on(test_config(), settings).await;
    let receiver = Receiver::start(Behaviour::status(200)).await;
    set_refund_url(&app, &receiver.url(REFUND_PATH)).await;
    let requests = receiver.wait_for(1, WAIT).await;
    assert_eq!(requests[0].json()["refund"]["id"], json!(refund));
    assert_signed_by(&requests[0], &signer);
    receiver.assert_no_more_than(1, Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_app_instances_on_one_database_send_each_instruction_exactly_once() {
    const REFUNDS: usize = 30;
    let r = Refunds::new().await;
    let second = TestApp::spawn_on(test_config(), r.w.app.db_settings.clone()).await;
    let id = r.paid_order("H12-RS-2", "FT-RS-2").await;
    let mut refunds = HashSet::new();
    // No URL yet: the whole backlog becomes due for both instances at once.
    for _ in 0..REFUNDS {
        refunds.insert(id_of(&r.approved(&id, "1000").await));
    }
    let receiver = Receiver::start(Behaviour::status(200)).await;
    set_refund_url(&second, &receiver.url(REFUND_PATH)).await;

    let requests = receiver.wait_for(REFUNDS, WAIT).await;
    receiver.assert_no_more_than(REFUNDS, Duration::from_millis(1000)).await;
    let delivered: HashSet<String> = requests
        .iter()
        .map(|request| request.json()["refund"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(delivered, refunds);
    r.w.app
        .assert_count(
            "SELECT count(*) FROM refunds WHERE delivery_status = 'delivered' AND attempts = 1",
            REFUNDS as i64,
        )
        .await;
}
