use integration_tests::answers::invalid;
use integration_tests::answers::RequestExt;
use integration_tests::{assert_problem, invalid_fields, test_config, TestApp};
use paygate::config::Config;
use reqwest::Method;
use serde_json::{json, Value};

async fn post(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.admin(Method::POST, path).json(&body).send().await.unwrap()
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

    let read = app.admin(Method::GET, "/v1/agencies/000.00.00.H12").send().await.unwrap();
    assert_eq!(read.status(), 200);
    let text = read.text().await.unwrap();
    assert!(!text.contains(secret) && !text.contains(api_key), "no secrets in {text}");
    let agency: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(agency["name"], name);
    let client = app.db.get().await.unwrap();
    let stored: String = client
        .query_one("SELECT name FROM agencies WHERE code = '000.00.00.H12'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored.as_bytes(), name.as_bytes(), "stored byte for byte, not normalised");

    // The agency's key is known: on an admin endpoint it is forbidden, not unauthenticated.
    app.get_with(api_key, "/v1/banks/VCB").problem(403, "forbidden").await;
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
    let response =
        post(&app, "/v1/agencies", json!({"code": "000.00.00.H12", "name": "Khác"})).await;
    assert_problem(response, 409, "duplicate_code").await;
    assert_eq!(app.count("SELECT count(*) FROM agencies").await, 1);
    app.assert_count("SELECT count(*) FROM api_keys", keys_before).await;
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
        (json!({"code": 12, "name": "A", "notify_url": "ftp://x.vn/"}), vec!["code", "notify_url"]),
        (
            json!({"code": "H12", "name": "A", "notify_url": "http://169.254.169.254/"}),
            vec!["notify_url"],
        ),
        (json!({"code": "H12", "name": "A", "notify_url": "not a url"}), vec!["notify_url"]),
        (json!({"code": "H12", "name": "A", "notify_url": 5}), vec!["notify_url"]),
    ];
    for (body, fields) in cases {
        let response = post(&app, "/v1/agencies", body.clone()).await;
        assert_eq!(invalid(response).await, fields, "{body}");
    }
    assert_eq!(app.count("SELECT count(*) FROM agencies").await, 0);
    app.assert_count("SELECT count(*) FROM api_keys WHERE role = 'agency'", 0).await;
}

#[tokio::test]
async fn a_private_notify_url_is_refused_unless_allowed() {
    let strict = TestApp::spawn_with(Config { notify_allow_private: false, ..test_config() }).await;
    for url in
        ["http://127.0.0.1:8080/n", "http://10.0.0.5/n", "http://localhost/n", "http://[::1]/n"]
    {
        let response =
            post(&strict, "/v1/agencies", json!({"code": "H12", "name": "A", "notify_url": url}))
                .await;
        assert_eq!(invalid(response).await, ["notify_url"], "{url}");
    }
    // A public URL is taken anyway, and a private one where they are allowed.
    let relaxed = TestApp::spawn().await;
    for (app, url) in
        [(&strict, "https://dvc.hanoi.gov.vn/n"), (&relaxed, "http://127.0.0.1:8080/n")]
    {
        let body = json!({"code": "H12", "name": "A", "notify_url": url});
        assert_eq!(post(app, "/v1/agencies", body).await.status(), 201, "{url}");
    }
}

#[tokio::test]
async fn a_further_agency_key_works_and_the_old_one_stays_valid() {
    let app = TestApp::spawn().await;
    let created = app.create_agency("H12").await;
    let response = app.admin(Method::POST, "/v1/agencies/H12/keys").send().await.unwrap();
    assert_eq!(response.status(), 201);
    let second: Value = response.json().await.unwrap();
    let second = second["api_key"].as_str().unwrap();
    assert_ne!(second, created["api_key"].as_str().unwrap());
    for key in [created["api_key"].as_str().unwrap(), second] {
        app.get_with(key, "/v1/banks/X1").problem(403, "forbidden").await;
    }
    app.assert_count("SELECT count(*) FROM api_keys WHERE agency_code = 'H12'", 2).await;
}

#[tokio::test]
async fn keys_for_an_unknown_agency_answer_404() {
    let app = TestApp::spawn().await;
    for path in ["/v1/agencies/NOPE/keys", "/v1/agencies/not%20a%20code/keys"] {
        let response = app.admin(Method::POST, path).send().await.unwrap();
        assert_problem(response, 404, "agency_not_found").await;
    }
    app.assert_count("SELECT count(*) FROM api_keys WHERE role = 'agency'", 0).await;
}

#[tokio::test]
async fn notify_url_can_be_set_and_cleared_and_a_bad_one_changes_nothing() {
    let app = TestApp::spawn().await;
    app.create_agency("H12").await;
    let patch = |body: Value| app.admin(Method::PATCH, "/v1/agencies/H12").json(&body).send();

    let response = patch(json!({"notify_url": "https://dvc.hanoi.gov.vn/paygate"})).await.unwrap();
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
    let unchanged: Value = app.admin(Method::GET, "/v1/agencies/H12").answer_json().await;
    assert_eq!(unchanged["notify_url"], "https://dvc.hanoi.gov.vn/paygate");

    let cleared: Value = patch(json!({"notify_url": null})).await.unwrap().json().await.unwrap();
    assert!(cleared.get("notify_url").is_none(), "{cleared}");

    app.admin(Method::PATCH, "/v1/agencies/NOPE")
        .json(&json!({"notify_url": null}))
        .problem(404, "agency_not_found")
        .await;
}

#[tokio::test]
async fn creating_a_bank_returns_its_first_key_and_the_secret_is_never_shown_again() {
    let app = TestApp::spawn().await;
    let created = app.create_bank("VCB").await;
    let key_id = created["key_id"].as_str().unwrap();
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with("bsk_") && secret.len() >= 47);
    assert_eq!(created["name"], "Ngân hàng VCB");

    let read = app.admin(Method::GET, "/v1/banks/VCB").send().await.unwrap();
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
        assert_eq!(invalid(post(&app, "/v1/banks", body.clone()).await).await, fields, "{body}");
    }
    assert_eq!(app.count("SELECT count(*) FROM banks WHERE code <> 'SANDBOX'").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM bank_keys").await, 1);
}

#[tokio::test]
async fn bank_keys_rotate_and_revoke() {
    let app = TestApp::spawn().await;
    let created = app.create_bank("VCB").await;
    let old = created["key_id"].as_str().unwrap().to_owned();
    let response = app.admin(Method::POST, "/v1/banks/VCB/keys").send().await.unwrap();
    assert_eq!(response.status(), 201);
    let new: Value = response.json().await.unwrap();
    let new_id = new["key_id"].as_str().unwrap().to_owned();
    assert_ne!(new_id, old);
    assert!(new["secret"].as_str().unwrap().starts_with("bsk_"));
    app.assert_count("SELECT count(*) FROM bank_keys WHERE revoked_at IS NULL", 2).await;

    let path = format!("/v1/banks/VCB/keys/{old}");
    let response = app.admin(Method::DELETE, &path).send().await.unwrap();
    assert_eq!(response.status(), 204);
    // Revoking again is harmless.
    let response = app.admin(Method::DELETE, &path).send().await.unwrap();
    assert_eq!(response.status(), 204);
    let bank: Value = app.admin(Method::GET, "/v1/banks/VCB").answer_json().await;
    let keys = bank["keys"].as_array().unwrap();
    let state = |id: &str| keys.iter().find(|k| k["key_id"] == id).unwrap().clone();
    assert!(state(&old)["revoked_at"].is_string());
    assert!(state(&new_id).get("revoked_at").is_none());

    app.admin(Method::DELETE, "/v1/banks/VCB/keys/kid_ffffffffffffffff")
        .problem(404, "key_not_found")
        .await;
    // A key of another bank cannot be revoked through this bank.
    let other = app.create_bank("BIDV").await;
    let path = format!("/v1/banks/VCB/keys/{}", other["key_id"].as_str().unwrap());
    let response = app.admin(Method::DELETE, &path).send().await.unwrap();
    assert_problem(response, 404, "key_not_found").await;
    app.assert_count("SELECT count(*) FROM bank_keys WHERE revoked_at IS NULL", 2).await;
}

#[tokio::test]
async fn keys_of_an_unknown_bank_answer_404() {
    let app = TestApp::spawn().await;
    app.admin(Method::POST, "/v1/banks/NOPE/keys").problem(404, "bank_not_found").await;
    app.admin(Method::GET, "/v1/banks/NOPE").problem(404, "bank_not_found").await;
    assert_eq!(app.count("SELECT count(*) FROM bank_keys").await, 0);
}

#[tokio::test]
async fn admins_create_admin_and_auditor_keys_but_not_agency_keys() {
    let app = TestApp::spawn().await;
    let auditor = app.key_with_role("auditor").await;
    app.get_with(&auditor, "/v1/banks/VCB").problem(403, "forbidden").await;

    let response = post(&app, "/v1/api-keys", json!({"role": "admin"})).await;
    assert_eq!(response.status(), 201);
    let admin: Value = response.json().await.unwrap();
    assert_eq!(admin["role"], "admin");
    let response = app
        .post_with(admin["api_key"].as_str().unwrap(), "/v1/banks")
        .json(&json!({"code": "VCB", "name": "Vietcombank"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);

    let before = app.count("SELECT count(*) FROM api_keys").await;
    for body in [json!({"role": "agency"}), json!({"role": "root"}), json!({})] {
        assert_eq!(invalid(post(&app, "/v1/api-keys", body).await).await, ["role"]);
    }
    assert_eq!(app.count("SELECT count(*) FROM api_keys").await, before);
}

async fn json_answer(response: reqwest::Response, status: u16) -> Value {
    let actual = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(actual, status, "{text}");
    serde_json::from_str(&text).unwrap()
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

fn sorted_fields(object: &Value) -> Vec<String> {
    let mut fields: Vec<String> = object.as_object().unwrap().keys().cloned().collect();
    fields.sort();
    fields
}

mod api_keys;
mod switches;
