//! The overview: today's paid orders (Vietnam business day) in total, by obligation, bank and
//! agency, and per hour as a bar chart drawn on the server; and what needs attention (open
//! cases, refunds awaiting approval, failed notifications, ledger transactions not yet sealed).
//!
//! The figures live in one fragment, which `GET /console/live` sends again over server-sent
//! events whenever something changed; the page works the same without the script, on reload.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use futures_util::stream;
use maud::{html, Markup};
use rust_decimal::Decimal;
use time::{Date, OffsetDateTime};

use super::format;
use super::i18n::{Lang, T};
use super::layout::{self, Nav};
use super::session::{Console, ConsoleError};
use crate::domain::money::Totals;
use crate::http::{AppState, State};
use crate::reconciliation::engine::business_day;
use crate::reconciliation::model::DailyReport;

/// How often an open stream asks the database whether anything changed.
const POLL_INTERVAL_MS: u64 = 1_000;
/// The figures are sent again at least this often even when the change marker stayed the same:
/// a few changes (a refund the bank completed) leave no trace the marker reads.
const REFRESH_EVERY_POLLS: u32 = 30;
/// A stream ends after this long; the browser's EventSource opens a new one by itself, so a
/// long-open page never holds one stream (and its session check) forever.
const STREAM_MAX_S: u64 = 600;
/// The browser waits this long before reconnecting a stream that ended.
const RETRY_MS: u64 = 2_000;

/// Set when the process begins a graceful stop: every live stream then ends at its next poll,
/// so that open consoles do not hold the stop up until its timeout (the browser reconnects to
/// another replica by itself). One process serves one app, so one flag is enough.
static STOPPING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Ends every live stream of this process within a poll interval; call it when a graceful stop
/// begins.
pub fn end_live_streams() {
    STOPPING.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// How long a replica's figures are served without asking whether anything changed.
const FIGURES_FRESH_MS: u64 = 1_000;

/// This replica's latest overview figures, shared by every page view and live stream, so that
/// however many consoles are open the day's totals are aggregated at most once per change (with a
/// busy day of 100,000 payments that aggregation takes about 150 ms; serving the shared copy
/// takes none). Registered once per app (`crate::startup`), beside its state: each app (and
/// each test's app) has its own database.
#[derive(Default)]
pub struct SharedFigures {
    slot: tokio::sync::Mutex<Option<Cached>>,
    refreshing: std::sync::atomic::AtomicBool,
}

#[derive(Clone)]
struct Cached {
    day: Date,
    /// The change marks the figures were computed under (see [`marker`]).
    mark: Vec<i64>,
    checked: std::time::Instant,
    figures: Arc<Figures>,
}

/// The figures for a page view: the shared copy of today, at once, even if it may be a moment
/// old; a copy older than [`FIGURES_FRESH_MS`] is brought up to date in the background (once,
/// however many views ask), and the live stream then shows the change. Only the first view of a
/// day (of this replica) waits for the aggregation.
async fn figures_for_page(
    state: &State,
    shared: &web::Data<SharedFigures>,
) -> Result<Arc<Figures>, ConsoleError> {
    let cached = shared.slot.lock().await.clone();
    match cached {
        Some(cached) if cached.day == format::vn_today() => {
            let stale = cached.checked.elapsed() >= Duration::from_millis(FIGURES_FRESH_MS);
            if stale
                && !shared
                    .refreshing
                    .swap(true, std::sync::atomic::Ordering::AcqRel)
            {
                let (state, shared) = (state.clone(), shared.clone());
                tokio::spawn(async move {
                    let refreshed = match marker(&state, NO_SESSION).await {
                        Ok((_, mark)) => figures_under(&state, &shared, mark).await.map(|_| ()),
                        Err(err) => Err(err),
                    };
                    if let Err(err) = refreshed {
                        tracing::warn!(error = %err, "console: refreshing the figures failed");
                    }
                    shared
                        .refreshing
                        .store(false, std::sync::atomic::Ordering::Release);
                });
            }
            Ok(cached.figures)
        }
        _ => {
            let (_, mark) = marker(state, NO_SESSION).await?;
            figures_under(state, shared, mark).await
        }
    }
}

/// The figures as of change marks `mark`: the shared copy when it was computed under the same
/// marks on the same day, else computed now and shared. One computation at a time per replica;
/// whoever waits for it gets its result.
async fn figures_under(
    state: &AppState,
    shared: &SharedFigures,
    mark: Vec<i64>,
) -> Result<Arc<Figures>, ConsoleError> {
    let mut slot = shared.slot.lock().await;
    let day = format::vn_today();
    if let Some(cached) = slot.as_mut() {
        if cached.day == day && cached.mark == mark {
            cached.checked = std::time::Instant::now();
            return Ok(Arc::clone(&cached.figures));
        }
    }
    let figures = Arc::new(figures(state).await?);
    *slot = Some(Cached {
        day,
        mark,
        checked: std::time::Instant::now(),
        figures: Arc::clone(&figures),
    });
    Ok(figures)
}

/// [`marker`]'s session argument when only the change marks are wanted.
const NO_SESSION: i64 = 0;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/console", web::get().to(overview))
        .route("/console/live", web::get().to(live));
}

/// Everything the live fragment shows.
struct Figures {
    day: Date,
    report: DailyReport,
    /// Obligation code, its name, and its totals, in the report's order.
    by_obligation: Vec<(String, String, Totals)>,
    agency_names: HashMap<String, String>,
    bank_names: HashMap<String, String>,
    /// Paid orders per hour of the day (0-23, Vietnam time).
    per_hour: [Totals; 24],
    open_cases: i64,
    pending_approvals: i64,
    dead_events: i64,
    unsealed: i64,
    oldest_unsealed: Option<OffsetDateTime>,
    /// Sandbox orders paid today: shown apart, never in the live figures.
    sandbox: Totals,
    at: OffsetDateTime,
}

async fn figures(state: &AppState) -> Result<Figures, ConsoleError> {
    let day = format::vn_today();
    // The same report `GET /v1/reports/daily` gives, so that the console and the API agree.
    let report = crate::reconciliation::store::daily_report(&state.pool, day)
        .await
        .map_err(super::session::api)?;
    let (start, end) = business_day(day);
    let mut client = state.pool.get().await?;
    let transaction = crate::db::snapshot(&mut client).await?;
    // Uses the partial index on paid_at of paid orders (migration 0012).
    let hours = transaction
        .query(
            "SELECT floor(extract(epoch FROM paid_at - $1) / 3600)::int AS hour,
                    count(*), coalesce(sum(amount), 0)
             FROM payments
             WHERE status = 'paid' AND paid_at >= $1 AND paid_at < $2 AND NOT sandbox
             GROUP BY 1",
            &[&start, &end],
        )
        .await?;
    // Each count reads a small partial index or the index on (status, seq), never a whole table;
    // the open cases and the refunds awaiting approval of sandbox parties are not counted.
    let attention = transaction
        .query_one(
            "SELECT
                 (SELECT count(*) FROM cases c
                  WHERE c.status IN ('open', 'pending_approval', 'resolving')
                    AND NOT EXISTS (SELECT 1 FROM banks b WHERE b.code = c.bank_code AND b.sandbox)
                    AND NOT EXISTS (SELECT 1 FROM agencies a
                                    WHERE a.code = c.agency_code AND a.sandbox)),
                 (SELECT count(*) FROM refunds r
                  WHERE r.status = 'pending_approval'
                    AND NOT EXISTS (SELECT 1 FROM banks b WHERE b.code = r.bank_code AND b.sandbox)),
                 (SELECT count(*) FROM events WHERE status = 'dead'),
                 (SELECT count(*) FROM ledger_transactions
                  WHERE id > (SELECT coalesce(max(last_transaction), 0) FROM ledger_seals)),
                 (SELECT min(created_at) FROM ledger_transactions
                  WHERE id > (SELECT coalesce(max(last_transaction), 0) FROM ledger_seals)),
                 (SELECT count(*) FROM payments
                  WHERE sandbox AND status = 'paid' AND paid_at >= $1 AND paid_at < $2),
                 (SELECT coalesce(sum(amount), 0) FROM payments
                  WHERE sandbox AND status = 'paid' AND paid_at >= $1 AND paid_at < $2)",
            &[&start, &end],
        )
        .await?;
    let names = |rows: Vec<tokio_postgres::Row>| -> HashMap<String, String> {
        rows.iter().map(|row| (row.get(0), row.get(1))).collect()
    };
    let obligation_names = names(
        transaction
            .query("SELECT code, name FROM obligations", &[])
            .await?,
    );
    let agency_names = names(
        transaction
            .query("SELECT code, name FROM agencies", &[])
            .await?,
    );
    let bank_names = names(
        transaction
            .query("SELECT code, name FROM banks", &[])
            .await?,
    );
    transaction.commit().await?;

    let mut per_hour = [Totals::ZERO; 24];
    for row in &hours {
        let hour: i32 = row.get(0);
        if let Some(slot) = usize::try_from(hour).ok().and_then(|h| per_hour.get_mut(h)) {
            *slot = Totals::new(row.get(1), row.get(2));
        }
    }
    Ok(Figures {
        by_obligation: obligation_totals(&report, &obligation_names),
        day,
        report,
        agency_names,
        bank_names,
        per_hour,
        open_cases: attention.get(0),
        pending_approvals: attention.get(1),
        dead_events: attention.get(2),
        unsealed: attention.get(3),
        oldest_unsealed: attention.get(4),
        sandbox: Totals::new(attention.get(5), attention.get(6)),
        at: OffsetDateTime::now_utc(),
    })
}

/// The report's totals by obligation, in its order. The report keeps them in a map written as
/// JSON (`{"<code>": {"count", "amount"}}`), which is read back here rather than reaching into
/// its insides.
fn obligation_totals(
    report: &DailyReport,
    names: &HashMap<String, String>,
) -> Vec<(String, String, Totals)> {
    let Ok(serde_json::Value::Object(map)) = serde_json::to_value(&report.by_obligation) else {
        return Vec::new();
    };
    map.into_iter()
        .map(|(code, totals)| {
            let count = totals["count"].as_i64().unwrap_or(0);
            let amount = totals["amount"]
                .as_str()
                .and_then(|text| text.parse::<Decimal>().ok())
                .unwrap_or(Decimal::ZERO);
            let name = names.get(&code).cloned().unwrap_or_else(|| code.clone());
            (code, name, Totals::new(count, amount))
        })
        .collect()
}

async fn overview(
    console: Console,
    state: State,
    shared: web::Data<SharedFigures>,
) -> Result<HttpResponse, ConsoleError> {
    let figures = figures_for_page(&state, &shared).await?;
    let lang = console.lang;
    let body = html! {
        p {
            (T::BusinessDay.get(lang)) ": " strong { (format::date(lang, figures.day)) }
            " · "
            span id="live-state" class="live-state"
                data-on=(T::LiveOn.get(lang)) data-off=(T::LiveOff.get(lang)) {}
        }
        div id="live" data-live="/console/live" {
            (fragment(lang, &figures))
        }
    };
    Ok(layout::page(
        &console,
        Nav::Overview,
        T::OverviewTitle,
        body,
    ))
}

/// The part of the overview that live updates replace.
fn fragment(lang: Lang, f: &Figures) -> Markup {
    let totals = f.report.totals;
    html! {
        h2 { (T::PaidToday.get(lang)) }
        ul class="cards" {
            li class="card" {
                span class="label" { (T::PaidOrders.get(lang)) }
                span class="value" id="paid-count" { (format::count(lang, totals.count)) }
            }
            li class="card" {
                span class="label" { (T::PaidAmount.get(lang)) }
                span class="value" id="paid-amount" { (format::money(lang, totals.amount)) }
            }
            li class="card" {
                span class="label" { (T::RefundsToday.get(lang)) }
                span class="value" id="refunds-amount" {
                    (format::money(lang, f.report.refunds.amount))
                }
                span class="label" {
                    (format::count(lang, f.report.refunds.count)) " " (T::RefundsCount.get(lang))
                }
            }
        }
        (chart(lang, &f.per_hour))

        h2 { (T::Attention.get(lang)) }
        ul class="cards" {
            (attention_card(lang, T::OpenCases, f.open_cases, "/console/cases", "open-cases"))
            (attention_card(lang, T::PendingApprovals, f.pending_approvals,
                "/console/cases", "pending-approvals"))
            (attention_card(lang, T::DeadNotifications, f.dead_events,
                "/console/notifications?status=dead", "dead-events"))
            li class=(if f.unsealed > 0 { "card warn" } else { "card" }) {
                span class="label" { (T::UnsealedLag.get(lang)) }
                span class="value" id="unsealed" { (format::count(lang, f.unsealed)) }
                @if let Some(oldest) = f.oldest_unsealed {
                    span class="label" {
                        (T::OldestUnsealed.get(lang)) ": " (format::time(lang, oldest))
                    }
                }
            }
        }

        div class="columns" {
            div {
                (totals_table(lang, T::ByObligation, T::Obligation,
                    f.by_obligation.iter().map(|(code, name, totals)| (code.as_str(), name.as_str(), *totals))))
            }
            div {
                (totals_table(lang, T::ByBank, T::Bank,
                    f.report.by_bank.iter().map(|b| (b.bank.as_str(), name_of(&f.bank_names, &b.bank), b.totals))))
            }
        }
        (totals_table(lang, T::ByAgency, T::Agency,
            f.report.by_agency.iter().map(|a| (a.agency.as_str(), name_of(&f.agency_names, &a.agency), a.totals))))
        p class="sandbox-note" id="sandbox-today" {
            (T::SandboxToday.get(lang)) ": "
            (format::count(lang, f.sandbox.count)) " " (T::PaidOrdersLower.get(lang)) ", "
            (format::money(lang, f.sandbox.amount))
        }
        p class="live-state" {
            (T::UpdatedAt.get(lang)) " " (format::time(lang, f.at))
        }
    }
}

fn name_of<'a>(names: &'a HashMap<String, String>, code: &'a str) -> &'a str {
    names.get(code).map(String::as_str).unwrap_or(code)
}

fn attention_card(lang: Lang, label: T, n: i64, href: &str, id: &str) -> Markup {
    html! {
        li class=(if n > 0 { "card warn" } else { "card" }) {
            span class="label" { (label.get(lang)) }
            span class="value" id=(id) { (format::count(lang, n)) }
            a href=(href) { (T::Details.get(lang)) }
        }
    }
}

/// A table of totals by `column` (code and name per row) with a total line.
fn totals_table<'a>(
    lang: Lang,
    caption: T,
    column: T,
    rows: impl Iterator<Item = (&'a str, &'a str, Totals)>,
) -> Markup {
    let rows: Vec<_> = rows.collect();
    let count: i64 = rows.iter().map(|(_, _, t)| t.count).sum();
    let amount: Decimal = rows.iter().map(|(_, _, t)| t.amount).sum();
    html! {
        div class="table-wrap" {
            table {
                caption { (caption.get(lang)) }
                thead {
                    tr {
                        th scope="col" { (column.get(lang)) }
                        th scope="col" class="num" { (T::Count.get(lang)) }
                        th scope="col" class="num" { (T::Amount.get(lang)) }
                    }
                }
                tbody {
                    @if rows.is_empty() {
                        tr { td colspan="3" { (T::Nothing.get(lang)) } }
                    }
                    @for (code, name, totals) in &rows {
                        tr {
                            th scope="row" {
                                (name)
                                @if name != code { " " span class="mono" { "(" (code) ")" } }
                            }
                            td class="num" { (format::count(lang, totals.count)) }
                            td class="num" { (format::money(lang, totals.amount)) }
                        }
                    }
                }
                @if !rows.is_empty() {
                    tfoot {
                        tr {
                            th scope="row" { (T::Total.get(lang)) }
                            td class="num" { (format::count(lang, count)) }
                            td class="num" { (format::money(lang, amount)) }
                        }
                    }
                }
            }
        }
    }
}

/// Chart geometry, in SVG user units.
const BAR_W: u32 = 24;
const BAR_GAP: u32 = 6;
const CHART_H: u32 = 160;
const LEFT: u32 = 40;
const TOP: u32 = 16;
const BOTTOM: u32 = 24;

/// Paid orders per hour as an SVG bar chart, named and described for screen readers, with the
/// same figures in a table beside it.
fn chart(lang: Lang, per_hour: &[Totals; 24]) -> Markup {
    let max = per_hour.iter().map(|t| t.count).max().unwrap_or(0).max(1);
    let width = LEFT + 24 * (BAR_W + BAR_GAP) + BAR_GAP;
    let height = TOP + CHART_H + BOTTOM;
    let base = TOP + CHART_H;
    html! {
        h3 id="chart-title" { (T::PerHour.get(lang)) }
        svg class="chart" role="img" aria-labelledby="chart-svg-title chart-svg-desc"
            viewBox=(format!("0 0 {width} {height}")) width=(width) height=(height)
            xmlns="http://www.w3.org/2000/svg" {
            title id="chart-svg-title" { (T::PerHour.get(lang)) }
            desc id="chart-svg-desc" { (T::PerHourDesc.get(lang)) }
            line class="axis" x1=(LEFT) y1=(base) x2=(width) y2=(base) {}
            line class="axis" x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(base) {}
            text x=(LEFT - 4) y=(TOP + 4) text-anchor="end" { (format::count(lang, max)) }
            text x=(LEFT - 4) y=(base) text-anchor="end" { "0" }
            @for (hour, totals) in per_hour.iter().enumerate() {
                @let hour = u32::try_from(hour).expect("24 hours");
                @let x = LEFT + BAR_GAP + hour * (BAR_W + BAR_GAP);
                @let h = bar_height(totals.count, max);
                @if h > 0 {
                    rect class="bar" x=(x) y=(base - h) width=(BAR_W) height=(h) {
                        title { (format!("{hour:02}:00")) ": " (format::count(lang, totals.count)) }
                    }
                }
                @if hour.is_multiple_of(3) {
                    text x=(x + BAR_W / 2) y=(base + 16) text-anchor="middle" { (format!("{hour:02}")) }
                }
            }
        }
        details {
            summary { (T::ShowTable.get(lang)) }
            div class="table-wrap" {
                table {
                    caption { (T::PerHour.get(lang)) }
                    thead {
                        tr {
                            th scope="col" { (T::Hour.get(lang)) }
                            th scope="col" class="num" { (T::Count.get(lang)) }
                            th scope="col" class="num" { (T::Amount.get(lang)) }
                        }
                    }
                    tbody {
                        @for (hour, totals) in per_hour.iter().enumerate() {
                            tr {
                                th scope="row" { (format!("{hour:02}:00–{hour:02}:59")) }
                                td class="num" { (format::count(lang, totals.count)) }
                                td class="num" { (format::money(lang, totals.amount)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The height of a bar of `count` when `max` fills the chart; at least 1 unit for any order.
fn bar_height(count: i64, max: i64) -> u32 {
    if count <= 0 || max <= 0 {
        return 0;
    }
    let scaled = (i128::from(count) * i128::from(CHART_H)) / i128::from(max);
    u32::try_from(scaled).unwrap_or(CHART_H).clamp(1, CHART_H)
}

/// What a stream compares from one poll to the next: the newest ledger transaction, audit entry,
/// notification attempt, case, refund and seal. Each is the end of a primary key or unique
/// index, so the poll reads six index pages; and it says whether the session is still live.
async fn marker(state: &AppState, session_id: i64) -> Result<(bool, Vec<i64>), ConsoleError> {
    let client = state.pool.get().await?;
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM console_sessions s JOIN api_keys k ON k.id = s.key_id
                            WHERE s.id = $1 AND s.ended_at IS NULL AND s.expires_at > now()
                              AND k.revoked_at IS NULL),
                    coalesce((SELECT max(id) FROM ledger_transactions), 0),
                    coalesce((SELECT max(seq) FROM audit_log), 0),
                    coalesce((SELECT max(id) FROM event_attempts), 0),
                    coalesce((SELECT max(seq) FROM cases), 0),
                    coalesce((SELECT max(seq) FROM refunds), 0),
                    coalesce((SELECT max(seq) FROM ledger_seals), 0)",
            &[&session_id],
        )
        .await?;
    Ok((row.get(0), (1..7).map(|i| row.get(i)).collect()))
}

/// One server-sent event named `name` whose data is `data` (one `data:` line per line).
fn event(name: &str, data: &str) -> web::Bytes {
    let mut text = format!("event: {name}\n");
    for line in data.lines() {
        text.push_str("data: ");
        text.push_str(line);
        text.push('\n');
    }
    if data.is_empty() {
        text.push_str("data: \n");
    }
    text.push('\n');
    web::Bytes::from(text)
}

/// Where a stream is.
struct Stream {
    state: State,
    shared: web::Data<SharedFigures>,
    lang: Lang,
    session_id: i64,
    last: Option<Vec<i64>>,
    polls: u32,
    started: std::time::Instant,
    done: bool,
}

/// The next event of a stream: the fragment when something changed, `end` when the session
/// ended, nothing (the stream ends) after [`STREAM_MAX_S`].
async fn next_event(mut s: Stream) -> Option<(Result<web::Bytes, actix_web::Error>, Stream)> {
    if s.done {
        return None;
    }
    loop {
        if s.last.is_some() {
            tokio::time::sleep(Duration::from_millis(POLL_INTERVAL_MS)).await;
        }
        if s.started.elapsed() >= Duration::from_secs(STREAM_MAX_S)
            || STOPPING.load(std::sync::atomic::Ordering::Relaxed)
        {
            return None;
        }
        s.polls += 1;
        let (live, mark) = match marker(&s.state, s.session_id).await {
            Ok(outcome) => outcome,
            // The database is away for a moment: try again at the next poll.
            Err(err) => {
                tracing::warn!(error = %err, "console: live poll failed");
                s.last.get_or_insert_with(Vec::new);
                continue;
            }
        };
        if !live {
            s.done = true;
            return Some((Ok(event("end", "")), s));
        }
        let changed = s.last.as_ref() != Some(&mark);
        if changed || s.polls.is_multiple_of(REFRESH_EVERY_POLLS) {
            let first = s.last.is_none();
            s.last = Some(mark.clone());
            match figures_under(&s.state, &s.shared, mark).await {
                Ok(figures) => {
                    let html = fragment(s.lang, &figures).into_string();
                    let mut bytes = Vec::new();
                    if first {
                        bytes.extend_from_slice(format!("retry: {RETRY_MS}\n\n").as_bytes());
                    }
                    bytes.extend_from_slice(&event("fragment", &html));
                    return Some((Ok(web::Bytes::from(bytes)), s));
                }
                Err(err) => {
                    tracing::warn!(error = %err, "console: live figures failed");
                    continue;
                }
            }
        }
    }
}

/// The overview's figures as server-sent events: now, then whenever they change.
async fn live(console: Console, state: State, shared: web::Data<SharedFigures>) -> HttpResponse {
    let start = Stream {
        state,
        shared,
        lang: console.lang,
        session_id: console.session_id,
        last: None,
        polls: 0,
        started: std::time::Instant::now(),
        done: false,
    };
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        // Tells a buffering proxy (nginx ingress) to pass each event on at once.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream::unfold(start, next_event))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_busiest_hour_and_never_vanish() {
        assert_eq!(bar_height(0, 10), 0);
        assert_eq!(bar_height(10, 10), CHART_H);
        assert_eq!(bar_height(5, 10), CHART_H / 2);
        assert_eq!(bar_height(1, 1_000_000), 1);
    }

    #[test]
    fn events_put_every_line_of_their_data_on_a_data_line() {
        assert_eq!(
            event("fragment", "<p>a</p>\n<p>b</p>"),
            web::Bytes::from("event: fragment\ndata: <p>a</p>\ndata: <p>b</p>\n\n")
        );
        assert_eq!(event("end", ""), web::Bytes::from("event: end\ndata: \n\n"));
    }
}
