//! The obligation catalog across processes: two `paygate serve` replicas on one database, each
//! with its own cache of compiled validators. An entry created through one is used at once by the
//! other, and a deactivation through either applies at once on both.

use reqwest::Client;
use serde_json::{json, Value};

mod common;

use common::{DataDir, Server};

/// `paygate admin create-key --role admin` on `data`: the key (its last line of stdout).
fn create_admin_key(data: &DataDir) -> String {
    let output = data
        .command(&["admin", "create-key", "--role", "admin"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    stdout.trim().lines().last().unwrap().to_owned()
}

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn hospital_order(reference: &str, patient_code: &str) -> Value {
    json!({
        "obligation": "hospital_fee",
        "reference": reference,
        "amount": "250000",
        "currency": "VND",
        "description": "Viện phí đợt 1",
        "payer": {"name": "Nguyễn Văn A"},
        "details": {"patient_code": patient_code},
    })
}

#[tokio::test]
async fn an_entry_created_through_one_serve_process_is_used_at_once_by_another() {
    let data = DataDir::new("paygate-catalog-replicas");
    let admin = create_admin_key(&data);
    let replicas = [Server::start(&data).await, Server::start(&data).await];
    let http = Client::new();
    let (status, agency) = send(
        http.post(format!("{}/v1/agencies", replicas[0].base))
            .bearer_auth(&admin)
            .json(&json!({"code": "000.00.00.H12", "name": "Bệnh viện Bạch Mai"})),
    )
    .await;
    assert_eq!(status, 201, "{agency}");
    let agency = agency["api_key"].as_str().unwrap().to_owned();
    let order = |replica: usize, reference: &str, patient_code: &str| {
        http.post(format!("{}/v1/payments", replicas[replica].base))
            .bearer_auth(&agency)
            .header("Idempotency-Key", format!("idem-{replica}-{reference}"))
            .json(&hospital_order(reference, patient_code))
    };

    // The group does not exist yet: the obligation is unknown.
    let (status, problem) = send(order(1, "BV-0", "BN00001234")).await;
    assert_eq!(
        (status, problem["code"].clone()),
        (422, json!("validation_failed"))
    );

    let schema = json!({
        "type": "object",
        "properties": {"patient_code": {"type": "string", "pattern": "^BN[0-9]{8}$"}},
        "required": ["patient_code"],
        "additionalProperties": false
    });
    let (status, created) = send(
        http.post(format!("{}/v1/obligations", replicas[0].base))
            .bearer_auth(&admin)
            .json(&json!({"code": "hospital_fee", "name": "Viện phí", "details_schema": schema})),
    )
    .await;
    assert_eq!(status, 201, "{created}");

    // The other process uses it for the very next order, with its rules.
    let (status, paid_for) = send(order(1, "BV-1", "BN00001234")).await;
    assert_eq!(status, 201, "{paid_for}");
    assert_eq!(paid_for["obligation"], "hospital_fee");
    let (status, problem) = send(order(1, "BV-2", "BN1")).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(
        problem["errors"][0]["field"], "details.patient_code",
        "{problem}"
    );
    let (status, created_on_first) = send(order(0, "BV-3", "BN00005678")).await;
    assert_eq!(status, 201, "{created_on_first}");

    // Deactivated through the second, refused at once by both.
    let (status, entry) = send(
        http.patch(format!("{}/v1/obligations/hospital_fee", replicas[1].base))
            .bearer_auth(&admin)
            .json(&json!({"active": false})),
    )
    .await;
    assert_eq!((status, entry["active"].clone()), (200, json!(false)));
    for replica in [0, 1] {
        let (status, problem) = send(order(replica, &format!("BV-4{replica}"), "BN00009999")).await;
        assert_eq!(
            (status, problem["code"].clone()),
            (422, json!("obligation_inactive"))
        );
    }
}
