//! Tenancy.

use super::*;

#[tokio::test]
async fn another_agencys_order_answers_404_exactly_like_a_missing_one() {
    let app = TestApp::spawn().await;
    let a = agency_key(&app, AGENCY).await;
    let b = agency_key(&app, OTHER_AGENCY).await;
    let order_of_a = create(&app, &a, &order("tax", "THUE-1")).await;
    let id = id_of(&order_of_a);
    let missing = "pay_0123456789abcdef01234567";
    let before = totals(&app).await;

    let foreign = assert_problem(get(&app, &b, &id).await, 404, "payment_not_found").await;
    let absent = assert_problem(get(&app, &b, missing).await, 404, "payment_not_found").await;
    assert_eq!(foreign.to_string().replace(&id, "ID"), absent.to_string().replace(missing, "ID"));
    let foreign = assert_problem(cancel(&app, &b, &id).await, 404, "payment_not_found").await;
    let absent = assert_problem(cancel(&app, &b, missing).await, 404, "payment_not_found").await;
    assert_eq!(foreign.to_string().replace(&id, "ID"), absent.to_string().replace(missing, "ID"));

    // Ids paygate could not have made name nothing either.
    let too_long = "p".repeat(65);
    for bad in [too_long.as_str(), "pay.1", "pay%20x"] {
        assert_problem(get(&app, &a, bad).await, 404, "payment_not_found").await;
        assert_problem(cancel(&app, &a, bad).await, 404, "payment_not_found").await;
    }

    assert_eq!(totals(&app).await, before);
    assert_eq!(read(&app, &a, &id).await, order_of_a);
}

#[tokio::test]
async fn admins_and_auditors_read_any_order() {
    let app = TestApp::spawn().await;
    let a = agency_key(&app, AGENCY).await;
    let auditor = app.key_with_role("auditor").await;
    let created = create(&app, &a, &order("social_insurance", "BHXH-1")).await;
    let id = id_of(&created);
    for key in [&app.admin_key, &auditor] {
        assert_eq!(read(&app, key, &id).await, created);
    }
    for key in [&app.admin_key, &auditor] {
        assert_problem(get(&app, key, "pay_missing").await, 404, "payment_not_found").await;
    }
}

#[tokio::test]
async fn an_agency_lists_only_its_own_orders_and_admins_and_auditors_may_filter_by_agency() {
    let app = TestApp::spawn().await;
    let a = agency_key(&app, AGENCY).await;
    let b = agency_key(&app, OTHER_AGENCY).await;
    let auditor = app.key_with_role("auditor").await;
    let mut of_a = Vec::new();
    let mut of_b = Vec::new();
    for n in 0..3 {
        of_a.push(id_of(&create(&app, &a, &order("fee", &format!("A-{n}"))).await));
        if n < 2 {
            of_b.push(id_of(&create(&app, &b, &order("fee", &format!("B-{n}"))).await));
        }
    }
    of_a.reverse();
    of_b.reverse();

    assert_eq!(ids(&page(&app, &a, &[]).await), of_a);
    assert_eq!(ids(&page(&app, &b, &[]).await), of_b);
    // An agency naming another agency still sees only its own.
    assert_eq!(ids(&page(&app, &b, &[("agency", AGENCY)]).await), of_b);
    assert!(ids(&page(&app, &b, &[("reference", "A-0")]).await).is_empty());

    for key in [&app.admin_key, &auditor] {
        assert_eq!(ids(&page(&app, key, &[]).await).len(), 5);
        assert_eq!(ids(&page(&app, key, &[("agency", AGENCY)]).await), of_a);
        assert_eq!(ids(&page(&app, key, &[("agency", OTHER_AGENCY)]).await), of_b);
        assert!(ids(&page(&app, key, &[("agency", "000.00.00.X99")]).await).is_empty());
        for bad in ["h12", "", "A", "ệ"] {
            let response = list(&app, key, &[("agency", bad)]).await;
            assert_eq!(invalid(response).await, ["agency"], "{bad:?}");
        }
    }
}

#[tokio::test]
async fn reading_listing_and_cancelling_need_a_key() {
    let app = TestApp::spawn().await;
    let a = agency_key(&app, AGENCY).await;
    let id = id_of(&create(&app, &a, &order("fee", "H12-1")).await);
    for (method, path) in [
        (Method::GET, format!("/v1/payments/{id}")),
        (Method::GET, "/v1/payments".to_owned()),
        (Method::POST, format!("/v1/payments/{id}/cancel")),
    ] {
        app.http.request(method.clone(), app.url(&path)).problem(401, "unauthenticated").await;
    }
    assert_eq!(stored(&app, &id).await, ("pending".to_owned(), false));
}
