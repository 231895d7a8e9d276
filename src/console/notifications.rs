//! The notifications page: the events waiting for delivery and those whose every attempt failed
//! (dead), filtered by status, agency and order; and the redelivery an admin may ask for, the
//! same `store::redeliver` as `POST /v1/events/{id}/redeliver`, recorded in the audit trail.

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use maud::{html, Markup};
use serde::Deserialize;

use super::format;
use super::i18n::T;
use super::layout::{self, Nav, NoticeKind};
use super::reconciliation::{pager, param};
use super::session::{api, see_other, Console, ConsoleError};
use crate::domain::{AgencyCode, EventId};
use crate::http::body::Validator;
use crate::http::pagination::{Page, PageRequest};
use crate::http::{QueryMap, State};
use crate::notifications::store::{self, EventFilter, EventItem, EventStatus};

/// Events per list: on the overview of both lists, and per page of one.
const PAGE_ROWS: i64 = 50;
/// The statuses the filter offers, in the order an operator cares about them.
const STATUSES: [EventStatus; 3] = [
    EventStatus::Dead,
    EventStatus::Pending,
    EventStatus::Delivered,
];

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/console/notifications", web::get().to(events))
        .route(
            "/console/notifications/{id}/redeliver",
            web::post().to(redeliver),
        );
}

fn status_label(status: EventStatus) -> T {
    match status {
        EventStatus::Pending => T::NtfStatusPending,
        EventStatus::Delivered => T::NtfStatusDelivered,
        EventStatus::Dead => T::NtfStatusDead,
    }
}

/// `GET /console/notifications`: with `?status=`, that status's events page by page; without,
/// the newest dead events and the newest pending ones. `agency` and `payment_id` narrow both.
async fn events(
    console: Console,
    state: State,
    query: QueryMap,
) -> Result<HttpResponse, ConsoleError> {
    let mut v = Validator::new();
    let page = PageRequest::parse(&query, &mut v);
    let status = param(&query, "status").and_then(|s| {
        v.check(
            "status",
            EventStatus::parse(s).ok_or_else(|| "must be pending, delivered or dead".to_owned()),
        )
    });
    let agency = param(&query, "agency").and_then(|a| v.check("agency", AgencyCode::parse(a)));
    v.finish().map_err(api)?;
    let limit = if query.contains_key("limit") {
        page.limit
    } else {
        PAGE_ROWS
    };
    let page = PageRequest {
        limit,
        cursor: page.cursor,
    };
    let filter = |status| EventFilter {
        agency: agency.as_ref(),
        payment_id: param(&query, "payment_id"),
        status: Some(status),
    };
    let lists: Vec<(EventStatus, Page<EventItem>)> = match status {
        Some(status) => vec![(
            status,
            store::list(&state.pool, &filter(status), page)
                .await
                .map_err(api)?,
        )],
        None => {
            let first = PageRequest {
                limit,
                cursor: None,
            };
            let mut lists = Vec::new();
            for status in [EventStatus::Dead, EventStatus::Pending] {
                let events = store::list(&state.pool, &filter(status), first)
                    .await
                    .map_err(api)?;
                lists.push((status, events));
            }
            lists
        }
    };
    let body = html! {
        @if let Some(id) = param(&query, "redelivered") {
            (layout::notice(NoticeKind::Success, &format!("{} {id}", console.t(T::NtfRedelivered))))
        }
        form.filters method="get" action="/console/notifications" {
            div.field {
                label for="filter-status" { (console.t(T::Status)) }
                select #filter-status name="status" {
                    option value="" { (console.t(T::NtfDeadAndPending)) }
                    @for choice in STATUSES {
                        option value=(choice.as_str()) selected[status == Some(choice)] {
                            (console.t(status_label(choice)))
                        }
                    }
                }
            }
            div.field {
                label for="filter-agency" { (console.t(T::Agency)) }
                input #filter-agency type="text" name="agency" value=(param(&query, "agency").unwrap_or(""))
                    placeholder="000.00.00.H12";
            }
            div.field {
                label for="filter-payment" { (console.t(T::RecPaymentId)) }
                input #filter-payment type="text" name="payment_id" value=(param(&query, "payment_id").unwrap_or(""));
            }
            div.actions { button type="submit" { (console.t(T::Filter)) } }
        }
        @for (list_status, events) in &lists {
            section aria-labelledby={ "events-" (list_status.as_str()) } {
                h2 #{ "events-" (list_status.as_str()) } { (console.t(status_label(*list_status))) }
                @if events.items.is_empty() {
                    p { (console.t(T::NtfNone)) }
                } @else {
                    (events_table(&console, &events.items))
                    @if status.is_some() {
                        (pager(&console, "/console/notifications", &query, events.next_cursor.as_deref()))
                    } @else if events.next_cursor.is_some() {
                        p {
                            a href=(all_of(&query, *list_status)) { (console.t(T::NtfShowAll)) }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page(
        &console,
        Nav::Notifications,
        T::NtfTitle,
        body,
    ))
}

/// The address of every event of `status`, with the page's other filters.
fn all_of(query: &HashMap<String, String>, status: EventStatus) -> String {
    let agency = param(query, "agency").unwrap_or("");
    let payment_id = param(query, "payment_id").unwrap_or("");
    format!(
        "/console/notifications{}",
        layout::query(&[
            ("status", status.as_str()),
            ("agency", agency),
            ("payment_id", payment_id),
        ])
    )
}

fn events_table(console: &Console, items: &[EventItem]) -> Markup {
    let lang = console.lang;
    html! {
        div.table-wrap {
            table {
                thead {
                    tr {
                        th scope="col" { (console.t(T::NtfEvent)) }
                        th scope="col" { (console.t(T::NtfType)) }
                        th scope="col" { (console.t(T::RecPaymentId)) }
                        th scope="col" { (console.t(T::Status)) }
                        th scope="col" .num { (console.t(T::NtfAttempts)) }
                        th scope="col" { (console.t(T::NtfLastError)) }
                        th scope="col" { (console.t(T::NtfNextAttempt)) }
                        th scope="col" { (console.t(T::NtfDeliveredAt)) }
                        @if console.is_admin() {
                            th scope="col" { (console.t(T::NtfAction)) }
                        }
                    }
                }
                tbody {
                    @for event in items {
                        tr {
                            td { code { (event.id.as_str()) } }
                            td { (event.event_type) }
                            td { (event.payment_id.as_str()) }
                            td { (console.t(status_label(event.status))) }
                            td.num { (format::count(lang, i64::from(event.attempts))) }
                            td { (event.last_error.as_deref().unwrap_or("")) }
                            td { @if let Some(at) = event.next_attempt_at { (format::time(lang, at)) } }
                            td { @if let Some(at) = event.delivered_at { (format::time(lang, at)) } }
                            @if console.is_admin() {
                                td {
                                    form method="post" action={ "/console/notifications/" (event.id.as_str()) "/redeliver" } {
                                        (layout::csrf_field(console))
                                        button type="submit" aria-label={ (console.t(T::NtfRedeliver)) " " (event.id.as_str()) } {
                                            (console.t(T::NtfRedeliver))
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
struct RedeliverForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /console/notifications/{id}/redeliver` (admin): the event is pending again with a
/// fresh schedule, due now; the audit trail records the redelivery.
async fn redeliver(
    console: Console,
    state: State,
    path: web::Path<String>,
    form: web::Form<RedeliverForm>,
) -> Result<HttpResponse, ConsoleError> {
    console.check_csrf(&form.csrf)?;
    console.require_admin()?;
    // Any text is looked up as it is, as the API does: one that is no event's id finds no row.
    let id = EventId::from_trusted(path.into_inner());
    store::redeliver(&state.pool, &id, None, Some(&console.actor()))
        .await
        .map_err(api)?;
    Ok(see_other(&format!(
        "/console/notifications{}",
        layout::query(&[("redelivered", id.as_str())])
    )))
}
