//! Replicas: each compiles and keeps validators itself, and reads whether an entry is active from
//! the database on every order, so what one replica changes applies at once on every other.

use super::*;

#[tokio::test]
async fn an_entry_created_through_one_replica_is_used_at_once_by_another_and_deactivation_too() {
    let first = TestApp::spawn().await;
    let key = agency_key(&first).await;
    // A second app serving the same database: another replica.
    let second =
        TestApp::spawn_on(integration_tests::test_config(), first.db_settings.clone()).await;

    // The second replica has not seen the entry: it does not exist yet.
    let details = json!({"patient_code": "BN00001234"});
    let response = second.post_payment(&key, &hospital_order("BV-0", details.clone())).await;
    assert_problem(response, 422, "validation_failed").await;

    assert_eq!(post_obligation(&first, &first.admin_key, &hospital_entry()).await.status(), 201);
    let response = second.post_payment(&key, &hospital_order("BV-1", details.clone())).await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    let response =
        second.post_payment(&key, &hospital_order("BV-2", json!({"patient_code": "X"}))).await;
    let problem = assert_problem(response, 422, "validation_failed").await;
    assert_eq!(integration_tests::invalid_fields(&problem), ["details.patient_code"]);

    // Deactivated through the second, refused at once by the first.
    patch_obligation(&second, "hospital_fee", &json!({"active": false})).await;
    let response = first.post_payment(&key, &hospital_order("BV-3", details.clone())).await;
    assert_problem(response, 422, "obligation_inactive").await;
    let response = second.post_payment(&key, &hospital_order("BV-3", details)).await;
    assert_problem(response, 422, "obligation_inactive").await;
    first.assert_count("SELECT count(*) FROM payments WHERE obligation = 'hospital_fee'", 1).await;
}
