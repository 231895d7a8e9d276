use integration_tests::answers::RequestExt;
use integration_tests::world::{World, AGENCY, BANK};
use integration_tests::{scan_audit, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

use super::{entries_after, head_seq, labelled_admin, request_id, verify, LABEL};

/// Sends a request with `key` (and `body` as JSON when given); the answer must have `status`.
/// Returns the answer's JSON body (null when it has none), the request id answered, and the
/// audit entries the request wrote.
async fn act(
    app: &TestApp,
    key: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    status: u16,
) -> (Value, String, Vec<Value>) {
    let before = head_seq(app).await;
    let mut request = app.http.request(method, app.url(path)).bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let id = request_id(&response);
    let answered = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(answered, status, "{path}: {text}");
    let answer = serde_json::from_str(&text).unwrap_or(Value::Null);
    (answer, id, entries_after(app, before).await)
}

/// Asserts that `entries` is exactly one entry of `action` on `target` with `detail`, made by
/// `actor` in the request `request_id`; returns it.
fn one(
    entries: &[Value],
    actor: &Value,
    request_id: &str,
    action: &str,
    target: &str,
    detail: Value,
) -> Value {
    assert_eq!(entries.len(), 1, "{action}: exactly one entry: {entries:#?}");
    let entry = &entries[0];
    assert_eq!(entry["action"], action, "{entry}");
    assert_eq!(entry["target"], target, "{entry}");
    assert_eq!(entry["actor"], *actor, "{entry}");
    assert_eq!(entry["request_id"], request_id, "{entry}");
    assert_eq!(entry["detail"], detail, "{entry}");
    entry.clone()
}

#[tokio::test]
async fn every_admin_action_writes_exactly_one_entry_naming_its_actor_target_and_detail() {
    let w = World::new().await;
    let app = &w.app;
    let (key, key_id) = labelled_admin(app).await;
    let actor =
        json!({"key_id": key_id, "role": "admin", "agency": null, "label": LABEL, "via": "api"});
    let (post, patch, delete) = (Method::POST, Method::PATCH, Method::DELETE);

    let body = json!({"code": "G01.001", "name": "Sở Tài chính", "label": "Cổng 1",
                      "notify_url": "http://127.0.0.1:9/notify?token=abc#frag"});
    let (created, id, entries) =
        act(app, &key, post.clone(), "/v1/agencies", Some(body), 201).await;
    let detail = json!({"name": "Sở Tài chính", "notify_url": "http://127.0.0.1:9/notify",
                        "key_id": created["api_key_id"], "key_label": "Cổng 1",
                        "sandbox": false});
    one(&entries, &actor, &id, "agency.create", "agency:G01.001", detail);

    let body = json!({"notify_url": "https://dvc.example.vn/n?sig=1", "disabled": true});
    let (_, id, entries) =
        act(app, &key, patch.clone(), "/v1/agencies/G01.001", Some(body), 200).await;
    let detail = json!({
        "notify_url": {"from": "http://127.0.0.1:9/notify", "to": "https://dvc.example.vn/n"},
        "disabled": {"from": false, "to": true},
    });
    one(&entries, &actor, &id, "agency.update", "agency:G01.001", detail);

    let body = json!({"label": "Cổng 2"});
    let (agency_key, id, entries) =
        act(app, &key, post.clone(), "/v1/agencies/G01.001/keys", Some(body), 201).await;
    let detail = json!({"key_id": agency_key["api_key_id"], "label": "Cổng 2"});
    one(&entries, &actor, &id, "agency.key.create", "agency:G01.001", detail);

    let (_, id, entries) =
        act(app, &key, post.clone(), "/v1/agencies/G01.001/notify-secret", None, 201).await;
    let detail = json!({"previous_secret_signs_for_s": 86400});
    one(&entries, &actor, &id, "agency.notify_secret.rotate", "agency:G01.001", detail);

    let body = json!({"code": "TCB", "name": "Ngân hàng Kỹ Thương"});
    let (bank, id, entries) = act(app, &key, post.clone(), "/v1/banks", Some(body), 201).await;
    let detail = json!({"name": "Ngân hàng Kỹ Thương", "key_id": bank["key_id"], "sandbox": false});
    one(&entries, &actor, &id, "bank.create", "bank:TCB", detail);

    let body = json!({"refund_url": "https://api.tcb.example.vn/refunds?token=x#y"});
    let (_, id, entries) = act(app, &key, patch.clone(), "/v1/banks/TCB", Some(body), 200).await;
    let detail = json!({"refund_url": {"from": null, "to": "https://api.tcb.example.vn/refunds"}});
    one(&entries, &actor, &id, "bank.update", "bank:TCB", detail);

    let (bank_key, id, entries) =
        act(app, &key, post.clone(), "/v1/banks/TCB/keys", None, 201).await;
    let kid = bank_key["key_id"].as_str().unwrap();
    let target = format!("bank:TCB/key:{kid}");
    one(&entries, &actor, &id, "bank.key.create", &target, json!({"key_id": kid}));

    let path = format!("/v1/banks/TCB/keys/{kid}");
    let (_, id, entries) = act(app, &key, delete.clone(), &path, None, 204).await;
    one(&entries, &actor, &id, "bank.key.revoke", &target, json!({"key_id": kid}));

    let body = json!({"role": "auditor", "label": "Kiểm toán viên"});
    let (auditor, id, entries) =
        act(app, &key, post.clone(), "/v1/api-keys", Some(body), 201).await;
    let target = format!("api_key:{}", auditor["id"].as_str().unwrap());
    let detail = json!({"role": "auditor", "label": "Kiểm toán viên"});
    one(&entries, &actor, &id, "api_key.create", &target, detail);

    let path = format!("/v1/api-keys/{}", auditor["id"].as_str().unwrap());
    let (_, id, entries) = act(app, &key, delete.clone(), &path, None, 204).await;
    let detail = json!({"role": "auditor", "agency": null, "label": "Kiểm toán viên"});
    one(&entries, &actor, &id, "api_key.revoke", &target, detail);

    // A cancelled order makes an event to redeliver.
    let payment_id = w.order("AUDIT-EVT-1").await;
    w.cancel(&payment_id).await;
    let events =
        app.admin(Method::GET, &format!("/v1/events?payment_id={payment_id}")).json_with(200).await;
    let event_id = events["items"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/events/{event_id}/redeliver");
    let (_, id, entries) = act(app, &key, post.clone(), &path, None, 202).await;
    assert_eq!(entries.len(), 1, "{entries:#?}");
    let detail = &entries[0]["detail"];
    assert_eq!(detail["type"], "payment.cancelled");
    assert_eq!(detail["payment_id"], payment_id);
    assert!(detail["attempts"].is_i64() && detail["status_before"].is_string(), "{detail}");
    let target = format!("event:{event_id}");
    one(&entries, &actor, &id, "event.redeliver", &target, detail.clone());

    // A reconciliation run, by an admin (it may move money) and by an auditor (it may not).
    let statement = "bank_txn_id,payment_id,amount,paid_at\n";
    let reconcile = |key: &str| {
        app.http
            .post(app.url(&format!("/v1/reconciliations?bank={BANK}&date=2026-11-22")))
            .bearer_auth(key)
            .header("Content-Type", "text/csv")
            .header("X-Request-Id", "audit-test.run-1")
            .body(statement)
            .send()
    };
    for (run_key, role, applies, label) in [
        (key.as_str(), "admin", true, json!(LABEL)),
        (w.auditor_key.as_str(), "auditor", false, Value::Null),
    ] {
        let before = head_seq(app).await;
        let response = reconcile(run_key).await.unwrap();
        assert_eq!(request_id(&response), "audit-test.run-1", "a client's request id is kept");
        assert_eq!(response.status(), 201);
        let run: Value = response.json().await.unwrap();
        let entries = entries_after(app, before).await;
        let run_actor = json!({
            "key_id": entries[0]["actor"]["key_id"], "role": role, "agency": null,
            "label": label, "via": "api",
        });
        let detail = json!({"bank": BANK, "date": "2026-11-22", "statement_lines": 0,
                            "applies_recoveries": applies, "summary": run["summary"]});
        let target = format!("reconciliation:{}", run["id"].as_str().unwrap());
        one(&entries, &run_actor, "audit-test.run-1", "reconciliation.run", &target, detail);
    }

    // The trail as a whole is sound and free of secrets.
    assert_eq!(verify(app).await["ok"], true);
    assert_eq!(scan_audit(&app.db_settings).await.unwrap(), Vec::<String>::new());
}

#[tokio::test]
async fn refused_requests_and_requests_that_change_nothing_write_no_entry() {
    let w = World::new().await;
    let app = &w.app;
    let (key, _) = labelled_admin(app).await;
    let bank = app.create_bank("TCB").await;
    let kid = bank["key_id"].as_str().unwrap().to_owned();
    let before = head_seq(app).await;
    let new_bank = json!({"code": "ACB", "name": "Ngân hàng Á Châu"});

    // Refused: no key, a wrong role, an invalid body, an unknown target, a duplicate.
    app.post("/v1/banks").json(&new_bank).problem(401, "unauthenticated").await;
    app.post_with(&w.auditor_key, "/v1/banks").json(&new_bank).problem(403, "forbidden").await;
    app.post_with(&w.agency_key, "/v1/banks").json(&new_bank).problem(403, "forbidden").await;
    app.post_with(&key, "/v1/banks")
        .json(&json!({"code": "a b"}))
        .problem(422, "validation_failed")
        .await;
    app.http
        .patch(app.url("/v1/agencies/NO.SUCH"))
        .bearer_auth(&key)
        .json(&json!({"disabled": true}))
        .problem(404, "agency_not_found")
        .await;
    app.post_with(&key, "/v1/banks")
        .json(&json!({"code": BANK, "name": "x"}))
        .problem(409, "duplicate_code")
        .await;
    app.http
        .delete(app.url("/v1/banks/TCB/keys/kid_nosuch"))
        .bearer_auth(&key)
        .problem(404, "key_not_found")
        .await;
    app.post_with(&w.auditor_key, &format!("/v1/reconciliations?bank={BANK}&date=2026-13-01"))
        .header("Content-Type", "text/csv")
        .body("bank_txn_id,payment_id,amount,paid_at\n")
        .problem(422, "validation_failed")
        .await;
    assert_eq!(head_seq(app).await, before, "a refused request records nothing");

    // Changing nothing: an empty PATCH, the values it already has.
    for body in [json!({}), json!({"disabled": false}), json!({"notify_url": null})] {
        app.http
            .patch(app.url(&format!("/v1/agencies/{AGENCY}")))
            .bearer_auth(&key)
            .json(&body)
            .json_with(200)
            .await;
    }
    app.http
        .patch(app.url("/v1/banks/TCB"))
        .bearer_auth(&key)
        .json(&json!({"disabled": false}))
        .json_with(200)
        .await;
    assert_eq!(head_seq(app).await, before, "a change to nothing records nothing");

    // Revoking twice records the revocation once.
    for _ in 0..2 {
        let response = app
            .http
            .delete(app.url(&format!("/v1/banks/TCB/keys/{kid}")))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204);
    }
    let auditor = app
        .admin(Method::POST, "/v1/api-keys")
        .json(&json!({"role": "auditor"}))
        .json_with(201)
        .await;
    let auditor_id = auditor["id"].as_str().unwrap();
    for _ in 0..2 {
        let response =
            app.admin(Method::DELETE, &format!("/v1/api-keys/{auditor_id}")).send().await.unwrap();
        assert_eq!(response.status(), 204);
    }
    let actions: Vec<Value> =
        entries_after(app, before).await.iter().map(|e| e["action"].clone()).collect();
    assert_eq!(
        actions,
        [json!("bank.key.revoke"), json!("api_key.create"), json!("api_key.revoke")]
    );

    // An agency redelivering its own event is not an operator's action.
    let payment_id = w.order("AUDIT-EVT-2").await;
    w.cancel(&payment_id).await;
    let events = app.get_json(&w.agency_key, &format!("/v1/events?payment_id={payment_id}")).await;
    let event_id = events["items"][0]["id"].as_str().unwrap();
    let seq = head_seq(app).await;
    let response = app
        .post_with(&w.agency_key, &format!("/v1/events/{event_id}/redeliver"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(head_seq(app).await, seq);
}

#[tokio::test]
async fn a_change_whose_entry_cannot_be_appended_is_rolled_back_with_it() {
    let app = TestApp::spawn().await;
    // As the owner: the append of any bank.create entry fails.
    app.execute(
        "CREATE FUNCTION refuse_bank_entries() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.action = 'bank.create' THEN RAISE EXCEPTION 'refused for the test'; END IF;
             RETURN NEW;
         END $$",
        &[],
    )
    .await;
    app.execute(
        "CREATE TRIGGER refuse_bank_entries BEFORE INSERT ON audit_log
         FOR EACH ROW EXECUTE FUNCTION refuse_bank_entries()",
        &[],
    )
    .await;
    let before = head_seq(&app).await;
    app.admin(Method::POST, "/v1/banks")
        .json(&json!({"code": "TCB", "name": "Techcombank"}))
        .problem(500, "internal_error")
        .await;
    app.assert_count("SELECT count(*) FROM banks WHERE code = 'TCB'", 0).await;
    app.assert_count("SELECT count(*) FROM bank_keys WHERE bank_code = 'TCB'", 0).await;
    assert_eq!(head_seq(&app).await, before);
    // Other actions still append.
    app.create_agency("G01.002").await;
    assert_eq!(head_seq(&app).await, before + 1);
}

#[tokio::test]
async fn a_change_that_fails_at_commit_after_its_entry_was_appended_leaves_neither_and_no_gap() {
    let app = TestApp::spawn().await;
    // As the owner: a bank named FAIL breaks a deferred constraint, checked at commit, that
    // is after the entry was appended.
    app.execute(
        "CREATE FUNCTION refuse_fail_bank() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.code = 'FAIL' THEN RAISE EXCEPTION 'refused at commit for the test'; END IF;
             RETURN NULL;
         END $$",
        &[],
    )
    .await;
    app.execute(
        "CREATE CONSTRAINT TRIGGER refuse_fail_bank AFTER INSERT ON banks
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_fail_bank()",
        &[],
    )
    .await;
    let before = head_seq(&app).await;
    let response = app
        .admin(Method::POST, "/v1/banks")
        .json(&json!({"code": "FAIL", "name": "Ngân hàng hỏng"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    app.assert_count("SELECT count(*) FROM banks WHERE code = 'FAIL'", 0).await;
    app.assert_count("SELECT count(*) FROM audit_log WHERE target = 'bank:FAIL'", 0).await;
    assert_eq!(head_seq(&app).await, before);
    // The next entry takes the next number: the rolled-back one left no gap.
    app.create_bank("TCB").await;
    let entries = entries_after(&app, before).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["seq"], before + 1);
    assert_eq!(entries[0]["target"], "bank:TCB");
    let verdict = verify(&app).await;
    assert_eq!(verdict["ok"], true, "{verdict}");
}
