use integration_tests::{assert_problem, invalid_fields, test_config, TestApp};
use paygate::config::Config;
use reqwest::Method;
use serde_json::{json, Value};

async fn post(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.admin(Method::POST, path)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn creating_an_agency_returns_its_key_and_secret_once_and_keeps_vietnamese_text_exactly() {
    let app = TestApp::spawn().await;
    let name = "Sở Tư pháp thành phố Hà Nội — Trung tâm Phục vụ hành chính công";
    let response = post(
        &app,
        "/v1/agencies",
        json!({"code": "000.00.00.H12", "name": name, "notify_url": "http://127.0.0.1:9/notify"}),
    )
    .await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["code"], "000.00.00.H12");
    assert_eq!(created["name"], name);
    assert_eq!(created["notify_url"], "http://127.0.0.1:9/notify");
    let api_key = created["api_key"].as_str().unwrap();
    let secret = created["notify_secret"].as_str().unwrap();
    assert!(api_key.starts_with("pgk_") && secret.starts_with("nsk_") && secret.len() >= 47);

    let read = app
        .admin(Method::GET, "/v1/agencies/000.00.00.H12")
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    let text = read.text().await.unwrap();
    assert!(
        !text.contains(secret) && !text.contains(api_key),
        "no secrets in {text}"
    );
    let agency: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(agency["name"], name);
    let client = app.db.get().await.unwrap();
    let stored: String = client
        .query_one(
            "SELECT name FROM agencies WHERE code = '000.00.00.H12'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        stored.as_bytes(),
        name.as_bytes(),
        "stored byte for byte, not normalised"
    );

    // The agency's key is known: on an admin endpoint it is forbidden, not unauthenticated.
    let response = app
        .http
        .get(app.url("/v1/banks/VCB"))
        .bearer_auth(api_key)
        .send()
        .await
        .unwrap();
    assert_problem(response, 403, "forbidden").await;
}

#[tokio::test]
async fn an_agency_without_notify_url_omits_it() {
    let app = TestApp::spawn().await;
    let created = app.create_agency("G01.001").await;
    assert!(created.get("notify_url").is_none(), "{created}");
}

#[tokio::test]
async fn a_duplicate_agency_code_answers_409_and_changes_nothing() {
    let app = TestApp::spawn().await;
    app.create_agency("000.00.00.H12").await;
    let keys_before = app.count("SELECT count(*) FROM api_keys").await;
    let response = post(
        &app,
        "/v1/agencies",
        json!({"code": "000.00.00.H12", "name": "Khác"}),
    )
    .await;
    assert_problem(response, 409, "duplicate_code").await;
    assert_eq!(app.count("SELECT count(*) FROM agencies").await, 1);
    assert_eq!(
        app.count("SELECT count(*) FROM api_keys").await,
        keys_before
    );
    let name = app
        .admin(Method::GET, "/v1/agencies/000.00.00.H12")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["name"]
        .clone();
    assert_eq!(name, "Cơ quan 000.00.00.H12");
}

#[tokio::test]
async fn each_invalid_agency_field_is_named_and_nothing_is_created() {
    let app = TestApp::spawn().await;
    let long_name = "ệ".repeat(256);
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({}), vec!["code", "name"]),
        (json!({"code": "h12", "name": "A"}), vec!["code"]),
        (json!({"code": "A", "name": "A"}), vec!["code"]),
        (json!({"code": "H12", "name": ""}), vec!["name"]),
        (json!({"code": "H12", "name": long_name}), vec!["name"]),
        (json!({"code": "H12", "name": 7}), vec!["name"]),
        (
            json!({"code": 12, "name": "A", "notify_url": "ftp://x.vn/"}),
            vec!["code", "notify_url"],
        ),
        (
            json!({"code": "H12", "name": "A", "notify_url": "http://169.254.169.254/"}),
            vec!["notify_url"],
        ),
        (
            json!({"code": "H12", "name": "A", "notify_url": "not a url"}),
            vec!["notify_url"],
        ),
        (
            json!({"code": "H12", "name": "A", "notify_url": 5}),
            vec!["notify_url"],
        ),
    ];
    for (body, fields) in cases {
        let response = post(&app, "/v1/agencies", body.clone()).await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(invalid_fields(&problem), fields, "{body}");
    }
    assert_eq!(app.count("SELECT count(*) FROM agencies").await, 0);
    assert_eq!(
        app.count("SELECT count(*) FROM api_keys WHERE role = 'agency'")
            .await,
        0
    );
}

#[tokio::test]
async fn a_private_notify_url_is_refused_unless_allowed() {
    let strict = TestApp::spawn_with(Config {
        notify_allow_private: false,
        ..test_config()
    })
    .await;
    for url in [
        "http://127.0.0.1:8080/n",
        "http://10.0.0.5/n",
        "http://localhost/n",
        "http://[::1]/n",
    ] {
        let response = post(
            &strict,
            "/v1/agencies",
            json!({"code": "H12", "name": "A", "notify_url": url}),
        )
        .await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(invalid_fields(&problem), ["notify_url"], "{url}");
    }
    let response = post(
        &strict,
        "/v1/agencies",
        json!({"code": "H12", "name": "A", "notify_url": "https://dvc.hanoi.gov.vn/n"}),
    )
    .await;
    assert_eq!(response.status(), 201);

    let relaxed = TestApp::spawn().await;
    let response = post(
        &relaxed,
        "/v1/agencies",
        json!({"code": "H12", "name": "A", "notify_url": "http://127.0.0.1:8080/n"}),
    )
    .await;
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn a_further_agency_key_works_and_the_old_one_stays_valid() {
    let app = TestApp::spawn().await;
    let created = app.create_agency("H12").await;
    let response = app
        .admin(Method::POST, "/v1/agencies/H12/keys")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let second: Value = response.json().await.unwrap();
    let second = second["api_key"].as_str().unwrap();
    assert_ne!(second, created["api_key"].as_str().unwrap());
    for key in [created["api_key"].as_str().unwrap(), second] {
        let response = app
            .http
            .get(app.url("/v1/banks/X1"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_problem(response, 403, "forbidden").await;
    }
    assert_eq!(
        app.count("SELECT count(*) FROM api_keys WHERE agency_code = 'H12'")
            .await,
        2
    );
}

#[tokio::test]
async fn keys_for_an_unknown_agency_answer_404() {
    let app = TestApp::spawn().await;
    for path in ["/v1/agencies/NOPE/keys", "/v1/agencies/not%20a%20code/keys"] {
        let response = app.admin(Method::POST, path).send().await.unwrap();
        assert_problem(response, 404, "agency_not_found").await;
    }
    assert_eq!(
        app.count("SELECT count(*) FROM api_keys WHERE role = 'agency'")
            .await,
        0
    );
}

#[tokio::test]
async fn notify_url_can_be_set_and_cleared_and_a_bad_one_changes_nothing() {
    let app = TestApp::spawn().await;
    app.create_agency("H12").await;
    let patch = |body: Value| {
        app.admin(Method::PATCH, "/v1/agencies/H12")
            .json(&body)
            .send()
    };

    let response = patch(json!({"notify_url": "https://dvc.hanoi.gov.vn/paygate"}))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let agency: Value = response.json().await.unwrap();
    assert_eq!(agency["notify_url"], "https://dvc.hanoi.gov.vn/paygate");
    assert!(agency.get("notify_secret").is_none() && agency.get("api_key").is_none());

    for (body, field) in [
        (json!({"notify_url": "gopher://x"}), "notify_url"),
        (json!({"notify_url": "http://169.254.1.1/"}), "notify_url"),
        (json!({"notify_url": 5}), "notify_url"),
        (json!({"notify_url": "a\u{0}b"}), "notify_url"),
    ] {
        let problem = assert_problem(patch(body).await.unwrap(), 422, "validation_failed").await;
        assert_eq!(invalid_fields(&problem), [field]);
    }
    let unchanged: Value = app
        .admin(Method::GET, "/v1/agencies/H12")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(unchanged["notify_url"], "https://dvc.hanoi.gov.vn/paygate");

    let cleared: Value = patch(json!({"notify_url": null}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(cleared.get("notify_url").is_none(), "{cleared}");

    let response = app
        .admin(Method::PATCH, "/v1/agencies/NOPE")
        .json(&json!({"notify_url": null}))
        .send()
        .await
        .unwrap();
    assert_problem(response, 404, "agency_not_found").await;
}

#[tokio::test]
async fn creating_a_bank_returns_its_first_key_and_the_secret_is_never_shown_again() {
    let app = TestApp::spawn().await;
    let created = app.create_bank("VCB").await;
    let key_id = created["key_id"].as_str().unwrap();
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with("bsk_") && secret.len() >= 47);
    assert_eq!(created["name"], "Ngân hàng VCB");

    let read = app
        .admin(Method::GET, "/v1/banks/VCB")
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    let text = read.text().await.unwrap();
    assert!(!text.contains(secret), "{text}");
    let bank: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(bank["keys"][0]["key_id"], key_id);
    assert!(bank["keys"][0].get("revoked_at").is_none());

    // Stored so that signatures can be verified.
    let client = app.db.get().await.unwrap();
    let stored: String = client
        .query_one("SELECT secret FROM bank_keys WHERE key_id = $1", &[&key_id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, secret);
}

#[tokio::test]
async fn a_duplicate_or_invalid_bank_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    app.create_bank("VCB").await;
    let response = post(&app, "/v1/banks", json!({"code": "VCB", "name": "Lần hai"})).await;
    assert_problem(response, 409, "duplicate_code").await;
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({}), vec!["code", "name"]),
        (json!({"code": "vcb", "name": "A"}), vec!["code"]),
        (json!({"code": "VCB2", "name": ""}), vec!["name"]),
        (json!({"code": null, "name": null}), vec!["code", "name"]),
    ];
    for (body, fields) in cases {
        let problem = assert_problem(
            post(&app, "/v1/banks", body.clone()).await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(invalid_fields(&problem), fields, "{body}");
    }
    assert_eq!(app.count("SELECT count(*) FROM banks").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM bank_keys").await, 1);
}

#[tokio::test]
async fn bank_keys_rotate_and_revoke() {
    let app = TestApp::spawn().await;
    let created = app.create_bank("VCB").await;
    let old = created["key_id"].as_str().unwrap().to_owned();
    let response = app
        .admin(Method::POST, "/v1/banks/VCB/keys")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let new: Value = response.json().await.unwrap();
    let new_id = new["key_id"].as_str().unwrap().to_owned();
    assert_ne!(new_id, old);
    assert!(new["secret"].as_str().unwrap().starts_with("bsk_"));
    assert_eq!(
        app.count("SELECT count(*) FROM bank_keys WHERE revoked_at IS NULL")
            .await,
        2
    );

    let path = format!("/v1/banks/VCB/keys/{old}");
    let response = app.admin(Method::DELETE, &path).send().await.unwrap();
    assert_eq!(response.status(), 204);
    // Revoking again is harmless.
    let response = app.admin(Method::DELETE, &path).send().await.unwrap();
    assert_eq!(response.status(), 204);
    let bank: Value = app
        .admin(Method::GET, "/v1/banks/VCB")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = bank["keys"].as_array().unwrap();
    let state = |id: &str| keys.iter().find(|k| k["key_id"] == id).unwrap().clone();
    assert!(state(&old)["revoked_at"].is_string());
    assert!(state(&new_id).get("revoked_at").is_none());

    let response = app
        .admin(Method::DELETE, "/v1/banks/VCB/keys/kid_ffffffffffffffff")
        .send()
        .await
        .unwrap();
    assert_problem(response, 404, "key_not_found").await;
    // A key of another bank cannot be revoked through this bank.
    let other = app.create_bank("BIDV").await;
    let path = format!("/v1/banks/VCB/keys/{}", other["key_id"].as_str().unwrap());
    let response = app.admin(Method::DELETE, &path).send().await.unwrap();
    assert_problem(response, 404, "key_not_found").await;
    assert_eq!(
        app.count("SELECT count(*) FROM bank_keys WHERE revoked_at IS NULL")
            .await,
        2
    );
}

#[tokio::test]
async fn keys_of_an_unknown_bank_answer_404() {
    let app = TestApp::spawn().await;
    let response = app
        .admin(Method::POST, "/v1/banks/NOPE/keys")
        .send()
        .await
        .unwrap();
    assert_problem(response, 404, "bank_not_found").await;
    let response = app
        .admin(Method::GET, "/v1/banks/NOPE")
        .send()
        .await
        .unwrap();
    assert_problem(response, 404, "bank_not_found").await;
    assert_eq!(app.count("SELECT count(*) FROM bank_keys").await, 0);
}

#[tokio::test]
async fn admins_create_admin_and_auditor_keys_but_not_agency_keys() {
    let app = TestApp::spawn().await;
    let auditor = app.key_with_role("auditor").await;
    let response = app
        .http
        .get(app.url("/v1/banks/VCB"))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap();
    assert_problem(response, 403, "forbidden").await;

    let response = post(&app, "/v1/api-keys", json!({"role": "admin"})).await;
    assert_eq!(response.status(), 201);
    let admin: Value = response.json().await.unwrap();
    assert_eq!(admin["role"], "admin");
    let response = app
        .http
        .post(app.url("/v1/banks"))
        .bearer_auth(admin["api_key"].as_str().unwrap())
        .json(&json!({"code": "VCB", "name": "Vietcombank"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);

    let before = app.count("SELECT count(*) FROM api_keys").await;
    for body in [
        json!({"role": "agency"}),
        json!({"role": "root"}),
        json!({}),
    ] {
        let problem = assert_problem(
            post(&app, "/v1/api-keys", body).await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(invalid_fields(&problem), ["role"]);
    }
    assert_eq!(app.count("SELECT count(*) FROM api_keys").await, before);
}

// ---------------------------------------------------------------------------------------------
// API keys: labels, ids, the key list, revocation and last use.
// ---------------------------------------------------------------------------------------------

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
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

async fn json_answer(response: reqwest::Response, status: u16) -> Value {
    let actual = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(actual, status, "{text}");
    serde_json::from_str(&text).unwrap()
}

async fn list_keys(app: &TestApp, query: &str) -> Value {
    let response = app
        .admin(Method::GET, &format!("/v1/api-keys{query}"))
        .send()
        .await
        .unwrap();
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

/// The state of every key and switch, without `last_used_at` (which any request may write).
async fn admin_state(app: &TestApp) -> Vec<String> {
    let client = app.db.get().await.unwrap();
    let rows = client
        .query(
            "SELECT format('key %s %s %s %s %s', id, role, agency_code, label, revoked_at)
               FROM api_keys
             UNION ALL
             SELECT format('agency %s %s %s %s %s %s', code, notify_url, disabled, notify_secret,
                           previous_notify_secret, updated_at)
               FROM agencies
             UNION ALL
             SELECT format('bank %s %s %s %s', code, disabled, refund_url, updated_at) FROM banks
             UNION ALL
             SELECT format('bank key %s %s', key_id, revoked_at) FROM bank_keys
             ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    rows.iter().map(|row| row.get(0)).collect()
}

#[tokio::test]
async fn every_key_creation_takes_an_optional_label_and_answers_the_new_keys_id() {
    let app = TestApp::spawn().await;
    let label = "Kiểm toán viên Trần Văn C";
    let response = post(
        &app,
        "/v1/api-keys",
        json!({"role": "auditor", "label": label}),
    )
    .await;
    let auditor = json_answer(response, 201).await;
    let fields = sorted_fields(&auditor);
    assert_eq!(fields, ["api_key", "id", "label", "role"], "{auditor}");
    assert_eq!(auditor["role"], "auditor");
    assert_eq!(auditor["label"], label);
    let id = auditor["id"].as_str().unwrap();
    assert!(is_path_safe_id(id), "{id}");
    assert_eq!(
        id,
        key_id_of(&app, auditor["api_key"].as_str().unwrap()).await
    );

    // Without a label, `label` is null.
    let admin = json_answer(
        post(&app, "/v1/api-keys", json!({"role": "admin"})).await,
        201,
    )
    .await;
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
    assert_eq!(
        first,
        key_id_of(&app, agency["api_key"].as_str().unwrap()).await
    );

    // A further agency key: with a label, with an empty object, and with no body at all.
    let response = post(&app, "/v1/agencies/H12/keys", json!({"label": "Máy chủ 2"})).await;
    let second = json_answer(response, 201).await;
    let fields = sorted_fields(&second);
    assert_eq!(fields, ["api_key", "api_key_id"], "{second}");
    assert_eq!(
        second["api_key_id"],
        key_id_of(&app, second["api_key"].as_str().unwrap()).await
    );
    let third = json_answer(post(&app, "/v1/agencies/H12/keys", json!({})).await, 201).await;
    let response = app
        .admin(Method::POST, "/v1/agencies/H12/keys")
        .send()
        .await
        .unwrap();
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
    for label in [
        json!(""),
        json!(long),
        json!(7),
        json!(["a"]),
        json!("a\u{0}b"),
    ] {
        let requests = [
            ("/v1/api-keys", json!({"role": "auditor", "label": label})),
            (
                "/v1/agencies",
                json!({"code": "H13", "name": "A", "label": label}),
            ),
            ("/v1/agencies/H12/keys", json!({"label": label})),
        ];
        for (path, body) in requests {
            let problem =
                assert_problem(post(&app, path, body).await, 422, "validation_failed").await;
            assert_eq!(invalid_fields(&problem), ["label"], "{path} {label}");
        }
    }
    // A body that is not JSON is not an absent body.
    let response = app
        .admin(Method::POST, "/v1/agencies/H12/keys")
        .body("{label")
        .send()
        .await
        .unwrap();
    assert_problem(response, 400, "malformed_json").await;
    assert_eq!(admin_state(&app).await, before);
    // 64 characters are fine.
    let response = post(
        &app,
        "/v1/api-keys",
        json!({"role": "auditor", "label": "ệ".repeat(64)}),
    )
    .await;
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn keys_are_listed_newest_first_with_their_holders_but_never_the_key_or_its_hash() {
    let app = TestApp::spawn().await;
    let mut secrets = vec![app.admin_key.clone()];
    let auditor = json_answer(
        post(
            &app,
            "/v1/api-keys",
            json!({"role": "auditor", "label": "Kiểm toán"}),
        )
        .await,
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
            [
                "agency",
                "created_at",
                "id",
                "label",
                "last_used_at",
                "revoked_at",
                "role"
            ],
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
        [
            more["api_key_id"].as_str().unwrap(),
            h12["api_key_id"].as_str().unwrap()
        ]
    );
    assert_eq!(
        ids(&list_keys(&app, "?role=admin&agency=H12").await).len(),
        0
    );
    assert_eq!(ids(&list_keys(&app, "?agency=NOPE").await).len(), 0);
    assert_eq!(
        ids(&list_keys(&app, "?role=auditor").await),
        [auditor["id"].as_str().unwrap()]
    );

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

fn sorted_fields(object: &Value) -> Vec<String> {
    let mut fields: Vec<String> = object.as_object().unwrap().keys().cloned().collect();
    fields.sort();
    fields
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn invalid_key_list_filters_are_each_named() {
    let app = TestApp::spawn().await;
    for (query, field) in [
        ("?role=root", "role"),
        ("?role=", "role"),
        ("?agency=h12", "agency"),
        ("?limit=0", "limit"),
        ("?limit=501", "limit"),
        ("?cursor=nope", "cursor"),
    ] {
        let response = app
            .admin(Method::GET, &format!("/v1/api-keys{query}"))
            .send()
            .await
            .unwrap();
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(invalid_fields(&problem), [field], "{query}");
    }
}

#[tokio::test]
async fn a_revoked_key_answers_401_at_once_and_revoking_it_again_answers_204() {
    let app = TestApp::spawn().await;
    let agency = app.create_agency("H12").await;
    let auditor = json_answer(
        post(&app, "/v1/api-keys", json!({"role": "auditor"})).await,
        201,
    )
    .await;
    let auditor_key = auditor["api_key"].as_str().unwrap();
    let agency_key = agency["api_key"].as_str().unwrap();
    let use_key = |key: &str| {
        app.http
            .get(app.url("/v1/payments"))
            .bearer_auth(key)
            .send()
    };
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
    assert_eq!(
        use_key(fresh["api_key"].as_str().unwrap())
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn an_unknown_or_malformed_key_id_answers_404_key_not_found_and_changes_nothing() {
    let app = TestApp::spawn().await;
    app.key_with_role("auditor").await;
    let before = admin_state(&app).await;
    for id in [
        "key_999999",
        "key_0",
        "key_01",
        "key_-1",
        "1",
        "abc",
        "key_99999999999999999999",
    ] {
        let response = app
            .admin(Method::DELETE, &format!("/v1/api-keys/{id}"))
            .send()
            .await
            .unwrap();
        assert_problem(response, 404, "key_not_found").await;
    }
    assert_eq!(admin_state(&app).await, before);
}

#[tokio::test]
async fn the_last_live_admin_key_cannot_be_revoked() {
    let app = TestApp::spawn().await;
    let own = key_id_of(&app, &app.admin_key).await;
    let before = admin_state(&app).await;
    let response = app
        .admin(Method::DELETE, &format!("/v1/api-keys/{own}"))
        .send()
        .await
        .unwrap();
    assert_problem(response, 409, "last_admin_key").await;
    assert_eq!(admin_state(&app).await, before);

    // A revoked admin key does not count as a live one.
    let revoked = json_answer(
        post(&app, "/v1/api-keys", json!({"role": "admin"})).await,
        201,
    )
    .await;
    let response = app
        .admin(
            Method::DELETE,
            &format!("/v1/api-keys/{}", revoked["id"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let response = app
        .admin(Method::DELETE, &format!("/v1/api-keys/{own}"))
        .send()
        .await
        .unwrap();
    assert_problem(response, 409, "last_admin_key").await;

    // With a second live admin key, the first may go (even revoking itself); then the second
    // is the last.
    let second = json_answer(
        post(&app, "/v1/api-keys", json!({"role": "admin"})).await,
        201,
    )
    .await;
    let response = app
        .admin(Method::DELETE, &format!("/v1/api-keys/{own}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let second_key = second["api_key"].as_str().unwrap();
    let response = app
        .http
        .delete(app.url(&format!("/v1/api-keys/{}", second["id"].as_str().unwrap())))
        .bearer_auth(second_key)
        .send()
        .await
        .unwrap();
    assert_problem(response, 409, "last_admin_key").await;
    assert_eq!(
        app.count("SELECT count(*) FROM api_keys WHERE role = 'admin' AND revoked_at IS NULL")
            .await,
        1
    );
}

#[tokio::test]
async fn concurrent_revocations_of_the_last_two_admin_keys_never_both_succeed() {
    let app = TestApp::spawn().await;
    let pool = paygate::db::pool(&app.db_settings, 4);
    let own = key_id_of(&app, &app.admin_key).await;
    let mut survivor = own;
    let rounds = 25;
    let mut conflicts = 0;
    for round in 0..rounds {
        let other = {
            let client = pool.get().await.unwrap();
            let key = paygate::auth::create_api_key(&client, paygate::auth::Role::Admin, None)
                .await
                .unwrap();
            key_id_of(&app, &key).await
        };
        let (a, b) = tokio::join!(
            paygate::admin::api_keys::revoke(&pool, &survivor),
            paygate::admin::api_keys::revoke(&pool, &other)
        );
        let codes: Vec<&str> = [&a, &b]
            .iter()
            .map(|result| match result {
                Ok(()) => "revoked",
                Err(err) => err.code(),
            })
            .collect();
        let mut sorted = codes.clone();
        sorted.sort();
        assert_eq!(sorted, ["last_admin_key", "revoked"], "round {round}");
        conflicts += 1;
        assert_eq!(
            app.count("SELECT count(*) FROM api_keys WHERE role = 'admin' AND revoked_at IS NULL")
                .await,
            1,
            "round {round}"
        );
        survivor = if a.is_ok() { other } else { survivor };
    }
    println!("{rounds} rounds of two concurrent revocations: {conflicts} answered last_admin_key once each");

    // Over HTTP too: each of the last two admin keys revokes the other at the same moment.
    let (first, second) = {
        let client = pool.get().await.unwrap();
        let first = paygate::auth::create_api_key(&client, paygate::auth::Role::Admin, None)
            .await
            .unwrap();
        let second = paygate::auth::create_api_key(&client, paygate::auth::Role::Admin, None)
            .await
            .unwrap();
        (first, second)
    };
    paygate::admin::api_keys::revoke(&pool, &survivor)
        .await
        .unwrap();
    let (first_id, second_id) = (
        key_id_of(&app, &first).await,
        key_id_of(&app, &second).await,
    );
    let revoke_with = |key: &str, id: &str| {
        app.http
            .delete(app.url(&format!("/v1/api-keys/{id}")))
            .bearer_auth(key)
            .send()
    };
    let (a, b) = tokio::join!(
        revoke_with(&second, &first_id),
        revoke_with(&first, &second_id)
    );
    let mut statuses = [a.unwrap().status().as_u16(), b.unwrap().status().as_u16()];
    statuses.sort();
    // One revocation wins; the other either finds the last admin key (409) or, when the
    // winner committed before it authenticated, finds its own key revoked (401).
    assert!(
        statuses == [204, 409] || statuses == [204, 401],
        "{statuses:?}"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM api_keys WHERE role = 'admin' AND revoked_at IS NULL")
            .await,
        1
    );
}

#[tokio::test]
async fn last_used_at_is_written_on_first_use_and_then_at_most_once_a_minute() {
    let app = TestApp::spawn().await;
    let auditor = json_answer(
        post(&app, "/v1/api-keys", json!({"role": "auditor"})).await,
        201,
    )
    .await;
    let id = auditor["id"].as_str().unwrap();
    let key = auditor["api_key"].as_str().unwrap();
    assert_eq!(key_item(&app, id).await["last_used_at"], Value::Null);
    let use_key = || {
        app.http
            .get(app.url("/v1/agencies"))
            .bearer_auth(key)
            .send()
    };

    assert_eq!(use_key().await.unwrap().status(), 200);
    let first = key_item(&app, id).await["last_used_at"].clone();
    assert!(first.is_string(), "{first}");

    // Within the minute, further uses (also many at once) write nothing.
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let request = app.http.get(app.url("/v1/agencies")).bearer_auth(key);
        burst.spawn(async move { request.send().await.unwrap().status() });
    }
    while let Some(status) = burst.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }
    assert_eq!(key_item(&app, id).await["last_used_at"], first);

    // Once it is older than a minute, the next use writes it again.
    let client = app.db.get().await.unwrap();
    client
        .execute(
            "UPDATE api_keys SET last_used_at = now() - interval '2 minutes' WHERE id = $1",
            &[&id.trim_start_matches("key_").parse::<i64>().unwrap()],
        )
        .await
        .unwrap();
    let old = key_item(&app, id).await["last_used_at"].clone();
    assert_eq!(use_key().await.unwrap().status(), 200);
    let renewed = key_item(&app, id).await["last_used_at"].clone();
    assert!(
        renewed.as_str().unwrap() > old.as_str().unwrap(),
        "{old} -> {renewed}"
    );
    // A key that failed to authenticate (revoked) is not marked used.
    let response = app
        .admin(Method::DELETE, &format!("/v1/api-keys/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    client
        .execute(
            "UPDATE api_keys SET last_used_at = NULL WHERE id = $1",
            &[&id.trim_start_matches("key_").parse::<i64>().unwrap()],
        )
        .await
        .unwrap();
    assert_problem(use_key().await.unwrap(), 401, "unauthenticated").await;
    assert_eq!(key_item(&app, id).await["last_used_at"], Value::Null);
}

// ---------------------------------------------------------------------------------------------
// Switches and lists: disabling agencies and banks, refund_url, the agency and bank lists.
// ---------------------------------------------------------------------------------------------

const AMOUNT: &str = "150000";

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Creates a pending order with the agency's key and returns the payment.
async fn create_order(app: &TestApp, api_key: &str, reference: &str) -> Value {
    let response = app
        .http
        .post(app.url("/v1/payments"))
        .bearer_auth(api_key)
        .header("Idempotency-Key", paygate::auth::keys::random_id("idem", 8))
        .json(&json!({
            "obligation": "fee",
            "reference": reference,
            "amount": AMOUNT,
            "description": "Lệ phí cấp đổi giấy phép lái xe",
            "payer": {"name": "Nguyễn Văn A"},
            "details": integration_tests::details("fee"),
        }))
        .send()
        .await
        .unwrap();
    json_answer(response, 201).await
}

/// A bank's signing key, as `POST /v1/banks` answered it.
struct Bank {
    code: String,
    kid: String,
    secret: String,
}

async fn new_bank(app: &TestApp, code: &str) -> Bank {
    let created = app.create_bank(code).await;
    Bank {
        code: code.to_owned(),
        kid: created["key_id"].as_str().unwrap().to_owned(),
        secret: created["secret"].as_str().unwrap().to_owned(),
    }
}

/// POSTs `body` to `/v1/banks/<bank>/<endpoint>`, signed now with `secret`.
async fn signed(
    app: &TestApp,
    bank: &Bank,
    secret: &str,
    endpoint: &str,
    body: &Value,
) -> reqwest::Response {
    let bytes = serde_json::to_vec(body).unwrap();
    let signature = paygate::signature::sign(secret.as_bytes(), &bank.kid, unix_now(), &bytes);
    app.http
        .post(app.url(&format!("/v1/banks/{}/{endpoint}", bank.code)))
        .header("Content-Type", "application/json")
        .header("Paygate-Signature", signature)
        .body(bytes)
        .send()
        .await
        .unwrap()
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
    app.http
        .get(app.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

async fn patch(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.admin(Method::PATCH, path)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn read(app: &TestApp, path: &str) -> Value {
    json_answer(app.admin(Method::GET, path).send().await.unwrap(), 200).await
}

#[tokio::test]
async fn an_agency_patch_changes_only_the_fields_it_names() {
    let app = TestApp::spawn().await;
    app.create_agency("H12").await;
    let url = "https://dvc.hanoi.gov.vn/paygate";
    let agency = json_answer(
        patch(&app, "/v1/agencies/H12", json!({"notify_url": url})).await,
        200,
    )
    .await;
    assert_eq!(
        (&agency["notify_url"], &agency["disabled"]),
        (&json!(url), &json!(false))
    );

    let agency = json_answer(
        patch(&app, "/v1/agencies/H12", json!({"disabled": true})).await,
        200,
    )
    .await;
    assert_eq!(
        (&agency["notify_url"], &agency["disabled"]),
        (&json!(url), &json!(true))
    );
    assert!(agency.get("notify_secret").is_none() && agency.get("api_key").is_none());

    // notify_url alone leaves `disabled`; null clears the address.
    let agency = json_answer(
        patch(&app, "/v1/agencies/H12", json!({"notify_url": null})).await,
        200,
    )
    .await;
    assert!(agency.get("notify_url").is_none(), "{agency}");
    assert_eq!(agency["disabled"], true);

    // Both at once; and an empty patch (or only unknown fields) changes nothing.
    let agency = json_answer(
        patch(
            &app,
            "/v1/agencies/H12",
            json!({"notify_url": url, "disabled": false}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        (&agency["notify_url"], &agency["disabled"]),
        (&json!(url), &json!(false))
    );
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
    let app = TestApp::spawn().await;
    app.create_agency("H12").await;
    app.create_bank("VCB").await;
    let before = admin_state(&app).await;
    let agency_cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({"disabled": null}), vec!["disabled"]),
        (json!({"disabled": "true"}), vec!["disabled"]),
        (json!({"disabled": 1}), vec!["disabled"]),
        (
            json!({"disabled": "yes", "notify_url": "ftp://x.vn/"}),
            vec!["notify_url", "disabled"],
        ),
        (
            json!({"disabled": true, "notify_url": "http://169.254.169.254/"}),
            vec!["notify_url"],
        ),
    ];
    for (body, fields) in agency_cases {
        let problem = assert_problem(
            patch(&app, "/v1/agencies/H12", body.clone()).await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(invalid_fields(&problem), fields, "{body}");
    }
    let bank_cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({"disabled": null}), vec!["disabled"]),
        (json!({"disabled": "false"}), vec!["disabled"]),
        (json!({"refund_url": "gopher://x"}), vec!["refund_url"]),
        (json!({"refund_url": "not a url"}), vec!["refund_url"]),
        (json!({"refund_url": 5}), vec!["refund_url"]),
        (
            json!({"refund_url": "http://169.254.169.254/"}),
            vec!["refund_url"],
        ),
        (
            json!({"refund_url": "http://[fe80::1]/r"}),
            vec!["refund_url"],
        ),
        (
            json!({"disabled": true, "refund_url": "a\u{0}b"}),
            vec!["refund_url"],
        ),
        (
            json!({"disabled": 0, "refund_url": false}),
            vec!["disabled", "refund_url"],
        ),
    ];
    for (body, fields) in bank_cases {
        let problem = assert_problem(
            patch(&app, "/v1/banks/VCB", body.clone()).await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(invalid_fields(&problem), fields, "{body}");
    }
    for response in [
        app.admin(Method::PATCH, "/v1/banks/VCB")
            .body("{")
            .send()
            .await
            .unwrap(),
        app.admin(Method::PATCH, "/v1/agencies/H12")
            .body("")
            .send()
            .await
            .unwrap(),
    ] {
        assert_problem(response, 400, "malformed_json").await;
    }
    for (path, code) in [
        ("/v1/agencies/NOPE", "agency_not_found"),
        ("/v1/agencies/bad%20code", "agency_not_found"),
        ("/v1/banks/NOPE", "bank_not_found"),
        ("/v1/banks/bad%20code", "bank_not_found"),
    ] {
        assert_problem(
            patch(&app, path, json!({"disabled": true})).await,
            404,
            code,
        )
        .await;
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
    let bank = json_answer(
        patch(&app, "/v1/banks/VCB", json!({"refund_url": url})).await,
        200,
    )
    .await;
    assert_eq!(
        (&bank["refund_url"], &bank["disabled"]),
        (&json!(url), &json!(false))
    );
    assert!(bank["keys"].is_array(), "{bank}");
    let bank = json_answer(
        patch(&app, "/v1/banks/VCB", json!({"disabled": true})).await,
        200,
    )
    .await;
    assert_eq!(
        (&bank["refund_url"], &bank["disabled"]),
        (&json!(url), &json!(true))
    );
    assert_eq!(read(&app, "/v1/banks/VCB").await, bank);
    let bank = json_answer(
        patch(&app, "/v1/banks/VCB", json!({"refund_url": null})).await,
        200,
    )
    .await;
    assert!(bank.get("refund_url").is_none(), "{bank}");
    assert_eq!(bank["disabled"], true);

    // Private addresses are refused unless allowed, as for notify_url.
    let strict = TestApp::spawn_with(Config {
        notify_allow_private: false,
        ..test_config()
    })
    .await;
    strict.create_bank("VCB").await;
    for url in [
        "http://127.0.0.1:8080/r",
        "http://10.0.0.5/r",
        "http://[::1]/r",
    ] {
        let problem = assert_problem(
            patch(&strict, "/v1/banks/VCB", json!({"refund_url": url})).await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(invalid_fields(&problem), ["refund_url"], "{url}");
    }
    assert_eq!(
        strict
            .count("SELECT count(*) FROM banks WHERE refund_url IS NOT NULL")
            .await,
        0
    );
    assert_eq!(
        patch(
            &app,
            "/v1/banks/VCB",
            json!({"refund_url": "http://127.0.0.1:8080/r"})
        )
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
    patch(
        &app,
        "/v1/agencies/H12",
        json!({"notify_url": receiver.url("/hook")}),
    )
    .await;
    let bank = new_bank(&app, "VCB").await;
    let payment = create_order(&app, &key, "H12-0001").await;
    let id = payment["id"].as_str().unwrap();

    let agency = json_answer(
        patch(&app, "/v1/agencies/H12", json!({"disabled": true})).await,
        200,
    )
    .await;
    assert_eq!(agency["disabled"], true);
    let orders_before = app.count("SELECT count(*) FROM payments").await;
    for key in [&key, &second] {
        for response in [
            get_as(&app, key, "/v1/payments").await,
            get_as(&app, key, &format!("/v1/payments/{id}")).await,
            get_as(&app, key, "/v1/events").await,
            get_as(&app, key, "/v1/agencies").await,
            app.http
                .post(app.url(&format!("/v1/payments/{id}/cancel")))
                .bearer_auth(key)
                .send()
                .await
                .unwrap(),
            app.http
                .post(app.url("/v1/payments"))
                .bearer_auth(key)
                .header("Idempotency-Key", "k-1")
                .json(&json!({}))
                .send()
                .await
                .unwrap(),
        ] {
            assert_problem(response, 403, "agency_disabled").await;
        }
    }
    assert_eq!(
        app.count("SELECT count(*) FROM payments").await,
        orders_before
    );
    // Another agency is not affected.
    assert_eq!(get_as(&app, other_key, "/v1/payments").await.status(), 200);

    // The order stays payable: the bank looks it up and pays it, and the agency is notified.
    let inquiry = json_answer(
        signed(
            &app,
            &bank,
            &bank.secret,
            "inquiry",
            &json!({"payment_id": id}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(inquiry["status"], "pending");
    let answer = json_answer(
        signed(
            &app,
            &bank,
            &bank.secret,
            "callbacks",
            &paid_callback("FT1", id),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        (&answer["result"], &answer["payment_status"]),
        (&json!("accepted"), &json!("paid"))
    );
    let requests = receiver
        .wait_for(1, std::time::Duration::from_secs(15))
        .await;
    let event = requests[0].json();
    assert_eq!(
        (&event["type"], &event["payment"]["id"]),
        (&json!("payment.paid"), &json!(id))
    );
    // Admins still read its orders.
    let read_back = json_answer(
        app.admin(Method::GET, &format!("/v1/payments/{id}"))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(read_back["status"], "paid");

    // Enabled again, its keys work again.
    let agency = json_answer(
        patch(&app, "/v1/agencies/H12", json!({"disabled": false})).await,
        200,
    )
    .await;
    assert_eq!(agency["disabled"], false);
    assert_eq!(get_as(&app, &key, "/v1/payments").await.status(), 200);
}

#[tokio::test]
async fn a_disabled_banks_inquiries_answer_403_after_the_signature_is_verified_and_its_callbacks_are_accepted(
) {
    let app = TestApp::spawn().await;
    let agency = app.create_agency("H12").await;
    let key = agency["api_key"].as_str().unwrap();
    let bank = new_bank(&app, "VCB").await;
    let other = new_bank(&app, "BIDV").await;
    let first = create_order(&app, key, "H12-0001").await;
    let second = create_order(&app, key, "H12-0002").await;
    let bank_state = json_answer(
        patch(&app, "/v1/banks/VCB", json!({"disabled": true})).await,
        200,
    )
    .await;
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
        signed(
            &app,
            &bank,
            "bsk_not-the-secret-of-this-bank-at-all-000000",
            "inquiry",
            &inquiry,
        )
        .await,
        401,
        "invalid_signature",
    )
    .await;
    // The refusal comes before the body is read.
    assert_problem(
        signed(
            &app,
            &bank,
            &bank.secret,
            "inquiry",
            &json!({"payment_id": 5}),
        )
        .await,
        403,
        "bank_disabled",
    )
    .await;
    // Other banks are not affected.
    assert_eq!(
        signed(&app, &other, &other.secret, "inquiry", &inquiry)
            .await
            .status(),
        200
    );

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
    assert_eq!(
        app.count("SELECT count(*) FROM ledger_transactions").await,
        1
    );

    // Enabled again, inquiries work again.
    patch(&app, "/v1/banks/VCB", json!({"disabled": false})).await;
    let inquiry = json!({"payment_id": second["id"]});
    assert_eq!(
        signed(&app, &bank, &bank.secret, "inquiry", &inquiry)
            .await
            .status(),
        200
    );
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
    let codes: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["H03", "H02", "H01"]);
    assert_eq!(page["next_cursor"], Value::Null);
    for item in page["items"].as_array().unwrap() {
        assert_eq!(
            sorted_fields(item),
            [
                "code",
                "created_at",
                "disabled",
                "last_activity_at",
                "name",
                "updated_at"
            ],
            "{item}"
        );
        assert_eq!(item["last_activity_at"], Value::Null);
        assert_eq!(item["disabled"], item["code"] == "H02");
        // The list and the single read agree.
        assert_eq!(
            *item,
            read(
                &app,
                &format!("/v1/agencies/{}", item["code"].as_str().unwrap())
            )
            .await
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
    let vcb = new_bank(&app, "VCB").await;
    new_bank(&app, "BIDV").await;
    patch(
        &app,
        "/v1/banks/BIDV",
        json!({"disabled": true, "refund_url": "https://bidv.vn/r"}),
    )
    .await;
    let page = read(&app, "/v1/banks").await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(
        (&items[0]["code"], &items[1]["code"]),
        (&json!("BIDV"), &json!("VCB"))
    );
    assert_eq!(
        sorted_fields(&items[0]),
        [
            "code",
            "created_at",
            "disabled",
            "last_activity_at",
            "name",
            "refund_url",
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
    signed(
        &app,
        &vcb,
        &vcb.secret,
        "callbacks",
        &paid_callback("FT1", id),
    )
    .await;
    let vcb_item = read(&app, "/v1/banks/VCB").await;
    assert_eq!(
        vcb_item["last_activity_at"],
        received_at(&app, "SELECT max(received_at) FROM bank_callbacks").await
    );
    // So is a callback rejected but kept for investigation (an unknown order).
    let response = signed(
        &app,
        &vcb,
        &vcb.secret,
        "callbacks",
        &paid_callback("FT2", "pay_unknown"),
    )
    .await;
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
    assert_eq!(
        page["items"][0]["last_activity_at"],
        vcb_item["last_activity_at"]
    );
    assert_eq!(page["next_cursor"], Value::Null);
}

#[tokio::test]
async fn the_agency_and_bank_lists_refuse_an_invalid_limit_or_cursor() {
    let app = TestApp::spawn().await;
    for path in ["/v1/agencies", "/v1/banks"] {
        for (query, field) in [
            ("?limit=0", "limit"),
            ("?limit=501", "limit"),
            ("?limit=ten", "limit"),
            ("?cursor=%2F%2F", "cursor"),
        ] {
            let response = app
                .admin(Method::GET, &format!("{path}{query}"))
                .send()
                .await
                .unwrap();
            let problem = assert_problem(response, 422, "validation_failed").await;
            assert_eq!(invalid_fields(&problem), [field], "{path}{query}");
        }
    }
}

#[tokio::test]
async fn the_last_activity_of_every_listed_row_is_found_through_an_index() {
    let app = TestApp::spawn().await;
    let client = app.db.get().await.unwrap();
    // With sequential scans priced out, a plan that still scans a table has no index to use.
    client
        .batch_execute("SET enable_seqscan = off")
        .await
        .unwrap();
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
        let plan: Vec<String> = client
            .query(sql, &[])
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        let plan = plan.join("\n");
        for table in ["payments", "bank_callbacks", "callback_exceptions"] {
            assert!(!plan.contains(&format!("Seq Scan on {table}")), "{plan}");
        }
    }
}
