//! List.

use super::*;

#[tokio::test]
async fn pages_of_seven_walk_twenty_five_orders_newest_first_each_exactly_once() {
    let (app, key) = with_agency().await;
    let mut created = Vec::new();
    for n in 0..25 {
        let obligation = OBLIGATIONS[n % OBLIGATIONS.len()];
        created.push(create(&app, &key, &order(obligation, &format!("H12-{n:03}"))).await);
    }
    let newest_first: Vec<Value> = created.iter().rev().cloned().collect();

    let mut walked: Vec<Value> = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![("limit", "7")];
        if let Some(cursor) = &cursor {
            query.push(("cursor", cursor.as_str()));
        }
        let page = page(&app, &key, &query).await;
        let items = page["items"].as_array().unwrap();
        sizes.push(items.len());
        walked.extend(items.iter().cloned());
        match &page["next_cursor"] {
            Value::Null => break,
            Value::String(next) => {
                assert!(is_paygate_id(next), "{next}");
                cursor = Some(next.clone());
            }
            other => panic!("next_cursor {other}"),
        }
        assert!(sizes.len() < 10, "the walk does not end");
    }
    assert_eq!(sizes, [7, 7, 7, 4]);
    assert_eq!(walked, newest_first, "every order once, newest first, as read");
    let times: Vec<_> = walked
        .iter()
        .map(|p| paygate::timefmt::parse_rfc3339(p["created_at"].as_str().unwrap()).unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");

    // Without a limit, one page of at most 100 holds them all.
    let all = page(&app, &key, &[]).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 25);
    assert_eq!(all["next_cursor"], Value::Null);
    // A page that ends exactly at the last order still says whether more follow.
    let exact = page(&app, &key, &[("limit", "25")]).await;
    assert_eq!(exact["next_cursor"], Value::Null);
    let widest = page(&app, &key, &[("limit", "500")]).await;
    assert_eq!(widest, all);
    let one = page(&app, &key, &[("limit", "1")]).await;
    assert_eq!(ids(&one), [id_of(&created[24])]);
    assert!(one["next_cursor"].is_string());
}

#[tokio::test]
async fn the_list_filters_by_status_obligation_reference_and_creation_time() {
    let (app, key) = with_agency().await;
    app.create_bank("VCB").await;
    let created = [
        create(&app, &key, &order("fee", "F-1")).await,
        create(&app, &key, &order("tax", "T-1")).await,
        create(&app, &key, &order("fine", "X-1")).await,
        create(&app, &key, &order("fee", "F-2")).await,
    ];
    let [o1, o2, o3, o4] = created.each_ref().map(id_of);
    let [_, t2, t3, t4] = created.each_ref().map(|p| p["created_at"].as_str().unwrap().to_owned());
    mark_paid(&app, &o2).await;
    assert_eq!(cancel(&app, &key, &o4).await.status(), 200);
    // The instant of `t2`, written in Vietnam time.
    let client = app.db.get().await.unwrap();
    let t2_vietnam: String = client
        .query_one(
            "SELECT to_char($1::text::timestamptz AT TIME ZONE 'UTC' + interval '7 hours',
                            'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+07:00\"')",
            &[&t2],
        )
        .await
        .unwrap()
        .get(0);

    let cases: Vec<(Query, Vec<&String>)> = vec![
        (vec![("status", "pending")], vec![&o3, &o1]),
        (vec![("status", "paid")], vec![&o2]),
        (vec![("status", "cancelled")], vec![&o4]),
        (vec![("status", "expired")], vec![]),
        (vec![("obligation", "fee")], vec![&o4, &o1]),
        (vec![("obligation", "electricity")], vec![]),
        (vec![("obligation", "fee"), ("status", "pending")], vec![&o1]),
        (vec![("reference", "T-1")], vec![&o2]),
        (vec![("reference", "t-1")], vec![]),
        (vec![("created_from", &*t2)], vec![&o4, &o3, &o2]),
        (vec![("created_from", &*t2_vietnam)], vec![&o4, &o3, &o2]),
        (vec![("created_to", &*t3)], vec![&o2, &o1]),
        (vec![("created_from", &*t2), ("created_to", &*t4)], vec![&o3, &o2]),
        (vec![("created_from", &*t2), ("created_to", &*t2)], vec![]),
        (vec![("created_from", &*t2), ("limit", "2"), ("status", "pending")], vec![&o3]),
    ];
    for (query, expected) in cases {
        let page = page(&app, &key, &query).await;
        assert_eq!(ids(&page), expected.into_iter().cloned().collect::<Vec<_>>(), "{query:?}");
        assert_eq!(page["next_cursor"], Value::Null, "{query:?}");
    }

    // An overdue pending order is listed as expired before the sweep reaches it, too.
    make_overdue(&app, &o1).await;
    let expired = page(&app, &key, &[("status", "expired")]).await;
    assert_eq!(ids(&expired), [o1]);
    assert_eq!(expired["items"][0]["status"], "expired");
    assert_eq!(ids(&page(&app, &key, &[("status", "pending")]).await), [o3]);
}

#[tokio::test]
async fn invalid_list_parameters_answer_422_naming_the_parameter() {
    let (app, key) = with_agency().await;
    create(&app, &key, &order("fee", "H12-1")).await;
    let before = totals(&app).await;
    for (name, value) in [
        ("limit", "0"),
        ("limit", "501"),
        ("limit", "-1"),
        ("limit", "x"),
        ("limit", "7.5"),
        ("limit", ""),
        ("cursor", "abc"),
        ("cursor", "not a cursor!"),
        ("cursor", ""),
        ("status", "open"),
        ("status", "PENDING"),
        ("obligation", "donation"),
        ("created_from", "yesterday"),
        ("created_from", "2026-11-24"),
        ("created_from", "2026-11-24 10:00:00"),
        ("created_to", "2026-11-24T10:00:00"),
    ] {
        let response = list(&app, &key, &[(name, value)]).await;
        assert_eq!(invalid(response).await, [name], "{name}={value:?}");
    }
    let response =
        list(&app, &key, &[("limit", "0"), ("status", "open"), ("created_to", "x")]).await;
    let problem = assert_problem(response, 422, "validation_failed").await;
    assert_eq!(sorted(invalid_fields(&problem)), ["created_to", "limit", "status"]);
    assert_eq!(totals(&app).await, before);
}
