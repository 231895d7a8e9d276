//! A run's items: paged as JSON, or whole as the CSV report.

use std::borrow::Cow;
use std::collections::HashMap;

use actix_web::web::Bytes;
use actix_web::{web, HttpResponse};
use deadpool_postgres::Pool;
use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;

use super::engine::OUTCOMES;
use super::{run_not_found, READERS};
use crate::auth::Principal;
use crate::http::body::Validator;
use crate::http::error::ApiError;
use crate::http::pagination::{Page, PageRequest};
use crate::http::AppState;

/// Items per database round trip while the CSV report streams.
const REPORT_PAGE_ROWS: i64 = 10_000;

/// One difference (or match) between the statement and paygate.
#[derive(Debug, Serialize, ToSchema)]
pub struct Item {
    #[schema(example = "recovered")]
    pub outcome: String,
    /// The statement's line number (header = line 1), or null.
    pub line: Option<i32>,
    pub bank_txn_id: Option<String>,
    pub payment_id: Option<String>,
    #[schema(example = "150000")]
    pub statement_amount: Option<String>,
    #[schema(example = "150000")]
    pub gateway_amount: Option<String>,
    pub detail: Option<String>,
    #[serde(skip)]
    pub seq: i64,
}

fn amount(value: Option<Decimal>) -> Option<String> {
    value.map(|v| v.normalize().to_string())
}

async fn fetch(
    pool: &Pool,
    run_id: &str,
    outcome: Option<&str>,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<Item>, ApiError> {
    let client = pool.get().await?;
    // The outcome filter is written out for the differences, so that the planner can use
    // their small partial index; `matched` (nearly every item) pages through the primary key.
    let filter = match outcome {
        None => "",
        Some("matched") => "AND outcome = 'matched'",
        Some(_) => "AND outcome <> 'matched' AND outcome = $4",
    };
    let statement = client
        .prepare_cached(&format!(
            "SELECT outcome, line, bank_txn_id, payment_id, statement_amount, gateway_amount, detail, id
             FROM reconciliation_items
             WHERE run_id = $1 AND id > $2 {filter}
             ORDER BY run_id, id LIMIT $3"
        ))
        .await?;
    let after = after.unwrap_or(0);
    let rows = match outcome {
        Some(outcome) if outcome != "matched" => {
            client
                .query(&statement, &[&run_id, &after, &limit, &outcome])
                .await?
        }
        _ => client.query(&statement, &[&run_id, &after, &limit]).await?,
    };
    Ok(rows
        .iter()
        .map(|row| Item {
            outcome: row.get(0),
            line: row.get(1),
            bank_txn_id: row.get(2),
            payment_id: row.get(3),
            statement_amount: amount(row.get(4)),
            gateway_amount: amount(row.get(5)),
            detail: row.get(6),
            seq: row.get(7),
        })
        .collect())
}

async fn require_run(pool: &Pool, run_id: &str) -> Result<(), ApiError> {
    let client = pool.get().await?;
    let found = client
        .query_opt(
            "SELECT 1 FROM reconciliation_runs WHERE id = $1",
            &[&run_id],
        )
        .await?;
    found.map(|_| ()).ok_or_else(|| run_not_found(run_id))
}

#[derive(Serialize, ToSchema)]
pub struct ItemPage {
    pub items: Vec<Item>,
    pub next_cursor: Option<String>,
}

/// A run's items in statement order (then paygate's records no statement carried).
#[utoipa::path(get, path = "/v1/reconciliations/{id}/items", tag = "reconciliation",
    params(
        ("id" = String, Path, description = "Run id"),
        ("outcome" = Option<String>, Query, description = "One outcome"),
        ("limit" = Option<i64>, Query, description = "1-500, default 100"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "One page", body = ItemPage),
        (status = 404, description = "`reconciliation_not_found`", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: an invalid filter", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_items(
    principal: Principal,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    principal.require(READERS)?;
    let run_id = path.into_inner();
    let mut v = Validator::new();
    let page = PageRequest::parse(&query, &mut v);
    let outcome = query.get("outcome").and_then(|o| {
        v.check(
            "outcome",
            if OUTCOMES.contains(&o.as_str()) {
                Ok(o.as_str())
            } else {
                Err(format!("must be one of {}", OUTCOMES.join(", ")))
            },
        )
    });
    v.finish()?;
    require_run(&state.pool, &run_id).await?;
    let rows = fetch(&state.pool, &run_id, outcome, page.cursor, page.limit + 1).await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, page.limit, |i: &Item| i.seq)))
}

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

/// Writes one item as a CSV record (RFC 4180; `null` is an empty field; every cell passed
/// through [`csv_cell`]).
pub fn write_record(item: &Item, out: &mut Vec<u8>) {
    let mut writer = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(out);
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
    let cells = cells.map(|cell| csv_cell(cell.unwrap_or("")));
    writer
        .write_record(cells.iter().map(|cell| cell.as_bytes()))
        .expect("writing CSV to memory cannot fail");
    writer.flush().expect("writing CSV to memory cannot fail");
}

/// Writes a run's items to `path`: CSV (the report's columns) or a JSON array.
pub async fn write_report(
    pool: &Pool,
    run_id: &str,
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
        let items = fetch(pool, run_id, None, after, REPORT_PAGE_ROWS).await?;
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

/// A run's items as CSV, streamed page by page however many there are.
#[utoipa::path(get, path = "/v1/reconciliations/{id}/report.csv", tag = "reconciliation",
    params(("id" = String, Path, description = "Run id")),
    responses(
        (status = 200, description = "RFC 4180 CSV with a header row, no BOM; null is an empty field", body = String, content_type = "text/csv"),
        (status = 404, description = "`reconciliation_not_found`", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn report_csv(
    principal: Principal,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require(READERS)?;
    let run_id = path.into_inner();
    require_run(&state.pool, &run_id).await?;
    let pool = state.pool.clone();
    let header = futures_util::stream::once(async {
        Ok::<_, ApiError>(Bytes::from_static(REPORT_HEADER.as_bytes()))
    });
    let pages = futures_util::stream::unfold(Some(None::<i64>), move |after| {
        let pool = pool.clone();
        let run_id = run_id.clone();
        async move {
            let after = after?;
            match fetch(&pool, &run_id, None, after, REPORT_PAGE_ROWS).await {
                Ok(items) if items.is_empty() => None,
                Ok(items) => {
                    let mut out = Vec::with_capacity(items.len() * 96);
                    for item in &items {
                        write_record(item, &mut out);
                    }
                    let next = (items.len() as i64 == REPORT_PAGE_ROWS)
                        .then(|| items.last().map(|i| i.seq));
                    Some((Ok(Bytes::from(out)), next.flatten().map(Some)))
                }
                Err(err) => Some((Err(err), None)),
            }
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .streaming(futures_util::StreamExt::chain(header, pages)))
}

#[cfg(test)]
mod tests {
    use super::*;

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
            outcome: "missing_in_gateway".to_owned(),
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
