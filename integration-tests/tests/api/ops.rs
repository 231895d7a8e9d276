use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use integration_tests::{assert_problem, repository_root, test_config, throwaway_cluster, TestApp};
use paygate::domain::ids::random_id;
use serde_json::Value;

#[tokio::test]
async fn healthz_answers_ok_without_a_key() {
    let app = TestApp::spawn().await;
    let response = app.get("/healthz").send().await.unwrap();
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
    let ready = app.get("/readyz").send().await.unwrap();
    assert_eq!(ready.status(), 200);

    cluster.stop_now().unwrap();
    let down = app.get("/readyz").send().await.unwrap();
    let problem = assert_problem(down, 503, "unavailable").await;
    assert_eq!(problem["detail"], "the database is unavailable; retry later");
    assert_no_database_text(&problem.to_string(), &[]);

    cluster.start_again().unwrap();
    wait_until_ready(&app, Duration::from_millis(200)).await;
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
    app.get("/healthz").send().await.unwrap();
    app.get_with(&app.admin_key, "/v1/agencies/NOPE").send().await.unwrap();
    let response = app.get("/metrics").send().await.unwrap();
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
    assert!(has("paygate_http_request_duration_seconds_bucket{"), "{text}");
    assert!(has("paygate_db_pool_max_connections 4"), "{text}");
    assert!(has("paygate_db_pool_connections "), "{text}");
}

#[tokio::test]
async fn the_served_openapi_document_equals_the_checked_in_file() {
    let app = TestApp::spawn().await;
    let response = app.get("/openapi.json").send().await.unwrap();
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
    for path in ["/v1/agencies", "/v1/banks/{code}/keys/{key_id}", "/v1/api-keys", "/readyz"] {
        assert!(document["paths"][path].is_object(), "{path} is documented");
    }
    let schemes = &document["components"]["securitySchemes"];
    assert!(schemes["api_key"].is_object() && schemes["bank_signature"].is_object());
    let post_agencies = &document["paths"]["/v1/agencies"]["post"]["responses"];
    for status in ["201", "400", "401", "403", "409", "413", "422", "500", "503"] {
        assert!(post_agencies[status].is_object(), "POST /v1/agencies documents {status}");
    }
}

/// The values of the `src` and `href` attributes of a page, in order.
fn linked_files(html: &str) -> Vec<&str> {
    let mut files = Vec::new();
    for attribute in [" src=\"", " href=\""] {
        for (start, _) in html.match_indices(attribute) {
            let value = &html[start + attribute.len()..];
            files.push(&value[..value.find('"').unwrap()]);
        }
    }
    files
}

#[tokio::test]
async fn the_docs_page_is_swagger_ui_served_from_the_binary_reading_openapi_json() {
    let app = TestApp::spawn().await;
    for page in ["/docs", "/docs/"] {
        let response = app.get(page).send().await.unwrap();
        assert_eq!(response.status(), 200, "{page}");
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        let html = response.text().await.unwrap();
        assert!(html.contains("<div id=\"swagger-ui\">"), "{page}: {html}");
        // Every file the page loads is paygate's own, under /docs/: no CDN, no other host.
        assert!(!html.contains("://"), "{page} names another host: {html}");
        let files = linked_files(&html);
        assert!(files.contains(&"/docs/"), "{page} sets its base: {html}");
        assert!(files.contains(&"./swagger-ui-bundle.js"), "{html}");
        for file in files.into_iter().filter(|file| *file != "/docs/") {
            let path = format!("/docs/{}", file.trim_start_matches("./"));
            let response = app.get(&path).send().await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            assert!(!response.bytes().await.unwrap().is_empty(), "{path}");
        }
    }
    let initializer = app.get("/docs/swagger-initializer.js").send().await.unwrap();
    assert_eq!(initializer.status(), 200);
    let initializer = initializer.text().await.unwrap();
    assert!(
        initializer.contains("\"url\": \"/openapi.json\""),
        "the UI reads paygate's document: {initializer}"
    );
    assert!(
        initializer.contains("\"validatorUrl\": \"none\""),
        "the online validator is off: {initializer}"
    );
    let missing = app.get("/docs/no-such-file.js").send().await.unwrap();
    assert_problem(missing, 404, "not_found").await;
}

#[tokio::test]
async fn an_unknown_route_answers_a_problem_404() {
    let app = TestApp::spawn().await;
    let response = app.get("/v1/nothing-here").send().await.unwrap();
    assert_problem(response, 404, "not_found").await;
}

#[tokio::test]
async fn every_answer_carries_a_request_id_and_a_valid_given_one_is_kept() {
    let app = TestApp::spawn().await;
    let given = app.get("/healthz").header("X-Request-Id", "portal-7f3a.1").send().await.unwrap();
    assert_eq!(given.headers()["x-request-id"], "portal-7f3a.1");
    let made = app
        .get("/healthz")
        .header("X-Request-Id", "not valid; injected\tvalue")
        .send()
        .await
        .unwrap();
    let id = made.headers()["x-request-id"].to_str().unwrap();
    assert!(id.starts_with("req_") && id.len() == 20, "{id}");
}

/// The label sets of the request metrics in a `/metrics` text: one line per series of
/// `paygate_http_requests_total`, and one per series of the latency histogram (its `_count`).
fn request_series(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|line| {
            line.starts_with("paygate_http_requests_total{")
                || line.starts_with("paygate_http_request_duration_seconds_count{")
        })
        .map(|line| line.rsplit_once(' ').expect("a sample has a value").0.to_owned())
        .collect()
}

async fn metrics_text(app: &TestApp) -> String {
    let response = app.get("/metrics").send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// 200 requests with made-up methods and paths: every second one a random method token, every
/// other pair a random path under no route or a random code under a real route. Returns the
/// random tokens used.
async fn random_requests(app: &TestApp) -> Vec<String> {
    let mut tokens = Vec::new();
    for i in 0..200 {
        let method_token = random_id("FOO", 4).to_uppercase();
        let path_token = random_id("junk", 4);
        let method = if i % 2 == 0 {
            reqwest::Method::from_bytes(method_token.as_bytes()).unwrap()
        } else {
            reqwest::Method::GET
        };
        let path = if i % 4 < 2 {
            format!("/{path_token}/{}", random_id("x", 2))
        } else {
            format!("/v1/agencies/{}", path_token.to_uppercase())
        };
        let response = app
            .http
            .request(method, app.url(&path))
            .bearer_auth(&app.admin_key)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error(), "{path}: {response:?}");
        tokens.push(method_token);
        tokens.push(path_token);
    }
    tokens
}

#[tokio::test]
async fn made_up_methods_and_paths_add_no_metric_series() {
    let app = TestApp::spawn().await;
    let before = request_series(&metrics_text(&app).await);

    let tokens = random_requests(&app).await;
    let text = metrics_text(&app).await;
    let after = request_series(&text);
    let added: BTreeSet<&String> = after.difference(&before).collect();
    // At most the fixed values: `other` and GET, on `unmatched` and the agency route, with the
    // few statuses those answer, in the two metrics.
    assert!(added.len() <= 16, "{added:#?}");
    for series in &after {
        let method = series
            .split("method=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("a method label");
        assert!(
            ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"].contains(&method),
            "{series}"
        );
    }
    assert!(
        added.iter().any(|s| s.contains("method=\"other\""))
            && added.iter().any(|s| s.contains("route=\"unmatched\"")),
        "{added:#?}"
    );
    let lowered = text.to_lowercase();
    for token in &tokens {
        assert!(!lowered.contains(&token.to_lowercase()), "{token} is in /metrics");
    }

    // Another 200 such requests add nothing at all: the label sets are saturated.
    random_requests(&app).await;
    let again = request_series(&metrics_text(&app).await);
    assert_eq!(again, after);
}

/// Strings that would show that the database's own words reached a client.
const DATABASE_WORDS: [&str; 10] = [
    "FATAL",
    "ERROR:",
    "db error",
    "SQLSTATE",
    "not currently accepting connections",
    "terminating connection",
    "connection closed",
    "pg_",
    "SELECT",
    "/var/",
];

/// Asserts that `body` holds none of [`DATABASE_WORDS`] and none of `names` (of databases,
/// roles, hosts).
fn assert_no_database_text(body: &str, names: &[&str]) {
    for word in DATABASE_WORDS.iter().chain(names) {
        assert!(!body.contains(word), "{word:?} reached the client: {body}");
    }
}

#[tokio::test]
async fn while_the_database_refuses_connections_answers_carry_no_database_text() {
    let app = TestApp::spawn().await;
    let database = app.db_settings.get_dbname().unwrap().to_owned();
    let ready = app.get("/readyz").send().await.unwrap();
    assert_eq!(ready.status(), 200);

    // Another database of the same server, to lock this one out from: no new session may
    // start in it, and the open ones (the app's pool, the test's) are ended.
    let mut outside = app.db_settings.clone();
    outside.dbname("postgres");
    let admin = paygate::db::pool(&outside, 1);
    let admin = admin.get().await.unwrap();
    admin
        .batch_execute(&format!("ALTER DATABASE {database} ALLOW_CONNECTIONS false"))
        .await
        .unwrap();
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            &[&database],
        )
        .await
        .unwrap();

    let requests = [
        app.get("/readyz"),
        app.admin(reqwest::Method::GET, "/v1/agencies"),
        app.admin(reqwest::Method::POST, "/v1/agencies")
            .json(&serde_json::json!({"code": "H12", "name": "Sở Tư pháp"})),
        app.admin(reqwest::Method::GET, "/v1/events"),
    ];
    for request in requests {
        let response = request.send().await.unwrap();
        let problem = assert_problem(response, 503, "unavailable").await;
        assert_eq!(problem["detail"], "the database is unavailable; retry later", "{problem}");
        assert_no_database_text(&problem.to_string(), &[&database, paygate::db::SERVICE_ROLE]);
    }

    admin
        .batch_execute(&format!("ALTER DATABASE {database} ALLOW_CONNECTIONS true"))
        .await
        .unwrap();
    wait_until_ready(&app, Duration::from_millis(100)).await;
    assert_eq!(app.count("SELECT count(*) FROM agencies").await, 0, "nothing was created");
}

/// Polls `/readyz` every `poll` until it answers 200, for up to 30 seconds.
async fn wait_until_ready(app: &TestApp, poll: Duration) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = app.get("/readyz").send().await.unwrap();
        if response.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "readyz did not recover within 30 s");
        tokio::time::sleep(poll).await;
    }
}

/// The browser the docs page is rendered in: Debian's `chromium` (`.ci/run` installs it), or
/// the one `PAYGATE_TEST_CHROMIUM` names.
fn chromium() -> String {
    std::env::var("PAYGATE_TEST_CHROMIUM").unwrap_or_else(|_| "chromium".to_owned())
}

#[tokio::test]
async fn the_docs_page_renders_every_operation_in_a_real_browser_without_the_internet() {
    let app = TestApp::spawn().await;
    let document: Value = app.get("/openapi.json").send().await.unwrap().json().await.unwrap();
    let profile = std::env::temp_dir().join(random_id("paygate-chromium", 6));
    // Background networking is off, as on a machine with no way out: every file the page needs
    // must come from paygate itself. `--dump-dom` prints the page once its script has run.
    let output = tokio::process::Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=10000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(app.url("/docs"))
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(90), output)
        .await
        .expect("chromium renders the page within 90 s")
        .unwrap_or_else(|err| panic!("run {} (apt-get install chromium): {err}", chromium()));
    let _ = std::fs::remove_dir_all(&profile);
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(dom.contains("<h2 class=\"title\">paygate"), "the title is rendered: {dom:.2000}");
    let paths = document["paths"].as_object().expect("paths");
    for path in paths.keys() {
        assert!(dom.contains(&format!("data-path=\"{path}\"")), "the rendered page shows {path}");
    }
}
