//! Hostile input: times out of range and NUL characters.

use super::*;

#[tokio::test]
async fn an_expires_at_outside_the_years_2000_to_9998_answers_422_and_creates_nothing() {
    let (app, key) = with_agency().await;
    for (n, at) in TIMES_OUT_OF_RANGE.into_iter().enumerate() {
        let body = changed(&order("fee", &format!("H12-{n}")), "expires_at", Some(json!(at)));
        let idempotency_key = new_idempotency_key();
        let response = post_order(&app, &key, &idempotency_key, &body).await;
        assert_eq!(invalid(response).await, ["expires_at"], "{at}");
        // The key stays free for the corrected request.
        let corrected = changed(&body, "expires_at", None);
        let response = post_order(&app, &key, &idempotency_key, &corrected).await;
        assert_eq!(response.status(), 201, "{at}");
    }
    assert_eq!(totals(&app).await, Totals::of(5, 5, 0));
}

#[tokio::test]
async fn creation_time_filters_outside_the_years_2000_to_9998_answer_422_naming_the_filter() {
    let (app, key) = with_agency().await;
    let created = create(&app, &key, &order("fee", "H12-1")).await;
    for name in ["created_from", "created_to"] {
        for value in TIMES_OUT_OF_RANGE {
            for api_key in [key.as_str(), app.admin_key.as_str()] {
                let response = list(&app, api_key, &[(name, value)]).await;
                assert_eq!(invalid(response).await, [name], "{name}={value}");
            }
        }
    }
    // The first and last instants of the range are fine filters.
    let from_first = page(&app, &key, &[("created_from", "2000-01-01T00:00:00Z")]).await;
    assert_eq!(ids(&from_first), [id_of(&created)]);
    let to_last = page(&app, &key, &[("created_to", "9998-12-31T23:59:59.999999Z")]).await;
    assert_eq!(ids(&to_last), [id_of(&created)]);
    let both = page(
        &app,
        &key,
        &[("created_from", "9998-12-31T23:59:59Z"), ("created_to", "2000-01-01T07:00:00+07:00")],
    )
    .await;
    assert_eq!(ids(&both), Vec::<String>::new());
}

#[tokio::test]
async fn a_nul_in_any_text_field_of_a_create_body_answers_422_naming_it_and_creates_nothing() {
    let (app, key) = with_agency().await;
    let expires_at = db_time(&app, "now() + interval '1 day'").await;
    let mut cases: Vec<(String, Value)> = Vec::new();
    for obligation in OBLIGATIONS {
        let valid = changed(&order(obligation, "H12-NUL"), "expires_at", Some(json!(expires_at)));
        let mut paths: Vec<String> = [
            "obligation",
            "reference",
            "amount",
            "currency",
            "description",
            "payer.name",
            "payer.id_number",
            "expires_at",
        ]
        .map(str::to_owned)
        .to_vec();
        for name in details(obligation).as_object().expect("details").keys() {
            paths.push(format!("details.{name}"));
        }
        for path in paths {
            let mut value = valid.clone();
            for part in path.split('.') {
                value = value[part].clone();
            }
            let text = value.as_str().expect("a text field").to_owned();
            for nul in ["\u{0}".to_owned(), format!("{text}\u{0}"), format!("\u{0}{text}")] {
                cases.push((path.clone(), changed(&valid, &path, Some(json!(nul)))));
            }
        }
        // Members paygate does not read are refused too, at any depth.
        cases.push((
            "ghi_chu.kênh".to_owned(),
            changed(&valid, "ghi_chu", Some(json!({"kênh": "Cổng\u{0}DVC"}))),
        ));
        cases.push((
            "payer.aliases.1".to_owned(),
            changed(&valid, "payer.aliases", Some(json!(["A", "\u{0}"]))),
        ));
    }
    for (path, body) in cases {
        let response = post_order(&app, &key, &new_idempotency_key(), &body).await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(invalid_fields(&problem), [path.as_str()], "{body}");
        let message = problem["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains("NUL"), "{problem}");
    }
    // Several at once are all named.
    let body = changed(
        &changed(&order("fee", "R\u{0}"), "payer.name", Some(json!("\u{0}"))),
        "details.dossier_code",
        Some(json!("D\u{0}")),
    );
    let response = post_order(&app, &key, &new_idempotency_key(), &body).await;
    let problem = assert_problem(response, 422, "validation_failed").await;
    assert_eq!(
        sorted(invalid_fields(&problem)),
        ["details.dossier_code", "payer.name", "reference"]
    );
    assert_eq!(totals(&app).await, Totals::of(0, 0, 0));
}

#[tokio::test]
async fn a_nul_in_a_list_parameter_answers_422_naming_it_and_in_a_payment_id_404() {
    let (app, key) = with_agency().await;
    let created = create(&app, &key, &order("fee", "H12-1")).await;
    let id = id_of(&created);
    for name in [
        "reference",
        "status",
        "obligation",
        "created_from",
        "created_to",
        "agency",
        "limit",
        "cursor",
        "something_else",
    ] {
        for api_key in [key.as_str(), app.admin_key.as_str()] {
            let response = list(&app, api_key, &[(name, "a\u{0}b")]).await;
            let problem = assert_problem(response, 422, "validation_failed").await;
            assert_eq!(invalid_fields(&problem), [name], "{name}");
        }
    }
    for path in [format!("/v1/payments/{id}%00"), "/v1/payments/%00".to_owned()] {
        app.get_with(&key, &path).problem(404, "not_found").await;
        app.post_with(&key, &format!("{path}/cancel")).problem(404, "not_found").await;
    }
    assert_eq!(read(&app, &key, &id).await, created);
}
