//! Who reads which agency's statement, and every invalid request.

use super::*;

/// The two ways to the statement: JSON, and the CSV file.
const PATHS: [&str; 2] = ["/v1/statements/daily", "/v1/statements/daily.csv"];

#[tokio::test]
async fn an_agency_reads_its_own_statement_whatever_agency_it_names_as_when_it_lists_payments() {
    let d = Day::new().await;
    let own = d.paid("fee", "ST-1", "150000", "FT-1", "2026-11-22T02:00:00Z").await;
    let other = d.order_of(&d.other_agency_key, "fee", "ST-9", "70000").await;
    d.pay("FT-9", &other, "70000", "2026-11-22T03:00:00Z", "accepted").await;

    // `GET /v1/payments` gives an agency its own orders whatever `agency` it names ...
    let page = d.app.page(&d.agency_key, "/v1/payments", &[("agency", OTHER_AGENCY)]).await;
    let listed: Vec<&str> =
        page["items"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(listed, [own.as_str()]);
    // ... and so does the statement.
    for agency in [OTHER_AGENCY, AGENCY, "not a code", "000.00.00.X99"] {
        let statement = d.statement(&d.agency_key, &[("date", DAY), ("agency", agency)]).await;
        assert_eq!(statement["agency"], AGENCY, "agency={agency}");
        assert_eq!(ids(&statement), [payment(&own)], "agency={agency}");
        let response =
            d.get(Some(&d.agency_key), PATHS[1], &[("date", DAY), ("agency", agency)], None).await;
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        assert!(text.contains(&own) && !text.contains(&other), "{text}");
    }
    let theirs = d.statement(&d.other_agency_key, &[("date", DAY), ("agency", AGENCY)]).await;
    assert_eq!(ids(&theirs), [payment(&other)]);
}

#[tokio::test]
async fn admins_and_auditors_must_name_an_agency_that_exists() {
    let d = Day::new().await;
    for key in [&d.app.admin_key, &d.auditor_key] {
        for path in PATHS {
            for accept in [None, Some("text/csv")] {
                let fields = d.get(Some(key), path, &[("date", DAY)], accept).await;
                let problem = assert_problem(fields, 422, "validation_failed").await;
                assert_eq!(invalid_fields(&problem), ["agency"], "{path}");
                let response = d.get(Some(key), path, &[], accept).await;
                let problem = assert_problem(response, 422, "validation_failed").await;
                let mut fields = invalid_fields(&problem);
                fields.sort();
                assert_eq!(fields, ["agency", "date"], "{path}");
                for code in ["", "lower.case", "A"] {
                    let response =
                        d.get(Some(key), path, &[("date", DAY), ("agency", code)], accept).await;
                    let problem = assert_problem(response, 422, "validation_failed").await;
                    assert_eq!(invalid_fields(&problem), ["agency"], "{path} agency={code:?}");
                }
                // A well-formed code of no agency: not found, as a problem, not a cut-off file.
                let response = d
                    .get(Some(key), path, &[("date", DAY), ("agency", "000.00.00.X99")], accept)
                    .await;
                let problem = assert_problem(response, 404, "agency_not_found").await;
                assert!(problem["detail"].as_str().unwrap().contains("000.00.00.X99"), "{problem}");
            }
        }
        let statement = d.statement(key, &[("date", DAY), ("agency", AGENCY)]).await;
        assert_eq!(statement["agency"], AGENCY);
    }
}

#[tokio::test]
async fn a_missing_or_invalid_date_is_named() {
    let d = Day::new().await;
    for path in PATHS {
        let response = d.get(Some(&d.agency_key), path, &[], None).await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(invalid_fields(&problem), ["date"], "{path}");
        for date in [
            "",
            "22-11-2026",
            "2026-11-31",
            "2026-11-22T00:00:00Z",
            "+2026-11-22",
            "1999-12-31",
            "9999-01-01",
        ] {
            let response = d.get(Some(&d.agency_key), path, &[("date", date)], None).await;
            let problem = assert_problem(response, 422, "validation_failed").await;
            assert_eq!(invalid_fields(&problem), ["date"], "{path} date={date:?}");
            let response = d
                .get(Some(&d.auditor_key), path, &[("date", date), ("agency", AGENCY)], None)
                .await;
            let problem = assert_problem(response, 422, "validation_failed").await;
            assert_eq!(invalid_fields(&problem), ["date"], "{path} date={date:?}");
        }
        // The first and last days of the range are valid, and empty.
        for date in ["2000-01-01", "9998-12-31"] {
            let response = d.get(Some(&d.agency_key), path, &[("date", date)], None).await;
            assert_eq!(response.status(), 200, "{path} date={date}");
        }
    }
}

#[tokio::test]
async fn a_request_without_a_valid_key_is_unauthenticated() {
    let d = Day::new().await;
    for path in PATHS {
        let response = d.get(None, path, &[("date", DAY)], None).await;
        assert_problem(response, 401, "unauthenticated").await;
        let response = d.get(Some("pgk_not_a_key"), path, &[("date", DAY)], None).await;
        assert_problem(response, 401, "unauthenticated").await;
    }
}
