//! Create.

use super::*;

#[tokio::test]
async fn an_agency_creates_an_order_and_a_later_read_returns_the_identical_body() {
    let (app, key) = with_agency().await;
    let body = order("fee", "H12.99-261122-0001");
    let before =
        paygate::timefmt::parse_rfc3339(&db_time(&app, "clock_timestamp()").await).expect("a time");

    let response = post_order(&app, &key, "order-H12.99-261122-0001", &body).await;
    assert_eq!(response.status(), 201);
    assert!(response.headers().get("Idempotent-Replayed").is_none());
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(content_type.starts_with("application/json"), "{content_type}");
    let created_text = response.text().await.unwrap();
    let after =
        paygate::timefmt::parse_rfc3339(&db_time(&app, "clock_timestamp()").await).expect("a time");
    let created: Value = serde_json::from_str(&created_text).unwrap();

    assert_members(&created, &PAYMENT_FIELDS);
    let id = id_of(&created);
    assert!(is_paygate_id(&id), "{id}");
    assert_eq!(created["agency"], AGENCY);
    assert_eq!(created["obligation"], "fee");
    assert_eq!(created["reference"], "H12.99-261122-0001");
    assert_eq!(created["amount"], "150000");
    assert_eq!(created["currency"], "VND");
    assert_eq!(created["description"], DESCRIPTION);
    assert_eq!(created["payer"], json!({"name": PAYER_NAME, "id_number": "001099012345"}));
    assert_eq!(created["details"], body["details"]);
    assert_eq!(created["status"], "pending");
    for field in ["paid_at", "bank", "bank_txn_id"] {
        assert_eq!(created.get(field), Some(&Value::Null), "{field}: {created}");
    }
    // Vietnamese text is sent as UTF-8, not escaped.
    assert!(created_text.contains(DESCRIPTION) && created_text.contains(PAYER_NAME));

    let created_at = created["created_at"].as_str().unwrap();
    let expires_at = created["expires_at"].as_str().unwrap();
    assert!(is_wire_time(created_at), "{created_at}");
    assert!(is_wire_time(expires_at), "{expires_at}");
    let created_at = paygate::timefmt::parse_rfc3339(created_at).unwrap();
    let expires_at = paygate::timefmt::parse_rfc3339(expires_at).unwrap();
    assert!(
        before <= created_at && created_at <= after,
        "{created}: made between {before} and {after}"
    );
    assert_eq!(
        (expires_at - created_at).whole_microseconds(),
        24 * 3600 * 1_000_000,
        "the default expiry is exactly 24 hours: {created}"
    );

    let read = get(&app, &key, &id).await;
    assert_eq!(read.status(), 200);
    assert_eq!(read.text().await.unwrap(), created_text, "byte for byte");

    let client = app.db.get().await.unwrap();
    let row = client
        .query_one("SELECT description, payer_name FROM payments WHERE id = $1", &[&id])
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>(0).as_bytes(), DESCRIPTION.as_bytes());
    assert_eq!(row.get::<_, &str>(1).as_bytes(), PAYER_NAME.as_bytes());
    assert_eq!(totals(&app).await, Totals::of(1, 1, 0));
}

#[tokio::test]
async fn a_valid_order_of_each_obligation_is_created_with_its_details_as_sent() {
    let (app, key) = with_agency().await;
    let mut cases: Vec<(&str, Value)> =
        OBLIGATIONS.iter().map(|obligation| (*obligation, details(obligation))).collect();
    cases.extend([
        ("tax", json!({"tax_code": "0101234567"})),
        ("tax", json!({"tax_code": "0101234567-001"})),
        ("fine", json!({"decision_number": "123/QĐ-XPVPHC"})),
    ]);
    for (n, (obligation, details)) in cases.iter().enumerate() {
        let body =
            changed(&order(obligation, &format!("H12-{n:03}")), "details", Some(details.clone()));
        let created = create(&app, &key, &body).await;
        assert_eq!(created["obligation"], *obligation, "{created}");
        assert_eq!(created["details"], *details, "{created}");
        assert_eq!(created["status"], "pending");
        let read = read(&app, &key, &id_of(&created)).await;
        assert_eq!(read, created);
    }
    app.assert_count("SELECT count(*) FROM payments", cases.len() as i64).await;
}

#[tokio::test]
async fn each_invalid_details_field_of_each_obligation_is_named_and_nothing_is_created() {
    let (app, key) = with_agency().await;
    let s = |text: &str| Some(json!(text));
    let long = |n: usize| Some(json!("ệ".repeat(n)));
    // Each obligation's details fields, each with the values it refuses (`None`: absent).
    let cases: Vec<(&str, &str, Vec<Option<Value>>)> = vec![
        // fee
        ("fee", "procedure_code", vec![None, s(""), long(33), Some(json!(1.002804))]),
        ("fee", "dossier_code", vec![None, s(""), long(65)]),
        ("fee", "dosier_code", vec![s("H12.99-261122-0001")]),
        // tax
        (
            "tax",
            "tax_code",
            vec![
                None,
                s("010123456"),
                s("01012345678"),
                s("010123456A"),
                s("0101234567-01"),
                s("0101234567-0012"),
                s("0101234567_001"),
                s(" 0101234567"),
                Some(json!(101234567)),
            ],
        ),
        ("tax", "tax_period", vec![s(""), long(33)]),
        ("tax", "tax_perod", vec![s("Quý 4/2026")]),
        // social_insurance
        (
            "social_insurance",
            "insurance_code",
            vec![None, s("012345678"), s("01234567890"), s("012345678A")],
        ),
        (
            "social_insurance",
            "period",
            vec![
                None,
                s("2026-13"),
                s("2026-00"),
                s("2026-1"),
                s("11-2026"),
                s("2026/11"),
                s("2026-11-01"),
            ],
        ),
        ("social_insurance", "insurance_no", vec![s("0123456789")]),
        // fine
        ("fine", "decision_number", vec![None, s(""), long(65)]),
        (
            "fine",
            "violation_date",
            vec![
                s("2026-02-30"),
                s("2026-13-01"),
                s("20-11-2026"),
                s("2026/11/20"),
                s("2026-11-20T08:00:00Z"),
            ],
        ),
        ("fine", "violation_day", vec![s("2026-11-20")]),
        // electricity
        (
            "electricity",
            "customer_code",
            vec![
                None,
                s("pe01000123456"),
                s("PE0100012345"),
                s("PE010001234567"),
                s("1E01000123456"),
                s("PE01000-23456"),
            ],
        ),
        ("electricity", "billing_period", vec![None, s("2026-13"), s("2026-11-01")]),
        ("electricity", "billing_perid", vec![s("2026-11")]),
        // court_advance
        ("court_advance", "case_number", vec![None, s(""), long(65)]),
        ("court_advance", "court_code", vec![None, s(""), long(33)]),
        ("court_advance", "court", vec![s("TAND-HN")]),
    ];
    let mut n = 0;
    for (obligation, field, values) in cases {
        for value in values {
            n += 1;
            let body = changed(
                &order(obligation, &format!("H12-{n:03}")),
                &format!("details.{field}"),
                value,
            );
            let response = post_order(&app, &key, &new_idempotency_key(), &body).await;
            assert_eq!(
                invalid(response).await,
                [format!("details.{field}")],
                "{obligation}: {}",
                body["details"]
            );
        }
    }
    assert_eq!(totals(&app).await, Totals::of(0, 0, 0));
}

#[tokio::test]
async fn each_invalid_top_level_field_is_named_and_nothing_is_created() {
    let (app, key) = with_agency().await;
    let past = db_time(&app, "now() - interval '1 minute'").await;
    let too_far = db_time(&app, "now() + interval '30 days 1 minute'").await;
    let s = |text: &str| Some(json!(text));
    let cases: Vec<(&str, Option<Value>, Vec<&str>)> = vec![
        ("amount", Some(json!(150000)), vec!["amount"]),
        ("amount", s("0"), vec!["amount"]),
        ("amount", s("-1"), vec!["amount"]),
        ("amount", s("+1"), vec!["amount"]),
        ("amount", s("1.5"), vec!["amount"]),
        ("amount", s("150000.00"), vec!["amount"]),
        ("amount", s("01"), vec!["amount"]),
        ("amount", s("1000000000000000"), vec!["amount"]),
        ("amount", s("1e5"), vec!["amount"]),
        ("amount", s("150 000"), vec!["amount"]),
        ("amount", s(""), vec!["amount"]),
        ("amount", None, vec!["amount"]),
        ("currency", s("USD"), vec!["currency"]),
        ("currency", s("vnd"), vec!["currency"]),
        ("currency", Some(json!(704)), vec!["currency"]),
        ("description", s(""), vec!["description"]),
        ("description", Some(json!("ệ".repeat(256))), vec!["description"]),
        ("description", None, vec!["description"]),
        ("reference", s(""), vec!["reference"]),
        ("reference", Some(json!("R".repeat(65))), vec!["reference"]),
        ("reference", Some(json!(1)), vec!["reference"]),
        ("reference", None, vec!["reference"]),
        ("payer", None, vec!["payer"]),
        ("payer", s(PAYER_NAME), vec!["payer"]),
        ("payer.name", None, vec!["payer.name"]),
        ("payer.name", s(""), vec!["payer.name"]),
        ("payer.name", Some(json!("ễ".repeat(129))), vec!["payer.name"]),
        ("payer.id_number", s(""), vec!["payer.id_number"]),
        ("obligation", s("donation"), vec!["obligation"]),
        ("obligation", s("Fee"), vec!["obligation"]),
        ("obligation", None, vec!["obligation"]),
        ("details", None, vec!["details"]),
        ("details", Some(json!([])), vec!["details"]),
        ("expires_at", Some(json!(past)), vec!["expires_at"]),
        ("expires_at", Some(json!(too_far)), vec!["expires_at"]),
        ("expires_at", s("2026-11-25 10:00:00"), vec!["expires_at"]),
        ("expires_at", s("2026-11-25T10:00:00"), vec!["expires_at"]),
        ("expires_at", s("2026-11-25"), vec!["expires_at"]),
        ("expires_at", s("ngày mai"), vec!["expires_at"]),
        ("expires_at", Some(json!(1_795_000_000)), vec!["expires_at"]),
    ];
    for (n, (path, value, fields)) in cases.into_iter().enumerate() {
        let body = changed(&order("fee", &format!("H12-{n:03}")), path, value);
        let response = post_order(&app, &key, &new_idempotency_key(), &body).await;
        assert_eq!(invalid(response).await, fields, "{body}");
    }
    assert_eq!(totals(&app).await, Totals::of(0, 0, 0));
}

#[tokio::test]
async fn details_of_another_obligation_are_named_field_by_field() {
    let (app, key) = with_agency().await;
    let body = changed(&order("fee", "H12-1"), "details", Some(details("tax")));
    let response = post_order(&app, &key, &new_idempotency_key(), &body).await;
    assert_eq!(
        sorted(invalid(response).await),
        [
            "details.dossier_code",
            "details.procedure_code",
            "details.tax_code",
            "details.tax_period"
        ]
    );
    assert_eq!(totals(&app).await.payments, 0);
}

#[tokio::test]
async fn a_body_with_several_invalid_fields_names_all_of_them_at_once() {
    let (app, key) = with_agency().await;
    let body = json!({
        "obligation": "tax",
        "reference": "",
        "amount": 150000,
        "currency": "USD",
        "description": "ệ".repeat(256),
        "payer": {"id_number": "001099012345"},
        "details": {"tax_code": "0101234567-1", "tax_perod": "2026"},
        "expires_at": "tomorrow",
    });
    let response = post_order(&app, &key, &new_idempotency_key(), &body).await;
    let problem = assert_problem(response, 422, "validation_failed").await;
    assert_eq!(
        sorted(invalid_fields(&problem)),
        [
            "amount",
            "currency",
            "description",
            "details.tax_code",
            "details.tax_perod",
            "expires_at",
            "payer.name",
            "reference",
        ]
    );
    for error in problem["errors"].as_array().unwrap() {
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{error}");
    }
    assert_eq!(totals(&app).await, Totals::of(0, 0, 0));
}

#[tokio::test]
async fn lengths_count_characters_so_the_longest_vietnamese_texts_and_largest_amount_are_accepted()
{
    let (app, key) = with_agency().await;
    let description = "ệ".repeat(255);
    let name = "Nguyễn".repeat(21) + "ễễ";
    assert_eq!(name.chars().count(), 128);
    let reference = "R".repeat(64);
    let body = json!({
        "obligation": "tax",
        "reference": reference,
        "amount": "999999999999999",
        "description": description,
        "payer": {"name": name},
        "details": {"tax_code": "0101234567-001"},
    });
    let created = create(&app, &key, &body).await;
    assert_eq!(created["description"], description.as_str());
    assert_eq!(created["payer"], json!({"name": name}), "id_number omitted");
    assert_eq!(created["reference"], reference.as_str());
    assert_eq!(created["amount"], "999999999999999");
    assert_eq!(created["currency"], "VND", "the default currency");
    assert_eq!(read(&app, &key, &id_of(&created)).await, created);
}

#[tokio::test]
async fn expires_at_with_any_offset_is_kept_and_answered_in_utc() {
    let (app, key) = with_agency().await;
    // Two days ahead at a whole second, written in Vietnam time with a fraction of 7 digits.
    let client = app.db.get().await.unwrap();
    let row = client
        .query_one(
            "WITH t AS (SELECT date_trunc('second', now() + interval '2 days') AS at)
             SELECT to_char(at AT TIME ZONE 'UTC' + interval '7 hours',
                            'YYYY-MM-DD\"T\"HH24:MI:SS\".5000009+07:00\"'),
                    to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\".500000Z\"')
             FROM t",
            &[],
        )
        .await
        .unwrap();
    let (input, expected): (String, String) = (row.get(0), row.get(1));
    let body = changed(&order("fee", "H12-1"), "expires_at", Some(json!(input)));
    let created = create(&app, &key, &body).await;
    assert_eq!(created["expires_at"], expected.as_str(), "{input}");

    let at_limit = db_time(&app, "now() + interval '29 days 23 hours'").await;
    let body = changed(&order("fee", "H12-2"), "expires_at", Some(json!(at_limit)));
    let created = create(&app, &key, &body).await;
    assert_eq!(created["expires_at"], at_limit.as_str());
}

#[tokio::test]
async fn an_expires_at_a_moment_ahead_answers_201_or_422_never_an_internal_error() {
    let (app, key) = with_agency().await;
    // The app's clock and the database's disagree by the time a request takes: an expiry that
    // is still ahead when validated may be behind the order's creation time.
    for n in 0..40 {
        let at = db_time(&app, "clock_timestamp() + interval '1 millisecond'").await;
        let body = changed(&order("fee", &format!("H12-{n:03}")), "expires_at", Some(json!(at)));
        let response = post_order(&app, &key, &new_idempotency_key(), &body).await;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        match status {
            201 => {}
            422 => {
                let problem: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(invalid_fields(&problem), ["expires_at"], "{text}");
            }
            _ => panic!("expires_at {at}: {status} {text}"),
        }
    }
    app.assert_count(
        "SELECT count(*) FROM payments",
        app.count("SELECT count(*) FROM idempotency_keys").await,
    )
    .await;
}

#[tokio::test]
async fn unknown_top_level_fields_are_ignored() {
    let (app, key) = with_agency().await;
    let body = changed(
        &order("electricity", "EVN-2026-11-0001"),
        "ghi_chu",
        Some(json!({"kênh": "Cổng DVC quốc gia"})),
    );
    let created = create(&app, &key, &body).await;
    assert!(created.get("ghi_chu").is_none(), "{created}");
    assert_eq!(created["details"], details("electricity"));
    assert_eq!(app.count("SELECT count(*) FROM payments").await, 1);
}

#[tokio::test]
async fn creating_needs_an_agency_key() {
    let app = TestApp::spawn().await;
    agency_key(&app, AGENCY).await;
    let auditor = app.key_with_role("auditor").await;
    let body = order("fee", "H12-1");
    let send = |key: Option<&str>| {
        let request = app.post("/v1/payments").header("Idempotency-Key", "order-1").json(&body);
        match key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
        .send()
    };
    assert_problem(send(None).await.unwrap(), 401, "unauthenticated").await;
    assert_problem(
        send(Some("pgk_not-a-key-paygate-ever-issued")).await.unwrap(),
        401,
        "unauthenticated",
    )
    .await;
    assert_problem(send(Some(app.admin_key.as_str())).await.unwrap(), 403, "forbidden").await;
    assert_problem(send(Some(auditor.as_str())).await.unwrap(), 403, "forbidden").await;
    assert_eq!(totals(&app).await, Totals::of(0, 0, 0));
}

#[tokio::test]
async fn a_missing_or_malformed_idempotency_key_answers_400_and_creates_nothing() {
    let (app, key) = with_agency().await;
    let body = order("fee", "H12-1");
    let cases: Vec<Option<HeaderValue>> = vec![
        None,
        Some(HeaderValue::from_static("")),
        Some(HeaderValue::from_str(&"k".repeat(256)).unwrap()),
        Some(HeaderValue::from_static("order\t1")),
        Some(HeaderValue::from_bytes("khóa-1".as_bytes()).unwrap()),
    ];
    for value in cases {
        let mut request = app.post_with(&key, "/v1/payments").json(&body);
        if let Some(value) = value.clone() {
            request = request.header("Idempotency-Key", value);
        }
        let response = request.send().await.unwrap();
        assert_problem(response, 400, "idempotency_key_required").await;
    }
    assert_eq!(totals(&app).await, Totals::of(0, 0, 0));

    // 255 printable characters, a space among them, are a key.
    let mut longest: String = (0..255u8).map(|i| char::from(b'!' + i % 94)).collect();
    longest.replace_range(100..101, " ");
    let response = post_order(&app, &key, &longest, &body).await;
    assert_eq!(response.status(), 201);
    let client = app.db.get().await.unwrap();
    let stored: String =
        client.query_one("SELECT key FROM idempotency_keys", &[]).await.unwrap().get(0);
    assert_eq!(stored, longest);
}
