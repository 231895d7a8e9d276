//! The sealing worker: seals appear, chain, verify, and never cover a transaction that may
//! still commit.

use integration_tests::test_config;
use integration_tests::world::AGENCY;
use paygate::config::Config;
use paygate::domain::{AgencyCode, Amount, BankCode, ObligationCode, PaymentId};
use paygate::ledger::{Book, Kind, Posting};

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_are_sealed_in_a_signed_gap_free_chain_an_auditor_can_recompute() {
    let w = World::new().await;
    let key = w.auditor_key.clone();
    // Three rounds of callbacks, each sealed before the next, so that there are several seals.
    for round in 0..3 {
        let ids = orders(&w, &format!("H12-SEAL-{round}"), 3).await;
        pay_all(&w, &w.app, &ids).await;
        let last = last_transaction(&w.app).await;
        wait_sealed_through(&w.app, &key, last).await;
    }
    let transactions = transaction_ids(&w.app).await;
    assert_eq!(transactions.len(), 9);

    let seals = all_seals(&w.app, &key).await;
    assert!(seals.len() >= 2, "{seals:?}");
    assert_chain(&seals, &transactions);
    assert_counts_match(&w.app, &seals).await;

    // Every signature verifies with the published key, checked here with ed25519-dalek.
    let keys = w.app.get_with(&key, "/v1/ledger/seals/key").json_with(200).await;
    assert_eq!(keys["public_key"], public_key_of(integration_tests::TEST_SEAL_SEED).as_str());
    assert_eq!(keys["previous_keys"], json!([]));
    for seal in &seals {
        assert_eq!(seal["public_key"], keys["public_key"], "{seal}");
        assert!(
            signature_verifies(
                seal["public_key"].as_str().unwrap(),
                seal["hash"].as_str().unwrap(),
                seal["signature"].as_str().unwrap()
            ),
            "{seal}"
        );
    }

    // Each seal's content, hashed with this test's own canonical JSON, gives its hash.
    for seal in &seals {
        let seq = seal["seq"].as_i64().unwrap();
        let content = w.app.get_with(&key, &format!("/v1/ledger/seals/{seq}")).json_with(200).await;
        for member in ["seq", "first_transaction", "last_transaction", "transactions", "hash"] {
            assert_eq!(content[member], seal[member], "{member}");
        }
        let ledger = content["ledger"].as_array().expect("ledger");
        assert_eq!(ledger.len() as i64, content["transactions"].as_i64().unwrap());
        for transaction in ledger {
            let entries = transaction["entries"].as_array().unwrap();
            assert_eq!(entries.len(), 2, "{transaction}");
            assert_eq!(entries[0]["account"], format!("bank:{BANK}").as_str());
            assert_eq!(entries[0]["debit"], AMOUNT);
            assert_eq!(entries[1]["credit"], AMOUNT);
        }
        assert_eq!(recompute_hash(&content), seal["hash"].as_str().unwrap(), "seal {seq}");
    }

    let verdict = w.verify().await;
    assert_eq!(verdict["ok"], true, "{verdict}");
    assert_eq!(verdict["seals"], seals.len() as i64);
    assert_eq!(verdict["sealed_through"], *transactions.last().unwrap());
    assert!(verdict.get("broken_seal").is_none(), "{verdict}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_seal_covers_a_transaction_still_open_and_one_does_once_it_commits() {
    let w = World::new().await;
    let key = w.auditor_key.clone();
    let ids = orders(&w, "H12-HORIZON", 5).await;
    pay_all(&w, &w.app, &ids[..1]).await;
    wait_sealed_through(&w.app, &key, last_transaction(&w.app).await).await;

    // The test's own connection posts ledger transaction N with paygate's posting code, and
    // keeps its database transaction open.
    let mut client = w.app.db.get().await.unwrap();
    let open = client.transaction().await.unwrap();
    let callback_id: i64 = open
        .query_one(
            "INSERT INTO bank_callbacks
                 (bank_code, bank_txn_id, payment_id, amount, currency, status, paid_at, outcome)
             VALUES ($1, 'FT-HELD-OPEN', $2, 150000, 'VND', 'succeeded', now(), 'paid')
             RETURNING id",
            &[&BANK, &ids[1]],
        )
        .await
        .unwrap()
        .get(0);
    let posting = Posting::transfer(
        Book::Live,
        Kind::Payment,
        callback_id,
        &PaymentId::from_trusted(ids[1].clone()),
        &BankCode::parse(BANK).unwrap(),
        Book::Live.agency(
            &AgencyCode::parse(AGENCY).unwrap(),
            &ObligationCode::from_trusted(ObligationCode::FEE),
        ),
        Amount::parse(AMOUNT).unwrap(),
    );
    let held = paygate::ledger::post(&open, &posting).await.unwrap();

    // Later callbacks commit meanwhile, with ids above N.
    pay_all(&w, &w.app, &ids[2..]).await;
    let later: i64 =
        w.app.row("SELECT count(*) FROM ledger_transactions WHERE id > $1", &[&held]).await.get(0);
    assert_eq!(later, 3, "the later callbacks committed while N is open");
    // The sealer has reached the point where it waits for the open transaction.
    let deadline = Instant::now() + SEALED_WITHIN;
    loop {
        let waiting: i64 = w
            .app
            .row(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE query LIKE '%pg_snapshot_xmin%' AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .get(0);
        if waiting > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the sealer never waited for the open transaction");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let verdict = w.verify().await;
    assert!(verdict["sealed_through"].as_i64().unwrap() < held, "{verdict}");
    w.app
        .assert_count(
            &format!("SELECT count(*) FROM ledger_seals WHERE last_transaction >= {held}"),
            0,
        )
        .await;

    open.commit().await.unwrap();
    let last = last_transaction(&w.app).await;
    let verdict = wait_sealed_through(&w.app, &key, last).await;
    assert_eq!(verdict["ok"], true, "{verdict}");
    let seals = all_seals(&w.app, &key).await;
    let transactions = transaction_ids(&w.app).await;
    assert!(transactions.contains(&held));
    assert_chain(&seals, &transactions);
    assert_counts_match(&w.app, &seals).await;
    let covering: Vec<&Value> = seals
        .iter()
        .filter(|seal| {
            seal["first_transaction"].as_i64().unwrap() <= held
                && held <= seal["last_transaction"].as_i64().unwrap()
        })
        .collect();
    let seq = covering[0]["seq"].as_i64().unwrap();
    let content = w.app.get_with(&key, &format!("/v1/ledger/seals/{seq}")).json_with(200).await;
    assert!(
        content["ledger"].as_array().unwrap().iter().any(|t| t["id"] == held),
        "the held transaction is in its seal's content: {content}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hundred_twenty_concurrent_callbacks_are_each_sealed_exactly_once() {
    let w = World::with(Config { seal_interval_ms: 20, ..test_config() }).await;
    let key = w.auditor_key.clone();
    let ids = orders(&w, "H12-MANY", 120).await;
    // Sealing runs while the callbacks commit in any order.
    let (first_half, second_half) = ids.split_at(60);
    tokio::join!(pay_all(&w, &w.app, first_half), pay_all(&w, &w.app, second_half));

    let transactions = transaction_ids(&w.app).await;
    assert_eq!(transactions.len(), 120);
    let verdict = wait_sealed_through(&w.app, &key, *transactions.last().unwrap()).await;
    assert_eq!(verdict["ok"], true, "{verdict}");
    let seals = all_seals(&w.app, &key).await;
    assert_chain(&seals, &transactions);
    assert_counts_match(&w.app, &seals).await;
    let sealed: i64 = seals.iter().map(|seal| seal["transactions"].as_i64().unwrap()).sum();
    assert_eq!(sealed, 120, "each transaction counted in one seal");
    assert_eq!(verdict["seals"], seals.len() as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_sealing_one_database_at_once_never_fork_or_overlap() {
    let fast = Config { seal_interval_ms: 10, ..test_config() };
    let w = World::with(fast.clone()).await;
    let replica = TestApp::spawn_on(fast, w.app.db_settings.clone()).await;
    let key = w.auditor_key.clone();
    let ids = orders(&w, "H12-REPLICAS", 80).await;
    let (one, other) = ids.split_at(40);
    // Callbacks reach both replicas, and both seal.
    tokio::join!(pay_all(&w, &w.app, one), pay_all(&w, &replica, other));

    let transactions = transaction_ids(&w.app).await;
    assert_eq!(transactions.len(), 80);
    let last = *transactions.last().unwrap();
    wait_sealed_through(&w.app, &key, last).await;
    let seals = all_seals(&replica, &key).await;
    assert_chain(&seals, &transactions);
    assert_counts_match(&w.app, &seals).await;
    w.app
        .assert_count(
            "SELECT count(*) FROM ledger_seals a JOIN ledger_seals b ON a.seq < b.seq
             AND a.last_transaction >= b.first_transaction",
            0,
        )
        .await;
    for app in [&w.app, &replica] {
        let verdict = app.get_with(&key, "/v1/ledger/verify").json_with(200).await;
        assert_eq!(verdict["ok"], true, "{verdict}");
        assert_eq!(verdict["seals"], seals.len() as i64);
    }
}

#[tokio::test]
async fn with_sealing_off_nothing_is_sealed_and_the_ledger_still_verifies() {
    let w = World::with(Config { seal_interval_ms: 0, ..test_config() }).await;
    let ids = orders(&w, "H12-UNSEALED", 2).await;
    pay_all(&w, &w.app, &ids).await;
    // Another app on the same database seals it: sealing off only stops this replica's loop.
    let verdict = w.verify().await;
    assert_eq!(verdict["ok"], true, "{verdict}");
    assert_eq!(verdict["seals"], 0);
    assert_eq!(verdict["sealed_through"], Value::Null);
    w.app.assert_count("SELECT count(*) FROM ledger_seals", 0).await;
    let sealer = TestApp::spawn_on(test_config(), w.app.db_settings.clone()).await;
    let last = last_transaction(&w.app).await;
    let verdict = wait_sealed_through(&sealer, &w.auditor_key, last).await;
    assert_eq!(verdict["ok"], true, "{verdict}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_of_ten_thousand_and_fifty_transactions_is_sealed_in_a_full_seal_and_a_short_one()
{
    // Sealing is off while the backlog builds up, so that no seal starts in the middle of it.
    let w = World::with(Config { seal_interval_ms: 0, ..test_config() }).await;
    let payment = w.order("H12-BACKLOG").await;
    // 10,050 suspense postings committed at once, written as the owner in one transaction
    // (through the API this would take minutes).
    let mut client = w.app.db.get().await.unwrap();
    let backlog = client.transaction().await.unwrap();
    backlog
        .execute(
            "WITH c AS (
                 INSERT INTO bank_callbacks (bank_code, bank_txn_id, payment_id, amount, currency,
                     status, paid_at, outcome, exception)
                 SELECT $1, 'FT-BACKLOG-' || i, $2, 150000, 'VND', 'succeeded', now(),
                        'exception', 'double_payment'
                 FROM generate_series(1, 10050) AS i
                 RETURNING id),
             t AS (
                 INSERT INTO ledger_transactions (kind, callback_id, payment_id)
                 SELECT 'suspense', c.id, $2 FROM c ORDER BY c.id
                 RETURNING id)
             INSERT INTO ledger_entries (transaction_id, account, debit, credit)
             SELECT t.id, e.account, e.debit, e.credit
             FROM t, (VALUES ('bank:' || $1, 150000, 0), ('suspense:' || $1, 0, 150000))
                 AS e(account, debit, credit)
             ORDER BY t.id",
            &[&BANK, &payment],
        )
        .await
        .unwrap();
    backlog.commit().await.unwrap();

    let sealer = TestApp::spawn_on(test_config(), w.app.db_settings.clone()).await;
    let last = last_transaction(&w.app).await;
    let verdict = wait_sealed_through(&sealer, &w.auditor_key, last).await;
    assert_eq!(verdict["ok"], true, "{verdict}");
    let seals = all_seals(&w.app, &w.auditor_key).await;
    let sizes: Vec<i64> = seals.iter().map(|seal| seal["transactions"].as_i64().unwrap()).collect();
    assert_eq!(sizes, vec![10_000, 50], "{seals:?}");
    assert_chain(&seals, &transaction_ids(&w.app).await);
    let content = w.audit("/v1/ledger/seals/1").await;
    assert_eq!(recompute_hash(&content), seals[0]["hash"].as_str().unwrap());
}
