use integration_tests::answers::RequestExt;
use integration_tests::world::World;
use integration_tests::TestApp;
use reqwest::Method;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{all_entries, head_seq, labelled_admin};

/// The seqs of one page of `GET /v1/audit?<query>`, and its next cursor.
async fn page(app: &TestApp, query: &str) -> (Vec<i64>, Option<String>) {
    let page = app.admin(Method::GET, &format!("/v1/audit?{query}")).json_with(200).await;
    let seqs =
        page["items"].as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    (seqs, page["next_cursor"].as_str().map(str::to_owned))
}

/// The seqs of the entries (newest first) that satisfy `keep`.
fn seqs_where(entries: &[Value], keep: impl Fn(&Value) -> bool) -> Vec<i64> {
    entries.iter().rev().filter(|e| keep(e)).map(|e| e["seq"].as_i64().unwrap()).collect()
}

fn at(entry: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(entry["at"].as_str().unwrap(), &Rfc3339).unwrap()
}

#[tokio::test]
async fn the_list_filters_by_action_key_target_and_time_and_pages_newest_first() {
    let app = TestApp::spawn().await;
    let (first, first_id) = labelled_admin(&app).await;
    let (second, second_id) = labelled_admin(&app).await;
    for (key, code) in [(&first, "X1"), (&first, "X2"), (&second, "X3")] {
        app.post_with(key, "/v1/banks")
            .json(&json!({"code": code, "name": code}))
            .json_with(201)
            .await;
    }
    app.http
        .patch(app.url("/v1/banks/X1"))
        .bearer_auth(&second)
        .json(&json!({"disabled": true}))
        .json_with(200)
        .await;
    let entries = all_entries(&app).await;
    assert_eq!(entries.len(), 6);

    let (seqs, next) = page(&app, "action=bank.create").await;
    assert_eq!(seqs, seqs_where(&entries, |e| e["action"] == "bank.create"));
    assert_eq!((seqs.len(), next), (3, None));
    let (seqs, _) = page(&app, &format!("key_id={first_id}")).await;
    assert_eq!(seqs, seqs_where(&entries, |e| e["actor"]["key_id"] == first_id.as_str()));
    assert_eq!(seqs.len(), 2);
    let (seqs, _) = page(&app, &format!("key_id={second_id}&action=bank.update")).await;
    assert_eq!(seqs, [6]);
    let (seqs, _) = page(&app, "target=bank:X1").await;
    assert_eq!(seqs, [6, 3]);
    let (seqs, _) = page(&app, "target=bank:NONE").await;
    assert!(seqs.is_empty());

    // from: at or after; to: before.
    let middle = at(&entries[3]);
    let text = entries[3]["at"].as_str().unwrap();
    let (seqs, _) = page(&app, &format!("from={text}")).await;
    assert_eq!(seqs, seqs_where(&entries, |e| at(e) >= middle));
    assert!(seqs.contains(&4));
    let (seqs, _) = page(&app, &format!("to={text}")).await;
    assert_eq!(seqs, seqs_where(&entries, |e| at(e) < middle));
    assert!(!seqs.contains(&4));

    // Two at a time, newest first, each entry once.
    let mut walked = Vec::new();
    let mut query = "limit=2".to_owned();
    loop {
        let (seqs, next) = page(&app, &query).await;
        assert!(seqs.len() <= 2);
        walked.extend(seqs);
        match next {
            Some(cursor) => query = format!("limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(walked, [6, 5, 4, 3, 2, 1]);
}

#[tokio::test]
async fn invalid_filters_are_refused_naming_each_field_and_change_nothing() {
    let app = TestApp::spawn().await;
    app.create_bank("TCB").await;
    let before = head_seq(&app).await;
    for (query, field) in [
        ("action=bank.explode", "action"),
        ("action=", "action"),
        ("key_id=42", "key_id"),
        ("key_id=key_042", "key_id"),
        ("target=", "target"),
        ("from=yesterday", "from"),
        ("to=2026-13-01T00:00:00Z", "to"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("cursor=zzz", "cursor"),
    ] {
        let fields = app.admin(Method::GET, &format!("/v1/audit?{query}")).invalid().await;
        assert_eq!(fields, [field], "{query}");
    }
    let fields = app.admin(Method::GET, "/v1/audit?action=x&key_id=y&from=z").invalid().await;
    assert_eq!(fields, ["action", "key_id", "from"]);
    assert_eq!(head_seq(&app).await, before);
    assert_eq!(super::verify(&app).await["entries"], before);
}

#[tokio::test]
async fn admins_and_auditors_read_the_trail_and_nobody_else_does() {
    let w = World::new().await;
    let app = &w.app;
    for path in ["/v1/audit", "/v1/audit/verify"] {
        app.get_with(&w.auditor_key, path).json_with(200).await;
        app.admin(Method::GET, path).json_with(200).await;
        app.get_with(&w.agency_key, path).problem(403, "forbidden").await;
        app.get(path).problem(401, "unauthenticated").await;
        app.get_with("pgk_unknown", path).problem(401, "unauthenticated").await;
    }
    // Reading writes nothing: the agency, the bank and the auditor key of the world.
    let entries = all_entries(app).await;
    let actions: Vec<&str> = entries.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["agency.create", "bank.create", "api_key.create"]);
}
