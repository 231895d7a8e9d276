use integration_tests::{assert_problem, TestApp};
use reqwest::Method;
use serde_json::json;

/// Every administrative endpoint with a body that would be valid.
fn admin_endpoints() -> Vec<(Method, &'static str, serde_json::Value)> {
    vec![
        (
            Method::POST,
            "/v1/agencies",
            json!({"code": "NEWAG", "name": "Mới"}),
        ),
        (Method::GET, "/v1/agencies/AG1", json!(null)),
        (
            Method::PATCH,
            "/v1/agencies/AG1",
            json!({"notify_url": null}),
        ),
        (Method::POST, "/v1/agencies/AG1/keys", json!(null)),
        (
            Method::POST,
            "/v1/banks",
            json!({"code": "NEWBANK", "name": "Mới"}),
        ),
        (Method::GET, "/v1/banks/BNK", json!(null)),
        (Method::POST, "/v1/banks/BNK/keys", json!(null)),
        (
            Method::DELETE,
            "/v1/banks/BNK/keys/kid_0000000000000000",
            json!(null),
        ),
        (Method::POST, "/v1/api-keys", json!({"role": "auditor"})),
    ]
}

async fn business_rows(app: &TestApp) -> (i64, i64, i64, i64) {
    (
        app.count("SELECT count(*) FROM agencies").await,
        app.count("SELECT count(*) FROM banks").await,
        app.count("SELECT count(*) FROM bank_keys WHERE revoked_at IS NULL")
            .await,
        app.count("SELECT count(*) FROM api_keys").await,
    )
}

#[tokio::test]
async fn admin_endpoints_without_a_key_answer_401_and_change_nothing() {
    let app = TestApp::spawn().await;
    app.create_agency("AG1").await;
    app.create_bank("BNK").await;
    let before = business_rows(&app).await;
    for (method, path, body) in admin_endpoints() {
        let mut request = app.http.request(method.clone(), app.url(path));
        if !body.is_null() {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer",
            "{method} {path}"
        );
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
        let response = app
            .http
            .get(app.url("/v1/banks/VCB"))
            .header("Authorization", &header)
            .send()
            .await
            .unwrap();
        assert_problem(response, 401, "unauthenticated").await;
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
        for (method, path, body) in admin_endpoints() {
            let mut request = app
                .http
                .request(method.clone(), app.url(path))
                .bearer_auth(key);
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
    let response = app
        .http
        .post(app.url("/v1/agencies"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_problem(response, 401, "unauthenticated").await;
}

#[tokio::test]
async fn api_keys_are_stored_only_as_hashes() {
    let app = TestApp::spawn().await;
    let key = app.key_with_role("auditor").await;
    assert!(key.starts_with("pgk_") && key.len() >= 47, "{key}");
    let client = app.db.get().await.unwrap();
    let rows = client
        .query("SELECT key_hash FROM api_keys", &[])
        .await
        .unwrap();
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
    paygate::auth::keys::hash_api_key(key)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
