//! Key rotation: seals signed before stay verifiable while the old key is listed as previous,
//! and a seal signed by a key nobody lists fails.

use integration_tests::{test_config, TEST_SEAL_SEED};
use paygate::config::Config;
use paygate::ledger::signing::SealSeed;

use super::*;

const NEW_SEED: [u8; 32] = [0x7a; 32];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_rotation_old_seals_verify_with_the_previous_key_and_fail_without_it() {
    let w = World::new().await;
    let ids = orders(&w, "H12-ROTATE", 4).await;
    pay_all(&w, &w.app, &ids[..2]).await;
    let last = last_transaction(&w.app).await;
    wait_sealed_through(&w.app, &w.auditor_key, last).await;
    let old_key = public_key_of(TEST_SEAL_SEED);
    let new_key = public_key_of(NEW_SEED);

    // The operator rotates: a new seed, and the old public key listed as previous.
    let World { app, agency_key, auditor_key, bank } = w;
    let settings = app.stop_keeping_database();
    let rotated = Config {
        seal_key: Some(SealSeed::from_bytes(NEW_SEED)),
        seal_previous_keys: vec![old_key.clone()],
        ..test_config()
    };
    let app = TestApp::spawn_on(rotated, settings.clone()).await;
    let w = World { app, agency_key, auditor_key, bank };
    pay_all(&w, &w.app, &ids[2..]).await;
    let last = last_transaction(&w.app).await;
    let verdict = wait_sealed_through(&w.app, &w.auditor_key, last).await;
    assert_eq!(verdict["ok"], true, "{verdict}");

    let keys = w.audit("/v1/ledger/seals/key").await;
    assert_eq!(keys, json!({"public_key": new_key, "previous_keys": [old_key]}));
    let seals = all_seals(&w.app, &w.auditor_key).await;
    let signers: Vec<&str> =
        seals.iter().map(|seal| seal["public_key"].as_str().unwrap()).collect();
    assert_eq!(signers.first(), Some(&old_key.as_str()), "{signers:?}");
    assert_eq!(signers.last(), Some(&new_key.as_str()), "{signers:?}");
    for seal in &seals {
        assert!(signature_verifies(
            seal["public_key"].as_str().unwrap(),
            seal["hash"].as_str().unwrap(),
            seal["signature"].as_str().unwrap()
        ));
    }

    // A replica that does not list the old key refuses the seals it signed.
    let forgetful = Config {
        seal_key: Some(SealSeed::from_bytes(NEW_SEED)),
        seal_interval_ms: 0,
        ..test_config()
    };
    let other = TestApp::spawn_on(forgetful, settings).await;
    let verdict = other.get_with(&w.auditor_key, "/v1/ledger/verify").json_with(200).await;
    assert_eq!(verdict["ok"], false, "{verdict}");
    assert_eq!(verdict["broken_seal"]["seq"], 1, "{verdict}");
    assert_eq!(verdict["broken_seal"]["reason"], "signed by a key that is not trusted");
    assert_eq!(verdict["seals"], 0);
}
