//! The audit page: the audit trail newest first, filtered like `GET /v1/audit` (action, key,
//! target, days), paged by position; the verdict on the audit chain (the same verification as
//! `GET /v1/audit/verify`); and, on request, the ledger's verification (`GET /v1/ledger/verify`),
//! which reads the whole ledger and so runs only when asked for.

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use maud::{html, Markup};
use time::Date;

use super::format;
use super::i18n::{Lang, T};
use super::layout::{self, Nav, NoticeKind};
use super::session::{api, Console, ConsoleError};
use crate::audit::store::{AuditFilter, AuditVerification};
use crate::audit::{Action, AuditEntry};
use crate::http::pagination::{encode_cursor, PageRequest};
use crate::http::State;
use crate::ledger::http::Keys;
use crate::ledger::store::Verification;

/// Entries on a page.
const PAGE_ENTRIES: i64 = 50;
/// The longest key id or target worth looking up (targets are at most 200 characters).
const MAX_FILTER_CHARS: usize = 200;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/console/audit", web::get().to(audit));
}

/// The filters as the form sent them; anything invalid is reported, not guessed.
#[derive(Debug, Default)]
struct Filters {
    action: String,
    key_id: String,
    target: String,
    from: String,
    to: String,
}

impl Filters {
    fn read(query: &HashMap<String, String>) -> Filters {
        let get = |name: &str| {
            query
                .get(name)
                .map(|value| value.trim().chars().take(MAX_FILTER_CHARS).collect())
                .unwrap_or_default()
        };
        Filters {
            action: get("action"),
            key_id: get("key_id"),
            target: get("target"),
            from: get("from"),
            to: get("to"),
        }
    }

    /// The store's filter, or the names of the fields that are not valid.
    fn to_filter(&self) -> Result<AuditFilter, Vec<&'static str>> {
        let mut bad = Vec::new();
        let non_empty = |text: &str| (!text.is_empty()).then(|| text.to_owned());
        let action = non_empty(&self.action);
        if action
            .as_deref()
            .is_some_and(|a| Action::parse(a).is_none())
        {
            bad.push("action");
        }
        let day = |text: &str, name: &'static str, bad: &mut Vec<&'static str>| -> Option<Date> {
            if text.is_empty() {
                return None;
            }
            let parsed = crate::timefmt::parse_date(text).ok();
            if parsed.is_none() {
                bad.push(name);
            }
            parsed
        };
        let from = day(&self.from, "from", &mut bad);
        let to = day(&self.to, "to", &mut bad);
        if bad.is_empty() {
            Ok(AuditFilter {
                action,
                key_id: non_empty(&self.key_id),
                target: non_empty(&self.target),
                // Days are Vietnam business days; `to` includes its whole day.
                from: from.map(|d| crate::reconciliation::engine::business_day(d).0),
                to: to.map(|d| crate::reconciliation::engine::business_day(d).1),
            })
        } else {
            Err(bad)
        }
    }

    fn pairs(&self) -> [(&'static str, &str); 5] {
        [
            ("action", &self.action),
            ("key_id", &self.key_id),
            ("target", &self.target),
            ("from", &self.from),
            ("to", &self.to),
        ]
    }
}

async fn audit(
    console: Console,
    state: State,
    keys: Keys,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ConsoleError> {
    let lang = console.lang;
    let filters = Filters::read(&query);
    let cursor = query.get("cursor").and_then(|c| decode(c));
    let verify_ledger = query.get("verify_ledger").is_some_and(|v| v == "1");

    let chain = crate::audit::store::verify(&state.pool).await?;
    let ledger = if verify_ledger {
        Some(
            crate::ledger::store::verify(&state.pool, &keys, None)
                .await
                .map_err(api)?,
        )
    } else {
        None
    };
    let (entries, next, invalid) = match filters.to_filter() {
        Ok(filter) => {
            let page = crate::audit::store::list(
                &state.pool,
                &filter,
                PageRequest {
                    limit: PAGE_ENTRIES,
                    cursor,
                },
            )
            .await?;
            (page.items, page.next_cursor, Vec::new())
        }
        Err(bad) => (Vec::new(), None, bad),
    };

    let base = layout::query(&filters.pairs());
    let with = |extra: (&'static str, &str)| {
        let mut pairs = filters.pairs().to_vec();
        pairs.push(extra);
        format!("/console/audit{}", layout::query(&pairs))
    };
    let next_href = next.as_deref().map(|cursor| with(("cursor", cursor)));
    let first_href = cursor.map(|_| format!("/console/audit{base}"));
    let actions: Vec<(String, String)> = Action::ALL
        .iter()
        .map(|a| (a.as_str().to_owned(), a.as_str().to_owned()))
        .collect();

    let body = html! {
        section aria-labelledby="verification" {
            h2 id="verification" { (T::Verification.get(lang)) }
            (audit_verdict(lang, &chain))
            @if let Some(ledger) = &ledger {
                (ledger_verdict(lang, ledger))
            } @else {
                p { a href=(with(("verify_ledger", "1"))) { (T::VerifyLedger.get(lang)) } }
            }
        }
        h2 { (T::AuditEntries.get(lang)) }
        @if !invalid.is_empty() {
            (layout::notice(NoticeKind::Error, &format!("{}: {}", T::InvalidFilters.get(lang), invalid.join(", "))))
        }
        form class="filters" method="get" action="/console/audit" {
            (layout::select(lang, "action", T::AuditAction.get(lang), &actions, &filters.action))
            (layout::input("key_id", T::AuditKeyId.get(lang), "text", &filters.key_id))
            (layout::input("target", T::AuditTarget.get(lang), "text", &filters.target))
            (layout::input("from", T::AuditFrom.get(lang), "date", &filters.from))
            (layout::input("to", T::AuditTo.get(lang), "date", &filters.to))
            div class="actions" {
                button type="submit" { (T::Filter.get(lang)) }
                a href="/console/audit" { (T::ClearFilters.get(lang)) }
            }
        }
        (entries_table(lang, &entries))
        (layout::pager(lang, first_href.as_deref(), next_href.as_deref()))
    };
    Ok(layout::page(&console, Nav::Audit, T::AuditTitle, body))
}

/// The position a `cursor` of the API's pager names; a cursor that is not one shows the first
/// page.
fn decode(cursor: &str) -> Option<i64> {
    let mut v = crate::http::body::Validator::new();
    let query = HashMap::from([("cursor".to_owned(), cursor.to_owned())]);
    let page = PageRequest::parse(&query, &mut v);
    // A cursor this service issued round-trips; anything else is ignored.
    page.cursor.filter(|seq| encode_cursor(*seq) == cursor)
}

fn audit_verdict(lang: Lang, chain: &AuditVerification) -> Markup {
    html! {
        dl class="verdict" id="audit-verdict" {
            dt { (T::AuditChain.get(lang)) }
            dd {
                @if chain.ok {
                    span class="status-ok" { "✔ " (T::ChainIntact.get(lang)) }
                } @else {
                    span class="status-bad" { "✘ " (T::ChainBroken.get(lang)) }
                }
                " · " (T::ChainEntries.get(lang)) ": " (format::count(lang, chain.entries))
                @if let Some(seq) = chain.broken_seq {
                    " · " (T::ChainFirstBad.get(lang)) ": " (seq)
                }
                @if let Some(reason) = &chain.reason {
                    " — " (reason)
                }
            }
        }
    }
}

fn ledger_verdict(lang: Lang, ledger: &Verification) -> Markup {
    html! {
        dl class="verdict" id="ledger-verdict" {
            dt { (T::LedgerChain.get(lang)) }
            dd {
                @if ledger.ok {
                    span class="status-ok" { "✔ " (T::ChainIntact.get(lang)) }
                } @else {
                    span class="status-bad" { "✘ " (T::ChainBroken.get(lang)) }
                }
                " · " (T::LedgerTransactions.get(lang)) ": " (format::count(lang, ledger.transactions))
                " · " (T::Seals.get(lang)) ": " (format::count(lang, ledger.seals))
                @if let Some(broken) = &ledger.broken_seal {
                    " · " (T::ChainFirstBad.get(lang)) ": " (broken.seq) " — " (broken.reason)
                }
            }
        }
    }
}

fn entries_table(lang: Lang, entries: &[AuditEntry]) -> Markup {
    html! {
        div class="table-wrap" {
            table {
                caption { (T::AuditEntries.get(lang)) " — " (T::VietnamTime.get(lang)) }
                thead {
                    tr {
                        th scope="col" class="num" { "#" }
                        th scope="col" { (T::Time.get(lang)) }
                        th scope="col" { (T::AuditActor.get(lang)) }
                        th scope="col" { (T::AuditVia.get(lang)) }
                        th scope="col" { (T::AuditAction.get(lang)) }
                        th scope="col" { (T::AuditTarget.get(lang)) }
                        th scope="col" { (T::Details.get(lang)) }
                    }
                }
                tbody {
                    @if entries.is_empty() {
                        tr { td colspan="7" { (T::Nothing.get(lang)) } }
                    }
                    @for entry in entries {
                        tr {
                            td class="num" { (entry.seq) }
                            td class="nowrap" { (format::time(lang, entry.at)) }
                            td {
                                @match (&entry.actor.label, &entry.actor.key_id) {
                                    (Some(label), Some(key)) => { (label) " " span class="mono" { "(" (key) ")" } " " }
                                    (Some(label), None) => { (label) " " }
                                    (None, Some(key)) => { span class="mono" { (key) } " " }
                                    (None, None) => {}
                                }
                                span class="tag" { (entry.actor.role) }
                            }
                            td { (entry.actor.via.as_str()) }
                            td class="mono" { (entry.action) }
                            td class="mono" { (entry.target) }
                            td class="mono wrap" { (entry.detail.to_string()) }
                        }
                    }
                }
            }
        }
    }
}
