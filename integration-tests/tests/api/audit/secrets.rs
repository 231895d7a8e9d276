use integration_tests::world::World;
use integration_tests::{holds_secret_pattern, scan_audit};
use serde_json::json;

#[test]
fn the_secret_pattern_is_a_prefix_and_43_base64url_characters() {
    let body = "A".repeat(43);
    for prefix in ["pgk_", "bsk_", "nsk_"] {
        assert!(holds_secret_pattern(&format!("{prefix}{body}")));
        assert!(holds_secret_pattern(&format!("{{\"x\":\"a {prefix}{body}-_\"}}")));
        assert!(!holds_secret_pattern(&format!("{prefix}{}", &body[..42])));
        assert!(!holds_secret_pattern(&format!("{prefix}{}!{}", &body[..20], &body[..22])));
    }
    assert!(!holds_secret_pattern(&format!("key_{body}")));
}

#[tokio::test]
async fn the_secret_scan_finds_a_key_a_stored_secret_and_an_id_number_planted_in_the_trail() {
    let w = World::new().await;
    let app = &w.app;
    w.order("AUDIT-SCAN-1").await; // stores the payer's id_number 001099012345
    assert_eq!(scan_audit(&app.db_settings).await.unwrap(), Vec::<String>::new());

    let notify_secret: String =
        app.row("SELECT notify_secret FROM agencies LIMIT 1", &[]).await.get(0);
    let bank_secret: String = app.row("SELECT secret FROM bank_keys LIMIT 1", &[]).await.get(0);
    let planted = [
        json!({"note": format!("key {}", w.agency_key)}),
        json!({"secret": notify_secret}),
        json!({"nested": [{"bank": bank_secret.to_uppercase(), "raw": bank_secret}]}),
        json!({"payer": "001099012345"}),
    ];
    let first = app.count("SELECT max(seq) + 1 FROM audit_log").await;
    for (i, detail) in planted.iter().enumerate() {
        let seq = first + i as i64;
        app.execute(
            "INSERT INTO audit_log (seq, id, at, actor_role, actor_via, action, target, detail,
                                    prev_hash, hash)
             VALUES ($1::bigint, 'aud_' || lpad(to_hex($1::bigint), 16, '0'), now(), 'admin', 'cli',
                     'bank.update', 'bank:VCB', $2::jsonb, repeat('0', 64), repeat('0', 64))",
            &[&seq, detail],
        )
        .await;
    }
    let findings = scan_audit(&app.db_settings).await.unwrap();
    for i in 0..planted.len() as i64 {
        let name = format!("entry {}:", first + i);
        assert!(findings.iter().any(|f| f.starts_with(&name)), "{name} in {findings:#?}");
    }
    // Removed again (as the owner, with the guards off), the trail scans clean, and the
    // harness's own scan when the test's database is dropped passes.
    app.execute("ALTER TABLE audit_log DISABLE TRIGGER USER", &[]).await;
    app.execute("DELETE FROM audit_log WHERE seq >= $1", &[&first]).await;
    assert_eq!(scan_audit(&app.db_settings).await.unwrap(), Vec::<String>::new());
}
