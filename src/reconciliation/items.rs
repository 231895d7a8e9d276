//! A run's items as files: the CSV report (also streamed by `GET .../report.csv`) and the JSON
//! array that `paygate reconcile --out` writes.

use std::borrow::Cow;

use deadpool_postgres::Pool;

use super::model::Item;
use super::store;
use crate::domain::RunId;

/// Items per database round trip while the report is written or streamed.
pub const REPORT_PAGE_ROWS: i64 = 10_000;

/// The CSV header of the report: exactly the items' fields, in this order.
pub const REPORT_HEADER: &str =
    "outcome,line,bank_txn_id,payment_id,statement_amount,gateway_amount,detail\n";

/// A cell as paygate writes it into any CSV file: a value that starts with `=`, `+`, `-`, `@`, a
/// tab or a carriage return gets a leading `'`, so that a spreadsheet opening the file shows the
/// text instead of running it as a formula (OWASP's rule against CSV injection). Only files are
/// changed this way: the JSON answers keep every value exactly as it was received.
pub fn csv_cell(value: &str) -> Cow<'_, str> {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{value}"))
    } else {
        Cow::Borrowed(value)
    }
}

/// A writer of CSV records (RFC 4180, `\n` between records, fields quoted only when they must
/// be) into `out`, as every CSV file paygate writes; its header is the caller's to write.
pub fn csv_writer<W: std::io::Write>(out: W) -> csv::Writer<W> {
    csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(out)
}

/// Writes one CSV record of `cells`: `None` is an empty field, and every cell is passed through
/// [`csv_cell`].
pub fn write_cells<W: std::io::Write>(
    writer: &mut csv::Writer<W>,
    cells: &[Option<&str>],
) -> csv::Result<()> {
    let cells: Vec<Cow<'_, str>> = cells
        .iter()
        .map(|cell| csv_cell(cell.unwrap_or("")))
        .collect();
    writer.write_record(cells.iter().map(|cell| cell.as_bytes()))
}

/// Writes one item as a CSV record (RFC 4180; `null` is an empty field; every cell passed
/// through [`csv_cell`]).
pub fn write_record(item: &Item, out: &mut Vec<u8>) {
    let mut writer = csv_writer(out);
    let line = item.line.map(|l| l.to_string());
    let cells = [
        Some(item.outcome.as_str()),
        line.as_deref(),
        item.bank_txn_id.as_deref(),
        item.payment_id.as_deref(),
        item.statement_amount.as_deref(),
        item.gateway_amount.as_deref(),
        item.detail.as_deref(),
    ];
    write_cells(&mut writer, &cells).expect("writing CSV to memory cannot fail");
    writer.flush().expect("writing CSV to memory cannot fail");
}

/// Writes a run's items to `path`: CSV (the report's columns) or a JSON array.
pub async fn write_report(
    pool: &Pool,
    run_id: &RunId,
    path: &std::path::Path,
    json: bool,
) -> anyhow::Result<()> {
    use std::io::Write;

    let file = std::fs::File::create(path)
        .map_err(|err| anyhow::anyhow!("cannot create {}: {err}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    if json {
        out.write_all(b"[")?;
    } else {
        out.write_all(REPORT_HEADER.as_bytes())?;
    }
    let mut after = None;
    let mut first = true;
    loop {
        let items = store::fetch_items(pool, run_id, None, after, REPORT_PAGE_ROWS).await?;
        let Some(last) = items.last() else { break };
        after = Some(last.seq);
        let mut buffer = Vec::new();
        for item in &items {
            if json {
                if !first {
                    buffer.push(b',');
                }
                buffer.push(b'\n');
                serde_json::to_writer(&mut buffer, item)?;
            } else {
                write_record(item, &mut buffer);
            }
            first = false;
        }
        out.write_all(&buffer)?;
        if (items.len() as i64) < REPORT_PAGE_ROWS {
            break;
        }
    }
    if json {
        out.write_all(b"\n]\n")?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconciliation::model::Outcome;

    #[test]
    fn cells_that_a_spreadsheet_would_run_as_formulas_get_a_leading_quote() {
        for (value, written) in [
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("+1", "'+1"),
            ("-1", "'-1"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("=", "'="),
        ] {
            assert_eq!(csv_cell(value), written, "{value:?}");
        }
    }

    #[test]
    fn other_cells_are_written_as_they_are() {
        for value in [
            "", "FT1", "150000", " =x", "x=1", "'=x", "Nguyễn", "\nx", "matched",
        ] {
            assert!(
                matches!(csv_cell(value), Cow::Borrowed(v) if v == value),
                "{value:?}"
            );
        }
    }

    #[test]
    fn a_record_quotes_and_neutralises_each_cell() {
        let item = Item {
            outcome: Outcome::MissingInGateway,
            line: Some(2),
            bank_txn_id: Some("=HYPERLINK(\"http://evil\",\"x\")".to_owned()),
            payment_id: Some("-pay".to_owned()),
            statement_amount: Some("150000".to_owned()),
            gateway_amount: None,
            detail: Some("no such payment".to_owned()),
            seq: 1,
        };
        let mut out = Vec::new();
        write_record(&item, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "missing_in_gateway,2,\"'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\",'-pay,150000,,no such payment\n"
        );
    }
}
