//! API keys: labels, ids, the key list, revocation and last use.

use super::*;

/// Counts the admin keys that are not revoked.
const LIVE_ADMIN_KEYS: &str =
    "SELECT count(*) FROM api_keys WHERE role = 'admin' AND revoked_at IS NULL";

/// The id under which the API shows `key`, read from the database.
async fn key_id_of(app: &TestApp, key: &str) -> String {
    let client = app.db.get().await.unwrap();
    let id: i64 = client
        .query_one(
            "SELECT id FROM api_keys WHERE key_hash = $1",
            &[&paygate::auth::keys::hash_api_key(key)],
        )
        .await
        .unwrap()
        .get(0);
    format!("key_{id}")
}

fn is_path_safe_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

async fn list_keys(app: &TestApp, query: &str) -> Value {
    let response = app.admin(Method::GET, &format!("/v1/api-keys{query}")).send().await.unwrap();
    json_answer(response, 200).await
}

/// A key's item in the key list.
async fn key_item(app: &TestApp, id: &str) -> Value {
    let page = list_keys(app, "?limit=500").await;
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["id"] == id)
        .unwrap_or_else(|| panic!("{id} is not listed: {page}"))
        .clone()
}

#[tokio::test]
async fn every_key_creation_takes_an_optional_label_and_answers_the_new_keys_id() {
    let app = TestApp::spawn().await;
    let label = "Kiểm toán viên Trần Văn C";
    let response = post(&app, "/v1/api-keys", json!({"role": "auditor", "label": label})).await;
    let auditor = json_answer(response, 201).await;
    let fields = sorted_fields(&auditor);
    assert_eq!(fields, ["api_key", "id", "label", "role"], "{auditor}");
    assert_eq!(auditor["role"], "auditor");
    assert_eq!(auditor["label"], label);
    let id = auditor["id"].as_str().unwrap();
    assert!(is_path_safe_id(id), "{id}");
    assert_eq!(id, key_id_of(&app, auditor["api_key"].as_str().unwrap()).await);

    // Without a label, `label` is null.
    let admin = json_answer(post(&app, "/v1/api-keys", json!({"role": "admin"})).await, 201).await;
    assert_eq!(admin["label"], Value::Null, "{admin}");
    assert_ne!(admin["id"], auditor["id"]);

    // An agency's first key, labelled.
    let response = post(
        &app,
        "/v1/agencies",
        json!({"code": "H12", "name": "Sở Tư pháp", "label": "Máy chủ 1"}),
    )
    .await;
    let agency = json_answer(response, 201).await;
    let first = agency["api_key_id"].as_str().unwrap().to_owned();
    assert_eq!(first, key_id_of(&app, agency["api_key"].as_str().unwrap()).await);

    // A further agency key: with a label, with an empty object, and with no body at all.
    let response = post(&app, "/v1/agencies/H12/keys", json!({"label": "Máy chủ 2"})).await;
    let second = json_answer(response, 201).await;
    let fields = sorted_fields(&second);
    assert_eq!(fields, ["api_key", "api_key_id"], "{second}");
    assert_eq!(second["api_key_id"], key_id_of(&app, second["api_key"].as_str().unwrap()).await);
    let third = json_answer(post(&app, "/v1/agencies/H12/keys", json!({})).await, 201).await;
    let response = app.admin(Method::POST, "/v1/agencies/H12/keys").send().await.unwrap();
    let fourth = json_answer(response, 201).await;

    let listed = |id: &Value| {
        let id = id.as_str().unwrap().to_owned();
        let app = &app;
        async move { key_item(app, &id).await }
    };
    assert_eq!(listed(&auditor["id"]).await["label"], label);
    assert_eq!(listed(&admin["id"]).await["label"], Value::Null);
    let first = listed(&agency["api_key_id"]).await;
    assert_eq!(
        (&first["role"], &first["agency"], &first["label"]),
        (&json!("agency"), &json!("H12"), &json!("Máy chủ 1"))
    );
    assert_eq!(listed(&second["api_key_id"]).await["label"], "Máy chủ 2");
    assert_eq!(listed(&third["api_key_id"]).await["label"], Value::Null);
    assert_eq!(listed(&fourth["api_key_id"]).await["label"], Value::Null);
}

#[tokio::test]
async fn an_invalid_label_is_named_and_creates_nothing() {
    let app = TestApp::spawn().await;
    app.create_agency("H12").await;
    let before = admin_state(&app).await;
    let long = "ệ".repeat(65);
    for label in [json!(""), json!(long), json!(7), json!(["a"]), json!("a\u{0}b")] {
        let requests = [
            ("/v1/api-keys", json!({"role": "auditor", "label": label})),
            ("/v1/agencies", json!({"code": "H13", "name": "A", "label": label})),
            ("/v1/agencies/H12/keys", json!({"label": label})),
        ];
        for (path, body) in requests {
            let problem =
                assert_problem(post(&app, path, body).await, 422, "validation_failed").await;
            assert_eq!(invalid_fields(&problem), ["label"], "{path} {label}");
        }
    }
    // A body that is not JSON is not an absent body.
    app.admin(Method::POST, "/v1/agencies/H12/keys")
        .body("{label")
        .problem(400, "malformed_json")
        .await;
    assert_eq!(admin_state(&app).await, before);
    // 64 characters are fine.
    let response =
        post(&app, "/v1/api-keys", json!({"role": "auditor", "label": "ệ".repeat(64)})).await;
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn keys_are_listed_newest_first_with_their_holders_but_never_the_key_or_its_hash() {
    let app = TestApp::spawn().await;
    let mut secrets = vec![app.admin_key.clone()];
    let auditor = json_answer(
        post(&app, "/v1/api-keys", json!({"role": "auditor", "label": "Kiểm toán"})).await,
        201,
    )
    .await;
    secrets.push(auditor["api_key"].as_str().unwrap().to_owned());
    let h12 = app.create_agency("H12").await;
    secrets.push(h12["api_key"].as_str().unwrap().to_owned());
    let h29 = app.create_agency("H29").await;
    secrets.push(h29["api_key"].as_str().unwrap().to_owned());
    let more = json_answer(post(&app, "/v1/agencies/H12/keys", json!({})).await, 201).await;
    secrets.push(more["api_key"].as_str().unwrap().to_owned());

    let response = app.admin(Method::GET, "/v1/api-keys").send().await.unwrap();
    let text = response.text().await.unwrap();
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "a key in {text}");
        let hash = paygate::auth::keys::hash_api_key(secret);
        assert!(!text.contains(&hex_lower(&hash)), "a key hash in {text}");
    }
    let page: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(page["next_cursor"], Value::Null);
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    for item in items {
        let fields = sorted_fields(item);
        assert_eq!(
            fields,
            ["agency", "created_at", "id", "label", "last_used_at", "revoked_at", "role"],
            "{item}"
        );
        assert!(is_path_safe_id(item["id"].as_str().unwrap()));
        assert!(item["created_at"].as_str().unwrap().ends_with('Z'));
        assert_eq!(item["revoked_at"], Value::Null);
    }
    // Newest first: the last key created leads, the test's own admin key (the first) ends.
    assert_eq!(items[0]["id"], more["api_key_id"]);
    assert_eq!(items[4]["id"], key_id_of(&app, &app.admin_key).await);
    assert_eq!(items[4]["agency"], Value::Null);
    assert_eq!(items[3]["label"], "Kiểm toán");
    // The admin key that made the list has been used; the others have not.
    assert!(items[4]["last_used_at"].is_string(), "{}", items[4]);
    assert_eq!(items[0]["last_used_at"], Value::Null);

    let ids = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let agency_keys = list_keys(&app, "?role=agency").await;
    assert_eq!(
        ids(&agency_keys),
        [
            more["api_key_id"].as_str().unwrap(),
            h29["api_key_id"].as_str().unwrap(),
            h12["api_key_id"].as_str().unwrap()
        ]
    );
    let of_h12 = list_keys(&app, "?agency=H12").await;
    assert_eq!(
        ids(&of_h12),
        [more["api_key_id"].as_str().unwrap(), h12["api_key_id"].as_str().unwrap()]
    );
    assert_eq!(ids(&list_keys(&app, "?role=admin&agency=H12").await).len(), 0);
    assert_eq!(ids(&list_keys(&app, "?agency=NOPE").await).len(), 0);
    assert_eq!(ids(&list_keys(&app, "?role=auditor").await), [auditor["id"].as_str().unwrap()]);

    // Pages of two walk every key once, in order.
    let mut walked = Vec::new();
    let mut query = "?limit=2".to_owned();
    loop {
        let page = list_keys(&app, &query).await;
        let page_ids = ids(&page);
        assert!(page_ids.len() <= 2);
        walked.extend(page_ids);
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                assert!(is_path_safe_id(cursor));
                query = format!("?limit=2&cursor={cursor}");
            }
            None => break,
        }
    }
    assert_eq!(walked, ids(&page));
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_revoked_key_answers_401_at_once_and_revoking_it_again_answers_204() {
    let app = TestApp::spawn().await;
    let agency = app.create_agency("H12").await;
    let auditor =
        json_answer(post(&app, "/v1/api-keys", json!({"role": "auditor"})).await, 201).await;
    let auditor_key = auditor["api_key"].as_str().unwrap();
    let agency_key = agency["api_key"].as_str().unwrap();
    let use_key = |key: &str| app.get_with(key, "/v1/payments").send();
    assert_eq!(use_key(auditor_key).await.unwrap().status(), 200);
    assert_eq!(use_key(agency_key).await.unwrap().status(), 200);

    for (id, key) in [
        (auditor["id"].as_str().unwrap(), auditor_key),
        (agency["api_key_id"].as_str().unwrap(), agency_key),
    ] {
        let path = format!("/v1/api-keys/{id}");
        let response = app.admin(Method::DELETE, &path).send().await.unwrap();
        assert_eq!(response.status(), 204);
        assert_problem(use_key(key).await.unwrap(), 401, "unauthenticated").await;
        let revoked_at = key_item(&app, id).await["revoked_at"].clone();
        assert!(revoked_at.is_string(), "{revoked_at}");
        // Again: 204, and the first revocation's time stands.
        let response = app.admin(Method::DELETE, &path).send().await.unwrap();
        assert_eq!(response.status(), 204);
        assert_eq!(key_item(&app, id).await["revoked_at"], revoked_at);
        assert_problem(use_key(key).await.unwrap(), 401, "unauthenticated").await;
    }
    // The agency itself is untouched; a new key works.
    let fresh = json_answer(post(&app, "/v1/agencies/H12/keys", json!({})).await, 201).await;
    assert_eq!(use_key(fresh["api_key"].as_str().unwrap()).await.unwrap().status(), 200);
}

#[tokio::test]
async fn an_unknown_or_malformed_key_id_answers_404_key_not_found_and_changes_nothing() {
    let app = TestApp::spawn().await;
    app.key_with_role("auditor").await;
    let before = admin_state(&app).await;
    for id in ["key_999999", "key_0", "key_01", "key_-1", "1", "abc", "key_99999999999999999999"] {
        app.admin(Method::DELETE, &format!("/v1/api-keys/{id}"))
            .problem(404, "key_not_found")
            .await;
    }
    assert_eq!(admin_state(&app).await, before);
}

#[tokio::test]
async fn the_last_live_admin_key_cannot_be_revoked() {
    let app = TestApp::spawn().await;
    let own = key_id_of(&app, &app.admin_key).await;
    let before = admin_state(&app).await;
    app.admin(Method::DELETE, &format!("/v1/api-keys/{own}")).problem(409, "last_admin_key").await;
    assert_eq!(admin_state(&app).await, before);

    // A revoked admin key does not count as a live one.
    let revoked =
        json_answer(post(&app, "/v1/api-keys", json!({"role": "admin"})).await, 201).await;
    let response = app
        .admin(Method::DELETE, &format!("/v1/api-keys/{}", revoked["id"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    app.admin(Method::DELETE, &format!("/v1/api-keys/{own}")).problem(409, "last_admin_key").await;

    // With a second live admin key, the first may go (even revoking itself); then the second
    // is the last.
    let second = json_answer(post(&app, "/v1/api-keys", json!({"role": "admin"})).await, 201).await;
    let response = app.admin(Method::DELETE, &format!("/v1/api-keys/{own}")).send().await.unwrap();
    assert_eq!(response.status(), 204);
    let second_key = second["api_key"].as_str().unwrap();
    app.http
        .delete(app.url(&format!("/v1/api-keys/{}", second["id"].as_str().unwrap())))
        .bearer_auth(second_key)
        .problem(409, "last_admin_key")
        .await;
    app.assert_count(LIVE_ADMIN_KEYS, 1).await;
}

#[tokio::test]
async fn concurrent_revocations_of_the_last_two_admin_keys_never_both_succeed() {
    let app = TestApp::spawn().await;
    let pool = paygate::db::pool(&app.db_settings, 4);
    let own = key_id_of(&app, &app.admin_key).await;
    let mut survivor = own;
    let rounds = 25;
    let mut conflicts = 0;
    let actor = paygate::audit::Actor::command_line();
    for round in 0..rounds {
        let other = {
            let client = pool.get().await.unwrap();
            let key = paygate::auth::create_api_key(&client, paygate::auth::Role::Admin, None)
                .await
                .unwrap();
            key_id_of(&app, &key).await
        };
        let (a, b) = tokio::join!(
            paygate::admin::api_keys::revoke(&pool, &survivor, &actor),
            paygate::admin::api_keys::revoke(&pool, &other, &actor)
        );
        let codes: Vec<&str> = [&a, &b]
            .iter()
            .map(|result| match result {
                Ok(()) => "revoked",
                Err(err) => err.code().as_str(),
            })
            .collect();
        let mut sorted = codes.clone();
        sorted.sort();
        assert_eq!(sorted, ["last_admin_key", "revoked"], "round {round}");
        conflicts += 1;
        assert_eq!(app.count(LIVE_ADMIN_KEYS).await, 1, "round {round}");
        survivor = if a.is_ok() { other } else { survivor };
    }
    println!("{rounds} rounds of two concurrent revocations: {conflicts} answered last_admin_key once each");

    // Over HTTP too: each of the last two admin keys revokes the other at the same moment.
    let (first, second) = {
        let client = pool.get().await.unwrap();
        let first =
            paygate::auth::create_api_key(&client, paygate::auth::Role::Admin, None).await.unwrap();
        let second =
            paygate::auth::create_api_key(&client, paygate::auth::Role::Admin, None).await.unwrap();
        (first, second)
    };
    paygate::admin::api_keys::revoke(&pool, &survivor, &actor).await.unwrap();
    let (first_id, second_id) = (key_id_of(&app, &first).await, key_id_of(&app, &second).await);
    let revoke_with = |key: &str, id: &str| {
        app.http.delete(app.url(&format!("/v1/api-keys/{id}"))).bearer_auth(key).send()
    };
    let (a, b) = tokio::join!(revoke_with(&second, &first_id), revoke_with(&first, &second_id));
    let mut statuses = [a.unwrap().status().as_u16(), b.unwrap().status().as_u16()];
    statuses.sort();
    // One revocation wins; the other either finds the last admin key (409) or, when the
    // winner committed before it authenticated, finds its own key revoked (401).
    assert!(statuses == [204, 409] || statuses == [204, 401], "{statuses:?}");
    app.assert_count(LIVE_ADMIN_KEYS, 1).await;
}

#[tokio::test]
async fn last_used_at_is_written_on_first_use_and_then_at_most_once_a_minute() {
    let app = TestApp::spawn().await;
    let auditor =
        json_answer(post(&app, "/v1/api-keys", json!({"role": "auditor"})).await, 201).await;
    let id = auditor["id"].as_str().unwrap();
    let key = auditor["api_key"].as_str().unwrap();
    assert_eq!(key_item(&app, id).await["last_used_at"], Value::Null);
    let use_key = || app.get_with(key, "/v1/agencies").send();

    assert_eq!(use_key().await.unwrap().status(), 200);
    let first = key_item(&app, id).await["last_used_at"].clone();
    assert!(first.is_string(), "{first}");

    // Within the minute, further uses (also many at once) write nothing.
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let request = app.get_with(key, "/v1/agencies");
        burst.spawn(async move { request.send().await.unwrap().status() });
    }
    while let Some(status) = burst.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }
    assert_eq!(key_item(&app, id).await["last_used_at"], first);

    // Once it is older than a minute, the next use writes it again.
    set_last_used(&app, id, "now() - interval '2 minutes'").await;
    let old = key_item(&app, id).await["last_used_at"].clone();
    assert_eq!(use_key().await.unwrap().status(), 200);
    let renewed = key_item(&app, id).await["last_used_at"].clone();
    assert!(renewed.as_str().unwrap() > old.as_str().unwrap(), "{old} -> {renewed}");
    // A key that failed to authenticate (revoked) is not marked used.
    let response = app.admin(Method::DELETE, &format!("/v1/api-keys/{id}")).send().await.unwrap();
    assert_eq!(response.status(), 204);
    set_last_used(&app, id, "NULL").await;
    assert_problem(use_key().await.unwrap(), 401, "unauthenticated").await;
    assert_eq!(key_item(&app, id).await["last_used_at"], Value::Null);
}

/// Sets the `last_used_at` of the key the API shows as `id` to `value` (an SQL expression).
async fn set_last_used(app: &TestApp, id: &str, value: &str) {
    let row_id = id.trim_start_matches("key_").parse::<i64>().unwrap();
    let sql = format!("UPDATE api_keys SET last_used_at = {value} WHERE id = $1");
    assert_eq!(app.execute(&sql, &[&row_id]).await, 1);
}
