use integration_tests::answers::RequestExt;
use integration_tests::TestApp;
use serde_json::json;

use super::{all_entries, expected_hash, head_seq, labelled_admin, verify};

/// 64 zeros: the `prev_hash` of the first entry.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An app whose trail holds a few entries with Vietnamese text, quotes, backslashes and tabs.
async fn app_with_entries() -> TestApp {
    let app = TestApp::spawn().await;
    let (key, _) = labelled_admin(&app).await;
    for (code, name) in
        [("G01.001", "Sở Tư pháp \"Hà Nội\""), ("G01.002", "Ủy ban\\nhân dân\tquận")]
    {
        app.post_with(&key, "/v1/agencies")
            .json(&json!({"code": code, "name": name}))
            .json_with(201)
            .await;
    }
    app.post_with(&key, "/v1/banks")
        .json(&json!({"code": "TCB", "name": "Kỹ Thương"}))
        .json_with(201)
        .await;
    app.http
        .patch(app.url("/v1/agencies/G01.001"))
        .bearer_auth(&key)
        .json(&json!({"disabled": true}))
        .json_with(200)
        .await;
    app
}

#[tokio::test]
async fn an_outside_recomputation_of_the_chain_matches_every_stored_hash() {
    let app = app_with_entries().await;
    let entries = all_entries(&app).await;
    assert_eq!(entries.len(), 5);
    let mut prev = GENESIS.to_owned();
    for (i, entry) in entries.iter().enumerate() {
        let seq = i as i64 + 1;
        assert_eq!(entry["seq"], seq, "seq 1, 2, 3, ... without gaps");
        assert_eq!(entry["id"], format!("aud_{seq:016x}"));
        assert_eq!(entry["prev_hash"], prev, "entry {seq} links to the one before");
        assert_eq!(entry["hash"], expected_hash(entry), "entry {seq}: {entry}");
        prev = entry["hash"].as_str().unwrap().to_owned();
    }
    let verdict = verify(&app).await;
    assert_eq!(verdict, json!({"ok": true, "entries": 5, "head": prev}));
    // The database holds exactly what the API shows.
    let stored = app.rows("SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1", &[]).await;
    assert_eq!(stored[0].get::<_, String>(0), prev);
}

#[tokio::test]
async fn an_empty_trail_verifies_with_no_head() {
    let app = TestApp::spawn().await;
    assert_eq!(verify(&app).await, json!({"ok": true, "entries": 0, "head": null}));
}

#[tokio::test]
async fn an_entry_changed_inserted_or_removed_behind_paygates_back_is_named_by_verify() {
    let app = app_with_entries().await;
    // As the owner, who may switch the append-only triggers off (a superuser could too).
    app.execute("ALTER TABLE audit_log DISABLE TRIGGER USER", &[]).await;
    let original: String =
        app.row("SELECT detail::text FROM audit_log WHERE seq = 3", &[]).await.get(0);

    app.execute("UPDATE audit_log SET detail = '{\"name\": \"Sở giả mạo\"}' WHERE seq = 3", &[])
        .await;
    let verdict = verify(&app).await;
    assert_eq!(verdict["ok"], false, "{verdict}");
    assert_eq!(verdict["broken_seq"], 3, "{verdict}");
    assert_eq!(verdict["entries"], 5);
    assert!(verdict["reason"].as_str().unwrap().contains("changed"), "{verdict}");

    // Put back, the chain holds again.
    app.execute("UPDATE audit_log SET detail = $1::text::jsonb WHERE seq = 3", &[&original]).await;
    assert_eq!(verify(&app).await["ok"], true);

    // A change that also recomputes the entry's own hash breaks the next entry's link.
    app.execute("UPDATE audit_log SET actor_label = 'someone else' WHERE seq = 2", &[]).await;
    let entries = all_entries(&app).await;
    let rehashed = super::expected_hash(&entries[1]);
    app.execute("UPDATE audit_log SET hash = $1 WHERE seq = 2", &[&rehashed]).await;
    let verdict = verify(&app).await;
    assert_eq!(
        (verdict["ok"].clone(), verdict["broken_seq"].clone()),
        (json!(false), json!(3)),
        "{verdict}"
    );
    assert!(verdict["reason"].as_str().unwrap().contains("prev_hash"), "{verdict}");
}

#[tokio::test]
async fn a_removed_entry_is_named_by_its_missing_seq() {
    let app = app_with_entries().await;
    app.execute("ALTER TABLE audit_log DISABLE TRIGGER USER", &[]).await;
    app.execute("DELETE FROM audit_log WHERE seq = 4", &[]).await;
    let verdict = verify(&app).await;
    assert_eq!(verdict["ok"], false, "{verdict}");
    assert_eq!(verdict["broken_seq"], 4, "{verdict}");
    assert_eq!(verdict["entries"], 4);
    assert!(verdict["reason"].as_str().unwrap().contains("missing"), "{verdict}");
}

#[tokio::test]
async fn an_entry_appended_without_the_chain_is_named() {
    let app = app_with_entries().await;
    let head: String = app.row("SELECT hash FROM audit_log WHERE seq = 5", &[]).await.get(0);
    // An insert needs no trigger switched off: the owner appends a forged entry.
    app.execute(
        "INSERT INTO audit_log (seq, id, at, actor_role, actor_via, action, target, detail,
                                prev_hash, hash)
         VALUES (6, 'aud_0000000000000006', now(), 'admin', 'cli', 'bank.create', 'bank:FAKE',
                 '{}', $1, repeat('ab', 32))",
        &[&head],
    )
    .await;
    let verdict = verify(&app).await;
    assert_eq!(
        (verdict["ok"].clone(), verdict["broken_seq"].clone()),
        (json!(false), json!(6)),
        "{verdict}"
    );
    assert_eq!(verdict["head"], "ab".repeat(32));
    assert_eq!(head_seq(&app).await, 6);
    app.execute("ALTER TABLE audit_log DISABLE TRIGGER USER", &[]).await;
    app.execute("DELETE FROM audit_log WHERE seq = 6", &[]).await;
    assert_eq!(verify(&app).await["ok"], true);
}
