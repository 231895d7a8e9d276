//! The ledger.

use super::*;

#[tokio::test]
async fn the_ledger_refuses_updates_deletes_and_truncation_by_sql() {
    let (w, id) = World::with_order("H12-APPEND-ONLY").await;
    w.deliver_ok(&succeeded("FT-AO", &id, &paid_a_minute_ago())).await;
    let before = snapshot(&w.app).await;
    let client = w.app.db.get().await.unwrap();

    for statement in [
        "UPDATE ledger_entries SET debit = debit + 1 WHERE debit > 0",
        "UPDATE ledger_entries SET account = 'bank:OTHER'",
        "DELETE FROM ledger_entries",
        "UPDATE ledger_transactions SET kind = 'suspense'",
        "DELETE FROM ledger_transactions",
        "TRUNCATE ledger_entries",
        "TRUNCATE ledger_transactions CASCADE",
    ] {
        let refused = client.batch_execute(statement).await;
        let error = refused.expect_err(statement);
        assert!(
            error.as_db_error().is_some_and(|db| db.message().contains("append-only")),
            "{statement}: {error:?}"
        );
    }
    assert_eq!(snapshot(&w.app).await, before);
    assert_verified(&w.verify().await, 1, AMOUNT);
}

#[tokio::test]
async fn an_unbalanced_transaction_inserted_by_sql_fails_at_commit() {
    let (w, id) = World::with_order("H12-UNBALANCED").await;
    w.deliver_ok(&failed("FT-SQL", &id)).await;
    let mut client = w.app.db.get().await.unwrap();
    let callback_id: i64 = client
        .query_one("SELECT id FROM bank_callbacks WHERE bank_txn_id = 'FT-SQL'", &[])
        .await
        .unwrap()
        .get(0);
    let before = snapshot(&w.app).await;

    // Each case's entries as (account, debit, credit); none of them balances.
    type Entries<'a> = &'a [(&'a str, i64, i64)];
    let cases: [Entries; 4] = [
        &[],
        &[("bank:VCB", 100, 0)],
        &[("bank:VCB", 100, 0), ("suspense:VCB", 0, 99)],
        &[("bank:VCB", 100, 0), ("suspense:VCB", 0, 60), ("suspense:VCB", 0, 30)],
    ];
    for entries in cases {
        let transaction = client.transaction().await.unwrap();
        let tx = suspense_transaction(&transaction, callback_id, &id).await;
        for (account, debit, credit) in entries {
            transaction
                .execute(
                    &format!(
                        "INSERT INTO ledger_entries (transaction_id, account, debit, credit)
                         VALUES ($1, $2, {debit}, {credit})"
                    ),
                    &[&tx, account],
                )
                .await
                .expect("each entry alone is accepted until commit");
        }
        let error = transaction.commit().await.expect_err("an unbalanced commit");
        assert!(
            error.as_db_error().is_some_and(|db| db.message().contains("does not balance")),
            "{entries:?}: {error:?}"
        );
        assert_eq!(snapshot(&w.app).await, before, "{entries:?}");
    }
    // An entry with both sides, or a negative one, is refused at once.
    for (debit, credit) in [(5, 5), (-5, 0), (0, 0)] {
        let transaction = client.transaction().await.unwrap();
        let tx = suspense_transaction(&transaction, callback_id, &id).await;
        let refused = transaction
            .execute(
                &format!(
                    "INSERT INTO ledger_entries (transaction_id, account, debit, credit)
                     VALUES ($1, 'bank:VCB', {debit}, {credit})"
                ),
                &[&tx],
            )
            .await;
        assert!(refused.is_err(), "debit {debit}, credit {credit}");
    }
    assert_eq!(snapshot(&w.app).await, before);

    // A balanced transaction commits: the check refuses imbalance, not writing as such.
    let transaction = client.transaction().await.unwrap();
    transaction
        .execute(
            "WITH t AS (INSERT INTO ledger_transactions (kind, callback_id, payment_id)
                        VALUES ('suspense', $1, $2) RETURNING id)
             INSERT INTO ledger_entries (transaction_id, account, debit, credit)
             SELECT t.id, e.account, e.debit, e.credit
             FROM t, (VALUES ('bank:VCB', 100, 0), ('suspense:VCB', 0, 100))
                 AS e(account, debit, credit)",
            &[&callback_id, &id],
        )
        .await
        .unwrap();
    transaction.commit().await.expect("a balanced transaction commits");
    assert_verified(&w.verify().await, 1, "100");
}

#[tokio::test]
async fn verify_lists_a_transaction_that_does_not_balance_when_one_slips_past_the_database() {
    let (w, id) = World::with_order("H12-TAMPERED").await;
    w.deliver_ok(&succeeded("FT-GOOD", &id, &paid_a_minute_ago())).await;
    w.deliver_ok(&failed("FT-TAMPER", &id)).await;
    // A superuser session with triggers off stands in for a ledger damaged behind the
    // service's back (a restore gone wrong, a hand edit).
    let mut client = w.app.db.get().await.unwrap();
    let transaction = client.transaction().await.unwrap();
    transaction.batch_execute("SET LOCAL session_replication_role = replica").await.unwrap();
    let tampered: i64 = transaction
        .query_one(
            "WITH t AS (INSERT INTO ledger_transactions (kind, callback_id, payment_id)
                        SELECT 'suspense', id, payment_id FROM bank_callbacks
                        WHERE bank_txn_id = 'FT-TAMPER' RETURNING id)
             INSERT INTO ledger_entries (transaction_id, account, debit, credit)
             SELECT t.id, 'bank:VCB', 500, 0 FROM t RETURNING transaction_id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    transaction.commit().await.unwrap();

    let verify = w.verify().await;

    assert_eq!(verify["ok"], false, "{verify}");
    assert_eq!(verify["transactions"], 2, "{verify}");
    assert_eq!(verify["entries"], 3, "{verify}");
    assert_eq!(verify["debits"], "150500", "{verify}");
    assert_eq!(verify["credits"], AMOUNT, "{verify}");
    let offending = verify["offending"].as_array().expect("offending listed");
    assert_eq!(offending.len(), 1, "{verify}");
    assert_eq!(offending[0]["transaction"], tampered, "{verify}");
}

#[tokio::test]
async fn ledger_and_exception_endpoints_need_an_auditor_or_an_admin() {
    let w = World::new().await;
    for path in ["/v1/ledger/verify", "/v1/ledger/balances", "/v1/exceptions"] {
        w.app.get_with(&w.agency_key, path).problem(403, "forbidden").await;
        let anonymous = w.app.get(path).send().await.unwrap();
        assert_problem(anonymous, 401, "unauthenticated").await;
        w.app.get_with("pk_not_a_key_at_all", path).problem(401, "unauthenticated").await;
        // A bank's signature is no key either.
        w.app
            .get(path)
            .header("Paygate-Signature", w.bank.signature(now_s(), b""))
            .problem(401, "unauthenticated")
            .await;
        w.audit(path).await;
        let as_admin = w.app.admin(Method::GET, path).send().await.unwrap();
        assert_eq!(as_admin.status(), 200, "{path}");
    }
    let empty = w.verify().await;
    assert_eq!(
        empty,
        json!({"ok": true, "transactions": 0, "entries": 0, "debits": "0", "credits": "0",
               "seals": 0, "sealed_through": null})
    );
    assert_eq!(w.audit("/v1/ledger/balances").await, json!({"items": []}));
    assert_eq!(w.exceptions("").await, json!({"items": [], "next_cursor": null}));
}

#[tokio::test]
async fn exceptions_are_listed_newest_first_pages_walk_them_all_and_the_bank_filter_narrows() {
    let w = World::new().await;
    let other_bank = w.app.new_bank(OTHER_BANK).await;
    let paid_at = paid_a_minute_ago();
    let paid = w.order("H12-EXC-PAID").await;
    let cancelled = w.order("H12-EXC-CANCELLED").await;
    w.cancel(&cancelled).await;
    w.deliver_ok(&succeeded("FT-E0", &paid, &paid_at)).await;
    // Recorded in this order: VCB, VCB, BIDV, VCB, BIDV, VCB.
    let vcb = |body: Value| (w.bank.clone(), body);
    let bidv = |body: Value| (other_bank.clone(), body);
    let recorded = [
        vcb(succeeded("FT-E1", "pay_nope", &paid_at)),
        vcb(changed(&succeeded("FT-E2", &paid, &paid_at), "amount", Some(json!("5")))),
        bidv(succeeded("FT-E3", &paid, &paid_at)),
        vcb(succeeded("FT-E4", &cancelled, &paid_at)),
        bidv(succeeded("FT-E5", "pay_nope", &paid_at)),
        vcb(succeeded("FT-E6", &paid, &paid_at)),
    ];
    for (signer, body) in &recorded {
        w.app.post_signed(signer, "callbacks", body).await;
    }

    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &cursor {
            Some(cursor) => format!("limit=2&cursor={cursor}"),
            None => "limit=2".to_owned(),
        };
        let page = w.exceptions(&query).await;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2, "{page}");
        walked.extend(items.iter().map(|item| item["bank_txn_id"].as_str().unwrap().to_owned()));
        pages += 1;
        assert!(pages <= 4, "the walk does not end: {page}");
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        walked,
        ["FT-E6", "FT-E5", "FT-E4", "FT-E3", "FT-E2", "FT-E1"],
        "newest first, each once"
    );

    let only_vcb = w.exceptions("bank=VCB").await;
    let vcb_items: Vec<&str> = only_vcb["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            assert_eq!(item["bank"], BANK);
            item["bank_txn_id"].as_str().unwrap()
        })
        .collect();
    assert_eq!(vcb_items, ["FT-E6", "FT-E4", "FT-E2", "FT-E1"]);
    let only_bidv = w.exceptions("bank=BIDV&limit=1").await;
    assert_eq!(only_bidv["items"][0]["bank_txn_id"], "FT-E5");
    let cursor = only_bidv["next_cursor"].as_str().expect("a second page");
    let second = w.exceptions(&format!("bank=BIDV&limit=1&cursor={cursor}")).await;
    assert_eq!(second["items"][0]["bank_txn_id"], "FT-E3");
    assert_eq!(second["next_cursor"], Value::Null);
    assert_eq!(w.exceptions("bank=NOPE").await["items"], json!([]));
    let hour_ago = rfc3339(now_s() - 3_600);
    let in_an_hour = rfc3339(now_s() + 3_600);
    let window = w.exceptions(&format!("from={hour_ago}&to={in_an_hour}")).await;
    assert_eq!(window["items"].as_array().unwrap().len(), 6, "{window}");
    let later = w.exceptions(&format!("from={in_an_hour}")).await;
    assert_eq!(later["items"], json!([]));
    let earlier = w.exceptions(&format!("to={hour_ago}")).await;
    assert_eq!(earlier["items"], json!([]));

    let reasons: HashMap<String, (String, String)> = w.exceptions("").await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            (
                item["bank_txn_id"].as_str().unwrap().to_owned(),
                (
                    item["reason"].as_str().unwrap().to_owned(),
                    item["kind"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect();
    let expected = [
        ("FT-E1", "payment_not_found", "rejected"),
        ("FT-E2", "amount_mismatch", "rejected"),
        ("FT-E3", "double_payment", "suspense"),
        ("FT-E4", "order_closed", "suspense"),
        ("FT-E5", "payment_not_found", "rejected"),
        ("FT-E6", "double_payment", "suspense"),
    ];
    for (bank_txn_id, reason, kind) in expected {
        assert_eq!(reasons[bank_txn_id], (reason.to_owned(), kind.to_owned()), "{bank_txn_id}");
    }

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        ("bank=vcb", "bank"),
        ("from=yesterday", "from"),
    ] {
        assert_eq!(
            w.app
                .http
                .get(w.app.url(&format!("/v1/exceptions?{query}")))
                .bearer_auth(&w.auditor_key)
                .invalid()
                .await,
            vec![field],
            "{query}"
        );
    }
    let balances = w.balances().await;
    assert_eq!(balances["bank:VCB"], "450000");
    assert_eq!(balances["bank:BIDV"], AMOUNT);
    assert_eq!(balances["suspense:VCB"], "-300000");
    assert_eq!(balances["suspense:BIDV"], "-150000");
    assert_verified(&w.verify().await, 4, "600000");
}

/// Opens a suspense transaction of `callback_id` for order `id` inside `transaction`, by SQL as
/// a faulty writer would; returns its id.
async fn suspense_transaction(
    transaction: &tokio_postgres::Transaction<'_>,
    callback_id: i64,
    id: &str,
) -> i64 {
    transaction
        .query_one(
            "INSERT INTO ledger_transactions (kind, callback_id, payment_id)
             VALUES ('suspense', $1, $2) RETURNING id",
            &[&callback_id, &id],
        )
        .await
        .unwrap()
        .get(0)
}
