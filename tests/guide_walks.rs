//! The integrator's guide's walks (`docs/examples/agency-walk.sh` and `bank-walk.sh`), run as
//! written against the real binary on its embedded database: a new sandbox agency and a new
//! sandbox bank each go from their first key to a `ready` checklist with nothing but the
//! sandbox, `curl`, `jq`, `paygate sign` and the guide's Python notification verifier.

mod common;

use std::process::Command;

use common::{free_port, DataDir, Server, PAYGATE};

/// Runs `docs/examples/<script>` against `server` with an admin key; returns its output.
fn walk(script: &str, server: &Server, admin_key: &str) -> String {
    let path = format!("{}/docs/examples/{script}", env!("CARGO_MANIFEST_DIR"));
    let output = Command::new("bash")
        .arg(&path)
        .env("PAYGATE", &server.base)
        .env("ADMIN_KEY", admin_key)
        .env("PAYGATE_BIN", PAYGATE)
        .env("NOTIFY_PORT", free_port().to_string())
        .output()
        .expect("bash runs the walk (it needs curl, jq and python3)");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    stdout
}

#[tokio::test]
async fn the_guides_walks_take_a_new_agency_and_a_new_bank_to_a_ready_checklist() {
    let data = DataDir::new("paygate-walks");
    let server = Server::start_with(&data, &[("PAYGATE_NOTIFY_ALLOW_PRIVATE", "true")]).await;
    let output = data
        .command(&["admin", "create-key", "--role", "admin"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let admin_key = stdout.lines().last().unwrap().to_owned();

    let agency = walk("agency-walk.sh", &server, &admin_key);
    assert!(
        agency.contains(r#""sandbox":true,"ready":true"#),
        "the agency's checklist is ready:\n{agency}"
    );
    assert!(
        agency.contains("inquiry_case_opened: done true"),
        "{agency}"
    );
    let bank = walk("bank-walk.sh", &server, &admin_key);
    assert!(
        bank.contains(r#""sandbox":true,"ready":true"#),
        "the bank's checklist is ready:\n{bank}"
    );
    assert!(bank.contains("refund_result: done true"), "{bank}");
    drop(server);
}
