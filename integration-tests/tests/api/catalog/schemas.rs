//! The rules a new schema must follow, the bounds that keep a hostile one harmless, and an admin
//! entry's validation of orders.

use super::*;

/// A valid root with `extra` members added.
fn root(extra: Value) -> Value {
    let mut schema = json!({"type": "object", "additionalProperties": false});
    schema.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    schema
}

#[tokio::test]
async fn schemas_that_break_the_rules_are_refused_as_invalid_schema_naming_the_problem() {
    let app = TestApp::spawn().await;
    let mut deep = json!({"type": "string"});
    for _ in 0..40 {
        deep = json!({"type": "object", "properties": {"a": deep}});
    }
    let many: serde_json::Map<String, Value> = (0..3_000)
        .map(|n| (format!("field_{n}"), json!({"type": "string", "maxLength": 100})))
        .collect();
    // Thirty levels, each referring twice to the next: 2^30 evaluations from a few kilobytes.
    let mut doubling = serde_json::Map::new();
    for level in 0..30 {
        let next = format!("#/$defs/d{}", level + 1);
        doubling.insert(format!("d{level}"), json!({"anyOf": [{"$ref": next}, {"$ref": next}]}));
    }
    doubling.insert("d30".to_owned(), json!({"type": "null"}));
    let cases: Vec<(Value, &str)> = vec![
        (json!("object"), "JSON object"),
        (json!({"type": "array", "additionalProperties": false}), "\"type\": \"object\""),
        (json!({"additionalProperties": false}), "\"type\": \"object\""),
        (json!({"type": "object"}), "additionalProperties"),
        (json!({"type": "object", "additionalProperties": true}), "additionalProperties"),
        (
            json!({"type": "object", "additionalProperties": {"type": "string"}}),
            "additionalProperties",
        ),
        (root(json!({"$schema": "http://json-schema.org/draft-07/schema#"})), "2020-12"),
        (root(json!({"properties": {"a": {"type": "text"}}})), "not a valid JSON Schema"),
        (root(json!({"properties": {"a": {"minLength": -1}}})), "not a valid JSON Schema"),
        (root(json!({"properties": {"a": {"pattern": "(["}}})), "not a valid JSON Schema"),
        (root(json!({"properties": {"a": {"pattern": "a".repeat(1_001)}}})), "at most 1000"),
        (
            root(json!({"properties": {"a": {"$ref": "http://127.0.0.1:9/schema.json"}}})),
            "only references within the schema",
        ),
        (
            root(json!({"properties": {"a": {"$ref": "file:///etc/passwd"}}})),
            "only references within the schema",
        ),
        (root(json!({"properties": {"a": {"$ref": "#"}}})), "cycle"),
        (root(json!({"properties": {"a": {"$dynamicRef": "#meta"}}})), "$dynamicRef"),
        (
            root(json!({"properties": {"a": {"$ref": "#/$defs/d0"}}, "$defs": doubling})),
            "unfolds to more than",
        ),
        (
            root(json!({"properties": {"a": {"$ref": "#/$defs/missing"}}})),
            "not a valid JSON Schema",
        ),
        (root(json!({"properties": {"a": deep}})), "levels deep"),
        (root(json!({"properties": many})), "65536 bytes"),
    ];
    for (n, (schema, problem)) in cases.into_iter().enumerate() {
        let body = json!({"code": format!("group_{n}"), "name": "x", "details_schema": schema});
        let response = post_obligation(&app, &app.admin_key, &body).await;
        let answer = assert_problem(response, 422, "invalid_schema").await;
        let detail = answer["detail"].as_str().unwrap();
        assert!(detail.starts_with("details_schema "), "{detail}");
        assert!(detail.contains(problem), "{n}: {detail}");
    }
    app.assert_count("SELECT count(*) FROM obligations", 6).await;
    app.assert_count("SELECT count(*) FROM audit_log", 0).await;
}

#[tokio::test]
async fn an_admin_entry_validates_orders_with_dotted_fields_and_a_hostile_pattern_completes() {
    let app = TestApp::spawn().await;
    let key = agency_key(&app).await;
    let schema = root(json!({
        "properties": {
            "patient_code": {"type": "string", "pattern": "^(a+)+$"},
            "visits": {"type": "array", "maxItems": 3, "items": {
                "type": "object",
                "properties": {"day": {"type": "string", "format": "date"}},
                "required": ["day"],
                "additionalProperties": false
            }}
        },
        "required": ["patient_code"]
    }));
    let body = json!({"code": "hospital_fee", "name": "Viện phí", "details_schema": schema});
    assert_eq!(post_obligation(&app, &app.admin_key, &body).await.status(), 201);

    let hostile = format!("{}!", "a".repeat(50_000));
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({"patient_code": hostile}), vec!["details.patient_code"]),
        (json!({}), vec!["details.patient_code"]),
        (json!({"patient_code": "aaa", "bed": 1}), vec!["details.bed"]),
        (
            json!({"patient_code": "aaa", "visits": [{"day": "2026-02-30"}, {}, {"day": "2026-01-01", "x": 1}]}),
            vec!["details.visits.0.day", "details.visits.1.day", "details.visits.2.x"],
        ),
        (json!([]), vec!["details"]),
        // More values than any details need is one error, whatever the schema says.
        (
            json!({"patient_code": "aaa", "visits": vec![json!({"day": "2026-01-01"}); 20]}),
            vec!["details"],
        ),
    ];
    for (n, (details, fields)) in cases.into_iter().enumerate() {
        let response =
            app.post_payment(&key, &hospital_order(&format!("BV-{n}"), details.clone())).await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(integration_tests::invalid_fields(&problem), fields, "{details}");
    }
    app.assert_count("SELECT count(*) FROM payments", 0).await;

    let details = json!({"patient_code": "aaaa", "visits": [{"day": "2026-02-28"}]});
    let response = app.post_payment(&key, &hospital_order("BV-ok", details.clone())).await;
    let created = integration_tests::answers::json_with(response, 201).await;
    assert_eq!(created["obligation"], "hospital_fee");
    assert_eq!(created["details"], details);
}

#[tokio::test]
async fn an_inactive_entry_refuses_new_orders_and_its_existing_orders_read_as_before() {
    let app = TestApp::spawn().await;
    let key = agency_key(&app).await;
    assert_eq!(post_obligation(&app, &app.admin_key, &hospital_entry()).await.status(), 201);
    let details = json!({"patient_code": "BN00001234"});
    let response = app.post_payment(&key, &hospital_order("BV-1", details.clone())).await;
    let created = integration_tests::answers::json_with(response, 201).await;
    let id = created["id"].as_str().unwrap().to_owned();

    patch_obligation(&app, "hospital_fee", &json!({"active": false})).await;
    let response = app.post_payment(&key, &hospital_order("BV-2", details.clone())).await;
    assert_problem(response, 422, "obligation_inactive").await;
    app.assert_count("SELECT count(*) FROM payments", 1).await;
    let read = app.get_with(&key, &format!("/v1/payments/{id}")).json_with(200).await;
    assert_eq!(read, created);

    patch_obligation(&app, "hospital_fee", &json!({"active": true})).await;
    let response = app.post_payment(&key, &hospital_order("BV-2", details)).await;
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn an_order_naming_no_catalog_entry_is_refused_on_its_obligation_field() {
    let app = TestApp::spawn().await;
    let key = agency_key(&app).await;
    let response = app
        .post_payment(&key, &hospital_order("BV-1", json!({"patient_code": "BN00001234"})))
        .await;
    let problem = assert_problem(response, 422, "validation_failed").await;
    assert_eq!(integration_tests::invalid_fields(&problem), ["obligation"]);
    app.assert_count("SELECT count(*) FROM payments", 0).await;
}
