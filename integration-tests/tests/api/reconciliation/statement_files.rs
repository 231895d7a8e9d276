//! Statement files.

use super::*;

#[tokio::test]
async fn columns_are_found_by_name_after_a_bom_and_extra_columns_are_ignored() {
    let (w, paid) = World::with_order("COL-1").await;
    let lost = w.order("COL-2").await;
    w.pay("FT-1", &paid, ON_DAY).await;
    // The first record's note spans two lines of the file.
    let text = format!(
        "\u{feff}ghi_chú,paid_at,currency,amount,payment_id,chi_nhánh,bank_txn_id\n\
         \"Thu hộ, lệ phí\n(hai dòng)\",{ON_DAY},VND,{AMOUNT},{paid},Hà Nội,FT-1\n\
         Điện,{ON_DAY},,{AMOUNT},{lost},\"Đà Nẵng, \"\"CN2\"\"\",FT-2\n"
    );

    let run = w.run(DAY, text).await;

    assert_eq!(run["statement_lines"], 2);
    assert_summary(&run, &[("matched", 1, "150000"), ("recovered", 1, "150000")]);
    let items = w.items(&run).await;
    assert_eq!(
        brief(&items[0]),
        expect("matched", Some(2), Some("FT-1"), Some(paid.as_str()), Some(AMOUNT), Some(AMOUNT))
    );
    assert_eq!(items[1]["outcome"], "recovered");
    assert_eq!(items[1]["line"], 4);
    assert_eq!(items[1]["bank_txn_id"], "FT-2");
    assert_eq!(w.payment(&lost).await["status"], "paid");
}

#[tokio::test]
async fn a_file_without_a_required_column_is_refused_naming_it_and_records_nothing() {
    let (w, lost) = World::with_order("REQ-1").await;
    let cases: [(&str, &[&str]); 5] = [
        ("payment_id,amount,paid_at,currency", &["bank_txn_id"]),
        ("bank_txn_id,amount,paid_at", &["payment_id"]),
        ("bank_txn_id,payment_id,paid_at", &["amount"]),
        ("bank_txn_id,payment_id,amount,currency", &["paid_at"]),
        ("bank_txn_id,amount", &["payment_id", "paid_at"]),
    ];
    for (header, missing) in cases {
        let text = format!("{header}\nFT-1,{lost},{AMOUNT},{ON_DAY}\n");
        let problem = w.refused(&format!("bank={BANK}&date={DAY}"), text).await;
        assert_eq!(invalid_fields(&problem), ["statement"], "{problem}");
        let message = problem["errors"][0]["message"].as_str().expect("message");
        for column in missing {
            assert!(message.contains(column), "{header}: {message}");
        }
    }
    assert_eq!(w.runs().await, 0);
    w.app.assert_count("SELECT count(*) FROM reconciliation_items", 0).await;
    assert_eq!(w.payment(&lost).await["status"], "pending");
}

#[tokio::test]
async fn a_file_that_is_not_utf8_is_refused_and_applies_nothing() {
    let (w, lost) = World::with_order("UTF-1").await;
    let lost_line = line("FT-1", &lost, AMOUNT, ON_DAY);
    let mut in_a_line = statement(&[&lost_line]).into_bytes();
    // "Hà Nội" in Windows-1258 after a line that could be recovered.
    in_a_line.extend_from_slice(b"FT-2,pay_x,1000,2026-11-22T03:00:00Z,VND,H\xe0 N\xf4i\n");
    let mut in_the_header = b"bank_txn_id,payment_id,amount,paid_at,ghi_ch\xfa\n".to_vec();
    in_the_header.extend_from_slice(lost_line.as_bytes());
    in_the_header.push(b'\n');
    for body in [in_a_line, in_the_header] {
        let problem = w.refused(&format!("bank={BANK}&date={DAY}"), body).await;
        assert_eq!(invalid_fields(&problem), ["statement"], "{problem}");
    }
    assert_eq!(w.runs().await, 0);
    assert_eq!(w.payment(&lost).await["status"], "pending");
    w.app.assert_count("SELECT count(*) FROM ledger_transactions", 0).await;
}

#[tokio::test]
async fn a_file_without_a_header_row_is_refused() {
    let w = World::new().await;
    for body in ["", "\n", "\r\n\r\n", "\u{feff}"] {
        let problem = w.refused(&format!("bank={BANK}&date={DAY}"), body).await;
        assert_eq!(invalid_fields(&problem), ["statement"], "{body:?}: {problem}");
    }
    assert_eq!(w.runs().await, 0);
}

#[tokio::test]
async fn a_header_alone_is_a_valid_empty_statement() {
    let w = World::new().await;
    for body in [format!("{HEADER}\n"), HEADER.to_owned(), format!("\u{feff}{HEADER}\r\n")] {
        let run = w.run(DAY, body).await;
        assert_eq!(run["statement_lines"], 0);
        assert_summary(&run, &[]);
        assert_by_obligation(&run, &[]);
        assert!(w.items(&run).await.is_empty());
    }
    assert_eq!(w.runs().await, 3);
}

#[tokio::test]
async fn broken_and_blank_lines_keep_the_files_line_numbers_and_the_rest_still_counts() {
    for newline in ["\n", "\r\n"] {
        let (w, paid) = World::with_order("BRK-1").await;
        let lost = w.order("BRK-2").await;
        w.pay("FT-1", &paid, ON_DAY).await;
        let lines = [
            HEADER.to_owned(),
            line("FT-1", &paid, AMOUNT, ON_DAY),
            String::new(),
            "FT-2,pay_short,150000".to_owned(),
            line("FT-3", &paid, "15.000", ON_DAY),
            line("FT-4", &paid, AMOUNT, "hôm qua"),
            String::new(),
            String::new(),
            line("FT-5", &lost, AMOUNT, ON_DAY),
            line("FT-6", &paid, "-150000", ON_DAY),
        ];
        let text = lines.join(newline) + newline;

        let run = w.run(DAY, text).await;

        assert_eq!(run["statement_lines"], 6, "{newline:?}");
        assert_summary(
            &run,
            &[("matched", 1, "150000"), ("recovered", 1, "150000"), ("invalid_line", 4, "0")],
        );
        let items = w.items(&run).await;
        let outcomes: Vec<(&str, i64)> = items
            .iter()
            .map(|i| (i["outcome"].as_str().expect("outcome"), i["line"].as_i64().expect("line")))
            .collect();
        assert_eq!(
            outcomes,
            [
                ("matched", 2),
                ("invalid_line", 4),
                ("invalid_line", 5),
                ("invalid_line", 6),
                ("recovered", 9),
                ("invalid_line", 10),
            ],
            "{newline:?}"
        );
        assert!(detail(&items[2]).contains("amount"), "{}", items[2]);
        assert!(detail(&items[3]).contains("paid_at"), "{}", items[3]);
        assert!(detail(&items[5]).contains("amount"), "{}", items[5]);
    }
}
