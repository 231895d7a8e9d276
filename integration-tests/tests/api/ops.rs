use std::time::{Duration, Instant};

use integration_tests::{assert_problem, repository_root, test_config, throwaway_cluster, TestApp};
use serde_json::Value;

#[tokio::test]
async fn healthz_answers_ok_without_a_key() {
    let app = TestApp::spawn().await;
    let response = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn readyz_answers_503_while_the_database_is_down_and_recovers_by_itself() {
    // A cluster of its own: stopping the shared one would break every other test.
    let cluster = throwaway_cluster(true);
    let settings = cluster.connection_config(paygate::db::embedded::DATABASE);
    {
        let pool = paygate::db::pool(&settings, 1);
        let mut client = pool.get().await.unwrap();
        paygate::db::migrate::run(&mut client).await.unwrap();
    }
    let app = TestApp::spawn_on(test_config(), settings).await;
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    cluster.stop_now().unwrap();
    let down = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_problem(down, 503, "unavailable").await;

    cluster.start_again().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = app.http.get(app.url("/readyz")).send().await.unwrap();
        if response.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "readyz did not recover within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Ordinary requests work again too. A pooled connection that the restart broke may fail
    // one request, and then only as a retriable 503, never as an internal error.
    let mut failures = 0;
    loop {
        let response = app
            .admin(reqwest::Method::POST, "/v1/agencies")
            .json(&serde_json::json!({"code": "RECOVERED", "name": "Đã khôi phục"}))
            .send()
            .await
            .unwrap();
        if response.status() == 201 {
            break;
        }
        assert_problem(response, 503, "unavailable").await;
        failures += 1;
        assert!(failures <= 4, "more failures than the pool has connections");
    }
    assert_eq!(app.count("SELECT count(*) FROM agencies").await, 1);
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status_and_show_the_pool() {
    let app = TestApp::spawn().await;
    app.http.get(app.url("/healthz")).send().await.unwrap();
    app.http
        .get(app.url("/v1/agencies/NOPE"))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    let response = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let has = |needle: &str| text.lines().any(|line| line.contains(needle));
    assert!(
        has(r#"paygate_http_requests_total{method="GET",route="/healthz",status="200"} 1"#),
        "{text}"
    );
    assert!(
        has(
            r#"paygate_http_requests_total{method="GET",route="/v1/agencies/{code}",status="404"} 1"#
        ),
        "{text}"
    );
    assert!(
        has("paygate_http_request_duration_seconds_bucket{"),
        "{text}"
    );
    assert!(has("paygate_db_pool_max_connections 4"), "{text}");
    assert!(has("paygate_db_pool_connections "), "{text}");
}

#[tokio::test]
async fn the_served_openapi_document_equals_the_checked_in_file() {
    let app = TestApp::spawn().await;
    let response = app.http.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let served = response.text().await.unwrap();
    let path = repository_root().join("openapi/openapi.json");
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        served == checked_in,
        "{} differs from the document the code generates; regenerate it with \
         `cargo run -- openapi > openapi/openapi.json` and commit it",
        path.display()
    );
    let document: Value = serde_json::from_str(&served).unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/v1/agencies",
        "/v1/banks/{code}/keys/{key_id}",
        "/v1/api-keys",
        "/readyz",
    ] {
        assert!(document["paths"][path].is_object(), "{path} is documented");
    }
    let schemes = &document["components"]["securitySchemes"];
    assert!(schemes["api_key"].is_object() && schemes["bank_signature"].is_object());
    let post_agencies = &document["paths"]["/v1/agencies"]["post"]["responses"];
    for status in [
        "201", "400", "401", "403", "409", "413", "422", "500", "503",
    ] {
        assert!(
            post_agencies[status].is_object(),
            "POST /v1/agencies documents {status}"
        );
    }
}

#[tokio::test]
async fn the_docs_page_is_html_that_needs_no_internet() {
    let app = TestApp::spawn().await;
    let response = app.http.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = response.text().await.unwrap();
    assert!(html.contains("/v1/agencies"));
    assert!(!html.contains("<script src="));
    assert!(!html.contains("<link rel=\"stylesheet\""));
}

#[tokio::test]
async fn an_unknown_route_answers_a_problem_404() {
    let app = TestApp::spawn().await;
    let response = app
        .http
        .get(app.url("/v1/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_problem(response, 404, "not_found").await;
}

#[tokio::test]
async fn every_answer_carries_a_request_id_and_a_valid_given_one_is_kept() {
    let app = TestApp::spawn().await;
    let given = app
        .http
        .get(app.url("/healthz"))
        .header("X-Request-Id", "portal-7f3a.1")
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["x-request-id"], "portal-7f3a.1");
    let made = app
        .http
        .get(app.url("/healthz"))
        .header("X-Request-Id", "not valid; injected\tvalue")
        .send()
        .await
        .unwrap();
    let id = made.headers()["x-request-id"].to_str().unwrap();
    assert!(id.starts_with("req_") && id.len() == 20, "{id}");
}
