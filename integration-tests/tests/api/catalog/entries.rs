//! Listing, creating and changing catalog entries, with their audit entries.

use super::*;

#[tokio::test]
async fn the_catalog_lists_the_six_builtins_in_order_to_any_key() {
    let app = TestApp::spawn().await;
    let agency = agency_key(&app).await;
    let auditor = app.key_with_role("auditor").await;
    for key in [&app.admin_key, &agency, &auditor] {
        let items = catalog(&app, key).await;
        let codes: Vec<&str> = items.iter().map(|item| item["code"].as_str().unwrap()).collect();
        assert_eq!(codes, OBLIGATIONS);
        for item in &items {
            let members: Vec<&str> = item.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(
                members,
                ["code", "name", "builtin", "active", "details_schema", "created_at"]
            );
            assert_eq!(item["builtin"], true, "{item}");
            assert_eq!(item["active"], true, "{item}");
            assert_eq!(item["details_schema"]["additionalProperties"], false, "{item}");
        }
    }
    let response = app.get("/v1/obligations").send().await.unwrap();
    assert_problem(response, 401, "unauthenticated").await;
}

#[tokio::test]
async fn an_admin_creates_an_entry_that_is_listed_after_the_builtins_and_audited() {
    let app = TestApp::spawn().await;
    let response = post_obligation(&app, &app.admin_key, &hospital_entry()).await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["code"], "hospital_fee");
    assert_eq!(created["name"], "Viện phí (hospital fees)");
    assert_eq!(created["builtin"], false);
    assert_eq!(created["active"], true);
    assert_eq!(created["details_schema"], hospital_schema());
    assert!(created["created_at"].is_string(), "{created}");

    let items = catalog(&app, &app.admin_key).await;
    assert_eq!(items.len(), 7);
    assert_eq!(items[6], created);

    let audit = app
        .row(
            "SELECT actor_role, target, detail FROM audit_log WHERE action = 'obligation.create'",
            &[],
        )
        .await;
    assert_eq!(audit.get::<_, &str>(0), "admin");
    assert_eq!(audit.get::<_, &str>(1), "obligation:hospital_fee");
    assert_eq!(audit.get::<_, Value>(2), json!({"name": "Viện phí (hospital fees)"}));
}

#[tokio::test]
async fn a_second_entry_with_the_same_code_is_refused_as_a_duplicate_and_nothing_changes() {
    let app = TestApp::spawn().await;
    post_obligation(&app, &app.admin_key, &hospital_entry()).await;
    let mut again = hospital_entry();
    again["name"] = json!("Another name");
    let response = post_obligation(&app, &app.admin_key, &again).await;
    assert_problem(response, 409, "duplicate_code").await;
    let response = post_obligation(
        &app,
        &app.admin_key,
        &json!({
            "code": "fee", "name": "Phí", "details_schema": hospital_schema()
        }),
    )
    .await;
    assert_problem(response, 409, "duplicate_code").await;
    app.assert_count("SELECT count(*) FROM obligations", 7).await;
    app.assert_count("SELECT count(*) FROM obligations WHERE name = 'Another name'", 0).await;
    app.assert_count("SELECT count(*) FROM audit_log WHERE action = 'obligation.create'", 1).await;
}

#[tokio::test]
async fn only_an_admin_may_create_or_change_an_entry() {
    let app = TestApp::spawn().await;
    let agency = agency_key(&app).await;
    let auditor = app.key_with_role("auditor").await;
    for key in [&agency, &auditor] {
        let response = post_obligation(&app, key, &hospital_entry()).await;
        assert_problem(response, 403, "forbidden").await;
        let response = app
            .http
            .patch(app.url("/v1/obligations/fee"))
            .bearer_auth(key)
            .json(&json!({"active": false}))
            .send()
            .await
            .unwrap();
        assert_problem(response, 403, "forbidden").await;
    }
    app.assert_count("SELECT count(*) FROM obligations", 6).await;
    app.assert_count("SELECT count(*) FROM obligations WHERE active", 6).await;
}

#[tokio::test]
async fn invalid_codes_and_names_are_named_field_by_field_and_nothing_is_created() {
    let app = TestApp::spawn().await;
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            json!({"code": "Hospital", "name": "x", "details_schema": hospital_schema()}),
            vec!["code"],
        ),
        (json!({"code": "h", "name": "x", "details_schema": hospital_schema()}), vec!["code"]),
        (json!({"code": "1fee", "name": "x", "details_schema": hospital_schema()}), vec!["code"]),
        (
            json!({"code": "hospital-fee", "name": "x", "details_schema": hospital_schema()}),
            vec!["code"],
        ),
        (
            json!({"code": format!("h{}", "a".repeat(32)), "name": "x", "details_schema": hospital_schema()}),
            vec!["code"],
        ),
        (json!({"code": 7, "name": "x", "details_schema": hospital_schema()}), vec!["code"]),
        (json!({"name": "x", "details_schema": hospital_schema()}), vec!["code"]),
        (
            json!({"code": "hospital_fee", "name": "", "details_schema": hospital_schema()}),
            vec!["name"],
        ),
        (
            json!({"code": "hospital_fee", "name": "ệ".repeat(129), "details_schema": hospital_schema()}),
            vec!["name"],
        ),
        (json!({"code": "hospital_fee", "details_schema": hospital_schema()}), vec!["name"]),
        (json!({"code": "hospital_fee", "name": "x"}), vec!["details_schema"]),
    ];
    for (body, fields) in cases {
        let response = post_obligation(&app, &app.admin_key, &body).await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(integration_tests::invalid_fields(&problem), fields, "{body}");
    }
    // The longest code and name are accepted.
    let longest = format!("h{}", "a".repeat(31));
    let body =
        json!({"code": longest, "name": "ệ".repeat(128), "details_schema": hospital_schema()});
    let created = post_obligation(&app, &app.admin_key, &body).await;
    assert_eq!(created.status(), 201);
    app.assert_count("SELECT count(*) FROM obligations", 7).await;
}

#[tokio::test]
async fn a_patch_renames_or_deactivates_an_entry_keeps_its_schema_and_is_audited() {
    let app = TestApp::spawn().await;
    let before = catalog(&app, &app.admin_key).await[0].clone();
    let changed = patch_obligation(&app, "fee", &json!({"active": false})).await;
    let changed: Value = changed.json().await.unwrap();
    assert_eq!(changed["active"], false);
    assert_eq!(changed["name"], before["name"]);
    assert_eq!(changed["details_schema"], before["details_schema"]);
    let renamed =
        patch_obligation(&app, "fee", &json!({"name": "Phí, lệ phí", "active": true})).await;
    let renamed: Value = renamed.json().await.unwrap();
    assert_eq!(renamed["name"], "Phí, lệ phí");
    assert_eq!(renamed["active"], true);
    assert_eq!(renamed["created_at"], before["created_at"]);
    assert_eq!(catalog(&app, &app.admin_key).await[0], renamed);
    let details: Vec<Value> = app
        .rows(
            "SELECT detail FROM audit_log WHERE action = 'obligation.update' \
             AND target = 'obligation:fee' ORDER BY seq",
            &[],
        )
        .await
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(details, [json!({"active": false}), json!({"name": "Phí, lệ phí", "active": true})]);
}

#[tokio::test]
async fn an_invalid_patch_or_an_unknown_code_is_refused_and_nothing_changes() {
    let app = TestApp::spawn().await;
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({"active": "no"}), vec!["active"]),
        (json!({"active": null}), vec!["active"]),
        (json!({"name": ""}), vec!["name"]),
        (json!({"name": "ệ".repeat(129)}), vec!["name"]),
        (json!({"name": 1, "active": 0}), vec!["name", "active"]),
    ];
    for (body, fields) in cases {
        let response = patch_obligation(&app, "fee", &body).await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(integration_tests::invalid_fields(&problem), fields, "{body}");
    }
    for code in ["hospital_fee", "Fee", "x"] {
        let response = patch_obligation(&app, code, &json!({"active": false})).await;
        assert_problem(response, 404, "not_found").await;
    }
    app.assert_count("SELECT count(*) FROM obligations WHERE active", 6).await;
    app.assert_count("SELECT count(*) FROM audit_log WHERE action = 'obligation.update'", 0).await;
}

#[tokio::test]
async fn a_schema_never_changes_even_for_the_owner_of_the_database() {
    let app = TestApp::spawn().await;
    let client = app.db.get().await.unwrap();
    let err = client
        .execute(
            "UPDATE obligations SET details_schema = '{\"type\": \"object\", \
             \"additionalProperties\": false}' WHERE code = 'tax'",
            &[],
        )
        .await
        .expect_err("the trigger refuses a new schema");
    assert_eq!(err.as_db_error().unwrap().constraint(), Some("obligations_immutable"), "{err}");
    for change in ["code = 'tax2'", "builtin = false", "schema_digest = ''"] {
        let sql = format!("UPDATE obligations SET {change} WHERE code = 'tax'");
        assert!(client.execute(&sql, &[]).await.is_err(), "{sql}");
    }
    let tax = &catalog(&app, &app.admin_key).await[1];
    assert_eq!(tax["code"], "tax");
    assert_eq!(tax["builtin"], true);
    assert_eq!(tax["details_schema"]["required"], json!(["tax_code"]));
}
