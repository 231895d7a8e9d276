//! Console sessions over real HTTP: who may sign in, what the cookie promises, that a session
//! lives in the database (any replica serves it) and ends when it is signed out, expires or its
//! key is revoked, and that a form without the session's CSRF token is refused and changes
//! nothing. Also the overview's figures and their live stream, the audit page and the parties
//! page, as a signed-in person sees them.

use std::time::Duration;

use super::csrf_in;

use integration_tests::answers::RequestExt;
use integration_tests::clock::paid_a_minute_ago;
use integration_tests::world::{World, AMOUNT};
use integration_tests::TestApp;
use reqwest::redirect::Policy;
use reqwest::Response;
use serde_json::json;

/// A browser: a cookie-keeping client that does not follow redirects, so every 303 is seen.
struct Browser {
    http: reqwest::Client,
    base: String,
}

impl Browser {
    fn new(app: &TestApp) -> Browser {
        Browser::at(&app.address)
    }

    fn at(base: &str) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(Policy::none())
                .pool_idle_timeout(Duration::from_secs(2))
                .build()
                .expect("an HTTP client"),
            base: base.to_owned(),
        }
    }

    async fn get(&self, path: &str) -> Response {
        self.http.get(format!("{}{path}", self.base)).send().await.expect("an answer")
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Response {
        self.http.post(format!("{}{path}", self.base)).form(form).send().await.expect("an answer")
    }

    async fn page(&self, path: &str) -> String {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.text().await.expect("a page")
    }

    /// Fills in and sends the sign-in form with `key`.
    async fn try_sign_in(&self, key: &str) -> Response {
        let form = self.page("/console/sign-in").await;
        let csrf = csrf_in(&form);
        self.post("/console/sign-in", &[("csrf", &csrf), ("key", key)]).await
    }

    async fn sign_in(&self, key: &str) {
        let response = self.try_sign_in(key).await;
        assert_eq!(response.status(), 303, "{:?}", response.text().await);
        assert_eq!(location(&response), "/console");
    }

    /// The session's CSRF token, from a page's sign-out form.
    async fn csrf(&self) -> String {
        csrf_in(&self.page("/console").await)
    }
}

fn location(response: &Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn set_cookies(response: &Response) -> Vec<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .map(str::to_owned)
        .collect()
}

async fn sessions(app: &TestApp) -> i64 {
    app.count("SELECT count(*) FROM console_sessions").await
}

async fn audited(app: &TestApp, action: &str) -> i64 {
    let client = app.db.get().await.expect("a connection");
    client
        .query_one("SELECT count(*) FROM audit_log WHERE action = $1", &[&action])
        .await
        .expect("count")
        .get(0)
}

#[tokio::test]
async fn an_anonymous_page_request_is_sent_to_sign_in_and_an_anonymous_form_is_refused() {
    let app = TestApp::spawn().await;
    let browser = Browser::new(&app);
    for path in ["/console", "/console/audit", "/console/parties", "/console/live"] {
        let response = browser.get(path).await;
        assert_eq!(response.status(), 303, "{path}");
        assert_eq!(location(&response), "/console/sign-in", "{path}");
    }
    let response = browser.post("/console/sign-out", &[("csrf", "x")]).await;
    assert_eq!(response.status(), 403);
    let form = browser.page("/console/sign-in").await;
    assert!(form.contains(r#"<html lang="vi">"#), "{form}");
    assert!(form.contains(r#"type="password""#), "{form}");
}

#[tokio::test]
async fn a_wrong_key_is_refused_with_401_and_stores_nothing() {
    let app = TestApp::spawn().await;
    let browser = Browser::new(&app);
    let response = browser.try_sign_in("pgk_not-a-real-key").await;
    assert_eq!(response.status(), 401);
    assert!(set_cookies(&response).iter().all(|c| !c.starts_with("paygate_console=")));
    assert_eq!(sessions(&app).await, 0);
    assert_eq!(audited(&app, "console.sign_in").await, 0);
    assert_eq!(browser.get("/console").await.status(), 303, "still signed out");
}

#[tokio::test]
async fn an_agency_key_cannot_sign_in() {
    let app = TestApp::spawn().await;
    let agency = app.create_agency("000.00.00.H12").await;
    let key = agency["api_key"].as_str().expect("the agency's key");
    let browser = Browser::new(&app);
    let response = browser.try_sign_in(key).await;
    assert_eq!(response.status(), 401);
    let page = response.text().await.unwrap();
    assert!(page.contains("role=\"alert\""), "{page}");
    assert_eq!(sessions(&app).await, 0);
}

#[tokio::test]
async fn a_sign_in_form_without_its_own_token_is_refused() {
    let app = TestApp::spawn().await;
    let browser = Browser::new(&app);
    browser.page("/console/sign-in").await;
    let response =
        browser.post("/console/sign-in", &[("csrf", "forged"), ("key", &app.admin_key)]).await;
    assert_eq!(response.status(), 403);
    // A client that never saw the form has no cookie at all.
    let stranger = Browser::new(&app);
    let response = stranger.post("/console/sign-in", &[("key", &app.admin_key)]).await;
    assert_eq!(response.status(), 403);
    assert_eq!(sessions(&app).await, 0);
}

#[tokio::test]
async fn signing_in_sets_a_strict_http_only_console_cookie_and_is_audited() {
    let app = TestApp::spawn().await;
    let browser = Browser::new(&app);
    let response = browser.try_sign_in(&app.admin_key).await;
    assert_eq!(response.status(), 303);
    let cookie = set_cookies(&response)
        .into_iter()
        .find(|c| c.starts_with("paygate_console="))
        .expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console", "Max-Age=28800"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");
    let token = cookie["paygate_console=".len()..].split(';').next().unwrap().to_owned();
    assert_eq!(token.len(), 43, "{cookie}");
    // Only the token's hash is stored.
    let stored = app.count("SELECT count(*) FROM console_sessions WHERE expires_at = created_at + interval '8 hours'").await;
    assert_eq!(stored, 1);
    let client = app.db.get().await.unwrap();
    let hashes: i64 = client
        .query_one(
            "SELECT count(*) FROM console_sessions WHERE token_sha256 = sha256(convert_to($1, 'UTF8'))",
            &[&token],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(hashes, 1);
    let entry = app
        .row(
            "SELECT actor_via, actor_role, target FROM audit_log WHERE action = 'console.sign_in'",
            &[],
        )
        .await;
    assert_eq!(entry.get::<_, String>(0), "console");
    assert_eq!(entry.get::<_, String>(1), "admin");
    assert!(entry.get::<_, String>(2).starts_with("api_key:key_"));

    let overview = browser.page("/console").await;
    assert!(overview.contains(r#"<html lang="vi">"#));
    assert!(overview.contains(r#"aria-current="page""#));
    // A signed-in person who opens the form again goes on to the overview.
    assert_eq!(location(&browser.get("/console/sign-in").await), "/console");
}

#[tokio::test]
async fn the_cookie_is_secure_behind_an_https_ingress() {
    let app = TestApp::spawn().await;
    let browser = Browser::new(&app);
    let form = browser.page("/console/sign-in").await;
    let response = browser
        .http
        .post(app.url("/console/sign-in"))
        .header("X-Forwarded-Proto", "https")
        .form(&[("csrf", csrf_in(&form).as_str()), ("key", app.admin_key.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let cookie = set_cookies(&response)
        .into_iter()
        .find(|c| c.starts_with("paygate_console="))
        .expect("a session cookie");
    assert!(cookie.contains("; Secure"), "{cookie}");
}

#[tokio::test]
async fn a_session_is_served_by_another_instance_on_the_same_database() {
    let first = TestApp::spawn().await;
    let browser = Browser::new(&first);
    browser.sign_in(&first.admin_key).await;
    let second =
        TestApp::spawn_on(integration_tests::test_config(), first.db_settings.clone()).await;
    // The same cookie jar, sent to the other instance (the cookie names no host port).
    let other = Browser { http: browser.http.clone(), base: second.address.clone() };
    let page = other.page("/console/audit").await;
    assert!(page.contains("console.sign_in"), "the audit page lists the sign-in");
}

#[tokio::test]
async fn signing_out_ends_the_session_and_is_audited() {
    let app = TestApp::spawn().await;
    let browser = Browser::new(&app);
    browser.sign_in(&app.admin_key).await;
    let csrf = browser.csrf().await;
    let response = browser.post("/console/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/console/sign-in");
    assert!(set_cookies(&response).iter().any(|c| c.starts_with("paygate_console=;")));
    assert_eq!(
        app.count("SELECT count(*) FROM console_sessions WHERE ended_at IS NOT NULL").await,
        1
    );
    assert_eq!(audited(&app, "console.sign_out").await, 1);
    assert_eq!(browser.get("/console").await.status(), 303);
}

#[tokio::test]
async fn an_ended_session_token_opens_nothing_even_when_the_browser_keeps_it() {
    let app = TestApp::spawn().await;
    let browser = Browser::new(&app);
    browser.sign_in(&app.admin_key).await;
    app.execute("UPDATE console_sessions SET ended_at = now()", &[]).await;
    assert_eq!(location(&browser.get("/console").await), "/console/sign-in");
}

#[tokio::test]
async fn an_expired_session_is_sent_to_sign_in() {
    let app = TestApp::spawn().await;
    let browser = Browser::new(&app);
    browser.sign_in(&app.admin_key).await;
    app.execute(
        "UPDATE console_sessions SET created_at = now() - interval '9 hours',
                                     expires_at = now() - interval '1 hour'",
        &[],
    )
    .await;
    let response = browser.get("/console").await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/console/sign-in");
}

#[tokio::test]
async fn forged_forms_without_or_with_a_wrong_token_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let browser = Browser::new(&app);
    browser.sign_in(&app.admin_key).await;
    let entries = app.count("SELECT count(*) FROM audit_log").await;
    for form in [vec![], vec![("csrf", "not-the-token")], vec![("csrf", "")]] {
        let response = browser.post("/console/sign-out", &form).await;
        assert_eq!(response.status(), 403, "{form:?}");
        let page = response.text().await.unwrap();
        assert!(page.contains("role=\"alert\""), "{page}");
    }
    assert_eq!(app.count("SELECT count(*) FROM console_sessions WHERE ended_at IS NULL").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM audit_log").await, entries);
    assert_eq!(browser.get("/console").await.status(), 200, "still signed in");
}

#[tokio::test]
async fn revoking_the_key_ends_its_sessions_at_once() {
    let app = TestApp::spawn().await;
    let created = app
        .admin(reqwest::Method::POST, "/v1/api-keys")
        .json(&json!({"role": "auditor", "label": "Kiểm toán viên A"}))
        .json_with(201)
        .await;
    let key = created["api_key"].as_str().unwrap();
    let id = created["id"].as_str().unwrap();
    let browser = Browser::new(&app);
    browser.sign_in(key).await;
    let page = browser.page("/console").await;
    assert!(page.contains("Kiểm toán viên A"), "the label is shown");
    app.admin(reqwest::Method::DELETE, &format!("/v1/api-keys/{id}"))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    assert_eq!(location(&browser.get("/console").await), "/console/sign-in");
}

#[tokio::test]
async fn the_language_switch_sets_english_and_only_returns_to_console_pages() {
    let app = TestApp::spawn().await;
    let browser = Browser::new(&app);
    browser.sign_in(&app.admin_key).await;
    let response = browser.get("/console/lang?to=en&back=/console/audit").await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/console/audit");
    let page = browser.page("/console/audit").await;
    assert!(page.contains(r#"<html lang="en">"#), "{page}");
    assert!(page.contains("Audit log"));
    for back in ["https://evil.example/", "//evil.example/console", "/consolex"] {
        let response = browser.get(&format!("/console/lang?to=vi&back={}", urlencode(back))).await;
        assert_eq!(location(&response), "/console", "{back}");
    }
}

fn urlencode(text: &str) -> String {
    text.bytes().map(|b| format!("%{b:02X}")).collect()
}

#[tokio::test]
async fn the_overview_shows_todays_paid_orders_and_streams_changes() {
    let w = World::new().await;
    let id = w.order("H12-OV-1").await;
    w.deliver_ok(&json!({
        "bank_txn_id": "FT-OV-1", "payment_id": id, "amount": AMOUNT,
        "status": "succeeded", "paid_at": paid_a_minute_ago(),
    }))
    .await;
    let browser = Browser::new(&w.app);
    browser.sign_in(&w.app.admin_key).await;
    let page = browser.page("/console").await;
    assert!(page.contains(r#"id="paid-count">1<"#), "{page}");
    assert!(page.contains(r#"id="paid-amount">150.000 ₫<"#), "{page}");
    assert!(page.contains("<svg"), "the chart");
    assert!(page.contains("aria-labelledby=\"chart-svg-title chart-svg-desc\""));

    // The stream sends the figures at once.
    let mut live = browser.get("/console/live").await;
    assert_eq!(live.status(), 200);
    assert!(live.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut received = String::new();
    while !received.contains("\n\n") || !received.contains("event: fragment") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), live.chunk())
            .await
            .expect("an event within 10 s")
            .unwrap()
            .expect("the stream is open");
        received.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(received.contains("data: "), "{received}");
    assert!(received.contains("paid-count"), "{received}");
}

#[tokio::test]
async fn the_stream_ends_when_the_session_ends() {
    let app = TestApp::spawn().await;
    let browser = Browser::new(&app);
    browser.sign_in(&app.admin_key).await;
    let mut live = browser.get("/console/live").await;
    assert_eq!(live.status(), 200);
    app.execute("UPDATE console_sessions SET ended_at = now()", &[]).await;
    let mut received = String::new();
    loop {
        let chunk = tokio::time::timeout(Duration::from_secs(10), live.chunk())
            .await
            .expect("the stream moves within 10 s")
            .unwrap();
        match chunk {
            Some(chunk) => received.push_str(&String::from_utf8_lossy(&chunk)),
            None => break,
        }
    }
    assert!(received.contains("event: end"), "{received}");
}

#[tokio::test]
async fn the_audit_and_parties_pages_show_the_trail_and_the_onboarding() {
    let w = World::new().await;
    let browser = Browser::new(&w.app);
    browser.sign_in(&w.auditor_key).await;
    let audit = browser.page("/console/audit?action=console.sign_in").await;
    assert!(audit.contains(r#"id="audit-verdict""#), "{audit}");
    assert!(audit.contains("status-ok"), "the chain is intact: {audit}");
    assert!(audit.contains("console.sign_in"));
    let invalid = browser.page("/console/audit?action=nope&from=yesterday").await;
    assert!(invalid.contains("role=\"alert\""), "{invalid}");
    let ledger = browser.page("/console/audit?verify_ledger=1").await;
    assert!(ledger.contains(r#"id="ledger-verdict""#), "{ledger}");
    let parties = browser.page("/console/parties").await;
    assert!(parties.contains("000.00.00.H12"), "{parties}");
    assert!(parties.contains("VCB"), "{parties}");
    assert!(parties.contains(r#"id="active-share""#));
}

#[tokio::test]
async fn the_audit_page_pages_by_position_and_keeps_its_filters() {
    let app = TestApp::spawn().await;
    for i in 0..55 {
        app.create_agency(&format!("A{i:03}")).await;
    }
    let browser = Browser::new(&app);
    browser.sign_in(&app.admin_key).await;
    let first = browser.page("/console/audit?action=agency.create").await;
    assert_eq!(first.matches("agency:A0").count(), 50, "a page holds 50 entries");
    assert!(first.contains("agency:A054"), "newest first");
    let marker = r#"rel="next""#;
    let at = first.find(marker).expect("a next page link");
    let href_start = first[..at].rfind("href=\"").expect("the link's href") + "href=\"".len();
    let href = first[href_start..].split('"').next().unwrap().replace("&amp;", "&");
    assert!(href.contains("action=agency.create"), "{href}");
    let second = browser.page(&href).await;
    assert_eq!(second.matches("agency:A0").count(), 5, "{second}");
    assert!(second.contains("agency:A000"));
    assert!(!second.contains(marker), "the last page has no next link");
}

#[tokio::test]
async fn an_unknown_console_address_is_a_console_page_not_an_api_problem() {
    let app = TestApp::spawn().await;
    let browser = Browser::new(&app);
    assert_eq!(location(&browser.get("/console/nowhere").await), "/console/sign-in");
    browser.sign_in(&app.admin_key).await;
    browser.get("/console/lang?to=en&back=/console").await;
    let response = browser.get("/console/nowhere").await;
    assert_eq!(response.status(), 404);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let page = response.text().await.unwrap();
    assert!(page.contains(r#"<html lang="en">"#), "the error page speaks the person's language");
    assert!(page.contains("Not found"), "{page}");
}

#[tokio::test]
async fn the_purge_deletes_only_sessions_that_ended_or_expired_beyond_the_retention() {
    let app = TestApp::spawn().await;
    // Four sign-ins: the newest stays live; the others are aged below.
    let browsers = [Browser::new(&app), Browser::new(&app), Browser::new(&app), Browser::new(&app)];
    for browser in &browsers {
        browser.sign_in(&app.admin_key).await;
    }
    let ids: Vec<i64> = app
        .rows("SELECT id FROM console_sessions ORDER BY id", &[])
        .await
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(ids.len(), 4);
    // Signed out 91 days ago; expired unused 91 days ago; signed out 10 days ago.
    let aged = [
        ("now() - interval '91 days'", "now() - interval '91 days' + interval '8 hours'", true),
        ("now() - interval '91 days' - interval '8 hours'", "now() - interval '91 days'", false),
        ("now() - interval '10 days'", "now() - interval '10 days' + interval '8 hours'", true),
    ];
    for (id, (created, expires, signed_out)) in ids.iter().zip(aged) {
        let ended = if signed_out { created } else { "NULL" };
        app.execute(
            &format!(
                "UPDATE console_sessions SET created_at = {created}, expires_at = {expires},
                     ended_at = {ended} WHERE id = $1"
            ),
            &[id],
        )
        .await;
    }
    let purged = paygate::console::session::purge_old_sessions(&app.db).await.expect("a purge");
    assert_eq!(purged, 2);
    let left: Vec<i64> = app
        .rows("SELECT id FROM console_sessions ORDER BY id", &[])
        .await
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(left, vec![ids[2], ids[3]]);
    // The live session is untouched and still serves its browser.
    assert_eq!(browsers[3].get("/console").await.status(), 200);
    assert_eq!(paygate::console::session::purge_old_sessions(&app.db).await.unwrap(), 0);
}
