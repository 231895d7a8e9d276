//! Case pages: the queue with its filters and the refunds awaiting approval; a case with its
//! notes, history and refunds; and the forms that add a note, resolve a case and approve or
//! reject a resolution or a refund.
//!
//! Every form calls the same store function as the matching `/v1/cases` or `/v1/refunds`
//! endpoint, with the signed-in key as the actor, so the maker-checker rule is the domain's:
//! the page only spares the requester a button the domain would refuse (403 `same_approver`),
//! and an auditor sees no button that needs an admin.

use actix_web::{web, HttpResponse};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::format;
use super::i18n::T;
use super::layout::{self, Nav};
use super::reconciliation::{bank_codes, bank_select, money_text, pager, param};
use super::session::{api, see_other, Console, ConsoleError};
use crate::audit::store::{self as audit_store, AuditFilter};
use crate::cases::http::{parse_case_id, parse_resolution};
use crate::cases::model::{Case, CaseKind, CaseStatus, MESSAGE_MAX_CHARS, REASON_MAX_CHARS};
use crate::cases::store::{self, ListFilter};
use crate::domain::{AgencyCode, BankCode};
use crate::http::body::{text, Validator};
use crate::http::pagination::{Page, PageRequest};
use crate::http::{QueryMap, State};
use crate::refunds::http::parse_refund_id;
use crate::refunds::model::{Refund, RefundKind, RefundStatus};
use crate::refunds::store as refunds;

/// Cases per page of the queue.
const PAGE_ROWS: i64 = 50;
/// Refunds awaiting approval shown in the queue; an operator works through far fewer at once.
const PENDING_REFUNDS_SHOWN: i64 = 100;
/// Refunds of one order shown on a case.
const CASE_REFUNDS_SHOWN: i64 = 50;
/// Audit entries shown as a case's history.
const HISTORY_SHOWN: i64 = 100;
/// A form body: a note of 2000 characters, each up to 4 bytes and percent-encoded (3 bytes
/// per byte), fits with room to spare; actix-web's default of 16 KiB would not.
const FORM_LIMIT_BYTES: usize = 64 * 1024;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/console/cases", web::get().to(queue))
        .route("/console/cases/{id}", web::get().to(case_page));
    let forms = [
        ("/console/cases/{id}/notes", web::post().to(add_note)),
        ("/console/cases/{id}/resolve", web::post().to(resolve)),
        ("/console/cases/{id}/approve", web::post().to(approve_case)),
        ("/console/cases/{id}/reject", web::post().to(reject_case)),
        (
            "/console/refunds/{id}/approve",
            web::post().to(approve_refund),
        ),
        (
            "/console/refunds/{id}/reject",
            web::post().to(reject_refund),
        ),
    ];
    for (path, route) in forms {
        cfg.service(
            web::resource(path)
                .app_data(web::FormConfig::default().limit(FORM_LIMIT_BYTES))
                .route(route),
        );
    }
}

fn case_status_label(status: &str) -> T {
    match CaseStatus::parse(status) {
        Ok(CaseStatus::Open) => T::CaseStatusOpen,
        Ok(CaseStatus::PendingApproval) => T::CaseStatusPendingApproval,
        Ok(CaseStatus::Resolving) => T::CaseStatusResolving,
        Ok(CaseStatus::Resolved) | Err(_) => T::CaseStatusResolved,
    }
}

fn case_kind_label(kind: CaseKind) -> T {
    match kind {
        CaseKind::DoublePayment => T::CaseKindDoublePayment,
        CaseKind::OrderClosed => T::CaseKindOrderClosed,
        CaseKind::PaymentNotFound => T::CaseKindPaymentNotFound,
        CaseKind::AmountMismatch => T::CaseKindAmountMismatch,
        CaseKind::MissingInGateway => T::CaseKindMissingInGateway,
        CaseKind::MissingInBank => T::CaseKindMissingInBank,
        CaseKind::Mismatch => T::CaseKindMismatch,
        CaseKind::Inquiry => T::CaseKindInquiry,
    }
}

/// A case's kind in the session's language (the wire name, were it ever unknown).
fn kind_text(console: &Console, kind: &str) -> String {
    match CaseKind::parse(kind) {
        Ok(kind) => console.t(case_kind_label(kind)).to_owned(),
        Err(_) => kind.to_owned(),
    }
}

fn resolution_text(console: &Console, kind: &str) -> String {
    let label = match kind {
        "refund" => T::ResolutionRefund,
        "apply" => T::ResolutionApply,
        "no_action" => T::ResolutionNoAction,
        "matched_later" => T::ResolutionMatchedLater,
        "paid" => T::ResolutionPaid,
        other => return other.to_owned(),
    };
    console.t(label).to_owned()
}

fn refund_status_label(status: RefundStatus) -> T {
    match status {
        RefundStatus::PendingApproval => T::RefundStatusPendingApproval,
        RefundStatus::Rejected => T::RefundStatusRejected,
        RefundStatus::Approved => T::RefundStatusApproved,
        RefundStatus::Completed => T::RefundStatusCompleted,
        RefundStatus::Failed => T::RefundStatusFailed,
    }
}

fn refund_kind_label(kind: RefundKind) -> T {
    match kind {
        RefundKind::Payment => T::RefundKindPayment,
        RefundKind::Suspense => T::RefundKindSuspense,
    }
}

/// An actor (as cases and refunds store it) for a person to read: the key's label and id and
/// its role, or paygate itself.
pub(super) fn actor_text(console: &Console, actor: &Value) -> String {
    let key_id = actor.get("key_id").and_then(Value::as_str);
    let label = actor.get("label").and_then(Value::as_str);
    let role = actor.get("role").and_then(Value::as_str).unwrap_or("");
    let via = actor.get("via").and_then(Value::as_str).unwrap_or("");
    match (key_id, label) {
        (Some(key_id), Some(label)) => format!("{label} ({key_id}, {role}, {via})"),
        (Some(key_id), None) => format!("{key_id} ({role}, {via})"),
        (None, _) if role == "system" => console.t(T::CaseSystemActor).to_owned(),
        (None, Some(label)) => format!("{label} ({role}, {via})"),
        (None, None) => format!("{role} ({via})"),
    }
}

/// The key id of an actor, which the four-eyes rule compares.
fn actor_key(actor: &Value) -> Option<&str> {
    actor.get("key_id").and_then(Value::as_str)
}

/// The address a case's page has.
fn case_url(id: &str) -> String {
    format!("/console/cases/{id}")
}

/// Builds the JSON object the API's validators read from a form's fields, leaving out those
/// the form sent empty (the API's "absent").
fn object(fields: &[(&str, &str)]) -> Map<String, Value> {
    fields
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| ((*name).to_owned(), Value::String((*value).to_owned())))
        .collect()
}

/// A reason of 1-255 characters, as the API's reject endpoints require it.
fn reason_of(reason: &str) -> Result<String, ConsoleError> {
    let body = object(&[("reason", reason)]);
    let mut v = Validator::new();
    let reason = v.required(&body, "reason", text(1, REASON_MAX_CHARS));
    v.finish_with(|| reason).map_err(api)
}

/// `GET /console/cases`: the cases newest first, filtered by status, kind, agency and bank;
/// then the refunds awaiting a second key.
async fn queue(
    console: Console,
    state: State,
    query: QueryMap,
) -> Result<HttpResponse, ConsoleError> {
    let mut v = Validator::new();
    let page = PageRequest::parse(&query, &mut v);
    let limit = if query.contains_key("limit") {
        page.limit
    } else {
        PAGE_ROWS
    };
    let filter = ListFilter {
        status: param(&query, "status").and_then(|s| v.check("status", CaseStatus::parse(s))),
        kind: param(&query, "kind").and_then(|k| v.check("kind", CaseKind::parse(k))),
        bank: param(&query, "bank").and_then(|b| v.check("bank", BankCode::parse(b))),
        agency: param(&query, "agency").and_then(|a| v.check("agency", AgencyCode::parse(a))),
        payment_id: None,
        before: page.cursor,
        limit,
    };
    v.finish().map_err(api)?;
    let rows = store::list(&state.pool, &filter).await.map_err(api)?;
    let cases = Page::from_rows(rows, limit, |case: &Case| case.seq);
    let pending = refunds::list(
        &state.pool,
        &refunds::ListFilter {
            status: Some(RefundStatus::PendingApproval),
            ..Default::default()
        },
        PageRequest {
            limit: PENDING_REFUNDS_SHOWN,
            cursor: None,
        },
    )
    .await
    .map_err(api)?;
    let codes = bank_codes(&state).await?;
    let lang = console.lang;
    let body = html! {
        form.filters method="get" action="/console/cases" {
            div.field {
                label for="filter-status" { (console.t(T::Status)) }
                select #filter-status name="status" {
                    option value="" { (console.t(T::Any)) }
                    @for status in CaseStatus::ALL {
                        option value=(status.as_str()) selected[param(&query, "status") == Some(status.as_str())] {
                            (console.t(case_status_label(status.as_str())))
                        }
                    }
                }
            }
            div.field {
                label for="filter-kind" { (console.t(T::CaseKind)) }
                select #filter-kind name="kind" {
                    option value="" { (console.t(T::Any)) }
                    @for kind in CaseKind::ALL {
                        option value=(kind.as_str()) selected[param(&query, "kind") == Some(kind.as_str())] {
                            (console.t(case_kind_label(kind)))
                        }
                    }
                }
            }
            div.field {
                label for="filter-agency" { (console.t(T::Agency)) }
                input #filter-agency type="text" name="agency" value=(param(&query, "agency").unwrap_or(""))
                    placeholder="000.00.00.H12";
            }
            (bank_select(&console, "filter-bank", &codes, param(&query, "bank"), true))
            div.actions { button type="submit" { (console.t(T::Filter)) } }
        }
        @if cases.items.is_empty() {
            p { (console.t(T::CasesNone)) }
        } @else {
            div.table-wrap {
                table {
                    caption { (console.t(T::CasesCaption)) }
                    thead {
                        tr {
                            th scope="col" { (console.t(T::CaseOpenedAt)) }
                            th scope="col" { (console.t(T::CaseKind)) }
                            th scope="col" { (console.t(T::Status)) }
                            th scope="col" { (console.t(T::Agency)) }
                            th scope="col" { (console.t(T::Bank)) }
                            th scope="col" { (console.t(T::RecBankTxnId)) }
                            th scope="col" { (console.t(T::RecPaymentId)) }
                            th scope="col" .num { (console.t(T::Amount)) }
                        }
                    }
                    tbody {
                        @for case in &cases.items {
                            tr {
                                td { a href=(case_url(&case.id)) { (format::time(lang, case.opened_at)) } }
                                td { (kind_text(&console, &case.kind)) }
                                td { (console.t(case_status_label(&case.status))) }
                                td { (case.agency.as_deref().unwrap_or("")) }
                                td { (case.bank.as_deref().unwrap_or("")) }
                                td { (case.bank_txn_id.as_deref().unwrap_or("")) }
                                td { (case.payment_id.as_deref().unwrap_or("")) }
                                td.num { (money_text(lang, case.amount.as_deref())) }
                            }
                        }
                    }
                }
            }
            (pager(&console, "/console/cases", &query, cases.next_cursor.as_deref()))
        }
        section #refunds aria-labelledby="refunds-heading" {
            h2 #refunds-heading { (console.t(T::RefundsAwaiting)) }
            @if pending.items.is_empty() {
                p { (console.t(T::RefundsNoneAwaiting)) }
            } @else {
                (refunds_table(&console, &pending.items, false))
            }
        }
    };
    Ok(layout::page(&console, Nav::Cases, T::CasesTitle, body))
}

/// Refunds with, for those awaiting approval, what the signed-in key may do about them.
/// On a case's page (`of_case`), the columns the case already shows are left out.
fn refunds_table(console: &Console, items: &[Refund], of_case: bool) -> Markup {
    let lang = console.lang;
    html! {
        div.table-wrap {
            table {
                thead {
                    tr {
                        th scope="col" { (console.t(T::RefundRequestedAt)) }
                        th scope="col" { (console.t(T::RefundKind)) }
                        th scope="col" { (console.t(T::Status)) }
                        @if of_case {
                            th scope="col" { (console.t(T::RefundId)) }
                        } @else {
                            th scope="col" { (console.t(T::RecPaymentId)) }
                            th scope="col" { (console.t(T::RefundCase)) }
                            th scope="col" { (console.t(T::Agency)) }
                            th scope="col" { (console.t(T::Bank)) }
                        }
                        th scope="col" .num { (console.t(T::Amount)) }
                        th scope="col" { (console.t(T::RefundReason)) }
                        th scope="col" { (console.t(T::RefundRequestedBy)) }
                        th scope="col" { (console.t(T::CaseDecision)) }
                    }
                }
                tbody {
                    @for refund in items {
                        tr #{ "refund-" (refund.id) } {
                            td { (format::time(lang, refund.created_at)) }
                            td { (console.t(refund_kind_label(refund.kind))) }
                            td {
                                (console.t(refund_status_label(refund.status)))
                                " "
                                code data-refund-status=(refund.status.as_str()) { (refund.status.as_str()) }
                            }
                            @if of_case {
                                td { code { (refund.id) } }
                            } @else {
                                td { (refund.payment_id) }
                                td {
                                    @if let Some(case_id) = &refund.case_id {
                                        a href=(case_url(case_id)) { (case_id) }
                                    }
                                }
                                td { (refund.agency) }
                                td { (refund.bank) }
                            }
                            td.num { (format::money(lang, refund.amount.decimal())) }
                            td { (refund.reason) }
                            td { (actor_text(console, &refund.requested_by)) }
                            td {
                                @if refund.status == RefundStatus::PendingApproval {
                                    (decision(
                                        console,
                                        &format!("/console/refunds/{}", refund.id),
                                        &refund.requested_by,
                                        &refund.id,
                                    ))
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// What the signed-in key may do about something awaiting a second key (`action` is the
/// address before `/approve` and `/reject`): an admin other than the requester gets the
/// approve and reject forms; the requester is told that another admin must decide; an
/// auditor is told who may, with no button.
fn decision(console: &Console, action: &str, requested_by: &Value, id: &str) -> Markup {
    let requester = actor_text(console, requested_by);
    let mine = actor_key(requested_by) == Some(console.principal.key_id.as_str());
    let reason_id = format!("reason-{id}");
    html! {
        @if mine {
            p.waiting role="status" {
                (console.t(T::WaitingForOtherAdmin)) " " (requester)
            }
        } @else if console.is_admin() {
            div.decision {
                form method="post" action={ (action) "/approve" } {
                    (layout::csrf_field(console))
                    button type="submit" data-action="approve" { (console.t(T::Approve)) }
                }
                form method="post" action={ (action) "/reject" } {
                    (layout::csrf_field(console))
                    div.field {
                        label for=(reason_id) { (console.t(T::RejectReason)) }
                        input type="text" id=(reason_id) name="reason" required maxlength=(REASON_MAX_CHARS);
                    }
                    button type="submit" data-action="reject" { (console.t(T::Reject)) }
                }
            }
        } @else {
            p.waiting {
                (console.t(T::AwaitingAdminOtherThan)) " " (requester)
            }
        }
    }
}

/// `GET /console/cases/{id}`: the case, its resolution, its refunds, notes and history, and
/// the forms the signed-in key may use.
async fn case_page(
    console: Console,
    state: State,
    path: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let id = parse_case_id(&path).map_err(api)?;
    let case = store::get(&state.pool, id, None).await.map_err(api)?;
    let case_refunds: Vec<Refund> = match &case.payment_id {
        Some(payment_id) => {
            let filter = refunds::ListFilter {
                payment_id: Some(payment_id.clone()),
                ..Default::default()
            };
            let page = PageRequest {
                limit: CASE_REFUNDS_SHOWN,
                cursor: None,
            };
            refunds::list(&state.pool, &filter, page)
                .await
                .map_err(api)?
                .items
                .into_iter()
                .filter(|refund| refund.case_id.as_deref() == Some(case.id.as_str()))
                .collect()
        }
        None => Vec::new(),
    };
    // The history is what people did to the case and to its refunds, newest first.
    let mut targets = vec![format!("case:{}", case.id)];
    targets.extend(
        case_refunds
            .iter()
            .map(|refund| format!("refund:{}", refund.id)),
    );
    let mut history = Vec::new();
    for target in targets {
        let filter = AuditFilter {
            target: Some(target),
            ..Default::default()
        };
        let page = PageRequest {
            limit: HISTORY_SHOWN,
            cursor: None,
        };
        let entries = audit_store::list(&state.pool, &filter, page)
            .await
            .map_err(api)?;
        history.extend(entries.items);
    }
    history.sort_by_key(|entry| std::cmp::Reverse(entry.seq));
    history.truncate(HISTORY_SHOWN as usize);
    let lang = console.lang;
    let kind = CaseKind::parse(&case.kind).ok();
    let body = html! {
        p { a href="/console/cases" { (console.t(T::CasesBack)) } }
        p.subtitle { code { (case.id) } }
        dl.facts {
            dt { (console.t(T::CaseKind)) } dd { (kind_text(&console, &case.kind)) }
            dt { (console.t(T::Status)) } dd #case-status { (console.t(case_status_label(&case.status))) }
            dt { (console.t(T::Agency)) } dd { (case.agency.as_deref().unwrap_or("—")) }
            dt { (console.t(T::Bank)) } dd { (case.bank.as_deref().unwrap_or("—")) }
            dt { (console.t(T::RecBankTxnId)) } dd { (case.bank_txn_id.as_deref().unwrap_or("—")) }
            dt { (console.t(T::RecPaymentId)) } dd { (case.payment_id.as_deref().unwrap_or("—")) }
            dt { (console.t(T::Amount)) } dd { (money_text(lang, case.amount.as_deref())) }
            dt { (console.t(T::CaseOpenedAt)) } dd { (format::time(lang, case.opened_at)) }
            dt { (console.t(T::CaseOpenedBy)) } dd { (actor_text(&console, &case.opened_by)) }
        }
        @if let Some(resolution) = &case.resolution {
            section aria-labelledby="resolution-heading" {
                h2 #resolution-heading { (console.t(T::CaseResolution)) }
                dl.facts {
                    dt { (console.t(T::CaseResolutionKind)) } dd { (resolution_text(&console, &resolution.kind)) }
                    dt { (console.t(T::CaseResolutionAt)) } dd { (format::time(lang, resolution.at)) }
                    dt { (console.t(T::CaseResolutionBy)) } dd { (actor_text(&console, &resolution.by)) }
                    @if let Some(note) = &resolution.note {
                        dt { (console.t(T::CaseNote)) } dd { (note) }
                    }
                    @if let Some(payment_id) = &resolution.payment_id {
                        dt { (console.t(T::CaseAppliedTo)) } dd { (payment_id) }
                    }
                    @if let Some(refund_id) = &resolution.refund_id {
                        dt { (console.t(T::RefundId)) } dd { (refund_id) }
                    }
                    @if let Some(approved_by) = &resolution.approved_by {
                        dt { (console.t(T::CaseApprovedBy)) } dd { (actor_text(&console, approved_by)) }
                    }
                }
                @if case.status == CaseStatus::PendingApproval.as_str() {
                    (decision(&console, &case_url(&case.id), &resolution.by, &case.id))
                }
            }
        }
        @if !case_refunds.is_empty() {
            section aria-labelledby="case-refunds-heading" {
                h2 #case-refunds-heading { (console.t(T::CaseRefunds)) }
                (refunds_table(&console, &case_refunds, true))
            }
        }
        @if console.is_admin() && case.status == CaseStatus::Open.as_str() {
            @if let Some(kind) = kind {
                (resolve_form(&console, &case, kind))
            }
        }
        section aria-labelledby="notes-heading" {
            h2 #notes-heading { (console.t(T::CaseNotes)) }
            @if case.notes.is_empty() {
                p { (console.t(T::CaseNoNotes)) }
            } @else {
                ol.notes {
                    @for note in &case.notes {
                        li {
                            p.meta { (format::time(lang, note.at)) " · " (actor_text(&console, &note.by)) }
                            p.message { (note.message) }
                        }
                    }
                }
            }
            form.stack method="post" action={ (case_url(&case.id)) "/notes" } {
                (layout::csrf_field(&console))
                div.field {
                    label for="note-message" { (console.t(T::CaseAddNoteLabel)) }
                    textarea #note-message name="message" rows="3" required maxlength=(MESSAGE_MAX_CHARS) {}
                }
                button type="submit" { (console.t(T::CaseAddNote)) }
            }
        }
        section aria-labelledby="history-heading" {
            h2 #history-heading { (console.t(T::CaseHistory)) }
            @if history.is_empty() {
                p { (console.t(T::Nothing)) }
            } @else {
                div.table-wrap {
                    table {
                        thead {
                            tr {
                                th scope="col" { (console.t(T::Time)) }
                                th scope="col" { (console.t(T::AuditAction)) }
                                th scope="col" { (console.t(T::AuditActor)) }
                                th scope="col" { (console.t(T::Details)) }
                            }
                        }
                        tbody {
                            @for entry in &history {
                                tr {
                                    td { (format::time(lang, entry.at)) }
                                    td { code { (entry.action) } }
                                    td {
                                        (actor_text(&console, &serde_json::to_value(&entry.actor).unwrap_or(Value::Null)))
                                    }
                                    td { code.detail { (entry.detail.to_string()) } }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page(&console, Nav::Cases, T::CaseTitle, body))
}

/// The resolve form of an open case (admins only): the resolutions its kind allows.
fn resolve_form(console: &Console, case: &Case, kind: CaseKind) -> Markup {
    let choices: Vec<(&str, T)> = if kind.in_suspense() {
        let mut choices = vec![("refund", T::ResolutionRefund)];
        if kind == CaseKind::OrderClosed {
            choices.push(("apply", T::ResolutionApply));
        }
        choices
    } else {
        vec![("no_action", T::ResolutionNoAction)]
    };
    html! {
        section aria-labelledby="resolve-heading" {
            h2 #resolve-heading { (console.t(T::CaseResolve)) }
            @if kind.in_suspense() {
                p { (console.t(T::CaseResolveFourEyes)) }
            }
            form #resolve .stack method="post" action={ (case_url(&case.id)) "/resolve" } {
                (layout::csrf_field(console))
                div.field {
                    label for="resolve-resolution" { (console.t(T::CaseResolutionKind)) }
                    select #resolve-resolution name="resolution" required {
                        @for (value, label) in &choices {
                            option value=(value) { (console.t(*label)) }
                        }
                    }
                }
                div.field {
                    label for="resolve-note" { (console.t(T::CaseResolveNoteLabel)) }
                    textarea #resolve-note name="note" rows="3" required maxlength=(MESSAGE_MAX_CHARS) {}
                }
                @if kind == CaseKind::OrderClosed {
                    div.field {
                        label for="resolve-payment" { (console.t(T::CaseApplyPaymentLabel)) }
                        input #resolve-payment type="text" name="payment_id" maxlength="64";
                    }
                }
                button type="submit" { (console.t(T::CaseResolve)) }
            }
        }
    }
}

#[derive(Deserialize)]
struct NoteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    message: String,
}

/// `POST /console/cases/{id}/notes`: `store::add_note`, as `POST /v1/cases/{id}/notes`.
async fn add_note(
    console: Console,
    state: State,
    path: web::Path<String>,
    form: web::Form<NoteForm>,
) -> Result<HttpResponse, ConsoleError> {
    console.check_csrf(&form.csrf)?;
    let id = parse_case_id(&path).map_err(api)?;
    let body = object(&[("message", &form.message)]);
    let mut v = Validator::new();
    let message = v.required(&body, "message", text(1, MESSAGE_MAX_CHARS));
    let message = v.finish_with(|| message).map_err(api)?;
    store::add_note(&state.pool, id, None, &message, &console.actor())
        .await
        .map_err(api)?;
    Ok(see_other(&case_url(id)))
}

#[derive(Deserialize)]
struct ResolveForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    resolution: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    payment_id: String,
}

/// `POST /console/cases/{id}/resolve` (admin): `store::resolve`, with the body validated by
/// the API's own `parse_resolution`.
async fn resolve(
    console: Console,
    state: State,
    path: web::Path<String>,
    form: web::Form<ResolveForm>,
) -> Result<HttpResponse, ConsoleError> {
    console.check_csrf(&form.csrf)?;
    console.require_admin()?;
    let id = parse_case_id(&path).map_err(api)?;
    let body = object(&[
        ("resolution", &form.resolution),
        ("note", &form.note),
        ("payment_id", form.payment_id.trim()),
    ]);
    let request = parse_resolution(&body).map_err(api)?;
    store::resolve(&state.pool, id, &request, &console.actor())
        .await
        .map_err(api)?;
    Ok(see_other(&case_url(id)))
}

#[derive(Deserialize)]
struct DecisionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

/// `POST /console/cases/{id}/approve` (admin, not the requester): `store::approve`.
async fn approve_case(
    console: Console,
    state: State,
    path: web::Path<String>,
    form: web::Form<DecisionForm>,
) -> Result<HttpResponse, ConsoleError> {
    console.check_csrf(&form.csrf)?;
    console.require_admin()?;
    let id = parse_case_id(&path).map_err(api)?;
    store::approve(&state.pool, id, &console.actor())
        .await
        .map_err(api)?;
    Ok(see_other(&case_url(id)))
}

/// `POST /console/cases/{id}/reject` (admin, not the requester): `store::reject`.
async fn reject_case(
    console: Console,
    state: State,
    path: web::Path<String>,
    form: web::Form<DecisionForm>,
) -> Result<HttpResponse, ConsoleError> {
    console.check_csrf(&form.csrf)?;
    console.require_admin()?;
    let id = parse_case_id(&path).map_err(api)?;
    let reason = reason_of(&form.reason)?;
    store::reject(&state.pool, id, &reason, &console.actor())
        .await
        .map_err(api)?;
    Ok(see_other(&case_url(id)))
}

/// Where a refund decision leads: the refund's case, or the queue's refunds.
fn after_refund(refund: &Refund) -> String {
    match &refund.case_id {
        Some(case_id) => case_url(case_id),
        None => "/console/cases#refunds".to_owned(),
    }
}

/// `POST /console/refunds/{id}/approve` (admin, not the requester): `refunds::approve`, as
/// `POST /v1/refunds/{id}/approve`.
async fn approve_refund(
    console: Console,
    state: State,
    path: web::Path<String>,
    form: web::Form<DecisionForm>,
) -> Result<HttpResponse, ConsoleError> {
    console.check_csrf(&form.csrf)?;
    console.require_admin()?;
    let id = parse_refund_id(&path).map_err(api)?;
    let refund = refunds::approve(&state.pool, id, &console.principal, &console.actor())
        .await
        .map_err(api)?;
    Ok(see_other(&after_refund(&refund)))
}

/// `POST /console/refunds/{id}/reject` (admin, not the requester): `refunds::reject`.
async fn reject_refund(
    console: Console,
    state: State,
    path: web::Path<String>,
    form: web::Form<DecisionForm>,
) -> Result<HttpResponse, ConsoleError> {
    console.check_csrf(&form.csrf)?;
    console.require_admin()?;
    let id = parse_refund_id(&path).map_err(api)?;
    let reason = reason_of(&form.reason)?;
    let refund = refunds::reject(
        &state.pool,
        id,
        &console.principal,
        &console.actor(),
        &reason,
    )
    .await
    .map_err(api)?;
    Ok(see_other(&after_refund(&refund)))
}
