//! A superuser changes the ledger behind paygate's back, with the append-only triggers off:
//! verification names the seal, and a rewritten chain fails on its signature and against a
//! checkpoint kept before.

use super::*;

/// A world with nine sealed transactions in at least three seals; returns it with the seals,
/// oldest first.
async fn sealed_world() -> (World, Vec<Value>) {
    let w = World::new().await;
    for round in 0..3 {
        let ids = orders(&w, &format!("H12-TAMPER-{round}"), 3).await;
        pay_all(&w, &w.app, &ids).await;
        let last = last_transaction(&w.app).await;
        wait_sealed_through(&w.app, &w.auditor_key, last).await;
    }
    let seals = all_seals(&w.app, &w.auditor_key).await;
    assert!(seals.len() >= 3, "{seals:?}");
    let verdict = w.verify().await;
    assert_eq!(verdict["ok"], true, "{verdict}");
    (w, seals)
}

/// Runs `sql` as the cluster's superuser with every trigger off (as a database administrator
/// could), in one transaction.
async fn behind_paygates_back(app: &TestApp, sql: &str) {
    let mut client = app.db.get().await.unwrap();
    let transaction = client.transaction().await.unwrap();
    transaction.batch_execute("SET LOCAL session_replication_role = replica").await.unwrap();
    transaction.batch_execute(sql).await.unwrap_or_else(|err| panic!("{sql}: {err}"));
    transaction.commit().await.unwrap();
}

/// The seal (from `seals`) in the middle of the chain, and the first entry of its first
/// transaction.
async fn middle_seal_entry(w: &World, seals: &[Value]) -> (i64, i64) {
    let seal = &seals[seals.len() / 2];
    let seq = seal["seq"].as_i64().unwrap();
    let content = w.audit(&format!("/v1/ledger/seals/{seq}")).await;
    let entry = content["ledger"][0]["entries"][0]["id"].as_i64().expect("an entry");
    (seq, entry)
}

fn assert_broken(verdict: &Value, seq: i64, reason: &str) {
    assert_eq!(verdict["ok"], false, "{verdict}");
    assert_eq!(verdict["broken_seal"]["seq"], seq, "{verdict}");
    let given = verdict["broken_seal"]["reason"].as_str().unwrap();
    assert!(given.contains(reason), "{reason:?} in {verdict}");
    assert_eq!(verdict["seals"], seq - 1, "the seals before it verified: {verdict}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_one_amount_of_a_sealed_entry_fails_verification_naming_its_seal() {
    let (w, seals) = sealed_world().await;
    let (seq, entry) = middle_seal_entry(&w, &seals).await;
    behind_paygates_back(
        &w.app,
        &format!(
            "UPDATE ledger_entries SET debit = debit + 1 WHERE id = {entry} AND debit > 0;
             UPDATE ledger_entries SET credit = credit + 1 WHERE id = {entry} AND credit > 0"
        ),
    )
    .await;
    assert_broken(&w.verify().await, seq, "hash");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_money_between_entries_so_that_everything_still_balances_is_found_by_the_seal() {
    let (w, seals) = sealed_world().await;
    let (seq, _) = middle_seal_entry(&w, &seals).await;
    let content = w.audit(&format!("/v1/ledger/seals/{seq}")).await;
    let transaction = content["ledger"][0]["id"].as_i64().unwrap();
    // Both sides of one transaction lowered alike: the balances check alone would not notice.
    behind_paygates_back(
        &w.app,
        &format!(
            "UPDATE ledger_entries SET debit = debit - 1 WHERE transaction_id = {transaction} AND debit > 0;
             UPDATE ledger_entries SET credit = credit - 1 WHERE transaction_id = {transaction} AND credit > 0"
        ),
    )
    .await;
    let verdict = w.verify().await;
    assert!(verdict.get("offending").is_none(), "{verdict}");
    assert_broken(&verdict, seq, "hash");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_sealed_entry_fails_verification_naming_its_seal() {
    let (w, seals) = sealed_world().await;
    let (seq, entry) = middle_seal_entry(&w, &seals).await;
    behind_paygates_back(&w.app, &format!("DELETE FROM ledger_entries WHERE id = {entry}")).await;
    assert_broken(&w.verify().await, seq, "hash");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_seal_in_the_middle_of_the_chain_is_found() {
    let (w, seals) = sealed_world().await;
    let seq = seals[1]["seq"].as_i64().unwrap();
    behind_paygates_back(&w.app, &format!("DELETE FROM ledger_seals WHERE seq = {seq}")).await;
    let verdict = w.verify().await;
    assert_eq!(verdict["ok"], false, "{verdict}");
    assert_eq!(verdict["broken_seal"]["seq"], seq + 1, "{verdict}");
    assert_eq!(verdict["broken_seal"]["reason"], format!("seal {seq} is missing").as_str());
    assert_eq!(verdict["seals"], seq - 1, "{verdict}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewritten_entry_with_every_later_hash_recomputed_fails_on_the_signature_and_the_checkpoint(
) {
    let (w, seals) = sealed_world().await;
    let newest = seals.last().unwrap().clone();
    let kept_seq = newest["seq"].as_i64().unwrap();
    let kept_hash = newest["hash"].as_str().unwrap().to_owned();
    let checkpoint =
        format!("/v1/ledger/verify?checkpoint_seq={kept_seq}&checkpoint_hash={kept_hash}");
    let before = w.audit(&checkpoint).await;
    assert_eq!(before["ok"], true, "{before}");
    assert_eq!(before["checkpoint"], json!({"seq": kept_seq, "hash": kept_hash, "ok": true}));

    let (seq, entry) = middle_seal_entry(&w, &seals).await;
    behind_paygates_back(
        &w.app,
        &format!("UPDATE ledger_entries SET account = 'suspense:{BANK}' WHERE id = {entry}"),
    )
    .await;
    // Recompute this seal's hash and every later one, each chained to the rewritten previous,
    // as someone who can write the database could.
    let mut prev_hash: Option<String> = None;
    for later in seq..=kept_seq {
        let mut content = w.audit(&format!("/v1/ledger/seals/{later}")).await;
        if let Some(prev_hash) = &prev_hash {
            content["prev_hash"] = json!(prev_hash);
        }
        let hash = recompute_hash(&content);
        behind_paygates_back(
            &w.app,
            &format!(
                "UPDATE ledger_seals SET hash = '{hash}', prev_hash = '{}' WHERE seq = {later}",
                content["prev_hash"].as_str().unwrap()
            ),
        )
        .await;
        prev_hash = Some(hash);
    }
    // The chain is whole again, but the rewritten seals' signatures are not theirs.
    let verdict = w.verify().await;
    assert_broken(&verdict, seq, "signature does not verify");
    let against_checkpoint = w.audit(&checkpoint).await;
    assert_eq!(against_checkpoint["ok"], false, "{against_checkpoint}");
    assert_eq!(against_checkpoint["checkpoint"]["ok"], false, "{against_checkpoint}");
    assert_eq!(against_checkpoint["checkpoint"]["seq"], kept_seq);

    // Even a forger who also signed with a key of his own is refused: paygate does not trust it.
    let forger = SigningKey::from_bytes(&[0x42; 32]);
    for later in seq..=kept_seq {
        let hash: String =
            w.app.row("SELECT hash FROM ledger_seals WHERE seq = $1", &[&later]).await.get(0);
        let signature =
            hex::encode(ed25519_dalek::Signer::sign(&forger, hash.as_bytes()).to_bytes());
        let public_key = hex::encode(forger.verifying_key().as_bytes());
        behind_paygates_back(
            &w.app,
            &format!(
                "UPDATE ledger_seals SET signature = '{signature}', public_key = '{public_key}'
                 WHERE seq = {later}"
            ),
        )
        .await;
    }
    assert_broken(&w.verify().await, seq, "not trusted");
    let against_checkpoint = w.audit(&checkpoint).await;
    assert_eq!(against_checkpoint["checkpoint"]["ok"], false, "{against_checkpoint}");
}
