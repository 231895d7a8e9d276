//! The banks' keys kept in memory (`banks::keys`): a change made anywhere (another replica, a
//! tool, the database itself) is honoured without this process being told through its API, and
//! while changes cannot be heard, nothing remembered is trusted.

use super::*;

/// What the listener's connection calls itself in `pg_stat_activity`.
const LISTENER: &str = paygate::banks::keys::LISTENER_NAME;

/// The pid of the process's connection that listens for key changes, once it listens.
async fn listener_pid(app: &TestApp, not: Option<i32>) -> i32 {
    let client = app.db.get().await.unwrap();
    for _ in 0..200 {
        let row = client
            .query_opt(
                "SELECT pid FROM pg_stat_activity
                 WHERE datname = current_database() AND application_name = $1
                   AND query ILIKE 'LISTEN%' AND pid IS DISTINCT FROM $2",
                &[&LISTENER, &not],
            )
            .await
            .unwrap();
        if let Some(row) = row {
            return row.get(0);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no connection listens for bank key changes");
}

/// Revokes a key as another process would: in the database, not through this process.
async fn revoke_elsewhere(app: &TestApp, kid: &str) {
    let client = app.db.get().await.unwrap();
    let revoked = client
        .execute("UPDATE bank_keys SET revoked_at = now() WHERE key_id = $1", &[&kid])
        .await
        .unwrap();
    assert_eq!(revoked, 1);
}

/// Asks with `signer` until the answer is 401, for at most five seconds; returns how many
/// answers were 200 before.
async fn answers_until_refused(w: &World, signer: &Signer, inquiry: &Value) -> usize {
    for accepted in 0..100 {
        let response = w.app.post_signed(signer, "inquiry", inquiry).await;
        if response.status() == 401 {
            assert_problem(response, 401, "invalid_signature").await;
            return accepted;
        }
        assert_eq!(response.status(), 200);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("a key revoked elsewhere is still accepted after five seconds");
}

#[tokio::test]
async fn a_key_revoked_by_another_process_is_refused_and_one_added_there_is_accepted() {
    let (w, id) = World::with_order("H12-ELSEWHERE").await;
    let inquiry = json!({ "payment_id": id });
    listener_pid(&w.app, None).await;
    // Used once, so that it is remembered.
    let response = w.app.post_signed(&w.bank, "inquiry", &inquiry).await;
    assert_eq!(json_200(response).await["payment_id"], id.as_str());

    // A key another process adds works at once: what is not remembered is read.
    let added = Signer {
        bank: BANK.to_owned(),
        kid: "kid_added_elsewhere".to_owned(),
        secret: "bsk_added_elsewhere_0123456789abcdef0123".to_owned(),
    };
    let client = w.app.db.get().await.unwrap();
    client
        .execute(
            "INSERT INTO bank_keys (key_id, bank_code, secret) VALUES ($1, $2, $3)",
            &[&added.kid, &BANK, &added.secret],
        )
        .await
        .unwrap();
    let response = w.app.post_signed(&added, "inquiry", &inquiry).await;
    assert_eq!(json_200(response).await["payment_id"], id.as_str());

    revoke_elsewhere(&w.app, &w.bank.kid).await;
    answers_until_refused(&w, &w.bank, &inquiry).await;
    // Refused for callbacks too, and nothing is written.
    let before = snapshot(&w.app).await;
    let callback = succeeded("FT-ELSEWHERE", &id, &paid_a_minute_ago());
    let refused = w.app.post_signed(&w.bank, "callbacks", &callback).await;
    assert_problem(refused, 401, "invalid_signature").await;
    assert_eq!(snapshot(&w.app).await, before);
    // The other key of the bank is still good.
    let accepted = json_200(w.app.post_signed(&added, "callbacks", &callback).await).await;
    assert_eq!(accepted["result"], "accepted");
}

#[tokio::test]
async fn after_the_listener_loses_its_connection_it_listens_again_and_hears_revocations() {
    let (w, id) = World::with_order("H12-RELISTEN").await;
    let inquiry = json!({ "payment_id": id });
    let first = listener_pid(&w.app, None).await;
    let response = w.app.post_signed(&w.bank, "inquiry", &inquiry).await;
    assert_eq!(json_200(response).await["payment_id"], id.as_str());

    let client = w.app.db.get().await.unwrap();
    let terminated: bool =
        client.query_one("SELECT pg_terminate_backend($1)", &[&first]).await.unwrap().get(0);
    assert!(terminated);
    // Meanwhile keys are read from the database: still accepted while live.
    let response = w.app.post_signed(&w.bank, "inquiry", &inquiry).await;
    assert_eq!(json_200(response).await["payment_id"], id.as_str());

    let second = listener_pid(&w.app, Some(first)).await;
    assert_ne!(second, first);
    let response = w.app.post_signed(&w.bank, "inquiry", &inquiry).await;
    assert_eq!(json_200(response).await["payment_id"], id.as_str());
    revoke_elsewhere(&w.app, &w.bank.kid).await;
    answers_until_refused(&w, &w.bank, &inquiry).await;
}
