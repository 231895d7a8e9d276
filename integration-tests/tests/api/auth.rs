use integration_tests::answers::RequestExt;
use integration_tests::{assert_problem, TestApp};
use reqwest::Method;
use serde_json::json;

/// Every administrative endpoint with a body that would be valid.
fn admin_endpoints() -> Vec<(Method, &'static str, serde_json::Value)> {
    vec![
        (Method::POST, "/v1/agencies", json!({"code": "NEWAG", "name": "Mới"})),
        (Method::GET, "/v1/agencies/AG1", json!(null)),
        (Method::PATCH, "/v1/agencies/AG1", json!({"notify_url": null})),
        (Method::POST, "/v1/agencies/AG1/keys", json!(null)),
        (Method::POST, "/v1/banks", json!({"code": "NEWBANK", "name": "Mới"})),
        (Method::GET, "/v1/banks/BNK", json!(null)),
        (Method::POST, "/v1/banks/BNK/keys", json!(null)),
        (Method::DELETE, "/v1/banks/BNK/keys/kid_0000000000000000", json!(null)),
        (Method::POST, "/v1/api-keys", json!({"role": "auditor"})),
        (Method::POST, "/v1/api-keys", json!({"role": "admin", "label": "Quản trị"})),
        (Method::GET, "/v1/api-keys", json!(null)),
        (Method::GET, "/v1/api-keys?role=admin", json!(null)),
        (Method::DELETE, "/v1/api-keys/key_1", json!(null)),
        (Method::POST, "/v1/agencies/AG1/keys", json!({"label": "Máy chủ 2"})),
        (Method::POST, "/v1/agencies/AG1/notify-secret", json!(null)),
        (Method::PATCH, "/v1/agencies/AG1", json!({"disabled": true})),
        (
            Method::PATCH,
            "/v1/banks/BNK",
            json!({"disabled": true, "refund_url": "https://bnk.vn/r"}),
        ),
    ]
}

/// The lists that auditors may read as well as admins.
fn lists_auditors_read() -> Vec<(Method, &'static str, serde_json::Value)> {
    vec![
        (Method::GET, "/v1/agencies", json!(null)),
        (Method::GET, "/v1/agencies?limit=1", json!(null)),
        (Method::GET, "/v1/banks", json!(null)),
        (Method::GET, "/v1/banks?limit=1", json!(null)),
    ]
}

/// Every agency, bank and key with its state (but not `last_used_at`, which any authenticated
/// request may write).
async fn business_rows(app: &TestApp) -> Vec<String> {
    let client = app.db.get().await.unwrap();
    client
        .query(
            "SELECT format('agency %s %s %s %s %s %s', code, notify_url, disabled, notify_secret,
                           previous_notify_secret, updated_at) FROM agencies
             UNION ALL
             SELECT format('bank %s %s %s %s', code, disabled, refund_url, updated_at) FROM banks
             UNION ALL
             SELECT format('bank key %s %s', key_id, revoked_at) FROM bank_keys
             UNION ALL
             SELECT format('key %s %s %s %s', id, role, label, revoked_at) FROM api_keys
             ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test]
async fn admin_endpoints_without_a_key_answer_401_and_change_nothing() {
    let app = TestApp::with_agency_and_bank("AG1", "BNK").await;
    let before = business_rows(&app).await;
    for (method, path, body) in admin_endpoints().into_iter().chain(lists_auditors_read()) {
        let mut request = app.http.request(method.clone(), app.url(path));
        if !body.is_null() {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.headers()["www-authenticate"], "Bearer", "{method} {path}");
        assert_problem(response, 401, "unauthenticated").await;
    }
    assert_eq!(business_rows(&app).await, before);
}

#[tokio::test]
async fn unknown_revoked_or_malformed_keys_answer_401() {
    let app = TestApp::spawn().await;
    let revoked = app.key_with_role("admin").await;
    let client = app.db.get().await.unwrap();
    client
        .execute(
            "UPDATE api_keys SET revoked_at = now() WHERE key_hash = $1",
            &[&paygate::auth::keys::hash_api_key(&revoked)],
        )
        .await
        .unwrap();
    let headers = [
        format!("Bearer {}", paygate::auth::keys::random_secret("pgk")),
        format!("Bearer {revoked}"),
        format!("Basic {}", app.admin_key),
        format!("bearer{}", app.admin_key),
        "Bearer ".to_owned(),
        format!("Bearer {}", "x".repeat(10_000)),
    ];
    for header in headers {
        app.get("/v1/banks/VCB")
            .header("Authorization", &header)
            .problem(401, "unauthenticated")
            .await;
    }
}

#[tokio::test]
async fn auditor_and_agency_keys_are_forbidden_on_admin_endpoints_and_change_nothing() {
    let app = TestApp::spawn().await;
    let agency = app.create_agency("AG1").await;
    app.create_bank("BNK").await;
    let auditor = app.key_with_role("auditor").await;
    let agency_key = agency["api_key"].as_str().unwrap().to_owned();
    let before = business_rows(&app).await;
    for key in [&auditor, &agency_key] {
        let endpoints = if *key == agency_key {
            admin_endpoints().into_iter().chain(lists_auditors_read()).collect()
        } else {
            admin_endpoints()
        };
        for (method, path, body) in endpoints {
            let mut request = app.http.request(method.clone(), app.url(path)).bearer_auth(key);
            if !body.is_null() {
                request = request.json(&body);
            }
            let response = request.send().await.unwrap();
            assert_problem(response, 403, "forbidden").await;
        }
    }
    assert_eq!(business_rows(&app).await, before);
}

#[tokio::test]
async fn authentication_is_checked_before_the_body_is_read() {
    let app = TestApp::spawn().await;
    app.post("/v1/agencies").body("{not json").problem(401, "unauthenticated").await;
}

#[tokio::test]
async fn api_keys_are_stored_only_as_hashes() {
    let app = TestApp::spawn().await;
    let key = app.key_with_role("auditor").await;
    assert!(key.starts_with("pgk_") && key.len() >= 47, "{key}");
    let client = app.db.get().await.unwrap();
    let rows = client.query("SELECT key_hash FROM api_keys", &[]).await.unwrap();
    for row in rows {
        let hash: Vec<u8> = row.get(0);
        assert_eq!(hash.len(), 32);
        assert!(!String::from_utf8_lossy(&hash).contains(&key[4..]));
    }
    let stored = app
        .count(&format!(
            "SELECT count(*) FROM api_keys WHERE key_hash = decode('{}', 'hex')",
            paygate_hash_hex(&key)
        ))
        .await;
    assert_eq!(stored, 1);
}

fn paygate_hash_hex(key: &str) -> String {
    paygate::auth::keys::hash_api_key(key).iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn auditors_read_the_agency_and_bank_lists_but_not_the_key_list() {
    let app = TestApp::with_agency_and_bank("AG1", "BNK").await;
    let auditor = app.key_with_role("auditor").await;
    for (method, path, _) in lists_auditors_read() {
        let response =
            app.http.request(method, app.url(path)).bearer_auth(&auditor).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let page: serde_json::Value = response.json().await.unwrap();
        // Beside the built-in sandbox bank.
        let created = page["items"].as_array().unwrap().iter().filter(|i| i["code"] != "SANDBOX");
        assert_eq!(created.count(), 1, "{path}");
    }
    // Keys are the administrators' business: who holds one, and when it was last used.
    for path in ["/v1/api-keys", "/v1/agencies/AG1", "/v1/banks/BNK"] {
        app.get_with(&auditor, path).problem(403, "forbidden").await;
    }
}

#[tokio::test]
async fn a_disabled_agencys_key_is_found_and_refused_before_its_role_is_checked() {
    let app = TestApp::spawn().await;
    let agency = app.create_agency("AG1").await;
    let key = agency["api_key"].as_str().unwrap();
    disable_agency(&app, "AG1").await;
    let before = business_rows(&app).await;
    for (method, path, body) in admin_endpoints().into_iter().chain(lists_auditors_read()).chain([
        (Method::GET, "/v1/payments", json!(null)),
        (Method::GET, "/v1/events", json!(null)),
    ]) {
        let mut request = app.http.request(method.clone(), app.url(path)).bearer_auth(key);
        if !body.is_null() {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let problem = assert_problem(response, 403, "agency_disabled").await;
        assert!(problem["detail"].as_str().unwrap().contains("AG1"), "{problem}");
    }
    assert_eq!(business_rows(&app).await, before);
}

#[tokio::test]
async fn an_unknown_key_or_a_disabled_agencys_key_is_refused_before_a_malformed_body_is() {
    let app = TestApp::spawn().await;
    let agency = app.create_agency("AG1").await;
    let agency_key = agency["api_key"].as_str().unwrap().to_owned();
    let auditor = app.key_with_role("auditor").await;
    let disabled = app.create_agency("AG2").await;
    let disabled_key = disabled["api_key"].as_str().unwrap().to_owned();
    disable_agency(&app, "AG2").await;
    let unknown = paygate::auth::keys::random_secret("pgk");
    let before = business_rows(&app).await;
    for (key, path, status, code) in [
        (&unknown, "/v1/agencies", 401, "unauthenticated"),
        (&unknown, "/v1/payments", 401, "unauthenticated"),
        (&disabled_key, "/v1/payments", 403, "agency_disabled"),
        (&disabled_key, "/v1/agencies", 403, "agency_disabled"),
    ] {
        for body in ["{not json", "", "[1, 2"] {
            let response = app
                .post_with(key, path)
                .header("Idempotency-Key", "k-1")
                .header("Content-Type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_problem(response, status, code).await;
        }
    }
    assert_eq!(business_rows(&app).await, before);
    // A live key is told about the body (its role is checked by the handler, once the body is
    // read: a malformed body is refused either way).
    for key in [&auditor, &agency_key] {
        let response = app.post_with(key, "/v1/api-keys").body("{not json").send().await.unwrap();
        assert_eq!(response.status(), 400);
    }
    app.admin(Method::POST, "/v1/agencies").body("{not json").problem(400, "malformed_json").await;
}

/// Disables the agency `code` as an admin.
async fn disable_agency(app: &TestApp, code: &str) {
    let path = format!("/v1/agencies/{code}");
    app.admin(Method::PATCH, &path).json(&json!({"disabled": true})).json_with(200).await;
}
