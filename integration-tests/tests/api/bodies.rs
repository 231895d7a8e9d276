use integration_tests::answers::invalid;
use integration_tests::answers::RequestExt;
use integration_tests::{invalid_fields, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn a_json_body_over_one_mebibyte_answers_413_and_creates_nothing() {
    let app = TestApp::spawn().await;
    let name = "ệ".repeat(400_000); // 1.2 MB of UTF-8
    let body = serde_json::json!({"code": "BIG", "name": name}).to_string();
    assert!(body.len() > 1024 * 1024);
    app.admin(Method::POST, "/v1/agencies").body(body).problem(413, "payload_too_large").await;
    assert_eq!(app.count("SELECT count(*) FROM agencies").await, 0);
}

#[tokio::test]
async fn a_chunked_body_is_cut_off_at_one_mebibyte_with_413() {
    let app = TestApp::spawn().await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /v1/banks HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        app.admin_key
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b' '; 64 * 1024];
    // 2 MiB in 64 KiB chunks, without a Content-Length the server could check up front. The
    // server may answer and close before all of it is sent.
    for _ in 0..32 {
        let frame = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
        if stream.write_all(&frame).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");
    assert_eq!(app.count("SELECT count(*) FROM banks WHERE code <> 'SANDBOX'").await, 0);
}

#[tokio::test]
async fn malformed_json_answers_400_and_creates_nothing() {
    let app = TestApp::spawn().await;
    for body in ["{\"code\": \"VCB\",", "", "not json", "{\"code\": \"VCB\"} trailing"] {
        app.post_with(&app.admin_key, "/v1/banks")
            .header("Content-Type", "application/json")
            .body(body)
            .problem(400, "malformed_json")
            .await;
    }
    assert_eq!(app.count("SELECT count(*) FROM banks WHERE code <> 'SANDBOX'").await, 0);
}

#[tokio::test]
async fn json_that_is_not_an_object_answers_422() {
    let app = TestApp::spawn().await;
    for body in ["[]", "\"VCB\"", "42", "null"] {
        assert_eq!(app.post_with(&app.admin_key, "/v1/banks").body(body).invalid().await, [""]);
    }
    assert_eq!(app.count("SELECT count(*) FROM banks WHERE code <> 'SANDBOX'").await, 0);
}

// ---------------------------------------------------------------------------------------------
// Hostile text and dates anywhere: NUL characters and days outside the years 2000-9998
// ---------------------------------------------------------------------------------------------

/// Every row that an administration request could write.
async fn admin_rows(app: &TestApp) -> [i64; 4] {
    [
        app.count("SELECT count(*) FROM agencies").await,
        app.count("SELECT count(*) FROM banks WHERE code <> 'SANDBOX'").await,
        app.count("SELECT count(*) FROM bank_keys").await,
        app.count("SELECT count(*) FROM api_keys").await,
    ]
}

/// `body` with member `field` set to `value`.
fn with(body: &Value, field: &str, value: Value) -> Value {
    let mut body = body.clone();
    body[field] = value;
    body
}

#[tokio::test]
async fn a_nul_in_any_member_of_an_administration_body_answers_422_naming_it_and_changes_nothing() {
    let app = TestApp::with_agency_and_bank("000.00.00.H12", "VCB").await;
    let before = admin_rows(&app).await;
    let agency = json!({"code": "000.00.00.H29", "name": "Sở Tư pháp", "notify_url": "http://127.0.0.1:9/hook", "label": "chính"});
    let bank = json!({"code": "BIDV", "name": "Ngân hàng BIDV"});
    let api_key = json!({"role": "auditor", "label": "kiểm toán"});
    let cases: Vec<(Method, &str, Value, &str)> = vec![
        (Method::POST, "/v1/agencies", agency.clone(), "code"),
        (Method::POST, "/v1/agencies", agency.clone(), "name"),
        (Method::POST, "/v1/agencies", agency.clone(), "notify_url"),
        (Method::POST, "/v1/agencies", agency.clone(), "label"),
        (Method::POST, "/v1/agencies", agency.clone(), "unknown"),
        (
            Method::PATCH,
            "/v1/agencies/000.00.00.H12",
            json!({"notify_url": "http://127.0.0.1:9/x"}),
            "notify_url",
        ),
        (Method::PATCH, "/v1/agencies/000.00.00.H12", json!({"name": "Sở"}), "name"),
        (Method::POST, "/v1/agencies/000.00.00.H12/keys", json!({"label": "phụ"}), "label"),
        (Method::POST, "/v1/banks", bank.clone(), "code"),
        (Method::POST, "/v1/banks", bank.clone(), "name"),
        (Method::POST, "/v1/api-keys", api_key.clone(), "role"),
        (Method::POST, "/v1/api-keys", api_key.clone(), "label"),
    ];
    for (method, path, valid, field) in cases {
        let text = valid[field].as_str().unwrap_or("x").to_owned();
        for value in ["\u{0}".to_owned(), format!("{text}\u{0}"), format!("\u{0}{text}")] {
            let body = with(&valid, field, json!(value));
            let problem =
                app.admin(method.clone(), path).json(&body).problem(422, "validation_failed").await;
            assert_eq!(invalid_fields(&problem), [field], "{method} {path} {body}");
            assert_eq!(admin_rows(&app).await, before, "{method} {path} {body}");
        }
    }
    // A NUL in a member's name is named with the NUL written out, so the answer holds none.
    assert_eq!(
        app.admin(Method::POST, "/v1/banks")
            .json(&with(&bank, "na\u{0}me", json!("x")))
            .invalid()
            .await,
        ["na\\u0000me"]
    );
    assert_eq!(admin_rows(&app).await, before);
}

#[tokio::test]
async fn a_nul_in_any_query_parameter_answers_422_naming_it() {
    let app = TestApp::spawn().await;
    app.create_bank("VCB").await;
    let cases: [(Method, &str, &[&str]); 9] = [
        (Method::GET, "/v1/payments", &["reference", "status", "agency", "cursor", "limit"]),
        (Method::GET, "/v1/exceptions", &["bank", "from", "to", "cursor"]),
        (Method::GET, "/v1/events", &["payment_id", "status", "cursor"]),
        (Method::GET, "/v1/ledger/balances", &["account_prefix"]),
        (Method::GET, "/v1/ledger/verify", &["anything"]),
        (Method::GET, "/v1/reconciliations", &["bank", "date", "cursor"]),
        (Method::GET, "/v1/reports/daily", &["date"]),
        (Method::GET, "/v1/agencies", &["cursor", "limit"]),
        (Method::POST, "/v1/reconciliations", &["bank", "date"]),
    ];
    for (method, path, names) in cases {
        for &name in names {
            for value in ["\u{0}", "VCB\u{0}", "2026-11-24\u{0}"] {
                let mut query = vec![("bank", "VCB"), ("date", "2026-11-24")];
                query.retain(|(n, _)| *n != name);
                query.push((name, value));
                assert_eq!(
                    app.admin(method.clone(), path)
                        .query(&query)
                        .header("Content-Type", "text/csv")
                        .body("bank_txn_id,payment_id,amount,paid_at\n")
                        .invalid()
                        .await,
                    [name],
                    "{method} {path} {name}={value:?}"
                );
            }
        }
    }
    app.assert_count("SELECT count(*) FROM reconciliation_runs", 0).await;
}

#[tokio::test]
async fn a_nul_in_a_path_answers_404_whatever_the_route() {
    let app = TestApp::spawn().await;
    app.create_agency("000.00.00.H12").await;
    let before = admin_rows(&app).await;
    for (method, path) in [
        (Method::GET, "/v1/payments/%00"),
        (Method::POST, "/v1/payments/pay%00/cancel"),
        (Method::GET, "/v1/reconciliations/run%00"),
        (Method::GET, "/v1/reconciliations/run%00/items"),
        (Method::GET, "/v1/reconciliations/run%00/report.csv"),
        (Method::POST, "/v1/events/evt%00/redeliver"),
        (Method::GET, "/v1/agencies/000.00.00.H12%00"),
        (Method::PATCH, "/v1/agencies/000.00.00.H12%00"),
        (Method::GET, "/v1/banks/VCB%00"),
        (Method::POST, "/v1/banks/VCB%00/callbacks"),
        (Method::DELETE, "/v1/api-keys/%00"),
        (Method::GET, "/%00"),
    ] {
        app.admin(method.clone(), path).json(&json!({})).problem(404, "not_found").await;
    }
    assert_eq!(admin_rows(&app).await, before);
}

#[tokio::test]
async fn a_date_outside_the_years_2000_to_9998_answers_422_naming_it_and_records_no_run() {
    let app = TestApp::spawn().await;
    app.create_bank("VCB").await;
    let statement = "bank_txn_id,payment_id,amount,paid_at\n";
    let run = |date: &str| {
        app.admin(Method::POST, "/v1/reconciliations")
            .query(&[("bank", "VCB"), ("date", date)])
            .header("Content-Type", "text/csv")
            .body(statement)
            .send()
    };
    let get = |path: &str, date: &str| app.admin(Method::GET, path).query(&[("date", date)]).send();
    for date in [
        "9999-12-31",
        "9999-01-01",
        "1999-12-31",
        "0000-01-01",
        "10000-01-01",
        "+2026-11-24",
        "-2026-11-24",
        "2026-11-24T00:00:00Z",
    ] {
        for response in [
            run(date).await.unwrap(),
            get("/v1/reconciliations", date).await.unwrap(),
            get("/v1/reports/daily", date).await.unwrap(),
        ] {
            assert_eq!(invalid(response).await, ["date"], "{date}");
        }
    }
    app.assert_count("SELECT count(*) FROM reconciliation_runs", 0).await;

    // The first and last days of the range work everywhere.
    for date in ["2000-01-01", "9998-12-31"] {
        let response = run(date).await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, 201, "{date}: {text}");
        let created: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(created["date"], date);
        let listed: Value = get("/v1/reconciliations", date).await.unwrap().json().await.unwrap();
        assert_eq!(listed["items"].as_array().map(Vec::len), Some(1), "{listed}");
        let response = get("/v1/reports/daily", date).await.unwrap();
        assert_eq!(response.status(), 200, "{date}");
        let report: Value = response.json().await.unwrap();
        assert_eq!(report["date"], date);
        assert_eq!(report["totals"], json!({"count": 0, "amount": "0"}));
    }
}
