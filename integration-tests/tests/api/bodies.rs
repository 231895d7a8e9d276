use integration_tests::{assert_problem, invalid_fields, TestApp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn a_json_body_over_one_mebibyte_answers_413_and_creates_nothing() {
    let app = TestApp::spawn().await;
    let name = "ệ".repeat(400_000); // 1.2 MB of UTF-8
    let body = serde_json::json!({"code": "BIG", "name": name}).to_string();
    assert!(body.len() > 1024 * 1024);
    let response = app
        .http
        .post(app.url("/v1/agencies"))
        .bearer_auth(&app.admin_key)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_problem(response, 413, "payload_too_large").await;
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
    assert_eq!(app.count("SELECT count(*) FROM banks").await, 0);
}

#[tokio::test]
async fn malformed_json_answers_400_and_creates_nothing() {
    let app = TestApp::spawn().await;
    for body in [
        "{\"code\": \"VCB\",",
        "",
        "not json",
        "{\"code\": \"VCB\"} trailing",
    ] {
        let response = app
            .http
            .post(app.url("/v1/banks"))
            .bearer_auth(&app.admin_key)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_problem(response, 400, "malformed_json").await;
    }
    assert_eq!(app.count("SELECT count(*) FROM banks").await, 0);
}

#[tokio::test]
async fn json_that_is_not_an_object_answers_422() {
    let app = TestApp::spawn().await;
    for body in ["[]", "\"VCB\"", "42", "null"] {
        let response = app
            .http
            .post(app.url("/v1/banks"))
            .bearer_auth(&app.admin_key)
            .body(body)
            .send()
            .await
            .unwrap();
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(invalid_fields(&problem), [""]);
    }
    assert_eq!(app.count("SELECT count(*) FROM banks").await, 0);
}
