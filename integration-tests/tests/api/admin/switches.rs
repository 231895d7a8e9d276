//! Switches and lists: disabling agencies and banks, refund_url, the agency and bank lists.

use super::*;
use integration_tests::orders::order_body;
use integration_tests::signer::Signer;

const AMOUNT: &str = "150000";

/// Creates a pending `fee` order of `AMOUNT` with the agency's key and returns the payment.
async fn create_order(app: &TestApp, api_key: &str, reference: &str) -> Value {
    app.create_payment(api_key, &order_body("fee", reference, AMOUNT)).await
}

/// POSTs `body` to `/v1/banks/<bank>/<endpoint>`, signed now with `bank`'s key id and `secret`
/// (which need not be the bank's).
async fn signed(
    app: &TestApp,
    bank: &Signer,
    secret: &str,
    endpoint: &str,
    body: &Value,
) -> reqwest::Response {
    let signer = Signer { secret: secret.to_owned(), ..bank.clone() };
    app.post_signed(&signer, endpoint, body).await
}

fn paid_callback(bank_txn_id: &str, payment_id: &str) -> Value {
    json!({
        "bank_txn_id": bank_txn_id,
        "payment_id": payment_id,
        "amount": AMOUNT,
        "status": "succeeded",
        "paid_at": paygate::timefmt::format_utc(
            time::OffsetDateTime::now_utc() - time::Duration::minutes(1)
        ),
    })
}

async fn get_as(app: &TestApp, key: &str, path: &str) -> reqwest::Response {
    app.get_with(key, path).send().await.unwrap()
}

async fn patch(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.admin(Method::PATCH, path).json(&body).send().await.unwrap()
}

/// PATCHes `body` to `path` as an admin, which must answer 200; returns the answer.
async fn patched(app: &TestApp, path: &str, body: Value) -> Value {
    json_answer(patch(app, path, body).await, 200).await
}

async fn read(app: &TestApp, path: &str) -> Value {
    json_answer(app.admin(Method::GET, path).send().await.unwrap(), 200).await
}

#[tokio::test]
async fn an_agency_patch_changes_only_the_fields_it_names() {
    let app = TestApp::spawn().await;
    app.create_agency("H12").await;
    let url = "https://dvc.hanoi.gov.vn/paygate";
    let agency = patched(&app, "/v1/agencies/H12", json!({"notify_url": url})).await;
    assert_eq!((&agency["notify_url"], &agency["disabled"]), (&json!(url), &json!(false)));

    let agency = patched(&app, "/v1/agencies/H12", json!({"disabled": true})).await;
    assert_eq!((&agency["notify_url"], &agency["disabled"]), (&json!(url), &json!(true)));
    assert!(agency.get("notify_secret").is_none() && agency.get("api_key").is_none());

    // notify_url alone leaves `disabled`; null clears the address.
    let agency = patched(&app, "/v1/agencies/H12", json!({"notify_url": null})).await;
    assert!(agency.get("notify_url").is_none(), "{agency}");
    assert_eq!(agency["disabled"], true);

    // Both at once; and an empty patch (or only unknown fields) changes nothing.
    let agency = json_answer(
        patch(&app, "/v1/agencies/H12", json!({"notify_url": url, "disabled": false})).await,
        200,
    )
    .await;
    assert_eq!((&agency["notify_url"], &agency["disabled"]), (&json!(url), &json!(false)));
    let before = admin_state(&app).await;
    for body in [json!({}), json!({"notfy_url": "https://x.vn/"})] {
        let unchanged = json_answer(patch(&app, "/v1/agencies/H12", body).await, 200).await;
        assert_eq!(unchanged, read(&app, "/v1/agencies/H12").await);
    }
    assert_eq!(admin_state(&app).await, before);
    assert_eq!(read(&app, "/v1/agencies/H12").await["notify_url"], url);
}

#[tokio::test]
async fn invalid_agency_and_bank_patches_are_named_and_change_nothing() {
    let app = TestApp::with_agency_and_bank("H12", "VCB").await;
    let before = admin_state(&app).await;
    let agency_cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({"disabled": null}), vec!["disabled"]),
        (json!({"disabled": "true"}), vec!["disabled"]),
        (json!({"disabled": 1}), vec!["disabled"]),
        (json!({"disabled": "yes", "notify_url": "ftp://x.vn/"}), vec!["notify_url", "disabled"]),
        (json!({"disabled": true, "notify_url": "http://169.254.169.254/"}), vec!["notify_url"]),
    ];
    for (body, fields) in agency_cases {
        assert_eq!(
            invalid(patch(&app, "/v1/agencies/H12", body.clone()).await).await,
            fields,
            "{body}"
        );
    }
    let bank_cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({"disabled": null}), vec!["disabled"]),
        (json!({"disabled": "false"}), vec!["disabled"]),
        (json!({"refund_url": "gopher://x"}), vec!["refund_url"]),
        (json!({"refund_url": "not a url"}), vec!["refund_url"]),
        (json!({"refund_url": 5}), vec!["refund_url"]),
        (json!({"refund_url": "http://169.254.169.254/"}), vec!["refund_url"]),
        (json!({"refund_url": "http://[fe80::1]/r"}), vec!["refund_url"]),
        (json!({"disabled": true, "refund_url": "a\u{0}b"}), vec!["refund_url"]),
        (json!({"disabled": 0, "refund_url": false}), vec!["disabled", "refund_url"]),
    ];
    for (body, fields) in bank_cases {
        assert_eq!(
            invalid(patch(&app, "/v1/banks/VCB", body.clone()).await).await,
            fields,
            "{body}"
        );
    }
    for response in [
        app.admin(Method::PATCH, "/v1/banks/VCB").body("{").send().await.unwrap(),
        app.admin(Method::PATCH, "/v1/agencies/H12").body("").send().await.unwrap(),
    ] {
        assert_problem(response, 400, "malformed_json").await;
    }
    for (path, code) in [
        ("/v1/agencies/NOPE", "agency_not_found"),
        ("/v1/agencies/bad%20code", "agency_not_found"),
        ("/v1/banks/NOPE", "bank_not_found"),
        ("/v1/banks/bad%20code", "bank_not_found"),
    ] {
        assert_problem(patch(&app, path, json!({"disabled": true})).await, 404, code).await;
    }
    assert_eq!(admin_state(&app).await, before);
}

#[tokio::test]
async fn a_banks_refund_url_follows_the_notify_url_rules_and_can_be_cleared() {
    let app = TestApp::spawn().await;
    app.create_bank("VCB").await;
    let bank = read(&app, "/v1/banks/VCB").await;
    assert_eq!(bank["disabled"], false);
    assert!(bank.get("refund_url").is_none(), "{bank}");
    assert_eq!(bank["last_activity_at"], Value::Null);

    let url = "https://api.vcb.com.vn/paygate/refunds";
    let bank = patched(&app, "/v1/banks/VCB", json!({"refund_url": url})).await;
    assert_eq!((&bank["refund_url"], &bank["disabled"]), (&json!(url), &json!(false)));
    assert!(bank["keys"].is_array(), "{bank}");
    let bank = patched(&app, "/v1/banks/VCB", json!({"disabled": true})).await;
    assert_eq!((&bank["refund_url"], &bank["disabled"]), (&json!(url), &json!(true)));
    assert_eq!(read(&app, "/v1/banks/VCB").await, bank);
    let bank = patched(&app, "/v1/banks/VCB", json!({"refund_url": null})).await;
    assert!(bank.get("refund_url").is_none(), "{bank}");
    assert_eq!(bank["disabled"], true);

    // Private addresses are refused unless allowed, as for notify_url.
    let strict = TestApp::spawn_with(Config { notify_allow_private: false, ..test_config() }).await;
    strict.create_bank("VCB").await;
    for url in ["http://127.0.0.1:8080/r", "http://10.0.0.5/r", "http://[::1]/r"] {
        assert_eq!(
            invalid(patch(&strict, "/v1/banks/VCB", json!({"refund_url": url})).await).await,
            ["refund_url"],
            "{url}"
        );
    }
    strict.assert_count("SELECT count(*) FROM banks WHERE refund_url IS NOT NULL", 0).await;
    assert_eq!(
        patch(&app, "/v1/banks/VCB", json!({"refund_url": "http://127.0.0.1:8080/r"}))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_disabled_agencys_keys_answer_403_while_its_orders_stay_payable_and_its_events_are_delivered(
) {
    use integration_tests::receiver::{Behaviour, Receiver};
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(Behaviour::status(200)).await;
    let agency = app.create_agency("H12").await;
    let key = agency["api_key"].as_str().unwrap().to_owned();
    let second = json_answer(post(&app, "/v1/agencies/H12/keys", json!({})).await, 201).await;
    let second = second["api_key"].as_str().unwrap().to_owned();
    let other = app.create_agency("H29").await;
    let other_key = other["api_key"].as_str().unwrap();
    patch(&app, "/v1/agencies/H12", json!({"notify_url": receiver.url("/hook")})).await;
    let bank = app.new_bank("VCB").await;
    let payment = create_order(&app, &key, "H12-0001").await;
    let id = payment["id"].as_str().unwrap();

    let agency = patched(&app, "/v1/agencies/H12", json!({"disabled": true})).await;
    assert_eq!(agency["disabled"], true);
    let orders_before = app.count("SELECT count(*) FROM payments").await;
    for key in [&key, &second] {
        for response in [
            get_as(&app, key, "/v1/payments").await,
            get_as(&app, key, &format!("/v1/payments/{id}")).await,
            get_as(&app, key, "/v1/events").await,
            get_as(&app, key, "/v1/agencies").await,
            app.post_with(key, &format!("/v1/payments/{id}/cancel")).send().await.unwrap(),
            app.post_with(key, "/v1/payments")
                .header("Idempotency-Key", "k-1")
                .json(&json!({}))
                .send()
                .await
                .unwrap(),
        ] {
            assert_problem(response, 403, "agency_disabled").await;
        }
    }
    app.assert_count("SELECT count(*) FROM payments", orders_before).await;
    // Another agency is not affected.
    assert_eq!(get_as(&app, other_key, "/v1/payments").await.status(), 200);

    // The order stays payable: the bank looks it up and pays it, and the agency is notified.
    let inquiry = json_answer(
        signed(&app, &bank, &bank.secret, "inquiry", &json!({"payment_id": id})).await,
        200,
    )
    .await;
    assert_eq!(inquiry["status"], "pending");
    let answer = json_answer(
        signed(&app, &bank, &bank.secret, "callbacks", &paid_callback("FT1", id)).await,
        200,
    )
    .await;
    assert_eq!(
        (&answer["result"], &answer["payment_status"]),
        (&json!("accepted"), &json!("paid"))
    );
    let requests = receiver.wait_for(1, std::time::Duration::from_secs(15)).await;
    let event = requests[0].json();
    assert_eq!((&event["type"], &event["payment"]["id"]), (&json!("payment.paid"), &json!(id)));
    // Admins still read its orders.
    let read_back = json_answer(
        app.admin(Method::GET, &format!("/v1/payments/{id}")).send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(read_back["status"], "paid");

    // Enabled again, its keys work again.
    let agency = patched(&app, "/v1/agencies/H12", json!({"disabled": false})).await;
    assert_eq!(agency["disabled"], false);
    assert_eq!(get_as(&app, &key, "/v1/payments").await.status(), 200);
}

#[tokio::test]
async fn a_disabled_banks_inquiries_answer_403_after_the_signature_is_verified_and_its_callbacks_are_accepted(
) {
    let app = TestApp::spawn().await;
    let agency = app.create_agency("H12").await;
    let key = agency["api_key"].as_str().unwrap();
    let bank = app.new_bank("VCB").await;
    let other = app.new_bank("BIDV").await;
    let first = create_order(&app, key, "H12-0001").await;
    let second = create_order(&app, key, "H12-0002").await;
    let bank_state = patched(&app, "/v1/banks/VCB", json!({"disabled": true})).await;
    assert_eq!(bank_state["disabled"], true);

    let inquiry = json!({"payment_id": first["id"]});
    assert_problem(
        signed(&app, &bank, &bank.secret, "inquiry", &inquiry).await,
        403,
        "bank_disabled",
    )
    .await;
    // A wrong signature is still just that: nobody learns the bank is disabled without it.
    assert_problem(
        signed(&app, &bank, "bsk_not-the-secret-of-this-bank-at-all-000000", "inquiry", &inquiry)
            .await,
        401,
        "invalid_signature",
    )
    .await;
    // The refusal comes before the body is read.
    assert_problem(
        signed(&app, &bank, &bank.secret, "inquiry", &json!({"payment_id": 5})).await,
        403,
        "bank_disabled",
    )
    .await;
    // Other banks are not affected.
    assert_eq!(signed(&app, &other, &other.secret, "inquiry", &inquiry).await.status(), 200);

    // Callbacks are still accepted: money the bank collected lands.
    let answer = json_answer(
        signed(
            &app,
            &bank,
            &bank.secret,
            "callbacks",
            &paid_callback("FT1", first["id"].as_str().unwrap()),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(answer["result"], "accepted");
    app.assert_count("SELECT count(*) FROM ledger_transactions", 1).await;

    // Enabled again, inquiries work again.
    patch(&app, "/v1/banks/VCB", json!({"disabled": false})).await;
    let inquiry = json!({"payment_id": second["id"]});
    assert_eq!(signed(&app, &bank, &bank.secret, "inquiry", &inquiry).await.status(), 200);
}

#[tokio::test]
async fn agencies_are_listed_newest_first_without_secrets_with_the_time_of_their_last_order() {
    let app = TestApp::spawn().await;
    let mut secrets = Vec::new();
    for code in ["H01", "H02", "H03"] {
        let created = app.create_agency(code).await;
        secrets.push(created["api_key"].as_str().unwrap().to_owned());
        secrets.push(created["notify_secret"].as_str().unwrap().to_owned());
    }
    patch(&app, "/v1/agencies/H02", json!({"disabled": true})).await;
    let response = app.admin(Method::GET, "/v1/agencies").send().await.unwrap();
    let text = response.text().await.unwrap();
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "a secret in {text}");
    }
    let page: Value = serde_json::from_str(&text).unwrap();
    let codes: Vec<&str> =
        page["items"].as_array().unwrap().iter().map(|a| a["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["H03", "H02", "H01"]);
    assert_eq!(page["next_cursor"], Value::Null);
    for item in page["items"].as_array().unwrap() {
        assert_eq!(
            sorted_fields(item),
            ["code", "created_at", "disabled", "last_activity_at", "name", "sandbox", "updated_at"],
            "{item}"
        );
        assert_eq!(item["last_activity_at"], Value::Null);
        assert_eq!(item["disabled"], item["code"] == "H02");
        // The list and the single read agree.
        assert_eq!(
            *item,
            read(&app, &format!("/v1/agencies/{}", item["code"].as_str().unwrap())).await
        );
    }

    // Its last order's creation time is its last activity.
    let key = secrets[0].clone();
    create_order(&app, &key, "H01-0001").await;
    let newest = create_order(&app, &key, "H01-0002").await;
    let h01 = read(&app, "/v1/agencies/H01").await;
    assert_eq!(h01["last_activity_at"], newest["created_at"]);

    // Pages of one walk them all, each once.
    let first = read(&app, "/v1/agencies?limit=1").await;
    assert_eq!(first["items"][0]["code"], "H03");
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = read(&app, &format!("/v1/agencies?limit=1&cursor={cursor}")).await;
    assert_eq!(second["items"][0]["code"], "H02");
    let cursor = second["next_cursor"].as_str().unwrap();
    let third = read(&app, &format!("/v1/agencies?limit=2&cursor={cursor}")).await;
    assert_eq!(third["items"].as_array().unwrap().len(), 1);
    assert_eq!(third["items"][0]["code"], "H01");
    assert_eq!(third["items"][0]["last_activity_at"], newest["created_at"]);
    assert_eq!(third["next_cursor"], Value::Null);
}

#[tokio::test]
async fn banks_are_listed_with_their_switches_and_the_time_of_their_last_callback() {
    let app = TestApp::spawn().await;
    let agency = app.create_agency("H12").await;
    let key = agency["api_key"].as_str().unwrap();
    let vcb = app.new_bank("VCB").await;
    app.new_bank("BIDV").await;
    patch(&app, "/v1/banks/BIDV", json!({"disabled": true, "refund_url": "https://bidv.vn/r"}))
        .await;
    let page = read(&app, "/v1/banks").await;
    // The built-in sandbox bank, made by the migrations, is the oldest: last.
    let all = page["items"].as_array().unwrap();
    assert_eq!(all.last().unwrap()["code"], "SANDBOX");
    let items = &all[..all.len() - 1];
    assert_eq!(items.len(), 2);
    assert_eq!((&items[0]["code"], &items[1]["code"]), (&json!("BIDV"), &json!("VCB")));
    assert_eq!(
        sorted_fields(&items[0]),
        [
            "code",
            "created_at",
            "disabled",
            "last_activity_at",
            "name",
            "refund_url",
            "sandbox",
            "updated_at"
        ]
    );
    assert_eq!(
        (&items[0]["disabled"], &items[0]["refund_url"]),
        (&json!(true), &json!("https://bidv.vn/r"))
    );
    assert_eq!(items[1]["disabled"], false);
    assert!(items[1].get("refund_url").is_none());
    assert!(!page.to_string().contains(&vcb.secret));
    assert_eq!(items[1]["last_activity_at"], Value::Null);

    let received_at = |app: &TestApp, sql: &'static str| {
        let pool = app.db.clone();
        async move {
            let client = pool.get().await.unwrap();
            let at: time::OffsetDateTime = client.query_one(sql, &[]).await.unwrap().get(0);
            paygate::timefmt::format_utc(at)
        }
    };
    // An accepted callback is activity.
    let payment = create_order(&app, key, "H12-0001").await;
    let id = payment["id"].as_str().unwrap();
    signed(&app, &vcb, &vcb.secret, "callbacks", &paid_callback("FT1", id)).await;
    let vcb_item = read(&app, "/v1/banks/VCB").await;
    assert_eq!(
        vcb_item["last_activity_at"],
        received_at(&app, "SELECT max(received_at) FROM bank_callbacks").await
    );
    // So is a callback rejected but kept for investigation (an unknown order).
    let response =
        signed(&app, &vcb, &vcb.secret, "callbacks", &paid_callback("FT2", "pay_unknown")).await;
    assert_eq!(response.status(), 404);
    let vcb_item = read(&app, "/v1/banks/VCB").await;
    assert_eq!(
        vcb_item["last_activity_at"],
        received_at(&app, "SELECT max(created_at) FROM callback_exceptions").await
    );
    // The list shows the same; BIDV did nothing.
    let page = read(&app, "/v1/banks?limit=1").await;
    assert_eq!(page["items"][0]["code"], "BIDV");
    assert_eq!(page["items"][0]["last_activity_at"], Value::Null);
    let cursor = page["next_cursor"].as_str().unwrap();
    let page = read(&app, &format!("/v1/banks?limit=1&cursor={cursor}")).await;
    assert_eq!(page["items"][0]["code"], "VCB");
    assert_eq!(page["items"][0]["last_activity_at"], vcb_item["last_activity_at"]);
    // Then the built-in sandbox bank, the oldest, and the end.
    let cursor = page["next_cursor"].as_str().unwrap();
    let page = read(&app, &format!("/v1/banks?limit=1&cursor={cursor}")).await;
    assert_eq!(page["items"][0]["code"], "SANDBOX");
    assert_eq!(page["next_cursor"], Value::Null);
}

/// The key list's own filters, and the agency and bank lists' limit and cursor.
#[tokio::test]
async fn invalid_filters_of_the_key_agency_and_bank_lists_are_each_named() {
    let app = TestApp::spawn().await;
    let key_filters = [
        ("?role=root", "role"),
        ("?role=", "role"),
        ("?agency=h12", "agency"),
        ("?limit=0", "limit"),
        ("?limit=501", "limit"),
        ("?cursor=nope", "cursor"),
    ];
    let page_filters = [
        ("?limit=0", "limit"),
        ("?limit=501", "limit"),
        ("?limit=ten", "limit"),
        ("?cursor=%2F%2F", "cursor"),
    ];
    for (path, filters) in [
        ("/v1/api-keys", &key_filters[..]),
        ("/v1/agencies", &page_filters),
        ("/v1/banks", &page_filters),
    ] {
        for (query, field) in filters {
            let path = format!("{path}{query}");
            assert_eq!(app.admin(Method::GET, &path).invalid().await, [*field], "{path}");
        }
    }
}

#[tokio::test]
async fn the_last_activity_of_every_listed_row_is_found_through_an_index() {
    let app = TestApp::spawn().await;
    let client = app.db.get().await.unwrap();
    // With sequential scans priced out, a plan that still scans a table has no index to use.
    client.batch_execute("SET enable_seqscan = off").await.unwrap();
    for sql in [
        "EXPLAIN SELECT (SELECT p.created_at FROM payments p WHERE p.agency_code = a.code
                         ORDER BY p.seq DESC LIMIT 1) FROM agencies a",
        "EXPLAIN SELECT greatest(
             (SELECT c.received_at FROM bank_callbacks c
              WHERE c.bank_code = b.code AND c.source = 'callback' ORDER BY c.id DESC LIMIT 1),
             (SELECT e.created_at FROM callback_exceptions e
              WHERE e.bank_code = b.code AND e.callback_id IS NULL ORDER BY e.id DESC LIMIT 1))
         FROM banks b",
    ] {
        let plan: Vec<String> =
            client.query(sql, &[]).await.unwrap().iter().map(|row| row.get(0)).collect();
        let plan = plan.join("\n");
        for table in ["payments", "bank_callbacks", "callback_exceptions"] {
            assert!(!plan.contains(&format!("Seq Scan on {table}")), "{plan}");
        }
    }
}
