//! The seal endpoints refuse invalid parameters naming them, and keys of the wrong role.

use integration_tests::answers::invalid;

use super::*;

const ENDPOINTS: [&str; 4] =
    ["/v1/ledger/seals", "/v1/ledger/seals/key", "/v1/ledger/seals/1", "/v1/ledger/verify"];

#[tokio::test]
async fn invalid_cursors_limits_seqs_and_checkpoints_are_refused_naming_the_parameter() {
    let w = World::new().await;
    let hash = "ab".repeat(32);
    let cases: Vec<(String, &str)> = vec![
        ("/v1/ledger/seals?limit=0".into(), "limit"),
        ("/v1/ledger/seals?limit=501".into(), "limit"),
        ("/v1/ledger/seals?limit=ten".into(), "limit"),
        ("/v1/ledger/seals?cursor=not-a-cursor".into(), "cursor"),
        ("/v1/ledger/seals/0".into(), "seq"),
        ("/v1/ledger/seals/-1".into(), "seq"),
        ("/v1/ledger/seals/one".into(), "seq"),
        ("/v1/ledger/seals/99999999999999999999".into(), "seq"),
        (format!("/v1/ledger/verify?checkpoint_seq=0&checkpoint_hash={hash}"), "checkpoint_seq"),
        (format!("/v1/ledger/verify?checkpoint_seq=x&checkpoint_hash={hash}"), "checkpoint_seq"),
        (format!("/v1/ledger/verify?checkpoint_hash={hash}"), "checkpoint_seq"),
        ("/v1/ledger/verify?checkpoint_seq=1".into(), "checkpoint_hash"),
        ("/v1/ledger/verify?checkpoint_seq=1&checkpoint_hash=abc".into(), "checkpoint_hash"),
        (
            format!("/v1/ledger/verify?checkpoint_seq=1&checkpoint_hash={}", hash.to_uppercase()),
            "checkpoint_hash",
        ),
    ];
    for (path, field) in cases {
        let response = w.app.get_with(&w.auditor_key, &path).send().await.unwrap();
        assert_eq!(invalid(response).await, vec![field.to_owned()], "{path}");
    }
    // A seal that does not exist is not found.
    let problem =
        w.app.get_with(&w.auditor_key, "/v1/ledger/seals/999").problem(404, "not_found").await;
    assert!(problem["detail"].as_str().unwrap().contains("seal"), "{problem}");
    // Refusals change nothing (and reading never does).
    w.app.assert_count("SELECT count(*) FROM ledger_seals", 0).await;
}

#[tokio::test]
async fn a_checkpoint_beyond_the_newest_seal_fails() {
    let w = World::new().await;
    let ids = orders(&w, "H12-FUTURE", 1).await;
    pay_all(&w, &w.app, &ids).await;
    wait_sealed_through(&w.app, &w.auditor_key, last_transaction(&w.app).await).await;
    let seals = all_seals(&w.app, &w.auditor_key).await;
    let newest = seals.last().unwrap();
    let hash = newest["hash"].as_str().unwrap();
    let seq = newest["seq"].as_i64().unwrap();
    let ahead = w
        .audit(&format!("/v1/ledger/verify?checkpoint_seq={}&checkpoint_hash={hash}", seq + 1))
        .await;
    assert_eq!(ahead["ok"], false, "{ahead}");
    assert_eq!(ahead["checkpoint"]["ok"], false, "{ahead}");
    let other_hash = "0".repeat(64);
    let wrong = w
        .audit(&format!("/v1/ledger/verify?checkpoint_seq={seq}&checkpoint_hash={other_hash}"))
        .await;
    assert_eq!(wrong["ok"], false, "{wrong}");
    assert_eq!(wrong["checkpoint"], json!({"seq": seq, "hash": other_hash, "ok": false}));
    assert!(wrong.get("broken_seal").is_none(), "the chain itself is sound: {wrong}");
}

#[tokio::test]
async fn only_auditors_and_admins_read_the_seals() {
    let w = World::new().await;
    for path in ENDPOINTS {
        w.app.get(path).problem(401, "unauthenticated").await;
        w.app.get_with(&w.agency_key, path).problem(403, "forbidden").await;
        let admin = w.app.admin(reqwest::Method::GET, path).send().await.unwrap();
        let auditor = w.app.get_with(&w.auditor_key, path).send().await.unwrap();
        // No seal 1 exists yet: 404 for it, 200 elsewhere, for both roles alike.
        let expected = if path.ends_with("/1") { 404 } else { 200 };
        assert_eq!(admin.status().as_u16(), expected, "{path}");
        assert_eq!(auditor.status().as_u16(), expected, "{path}");
    }
}
