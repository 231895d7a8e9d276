//! The statement generator (`stmtgen`, also used by the benchmark) against the real engine.

use std::process::Command;

use integration_tests::answers::RequestExt;
use integration_tests::{database_url, TestApp};
use serde_json::Value;

fn stmtgen(args: &[&str]) -> String {
    let output =
        Command::new(env!("CARGO_BIN_EXE_stmtgen")).args(args).output().expect("run stmtgen");
    assert!(
        output.status.success(),
        "stmtgen {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

#[tokio::test]
async fn a_generated_statement_reconciles_to_exactly_the_outcomes_the_generator_expected() {
    let app = TestApp::spawn().await;
    let url = database_url(&app.db_settings);
    let seed_args = [
        "seed",
        "--database-url",
        &url,
        "--bank",
        "GEN",
        "--payments",
        "400",
        "--date",
        "2026-11-22",
        "--pending",
        "30",
    ];
    stmtgen(&seed_args);
    let file = std::env::temp_dir().join(paygate::domain::ids::random_id("stmt", 6) + ".csv");
    let file_arg = file.display().to_string();
    let statement_args = [
        "statement",
        "--database-url",
        &url,
        "--bank",
        "GEN",
        "--date",
        "2026-11-22",
        "--out",
        &file_arg,
        "--share-missing-in-bank",
        "0.05",
        "--share-mismatch",
        "0.03",
        "--share-duplicate",
        "0.03",
        "--share-invalid",
        "0.02",
        "--share-missing-in-gateway",
        "0.04",
        "--share-recovered",
        "0.05",
    ];
    let expected: Value = serde_json::from_str(&stmtgen(&statement_args))
        .expect("stmtgen prints its expectation as JSON");
    // Only an admin's run recovers lost callbacks; an auditor's run would report them.
    let auditor = app.key_with_role("auditor").await;
    let body = std::fs::read(&file).expect("the statement was written");
    let _ = std::fs::remove_file(&file);
    let response = app
        .post_with(&app.admin_key, "/v1/reconciliations?bank=GEN&date=2026-11-22")
        .header("Content-Type", "text/csv")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let run: Value = response.json().await.unwrap();
    assert_eq!(run["summary"], expected["summary"], "run {run}\nexpected {expected}");
    assert_eq!(run["statement_lines"], expected["statement_lines"]);
    for outcome in ["recovered", "mismatch", "missing_in_bank", "duplicate_in_statement"] {
        assert!(
            run["summary"][outcome]["count"].as_i64().unwrap() > 0,
            "the generator made some {outcome} lines: {run}"
        );
    }
    let verify: Value = app.get_with(&auditor, "/v1/ledger/verify").answer_json().await;
    assert_eq!(verify["ok"], true, "{verify}");
}
