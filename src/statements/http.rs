//! Statement endpoints: an agency reads its own; admins and auditors name the agency.

use actix_web::http::header::{self, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use time::Date;

use super::error::StatementError;
use super::model::{DailyStatement, StatementItem, CSV_HEADER};
use super::store::{self, Batch};
use crate::auth::{Principal, Role};
use crate::domain::AgencyCode;
use crate::http::body::Validator;
use crate::http::error::{ApiError, ErrorCode};
use crate::http::{Answer, QueryMap, State};
use crate::reconciliation::items::csv_writer;
use crate::timefmt::parse_date;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/statements/daily", web::get().to(daily))
        .route("/v1/statements/daily.csv", web::get().to(daily_csv));
}

impl From<StatementError> for ApiError {
    fn from(err: StatementError) -> Self {
        match err {
            StatementError::AgencyNotFound(_) => {
                ApiError::not_found(ErrorCode::AgencyNotFound, err.to_string())
            }
            StatementError::TotalsOverflow => ApiError::internal(err),
            StatementError::Db(err) => err.into(),
        }
    }
}

/// The agency and the day a request asks for. An agency key always reads its own statement
/// (an `agency` parameter is ignored, as in `GET /v1/payments`); an admin or auditor key must
/// name the agency.
fn parse_request(principal: &Principal, query: &QueryMap) -> Result<(AgencyCode, Date), ApiError> {
    let mut v = Validator::new();
    let date = match query.get("date") {
        Some(date) => v.check("date", parse_date(date)),
        None => {
            v.error("date", "is required");
            None
        }
    };
    let agency = match principal.role {
        Role::Agency => Some(principal.agency.clone().ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!("an agency key without an agency"))
        })?),
        Role::Admin | Role::Auditor => match query.get("agency") {
            Some(code) => v.check("agency", AgencyCode::parse(code)),
            None => {
                v.error("agency", "is required with an admin or auditor key");
                None
            }
        },
    };
    v.finish_with(|| Some((agency?, date?)))
}

/// Whether the request's `Accept` header asks for CSV: it names `text/csv` with a quality above
/// zero, and does not name `application/json` with a higher one. Anything else (no header,
/// `*/*`, `application/json`) gets JSON.
fn wants_csv(req: &HttpRequest) -> bool {
    let Some(accept) = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let quality = |media_type: &str| -> Option<f32> {
        accept
            .split(',')
            .filter_map(|range| {
                let mut parts = range.split(';');
                let name = parts.next()?.trim();
                if !name.eq_ignore_ascii_case(media_type) {
                    return None;
                }
                let q = parts
                    .filter_map(|param| {
                        let (key, value) = param.split_once('=')?;
                        key.trim()
                            .eq_ignore_ascii_case("q")
                            .then(|| value.trim().parse::<f32>().ok())
                            .flatten()
                    })
                    .next_back()
                    .unwrap_or(1.0);
                Some(q)
            })
            .reduce(f32::max)
    };
    match (quality("text/csv"), quality("application/json")) {
        (Some(csv), Some(json)) => csv > 0.0 && csv >= json,
        (Some(csv), None) => csv > 0.0,
        (None, _) => false,
    }
}

/// An agency's statement of one business day: every order paid and every refund of an order
/// completed that day (Vietnam time, UTC+07:00), with their totals.
///
/// The figures are the movements of the agency's ledger accounts that day: `payments` the
/// credits, `refunds` the debits, `net` their difference (negative on a day that refunded more
/// than it collected). Refunds of money in suspense were never the agency's and are not listed.
///
/// With `Accept: text/csv` the answer is the same items as CSV, exactly as
/// `GET /v1/statements/daily.csv` gives them. The JSON answer is built whole; a day with many
/// thousands of items is better fetched as CSV, which is streamed.
#[utoipa::path(get, path = "/v1/statements/daily", tag = "statements",
    params(
        ("date" = String, Query, description = "The business day (Vietnam time), YYYY-MM-DD"),
        ("agency" = Option<String>, Query, description = "Admins and auditors: the agency (required). An agency key always reads its own statement and this parameter is ignored."),
        ("Accept" = Option<String>, Header, description = "`text/csv` for the items as CSV (as `/v1/statements/daily.csv`); JSON otherwise"),
    ),
    responses(
        (status = 200, description = "The statement; with `Accept: text/csv`, its items as CSV (RFC 4180, a header row, no BOM, null as an empty field). A large day (many thousands of items) should be read as CSV, which is streamed; the JSON answer is built whole.",
            content(
                (DailyStatement = "application/json"),
                (String = "text/csv", example = json!(CSV_EXAMPLE)),
            )),
        (status = 404, description = "`agency_not_found`: no agency with that code", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: a missing or invalid `date`, or (admins and auditors) a missing or invalid `agency`", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn daily(
    principal: Principal,
    req: HttpRequest,
    state: State,
    query: QueryMap,
) -> Answer {
    let (agency, date) = parse_request(&principal, &query)?;
    let mut answer = if wants_csv(&req) {
        csv_answer(&state, agency, date).await?
    } else {
        let statement: DailyStatement = store::daily(&state.pool, &agency, date).await?;
        HttpResponse::Ok().json(statement)
    };
    // The same URL answers JSON or CSV by `Accept`: caches must keep them apart.
    answer
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    Ok(answer)
}

/// An agency's statement of one business day as CSV: the items of
/// `GET /v1/statements/daily`, one line each, in the same order.
///
/// The file is streamed as it is read, in constant memory however many items the day holds:
/// the items come from one database cursor, in one snapshot, a thousand at a time, and the next
/// thousand are fetched only once the client has taken the ones before (at most a few batches
/// are held at any moment). A client that stops reading for two minutes loses the download.
/// A cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is written with a
/// leading `'`, as in every CSV file paygate writes; the JSON answer keeps the values as they
/// are.
#[utoipa::path(get, path = "/v1/statements/daily.csv", tag = "statements",
    params(
        ("date" = String, Query, description = "The business day (Vietnam time), YYYY-MM-DD"),
        ("agency" = Option<String>, Query, description = "Admins and auditors: the agency (required). An agency key always reads its own statement and this parameter is ignored."),
    ),
    responses(
        (status = 200, description = "RFC 4180 CSV with a header row, no BOM; null is an empty field", body = String, content_type = "text/csv", example = json!(CSV_EXAMPLE)),
        (status = 404, description = "`agency_not_found`: no agency with that code", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: a missing or invalid `date`, or (admins and auditors) a missing or invalid `agency`", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn daily_csv(principal: Principal, state: State, query: QueryMap) -> Answer {
    let (agency, date) = parse_request(&principal, &query)?;
    csv_answer(&state, agency, date).await
}

/// What the CSV file of a statement looks like.
const CSV_EXAMPLE: &str = "type,payment_id,reference,obligation,amount,bank,bank_txn_id,at,refund_id\n\
    payment,pay_3b1f0c9a7d2e4f6a8b0c1d2e,HS-2026-000123,fee,150000,VCB,FT26327001,2026-11-23T03:15:00Z,\n\
    refund,pay_3b1f0c9a7d2e4f6a8b0c1d2e,HS-2026-000123,fee,50000,VCB,FT26327001,2026-11-23T05:00:00Z,rfd_5b2e0c9a7d2e4f6a8b0c1d2e\n";

/// The CSV answer, streamed batch by batch from [`store::stream`]. The first batch is awaited
/// before answering, so that an unknown agency or an unavailable database is a problem answer
/// rather than a cut-off file.
async fn csv_answer(state: &State, agency: AgencyCode, date: Date) -> Answer {
    let mut batches = store::stream(state.pool.clone(), agency.clone(), date);
    let first = batches
        .recv()
        .await
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("the statement's reader stopped")))??;
    let mut head = CSV_HEADER.as_bytes().to_vec();
    head.extend_from_slice(&csv_lines(&first));
    drop(first);
    let head = futures_util::stream::once(async move { Ok::<_, ApiError>(Bytes::from(head)) });
    let rest = futures_util::stream::unfold(batches, |mut batches| async move {
        let batch: Batch = batches.recv().await?;
        let chunk = batch
            .map(|items| Bytes::from(csv_lines(&items)))
            .map_err(ApiError::from);
        Some((chunk, batches))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"statement-{agency}-{date}.csv\""),
        ))
        .streaming(futures_util::StreamExt::chain(head, rest)))
}

/// `items` as CSV lines under [`CSV_HEADER`].
fn csv_lines(items: &[StatementItem]) -> Vec<u8> {
    let mut writer = csv_writer(Vec::with_capacity(items.len() * 160));
    for item in items {
        item.write_csv(&mut writer)
            .expect("writing CSV to memory cannot fail");
    }
    writer
        .into_inner()
        .expect("writing CSV to memory cannot fail")
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::wants_csv;

    #[test]
    fn csv_is_given_only_when_accept_names_it_and_prefers_it() {
        for (accept, csv) in [
            (None, false),
            (Some("*/*"), false),
            (Some("application/json"), false),
            (Some("text/csv"), true),
            (Some("TEXT/CSV; charset=utf-8"), true),
            (Some("text/csv, application/json"), true),
            (Some("application/json, text/csv;q=0.5"), false),
            (Some("application/json;q=0.4, text/csv;q=0.5"), true),
            (Some("text/csv;q=0"), false),
            (Some("text/html, */*;q=0.8"), false),
            (Some("text/plain, text/csv;q=0.9"), true),
        ] {
            let mut req = TestRequest::get().uri("/v1/statements/daily");
            if let Some(accept) = accept {
                req = req.insert_header(("Accept", accept));
            }
            assert_eq!(wants_csv(&req.to_http_request()), csv, "{accept:?}");
        }
    }
}
