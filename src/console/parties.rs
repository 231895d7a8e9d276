//! Agencies and banks: how far each has come in joining (created, first order or callback,
//! first paid order, last activity, disabled), and the share of agencies that had an order
//! paid in the last 30 days. Last activity is read as the admin API reads it: an agency's newest
//! order, a bank's newest callback or rejected callback. Each party's conformance checklist
//! is shown beside it, and sandbox parties are marked (and left out of the share).

use std::collections::HashSet;

use actix_web::{web, HttpResponse};
use maud::{html, Markup};
use time::OffsetDateTime;

use super::format;
use super::i18n::{Lang, T};
use super::layout::{self, Nav};
use super::session::{Console, ConsoleError};
use crate::checklist::{AgencyStep, BankStep};
use crate::http::State;

/// The most agencies or banks the page lists; the country has a few hundred agencies and a few
/// dozen banks.
const MAX_ROWS: i64 = 1_000;
/// The window of the share of active agencies.
const ACTIVE_WINDOW_DAYS: i32 = 30;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/console/parties", web::get().to(parties));
}

struct Party {
    code: String,
    name: String,
    created_at: OffsetDateTime,
    first: Option<OffsetDateTime>,
    first_paid: Option<OffsetDateTime>,
    last: Option<OffsetDateTime>,
    disabled: bool,
    sandbox: bool,
    /// The checklist's steps, each with whether it is done.
    steps: Vec<(&'static str, bool)>,
}

impl Party {
    /// A row of the page's queries, with the party's done steps among `all`.
    fn from_row(
        row: &tokio_postgres::Row,
        all: &[&'static str],
        done: &HashSet<(String, String)>,
    ) -> Party {
        let code: String = row.get(0);
        let steps = all
            .iter()
            .map(|step| (*step, done.contains(&(code.clone(), (*step).to_owned()))))
            .collect();
        Party {
            name: row.get(1),
            created_at: row.get(2),
            first: row.get(3),
            first_paid: row.get(4),
            last: row.get(5),
            disabled: row.get(6),
            sandbox: row.get(7),
            steps,
            code,
        }
    }
}

async fn parties(console: Console, state: State) -> Result<HttpResponse, ConsoleError> {
    let lang = console.lang;
    let mut client = state.pool.get().await?;
    let transaction = crate::db::snapshot(&mut client).await?;
    // Each subquery is one probe of an index on (agency_code, seq), (bank_code, id) or
    // (bank_code, paid_at); the first paid order walks an agency's orders from its oldest until
    // one is paid, which for a live agency is among the first. A bank's first money counts a
    // payment that went to suspense too: the bank paid.
    let agencies = transaction
        .query(
            "SELECT a.code, a.name, a.created_at,
                    (SELECT p.created_at FROM payments p WHERE p.agency_code = a.code
                     ORDER BY p.seq LIMIT 1),
                    (SELECT p.paid_at FROM payments p
                     WHERE p.agency_code = a.code AND p.status = 'paid'
                     ORDER BY p.seq LIMIT 1),
                    (SELECT p.created_at FROM payments p WHERE p.agency_code = a.code
                     ORDER BY p.seq DESC LIMIT 1),
                    a.disabled, a.sandbox
             FROM agencies a ORDER BY a.code LIMIT $1",
            &[&MAX_ROWS],
        )
        .await?;
    let banks = transaction
        .query(
            "SELECT b.code, b.name, b.created_at,
                    (SELECT c.received_at FROM bank_callbacks c
                     WHERE c.bank_code = b.code AND c.source = 'callback'
                     ORDER BY c.id LIMIT 1),
                    (SELECT c.paid_at FROM bank_callbacks c
                     WHERE c.bank_code = b.code AND c.outcome IN ('paid', 'exception')
                     ORDER BY c.paid_at LIMIT 1),
                    greatest(
                        (SELECT c.received_at FROM bank_callbacks c
                         WHERE c.bank_code = b.code AND c.source = 'callback'
                         ORDER BY c.id DESC LIMIT 1),
                        (SELECT e.created_at FROM callback_exceptions e
                         WHERE e.bank_code = b.code AND e.callback_id IS NULL
                         ORDER BY e.id DESC LIMIT 1)),
                    b.disabled, b.sandbox
             FROM banks b ORDER BY b.code LIMIT $1",
            &[&MAX_ROWS],
        )
        .await?;
    // Orders paid in the window, through the partial index on paid_at (migration 0012).
    let share = transaction
        .query_one(
            "SELECT
                 (SELECT count(*) FROM agencies a
                  WHERE NOT a.disabled AND NOT a.sandbox AND EXISTS (
                      SELECT 1 FROM payments p
                      WHERE p.status = 'paid' AND p.agency_code = a.code
                        AND p.paid_at >= now() - make_interval(days => $1))),
                 (SELECT count(*) FROM agencies WHERE NOT disabled AND NOT sandbox)",
            &[&ACTIVE_WINDOW_DAYS],
        )
        .await?;
    // The checklists' rows: at most eight per party.
    let done = |rows: Vec<tokio_postgres::Row>| -> HashSet<(String, String)> {
        rows.iter().map(|row| (row.get(0), row.get(1))).collect()
    };
    let agency_steps = done(
        transaction
            .query("SELECT agency_code, step FROM agency_checklist", &[])
            .await?,
    );
    let bank_steps = done(
        transaction
            .query("SELECT bank_code, step FROM bank_checklist", &[])
            .await?,
    );
    transaction.commit().await?;
    let all_agency: Vec<&'static str> = AgencyStep::ALL.iter().map(|s| s.as_str()).collect();
    let all_bank: Vec<&'static str> = BankStep::ALL.iter().map(|s| s.as_str()).collect();
    let agencies: Vec<Party> = agencies
        .iter()
        .map(|row| Party::from_row(row, &all_agency, &agency_steps))
        .collect();
    let banks: Vec<Party> = banks
        .iter()
        .map(|row| Party::from_row(row, &all_bank, &bank_steps))
        .collect();
    let (active, enabled): (i64, i64) = (share.get(0), share.get(1));

    let body = html! {
        ul class="cards" {
            li class="card" {
                span class="label" { (T::Share30.get(lang)) }
                span class="value" id="active-share" { (format::percent(lang, active, enabled)) }
                span class="label" {
                    (format::count(lang, active)) " / " (format::count(lang, enabled))
                }
            }
        }
        h2 id="agencies" { (T::Agencies.get(lang)) }
        (table(lang, T::Agencies, T::FirstOrder, &agencies))
        h2 id="banks" { (T::Banks.get(lang)) }
        (table(lang, T::Banks, T::FirstCallback, &banks))
    };
    Ok(layout::page(&console, Nav::Parties, T::PartiesTitle, body))
}

fn when(lang: Lang, at: Option<OffsetDateTime>) -> Markup {
    html! {
        @match at {
            Some(at) => (format::time(lang, at)),
            None => span class="muted" { (T::Never.get(lang)) },
        }
    }
}

fn table(lang: Lang, caption: T, first: T, rows: &[Party]) -> Markup {
    html! {
        div class="table-wrap" {
            table {
                caption { (caption.get(lang)) " — " (T::VietnamTime.get(lang)) }
                thead {
                    tr {
                        th scope="col" { (T::Code.get(lang)) }
                        th scope="col" { (T::Name.get(lang)) }
                        th scope="col" { (T::CreatedAt.get(lang)) }
                        th scope="col" { (first.get(lang)) }
                        th scope="col" { (T::FirstPaid.get(lang)) }
                        th scope="col" { (T::LastActivity.get(lang)) }
                        th scope="col" { (T::Status.get(lang)) }
                        th scope="col" { (T::Checklist.get(lang)) }
                    }
                }
                tbody {
                    @if rows.is_empty() {
                        tr { td colspan="8" { (T::Nothing.get(lang)) } }
                    }
                    @for party in rows {
                        tr data-code=(party.code) {
                            th scope="row" class="mono" { (party.code) }
                            td {
                                (party.name)
                                @if party.sandbox {
                                    " " span class="tag" { (T::Sandbox.get(lang)) }
                                }
                            }
                            td { (format::time(lang, party.created_at)) }
                            td { (when(lang, party.first)) }
                            td { (when(lang, party.first_paid)) }
                            td { (when(lang, party.last)) }
                            td {
                                @if party.disabled {
                                    span class="status-bad" { (T::Disabled.get(lang)) }
                                } @else {
                                    (T::Active.get(lang))
                                }
                            }
                            td { (checklist(lang, &party.steps)) }
                        }
                    }
                }
            }
        }
    }
}

/// A checklist in a cell: how many steps are done (or "ready"), opening to every step.
fn checklist(lang: Lang, steps: &[(&'static str, bool)]) -> Markup {
    let done = steps.iter().filter(|(_, done)| *done).count();
    html! {
        details class="checklist" {
            summary {
                @if done == steps.len() {
                    span class="status-ok" { "✓ " (T::Ready.get(lang)) }
                } @else {
                    (done) " / " (steps.len())
                }
            }
            ul {
                @for (step, done) in steps {
                    li {
                        @if *done { "✓ " } @else { span class="muted" { "○ " } }
                        span class="mono" { (step) }
                        " — " (if *done { T::Done.get(lang) } else { T::NotYet.get(lang) })
                    }
                }
            }
        }
    }
}
