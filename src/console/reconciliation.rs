//! Reconciliation pages: the runs by bank and day with their outcome counts, a run's items by
//! outcome, its `report.csv`, and the statement upload.
//!
//! The upload runs the same engine as `POST /v1/reconciliations`, with the signed-in key: an
//! admin's run recovers lost callbacks, an auditor's run only reports them, exactly as the API
//! decides.

use std::collections::HashMap;
use std::io::{Seek, Write};
use std::str::FromStr;

use actix_multipart::{Field, Multipart};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::TryStreamExt;
use maud::{html, Markup};
use rust_decimal::Decimal;

use super::format;
use super::i18n::{Lang, T};
use super::layout::{self, Nav};
use super::session::{api, see_other, Console, ConsoleError};
use crate::admin::banks;
use crate::auth::Role;
use crate::domain::{BankCode, RunId};
use crate::http::body::Validator;
use crate::http::error::{ApiError, ErrorCode};
use crate::http::pagination::{Page, PageRequest};
use crate::http::{QueryMap, State};
use crate::reconciliation::engine::{self, RunBy};
use crate::reconciliation::http::{report_response, STATEMENT_LIMIT_BYTES};
use crate::reconciliation::model::{Item, Outcome, Run};
use crate::reconciliation::store::{self, RunFilter};
use crate::timefmt::parse_date;

/// Runs and items per page: enough to scan, small enough to render at once.
const PAGE_ROWS: i64 = 50;
/// The banks a select offers; far more than paygate will ever have.
const BANKS_LISTED: i64 = 500;
/// The most a small form field (the CSRF token, a bank code, a date) may hold.
const SMALL_FIELD_BYTES: usize = 256;
/// What a multipart body may add to the statement itself: boundaries, headers, small fields.
const FORM_OVERHEAD_BYTES: usize = 64 * 1024;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/console/reconciliation", web::get().to(runs))
        .route("/console/reconciliation", web::post().to(upload))
        .route("/console/reconciliation/{id}", web::get().to(run))
        .route(
            "/console/reconciliation/{id}/report.csv",
            web::get().to(report),
        );
}

/// A query parameter, unless the form left it empty (an unchosen select sends `name=`).
pub(super) fn param<'a>(query: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    query
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// The address of a page of a list: the same path and filters, at `cursor` (the first page
/// without one).
fn page_link(path: &str, query: &HashMap<String, String>, cursor: Option<&str>) -> String {
    let mut names: Vec<&str> = query
        .keys()
        .map(String::as_str)
        .filter(|name| *name != "cursor")
        .collect();
    names.sort_unstable();
    let mut pairs: Vec<(&str, &str)> = names
        .into_iter()
        .map(|name| (name, query[name].as_str()))
        .collect();
    if let Some(cursor) = cursor {
        pairs.push(("cursor", cursor));
    }
    format!("{path}{}", layout::query(&pairs))
}

/// The pager under a list: back to the first page when on a later one, on to the next page
/// (at `next`) when there is one.
pub(super) fn pager(
    console: &Console,
    path: &str,
    query: &HashMap<String, String>,
    next: Option<&str>,
) -> Markup {
    let first = query
        .contains_key("cursor")
        .then(|| page_link(path, query, None));
    let next = next.map(|cursor| page_link(path, query, Some(cursor)));
    layout::pager(console.lang, first.as_deref(), next.as_deref())
}

/// An amount as paygate writes it (a decimal string), shown with thousands separators.
pub(super) fn money_text(lang: Lang, amount: Option<&str>) -> String {
    amount
        .and_then(|text| Decimal::from_str(text).ok())
        .map(|amount| format::money(lang, amount))
        .unwrap_or_default()
}

/// Every bank, for the selects (newest first as the list reads them, shown by code).
pub(super) async fn bank_codes(state: &State) -> Result<Vec<String>, ConsoleError> {
    let page = PageRequest {
        limit: BANKS_LISTED,
        cursor: None,
    };
    let banks = banks::list(&state.pool, page).await.map_err(api)?;
    let mut codes: Vec<String> = banks
        .items
        .iter()
        .map(|bank| bank.code.as_str().to_owned())
        .collect();
    codes.sort();
    Ok(codes)
}

/// A labelled select of the banks; `any` adds a first option that chooses none.
pub(super) fn bank_select(
    console: &Console,
    id: &str,
    codes: &[String],
    chosen: Option<&str>,
    any: bool,
) -> Markup {
    html! {
        div.field {
            label for=(id) { (console.t(T::Bank)) }
            select id=(id) name="bank" required[!any] {
                @if any {
                    option value="" { (console.t(T::Any)) }
                }
                @for code in codes {
                    option value=(code) selected[chosen == Some(code.as_str())] { (code) }
                }
            }
        }
    }
}

/// The label of an outcome in the session's language.
fn outcome_label(outcome: Outcome) -> T {
    match outcome {
        Outcome::Matched => T::OutcomeMatched,
        Outcome::Recovered => T::OutcomeRecovered,
        Outcome::MissingInGateway => T::OutcomeMissingInGateway,
        Outcome::MissingInBank => T::OutcomeMissingInBank,
        Outcome::Mismatch => T::OutcomeMismatch,
        Outcome::DuplicateInStatement => T::OutcomeDuplicateInStatement,
        Outcome::InvalidLine => T::OutcomeInvalidLine,
    }
}

/// A run's count and amount of `outcome`, as recorded with the run.
fn summary_of(run: &Run, outcome: Outcome) -> (i64, Option<String>) {
    let totals = &run.summary[outcome.as_str()];
    let count = totals["count"].as_i64().unwrap_or(0);
    let amount = totals["amount"].as_str().map(str::to_owned);
    (count, amount)
}

/// A run's business day as the session's language writes dates.
fn run_date(lang: Lang, run: &Run) -> String {
    parse_date(&run.date)
        .map(|date| format::date(lang, date))
        .unwrap_or_else(|_| run.date.clone())
}

/// `GET /console/reconciliation`: the runs, newest first, filtered by bank and day, each with
/// its outcome counts; and the form that uploads a statement.
async fn runs(
    console: Console,
    state: State,
    query: QueryMap,
) -> Result<HttpResponse, ConsoleError> {
    let mut v = Validator::new();
    let page = PageRequest::parse(&query, &mut v);
    let bank = param(&query, "bank").and_then(|b| v.check("bank", BankCode::parse(b)));
    let date = param(&query, "date").and_then(|d| v.check("date", parse_date(d)));
    v.finish().map_err(api)?;
    let limit = if query.contains_key("limit") {
        page.limit
    } else {
        PAGE_ROWS
    };
    let filter = RunFilter {
        bank,
        date,
        before: page.cursor,
        limit,
    };
    let rows = store::list_runs(&state.pool, &filter).await.map_err(api)?;
    let page = Page::from_rows(rows, limit, |(_, seq)| *seq);
    let codes = bank_codes(&state).await?;
    let lang = console.lang;
    let chosen_bank = param(&query, "bank");
    let body = html! {
        form.filters method="get" action="/console/reconciliation" {
            (bank_select(&console, "filter-bank", &codes, chosen_bank, true))
            div.field {
                label for="filter-date" { (console.t(T::RecDay)) }
                input type="date" id="filter-date" name="date" value=(param(&query, "date").unwrap_or(""));
            }
            div.actions { button type="submit" { (console.t(T::Filter)) } }
        }
        @if page.items.is_empty() {
            p { (console.t(T::RecNoRuns)) }
        } @else {
            div.table-wrap {
                table {
                    caption { (console.t(T::RecRunsCaption)) }
                    thead {
                        tr {
                            th scope="col" { (console.t(T::RecDay)) }
                            th scope="col" { (console.t(T::Bank)) }
                            th scope="col" { (console.t(T::RecRunAt)) }
                            th scope="col" .num { (console.t(T::RecLines)) }
                            @for outcome in Outcome::ALL {
                                th scope="col" .num { (console.t(outcome_label(outcome))) }
                            }
                        }
                    }
                    tbody {
                        @for (run, _) in &page.items {
                            tr {
                                td {
                                    a href={ "/console/reconciliation/" (run.id.as_str()) } {
                                        (run_date(lang, run))
                                    }
                                }
                                td { (run.bank) }
                                td { (format::time(lang, run.created_at)) }
                                td.num { (format::count(lang, i64::from(run.statement_lines))) }
                                @for outcome in Outcome::ALL {
                                    @let (count, _) = summary_of(run, outcome);
                                    @let flagged = count > 0 && !matches!(outcome, Outcome::Matched | Outcome::Recovered);
                                    td.num.flagged[flagged] { (format::count(lang, count)) }
                                }
                            }
                        }
                    }
                }
            }
            (pager(&console, "/console/reconciliation", &query, page.next_cursor.as_deref()))
        }
        (upload_form(&console, &codes))
    };
    Ok(layout::page(
        &console,
        Nav::Reconciliation,
        T::RecTitle,
        body,
    ))
}

/// The statement upload. The CSRF token is the form's first field, so that the handler checks
/// it before it reads the file.
fn upload_form(console: &Console, codes: &[String]) -> Markup {
    let today = format::vn_today().to_string();
    html! {
        section aria-labelledby="upload-heading" {
            h2 #upload-heading { (console.t(T::RecUploadTitle)) }
            p {
                @if console.principal.role == Role::Admin {
                    (console.t(T::RecUploadAdminNote))
                } @else {
                    (console.t(T::RecUploadAuditorNote))
                }
            }
            form #upload .stack method="post" action="/console/reconciliation" enctype="multipart/form-data" {
                (layout::csrf_field(console))
                (bank_select(console, "upload-bank", codes, None, false))
                div.field {
                    label for="upload-date" { (console.t(T::RecDay)) }
                    input type="date" id="upload-date" name="date" value=(today) required;
                }
                div.field {
                    label for="upload-file" { (console.t(T::RecStatementFile)) }
                    input type="file" id="upload-file" name="statement" accept=".csv,text/csv" required;
                }
                button type="submit" { (console.t(T::RecUploadButton)) }
            }
        }
    }
}

/// The multipart body could not be read.
fn malformed(err: impl std::fmt::Display) -> ConsoleError {
    api(ApiError::BadRequest {
        code: ErrorCode::MalformedBody,
        detail: format!("the form could not be read: {err}"),
    })
}

/// Reads a small text field whole; longer than [`SMALL_FIELD_BYTES`] is a 422 on it.
async fn small_text(field: &mut Field, name: &str) -> Result<String, ConsoleError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.try_next().await.map_err(malformed)? {
        if bytes.len() + chunk.len() > SMALL_FIELD_BYTES {
            return Err(api(ApiError::invalid(name, "is too long")));
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes).map_err(|_| api(ApiError::invalid(name, "must be UTF-8 text")))
}

/// Writes the file field to an anonymous temporary file (deleted when closed), at most
/// [`STATEMENT_LIMIT_BYTES`], as the API spools its body; returns it rewound, with its size.
async fn spool(field: &mut Field) -> Result<(std::fs::File, usize), ConsoleError> {
    let mut file = tempfile::tempfile().map_err(|err| api(ApiError::internal(err)))?;
    let mut written = 0usize;
    while let Some(chunk) = field.try_next().await.map_err(malformed)? {
        written += chunk.len();
        if written > STATEMENT_LIMIT_BYTES {
            return Err(api(ApiError::PayloadTooLarge {
                limit_bytes: STATEMENT_LIMIT_BYTES,
            }));
        }
        file.write_all(&chunk)
            .map_err(|err| api(ApiError::internal(err)))?;
    }
    file.rewind().map_err(|err| api(ApiError::internal(err)))?;
    Ok((file, written))
}

/// `POST /console/reconciliation` (multipart: `csrf`, `bank`, `date`, `statement`): runs the
/// statement through the reconciliation engine with the signed-in key, then shows the run.
async fn upload(
    console: Console,
    req: HttpRequest,
    state: State,
    mut form: Multipart,
) -> Result<HttpResponse, ConsoleError> {
    // A body declared larger than a statement may be is refused before any of it is read.
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|length| length > STATEMENT_LIMIT_BYTES + FORM_OVERHEAD_BYTES) {
        return Err(api(ApiError::PayloadTooLarge {
            limit_bytes: STATEMENT_LIMIT_BYTES,
        }));
    }
    // The token comes first: nothing else of the body is read before it is checked.
    // A body that is not a multipart form at all has no token either.
    let token = match form.try_next().await {
        Ok(Some(mut field)) if field.name() == Some("csrf") => {
            small_text(&mut field, "csrf").await.unwrap_or_default()
        }
        _ => String::new(),
    };
    console.check_csrf(&token)?;
    let mut bank = None;
    let mut date = None;
    let mut statement = None;
    while let Some(mut field) = form.try_next().await.map_err(malformed)? {
        match field.name() {
            Some("bank") => bank = Some(small_text(&mut field, "bank").await?),
            Some("date") => date = Some(small_text(&mut field, "date").await?),
            Some("statement") => statement = Some(spool(&mut field).await?),
            // Anything else is read and dropped, within the same limit as the statement.
            _ => drop(spool(&mut field).await?),
        }
    }
    let mut v = Validator::new();
    let bank = match bank.as_deref().filter(|b| !b.is_empty()) {
        Some(bank) => v.check("bank", BankCode::parse(bank)),
        None => {
            v.error("bank", "is required");
            None
        }
    };
    let date = match date.as_deref().filter(|d| !d.is_empty()) {
        Some(date) => v.check("date", parse_date(date)),
        None => {
            v.error("date", "is required");
            None
        }
    };
    // A file input left empty still sends a part, with no bytes.
    let statement = match statement {
        Some((file, size)) if size > 0 => Some(file),
        _ => {
            v.error("statement", "is required");
            None
        }
    };
    let (bank, date, statement) = v
        .finish_with(|| Some((bank?, date?, statement?)))
        .map_err(api)?;
    // Only an admin's run moves money; an auditor's reports what it would recover.
    let by = match console.principal.role {
        Role::Admin => RunBy::Admin,
        _ => RunBy::Auditor,
    };
    let run = engine::run(
        &state.pool,
        &bank,
        date,
        statement,
        None,
        by,
        &console.actor(),
    )
    .await
    .map_err(api)?;
    Ok(see_other(&format!(
        "/console/reconciliation/{}",
        run.id.as_str()
    )))
}

/// `GET /console/reconciliation/{id}`: a run's counts and amounts by outcome and obligation,
/// and its items (of one outcome, with `?outcome=`), page by page.
async fn run(
    console: Console,
    state: State,
    path: web::Path<String>,
    query: QueryMap,
) -> Result<HttpResponse, ConsoleError> {
    let run_id = RunId::from_trusted(path.into_inner());
    let mut v = Validator::new();
    let page = PageRequest::parse(&query, &mut v);
    let chosen = param(&query, "outcome").and_then(|o| v.check("outcome", Outcome::parse(o)));
    v.finish().map_err(api)?;
    let limit = if query.contains_key("limit") {
        page.limit
    } else {
        PAGE_ROWS
    };
    let run = store::get_run(&state.pool, &run_id).await.map_err(api)?;
    let rows = store::fetch_items(&state.pool, &run_id, chosen, page.cursor, limit + 1)
        .await
        .map_err(api)?;
    let items = Page::from_rows(rows, limit, |item: &Item| item.seq);
    let lang = console.lang;
    let base = format!("/console/reconciliation/{}", run.id.as_str());
    let total: i64 = Outcome::ALL
        .into_iter()
        .map(|outcome| summary_of(&run, outcome).0)
        .sum();
    let obligations: Vec<(String, i64, Option<String>)> = run
        .by_obligation
        .as_object()
        .map(|map| {
            map.iter()
                .map(|(code, totals)| {
                    (
                        code.clone(),
                        totals["count"].as_i64().unwrap_or(0),
                        totals["amount"].as_str().map(str::to_owned),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let body = html! {
        p { a href="/console/reconciliation" { (console.t(T::RecBackToRuns)) } }
        p.subtitle { strong { (run.bank) " · " (run_date(lang, &run)) } }
        dl.facts {
            dt { (console.t(T::RecRunId)) } dd { code { (run.id.as_str()) } }
            dt { (console.t(T::Bank)) } dd { (run.bank) }
            dt { (console.t(T::RecDay)) } dd { (run_date(lang, &run)) }
            dt { (console.t(T::RecRunAt)) } dd { (format::time(lang, run.created_at)) }
            dt { (console.t(T::RecLines)) } dd { (format::count(lang, i64::from(run.statement_lines))) }
        }
        p {
            a.button href={ (base) "/report.csv" } download={ "report-" (run.id.as_str()) ".csv" } {
                (console.t(T::RecDownloadReport))
            }
        }
        div.table-wrap {
            table {
                caption { (console.t(T::RecOutcomesCaption)) }
                thead {
                    tr {
                        th scope="col" { (console.t(T::RecOutcome)) }
                        th scope="col" .num { (console.t(T::Count)) }
                        th scope="col" .num { (console.t(T::Amount)) }
                    }
                }
                tbody {
                    @for outcome in Outcome::ALL {
                        @let (count, amount) = summary_of(&run, outcome);
                        tr.current[chosen == Some(outcome)] {
                            th scope="row" {
                                a href={ (base) "?outcome=" (outcome.as_str()) "#items" } {
                                    (console.t(outcome_label(outcome)))
                                }
                            }
                            td.num data-outcome=(outcome.as_str()) { (format::count(lang, count)) }
                            td.num { (money_text(lang, amount.as_deref())) }
                        }
                    }
                    tr {
                        th scope="row" {
                            a href={ (base) "#items" } { (console.t(T::RecAllOutcomes)) }
                        }
                        td.num { (format::count(lang, total)) }
                        td.num {}
                    }
                }
            }
        }
        @if !obligations.is_empty() {
            div.table-wrap {
                table {
                    caption { (console.t(T::RecByObligationCaption)) }
                    thead {
                        tr {
                            th scope="col" { (console.t(T::Obligation)) }
                            th scope="col" .num { (console.t(T::Count)) }
                            th scope="col" .num { (console.t(T::Amount)) }
                        }
                    }
                    tbody {
                        @for (code, count, amount) in &obligations {
                            tr {
                                th scope="row" { (code) }
                                td.num { (format::count(lang, *count)) }
                                td.num { (money_text(lang, amount.as_deref())) }
                            }
                        }
                    }
                }
            }
        }
        section #items aria-labelledby="items-heading" {
            h2 #items-heading {
                (console.t(T::RecItems)) ": "
                @match chosen {
                    Some(outcome) => (console.t(outcome_label(outcome))),
                    None => (console.t(T::RecAllOutcomes)),
                }
            }
            @if items.items.is_empty() {
                p { (console.t(T::RecNoItems)) }
            } @else {
                div.table-wrap {
                    table {
                        thead {
                            tr {
                                th scope="col" .num { (console.t(T::RecLine)) }
                                th scope="col" { (console.t(T::RecOutcome)) }
                                th scope="col" { (console.t(T::RecBankTxnId)) }
                                th scope="col" { (console.t(T::RecPaymentId)) }
                                th scope="col" .num { (console.t(T::RecStatementAmount)) }
                                th scope="col" .num { (console.t(T::RecGatewayAmount)) }
                                th scope="col" { (console.t(T::RecDetail)) }
                            }
                        }
                        tbody {
                            @for item in &items.items {
                                tr {
                                    td.num { @if let Some(line) = item.line { (line) } }
                                    td { (console.t(outcome_label(item.outcome))) }
                                    td { (item.bank_txn_id.as_deref().unwrap_or("")) }
                                    td { (item.payment_id.as_deref().unwrap_or("")) }
                                    td.num { (money_text(lang, item.statement_amount.as_deref())) }
                                    td.num { (money_text(lang, item.gateway_amount.as_deref())) }
                                    td { (item.detail.as_deref().unwrap_or("")) }
                                }
                            }
                        }
                    }
                }
                (pager(&console, &base, &query, items.next_cursor.as_deref()))
            }
        }
    };
    Ok(layout::page(
        &console,
        Nav::Reconciliation,
        T::RecRunTitle,
        body,
    ))
}

/// `GET /console/reconciliation/{id}/report.csv`: the run's items as CSV, the same stream as
/// `GET /v1/reconciliations/{id}/report.csv`, offered as a download.
async fn report(
    _console: Console,
    state: State,
    path: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let run_id = RunId::from_trusted(path.into_inner());
    store::require_run(&state.pool, &run_id)
        .await
        .map_err(api)?;
    // Run ids are letters, digits and `_` (see `crate::domain::ids`), safe in a header.
    let disposition = format!("attachment; filename=\"report-{}.csv\"", run_id.as_str());
    let mut response = report_response(state.pool.clone(), run_id);
    if let Ok(value) = header::HeaderValue::from_str(&disposition) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_page_link_keeps_the_filters_and_replaces_the_cursor() {
        let filters = query(&[
            ("bank", "VCB"),
            ("cursor", "AAAA"),
            ("date", ""),
            ("outcome", "a&b"),
        ]);
        assert_eq!(
            page_link("/console/x", &filters, Some("BBBB")),
            "/console/x?bank=VCB&outcome=a%26b&cursor=BBBB"
        );
        assert_eq!(
            page_link("/console/x", &filters, None),
            "/console/x?bank=VCB&outcome=a%26b"
        );
        assert_eq!(page_link("/console/x", &query(&[]), None), "/console/x");
    }

    #[test]
    fn an_empty_parameter_is_no_filter() {
        let filters = query(&[("bank", ""), ("date", "2026-11-22")]);
        assert_eq!(param(&filters, "bank"), None);
        assert_eq!(param(&filters, "date"), Some("2026-11-22"));
        assert_eq!(param(&filters, "agency"), None);
    }

    #[test]
    fn amounts_as_written_are_shown_with_separators_and_nothing_for_none() {
        assert_eq!(
            money_text(Lang::Vi, Some("1500000")),
            format::money(Lang::Vi, Decimal::from(1_500_000))
        );
        assert_eq!(money_text(Lang::En, None), "");
        assert_eq!(money_text(Lang::En, Some("x")), "");
    }
}
