//! The CSV file: the JSON answer's items, cell for cell, by `Accept` or by path; streamed.

use super::*;

/// A value as every CSV file paygate writes carries it: a leading `'` before `=`, `+`, `-`, `@`,
/// a tab or a carriage return.
fn csv_cell(value: &str) -> String {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    }
}

/// The records of an RFC 4180 text, header included.
fn records(text: &str) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes())
        .records()
        .map(|record| record.expect("an RFC 4180 record").iter().map(str::to_owned).collect())
        .collect()
}

/// The CSV record that the JSON item `item` must be written as.
fn expected_record(item: &Value) -> Vec<String> {
    ITEM_FIELDS
        .iter()
        .map(|field| match &item[*field] {
            Value::Null => String::new(),
            Value::String(text) => csv_cell(text),
            other => panic!("{field} is neither a string nor null: {other}"),
        })
        .collect()
}

/// The CSV answer of `response`, which must be a 200 `text/csv`.
async fn csv_text(response: Response) -> String {
    let status = response.status().as_u16();
    let content_type = content_type(&response);
    let text = response.text().await.expect("an answer");
    assert_eq!(status, 200, "{text}");
    assert_eq!(content_type, "text/csv; charset=utf-8");
    text
}

#[tokio::test]
async fn the_csv_file_holds_the_json_items_cell_for_cell_by_accept_or_by_path() {
    let d = Day::new().await;
    let formula = "=HYPERLINK(\"http://evil.example\",\"Bấm vào đây\")";
    let id = d.paid("fee", formula, "150000", "FT-1", "2026-11-22T02:00:00Z").await;
    d.paid("tax", "+84-HS, \"quoted\"", "2350000", "FT-2", "2026-11-22T09:30:00.5Z").await;
    d.paid("fine", "Biên bản số 12/QĐ", "500000", "@FT-3", "2026-11-22T10:00:00Z").await;
    d.completed_refund(&id, "50000", "2026-11-22T11:00:00Z").await;

    let statement = d.own(DAY).await;
    assert_eq!(items(&statement).len(), 4);
    // JSON keeps the reference exactly as the agency sent it.
    assert_eq!(items(&statement)[0]["reference"], formula);
    let expected: Vec<Vec<String>> =
        std::iter::once(CSV_HEADER.split(',').map(str::to_owned).collect())
            .chain(items(&statement).iter().map(expected_record))
            .collect();

    for accept in ["text/csv", "text/csv; charset=utf-8", "application/json;q=0.5, text/csv"] {
        let response = d
            .get(Some(&d.agency_key), "/v1/statements/daily", &[("date", DAY)], Some(accept))
            .await;
        assert_eq!(response.headers()["vary"], "Accept");
        let text = csv_text(response).await;
        assert!(text.starts_with(&format!("{CSV_HEADER}\n")), "{text}");
        assert_eq!(records(&text), expected, "Accept: {accept}");
        // The formula is neutralised in the file.
        assert!(text.contains("\"'=HYPERLINK(\"\"http://evil.example\"\""), "{text}");
    }
    // The path gives the file whatever the client accepts.
    for accept in [None, Some("application/json")] {
        let response =
            d.get(Some(&d.agency_key), "/v1/statements/daily.csv", &[("date", DAY)], accept).await;
        assert!(response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains(&format!("statement-{AGENCY}-{DAY}.csv")),);
        assert_eq!(records(&csv_text(response).await), expected);
    }
    // An admin's file of the agency is the same file.
    let response = d
        .get(
            Some(&d.app.admin_key),
            "/v1/statements/daily.csv",
            &[("date", DAY), ("agency", AGENCY)],
            None,
        )
        .await;
    assert_eq!(records(&csv_text(response).await), expected);
    // Without `Accept: text/csv`, the same URL answers JSON.
    for accept in [None, Some("*/*"), Some("application/json"), Some("text/csv;q=0")] {
        let response =
            d.get(Some(&d.agency_key), "/v1/statements/daily", &[("date", DAY)], accept).await;
        assert_eq!(content_type(&response), "application/json", "{accept:?}");
        assert_eq!(json_with(response, 200).await, statement);
    }
}

#[tokio::test]
async fn an_empty_day_is_a_file_with_its_header_only() {
    let d = Day::new().await;
    let response =
        d.get(Some(&d.agency_key), "/v1/statements/daily.csv", &[("date", DAY)], None).await;
    assert_eq!(csv_text(response).await, format!("{CSV_HEADER}\n"));
}

/// Orders in a day of the large-day test.
const LARGE_DAY_ORDERS: i64 = 100_000;
/// Another agency's orders paid that day, and its refunds completed that day, in the same test.
const OTHER_AGENCY_ORDERS: i64 = 30_000;

/// An agency with no orders that day, but a history of orders and refunds the day before.
const QUIET_AGENCY: &str = "000.00.00.H35";
const QUIET_AGENCY_ORDERS: i64 = 5_000;

/// Inserts `count` orders of `agency` paid by the world's bank (directly: through the API this
/// would take minutes), ids `<prefix>1` to `<prefix><count>`, spread evenly over the business
/// day `date` (Vietnam time).
async fn insert_paid(d: &Day, agency: &str, prefix: &str, count: i64, date: &str) {
    let inserted = d
        .app
        .execute(
            "INSERT INTO payments (id, agency_code, obligation, reference, amount, currency,
                 description, payer_name, payer_id_number, details, status, created_at,
                 expires_at, paid_at, bank_code, bank_txn_id, closed_at)
             SELECT $2 || i, $1, 'fee', 'REF-' || $2 || i, 150000, 'VND',
                    'Lệ phí cấp đổi giấy phép lái xe', 'Nguyễn Văn A', NULL,
                    '{\"procedure_code\": \"1.002804\", \"dossier_code\": \"H12.99-261122-0001\"}',
                    'paid', at - interval '1 hour', at + interval '1 day', at, $3,
                    'FT-' || $2 || i, at
             FROM (SELECT i, ($5 || 'T00:00:00+07:00')::timestamptz
                             + make_interval(secs => (i - 1) * 86400.0 / $4) AS at
                   FROM generate_series(1, $4::bigint) AS i) AS s",
            &[&agency, &prefix, &BANK, &count, &date],
        )
        .await;
    assert_eq!(inserted, count as u64);
}

/// Inserts a refund of 1000 of each order of `agency`, completed by the bank a minute after the
/// order was paid.
async fn insert_refunds(d: &Day, agency: &str) {
    d.app
        .execute(
            "INSERT INTO refunds (id, kind, payment_id, agency_code, bank_code, bank_txn_id,
                 amount, reason, status, requested_by, approved_by, approved_at, result_at,
                 completed_at, bank_refund_id, instruction_id, delivery_status)
             SELECT 'rfd_bulk_' || p.seq, 'payment', p.id, p.agency_code, p.bank_code,
                    p.bank_txn_id, 1000, 'Hoàn phí', 'completed', '{}', '{}', p.paid_at,
                    p.paid_at, p.paid_at + interval '1 minute', 'BR-' || p.seq,
                    'evt_bulk_' || p.seq, 'delivered'
             FROM payments p WHERE p.agency_code = $1",
            &[&agency],
        )
        .await;
}

#[tokio::test]
async fn a_day_of_a_hundred_thousand_payments_streams_as_csv_from_the_agency_indexes() {
    let d = Day::new().await;
    insert_paid(&d, AGENCY, "pay_bulk_", LARGE_DAY_ORDERS, DAY).await;
    // Another agency's busy day: orders paid, and refunds of them completed, the same day; and
    // a third agency's the day before.
    insert_paid(&d, OTHER_AGENCY, "pay_other_", OTHER_AGENCY_ORDERS, DAY).await;
    insert_refunds(&d, OTHER_AGENCY).await;
    d.app.create_agency(QUIET_AGENCY).await;
    insert_paid(&d, QUIET_AGENCY, "pay_quiet_", QUIET_AGENCY_ORDERS, "2026-11-21").await;
    insert_refunds(&d, QUIET_AGENCY).await;
    d.app.execute("ANALYZE payments", &[]).await;
    d.app.execute("ANALYZE refunds", &[]).await;

    // Read while it arrives, counting lines without keeping the body.
    let mut response =
        d.get(Some(&d.agency_key), "/v1/statements/daily.csv", &[("date", DAY)], None).await;
    assert_eq!(response.status(), 200);
    assert!(response.content_length().is_none(), "a streamed answer has no length");
    let (mut lines, mut chunks, mut last_line) = (0_usize, 0_usize, Vec::new());
    while let Some(chunk) = response.chunk().await.expect("the body") {
        chunks += 1;
        lines += chunk.iter().filter(|b| **b == b'\n').count();
        // The last complete line so far, kept to check the order.
        if let Some(end) = chunk.iter().rposition(|b| *b == b'\n') {
            let start = chunk[..end].iter().rposition(|b| *b == b'\n').map_or(0, |s| s + 1);
            last_line = chunk[start..end].to_vec();
        }
    }
    assert_eq!(lines, LARGE_DAY_ORDERS as usize + 1);
    assert!(chunks > 1, "the file came in one piece");
    let last_line = String::from_utf8(last_line).unwrap();
    let last = format!("pay_bulk_{LARGE_DAY_ORDERS}");
    assert!(
        last_line.starts_with(&format!("payment,{last},REF-{last},fee,150000,")),
        "{last_line}"
    );

    // The statement of the agency that was quiet that day reads none of the day's many rows
    // of other agencies nor its own of other days: each half walks an index by agency and time.
    // (For the busy agency itself, whose rows are most of the day's, a sequential scan may well
    // be cheaper.)
    let plan: Vec<String> = d
        .app
        .rows(
            &format!(
                "EXPLAIN {}",
                paygate::statements::store::ITEMS_SQL
                    .replace("$2", "$2::text::timestamptz")
                    .replace("$3", "$3::text::timestamptz")
            ),
            &[&QUIET_AGENCY, &"2026-11-22T00:00:00+07:00", &"2026-11-23T00:00:00+07:00"],
        )
        .await
        .iter()
        .map(|row| row.get(0))
        .collect();
    let plan = plan.join("\n");
    assert!(plan.contains("payments_agency_paid_at"), "{plan}");
    assert!(plan.contains("refunds_agency_completed_at"), "{plan}");
}
