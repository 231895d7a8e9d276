//! The console's reconciliation, case and notification pages over real HTTP: a statement
//! uploaded as a browser would (multipart) makes a run whose page shows its counts and items;
//! notes, resolutions and approvals go through the domain's own rules (four-eyes included);
//! an auditor sees no admin button and is refused when posting anyway; a dead event is
//! redelivered; and a form without its CSRF token changes nothing.

use super::csrf_in;
use integration_tests::answers::json_200;
use integration_tests::clock::{now_s, paid_a_minute_ago, rfc3339, vietnam_date};
use integration_tests::world::{World, AGENCY, AMOUNT, BANK};
use integration_tests::TestApp;
use reqwest::multipart::{Form, Part};
use reqwest::redirect::Policy;
use reqwest::Response;
use serde_json::{json, Value};

const STATEMENT_HEADER: &str = "bank_txn_id,payment_id,amount,paid_at,currency";

/// A person signed in to the console with one key: a cookie-keeping client that does not
/// follow redirects, so that every 303 is seen.
struct Operator {
    http: reqwest::Client,
    base: String,
}

impl Operator {
    /// Signs in with `key` through the sign-in form (its hidden login token included).
    async fn sign_in(app: &TestApp, key: &str) -> Operator {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(Policy::none())
            .build()
            .expect("an HTTP client");
        let operator = Operator { http, base: app.url("") };
        let form = operator.page("/console/sign-in").await;
        let response = operator
            .http
            .post(operator.url("/console/sign-in"))
            .form(&[("csrf", csrf_in(&form).as_str()), ("key", key)])
            .send()
            .await
            .expect("POST /console/sign-in");
        assert_eq!(response.status(), 303, "signed in");
        assert_eq!(location(&response), "/console");
        operator
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str) -> Response {
        self.http.get(self.url(path)).send().await.expect("a console page")
    }

    /// The page at `path`, which must answer 200.
    async fn page(&self, path: &str) -> String {
        let response = self.get(path).await;
        let status = response.status();
        let body = response.text().await.expect("an HTML page");
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// The session's CSRF token, as every page's forms carry it.
    async fn csrf(&self) -> String {
        csrf_in(&self.page("/console/cases").await)
    }

    /// POSTs a form of `fields` to `path` (the token is not added: tests choose it).
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Response {
        self.http.post(self.url(path)).form(fields).send().await.expect("a console form")
    }

    /// POSTs `fields` with the session's token; must answer 303, whose location is returned.
    async fn submit(&self, path: &str, fields: &[(&str, &str)]) -> String {
        let token = self.csrf().await;
        let mut all = vec![("csrf", token.as_str())];
        all.extend_from_slice(fields);
        let response = self.post(path, &all).await;
        let status = response.status();
        let target = location(&response);
        assert_eq!(status, 303, "POST {path}: {}", response.text().await.unwrap_or_default());
        target
    }

    /// Uploads `statement` for `date` through the multipart form, with `csrf` first.
    async fn upload(&self, csrf: &str, date: &str, statement: &str) -> Response {
        let part = Part::bytes(statement.as_bytes().to_vec())
            .file_name("statement.csv")
            .mime_str("text/csv")
            .expect("a MIME type");
        let form = Form::new()
            .text("csrf", csrf.to_owned())
            .text("bank", BANK)
            .text("date", date.to_owned())
            .part("statement", part);
        self.http
            .post(self.url("/console/reconciliation"))
            .multipart(form)
            .send()
            .await
            .expect("POST /console/reconciliation")
    }
}

fn location(response: &Response) -> String {
    response
        .headers()
        .get("location")
        .map(|value| value.to_str().expect("an ASCII location").to_owned())
        .unwrap_or_default()
}

/// The count a run's page shows for `outcome`.
fn outcome_count(html: &str, outcome: &str) -> String {
    let marker = format!(r#"data-outcome="{outcome}">"#);
    let start = html.find(&marker).unwrap_or_else(|| panic!("no {outcome} count")) + marker.len();
    let end = html[start..].find('<').expect("the cell ends") + start;
    html[start..end].trim().to_owned()
}

/// A `succeeded` callback of `AMOUNT` for `payment_id` at `paid_at`; must answer 200.
async fn pay_at(w: &World, bank_txn_id: &str, payment_id: &str, paid_at: &str) -> Value {
    w.deliver_ok(&json!({
        "bank_txn_id": bank_txn_id, "payment_id": payment_id, "amount": AMOUNT,
        "currency": "VND", "status": "succeeded", "paid_at": paid_at,
    }))
    .await
}

/// A pending order created an hour ago, so that a bank may say it was paid a minute ago.
async fn older_order(w: &World, reference: &str) -> String {
    let id = w.order(reference).await;
    w.app
        .execute("UPDATE payments SET created_at = now() - interval '1 hour' WHERE id = $1", &[&id])
        .await;
    id
}

/// A paid order and its second payment: a `double_payment` case with money in suspense.
async fn double_payment(w: &World, reference: &str) -> String {
    let id = w.order(reference).await;
    pay_at(w, &format!("FT-{reference}-1"), &id, &paid_a_minute_ago()).await;
    let again = pay_at(w, &format!("FT-{reference}-2"), &id, &paid_a_minute_ago()).await;
    assert_eq!(again["exception"], "double_payment", "{again}");
    case_of(w, "double_payment").await
}

/// The newest case of `kind`, as the auditor reads the list.
async fn case_of(w: &World, kind: &str) -> String {
    let cases = w.audit(&format!("/v1/cases?kind={kind}")).await;
    cases["items"][0]["id"].as_str().expect("a case").to_owned()
}

/// The API key id (`key_<n>`) of `api_key`.
async fn key_id(app: &TestApp, api_key: &str) -> String {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(api_key.as_bytes()).to_vec();
    let id: i64 = app.row("SELECT id FROM api_keys WHERE key_hash = $1", &[&hash]).await.get(0);
    format!("key_{id}")
}

/// Every row a console form may change, as one text, so that "nothing changed" is one
/// comparison.
async fn state(app: &TestApp) -> String {
    app.row(
        "SELECT concat_ws(' | ',
            (SELECT string_agg(concat_ws(',', id, status, resolution, refund_id), ';' ORDER BY id)
             FROM cases),
            (SELECT count(*) FROM case_notes),
            (SELECT string_agg(concat_ws(',', id, status), ';' ORDER BY id) FROM refunds),
            (SELECT string_agg(concat_ws(',', id, status), ';' ORDER BY id) FROM payments),
            (SELECT string_agg(concat_ws(',', id, status, attempts), ';' ORDER BY id) FROM events),
            (SELECT count(*) FROM reconciliation_runs),
            (SELECT count(*) FROM ledger_entries),
            (SELECT count(*) FROM audit_log WHERE action NOT LIKE 'console.%'))",
        &[],
    )
    .await
    .get(0)
}

#[tokio::test]
async fn a_statement_uploaded_as_a_form_makes_a_run_whose_pages_show_its_counts_items_and_report() {
    let w = World::new().await;
    let paid_unix_s = now_s() - 60;
    let at = rfc3339(paid_unix_s);
    let day = vietnam_date(paid_unix_s);
    let paid = older_order(&w, "H12-UP-1").await;
    pay_at(&w, "FT-UP-1", &paid, &at).await;
    let lost = older_order(&w, "H12-UP-2").await;
    let statement = format!(
        "{STATEMENT_HEADER}\n\
         FT-UP-1,{paid},{AMOUNT},{at},VND\n\
         FT-UP-2,{lost},{AMOUNT},{at},VND\n\
         FT-UP-3,pay_nowhere,{AMOUNT},{at},VND\n\
         FT-UP-4,{paid},not-a-number,{at},VND\n"
    );
    let admin = Operator::sign_in(&w.app, &w.app.admin_key).await;

    let response = admin.upload(&admin.csrf().await, &day, &statement).await;
    assert_eq!(response.status(), 303, "{}", response.text().await.unwrap_or_default());
    let run_page = location(&response);
    let run_id = run_page.strip_prefix("/console/reconciliation/").expect("the run's page");
    let run = w.audit(&format!("/v1/reconciliations/{run_id}")).await;
    assert_eq!(run["bank"], BANK);
    assert_eq!(run["date"], day.as_str());
    assert_eq!(run["statement_lines"], 4);
    for (outcome, count) in [("matched", 1), ("recovered", 1), ("missing_in_gateway", 1)] {
        assert_eq!(run["summary"][outcome]["count"], count, "{outcome}: {run}");
    }
    // An admin's run recovers the lost callback, exactly as the API's would.
    assert_eq!(w.payment(&lost).await["status"], "paid");

    // The run's page shows every count the run has.
    let html = admin.page(&run_page).await;
    for (outcome, totals) in run["summary"].as_object().expect("a summary") {
        let expected = totals["count"].as_i64().expect("a count").to_string();
        assert_eq!(outcome_count(&html, outcome), expected, "{outcome}");
    }
    assert!(html.contains("150.000 ₫"), "amounts with thousands separators: {html}");
    // The list of runs links to it.
    let list = admin.page(&format!("/console/reconciliation?bank={BANK}&date={day}")).await;
    assert!(list.contains(&run_page), "{list}");

    // Drill-down: the items of one outcome, and only those.
    let missing = admin.page(&format!("{run_page}?outcome=missing_in_gateway")).await;
    assert!(missing.contains("pay_nowhere"), "{missing}");
    assert!(!missing.contains("FT-UP-1"), "{missing}");
    let recovered = admin.page(&format!("{run_page}?outcome=recovered")).await;
    assert!(recovered.contains("FT-UP-2") && !recovered.contains("pay_nowhere"), "{recovered}");
    // Keyset paging walks the items one by one.
    let first = admin.page(&format!("{run_page}?limit=1")).await;
    assert!(first.contains("FT-UP-1") && first.contains(r#"rel="next""#), "{first}");

    // The report downloads as the API's CSV, byte for byte.
    let response = admin.get(&format!("{run_page}/report.csv")).await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    assert!(response.headers()["content-disposition"].to_str().unwrap().contains("attachment"));
    let downloaded = response.text().await.unwrap();
    let from_api = w
        .app
        .get_with(&w.auditor_key, &format!("/v1/reconciliations/{run_id}/report.csv"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(downloaded, from_api);
    assert_eq!(downloaded.lines().count(), 5, "{downloaded}");

    // The audit trail names the admin's key, through the console.
    let entries = w.audit(&format!("/v1/audit?target=reconciliation:{run_id}")).await;
    let actor = &entries["items"][0]["actor"];
    assert_eq!(actor["via"], "console", "{entries}");
    assert_eq!(actor["key_id"], key_id(&w.app, &w.app.admin_key).await.as_str(), "{entries}");
}

#[tokio::test]
async fn an_auditors_upload_only_reports_what_an_admins_run_would_recover() {
    let w = World::new().await;
    let paid_unix_s = now_s() - 60;
    let at = rfc3339(paid_unix_s);
    let lost = older_order(&w, "H12-AU-1").await;
    let statement = format!("{STATEMENT_HEADER}\nFT-AU-1,{lost},{AMOUNT},{at},VND\n");
    let auditor = Operator::sign_in(&w.app, &w.auditor_key).await;

    let response =
        auditor.upload(&auditor.csrf().await, &vietnam_date(paid_unix_s), &statement).await;
    assert_eq!(response.status(), 303);
    let run_page = location(&response);
    let html = auditor.page(&format!("{run_page}?outcome=missing_in_gateway")).await;
    assert!(html.contains("recoverable"), "{html}");
    assert_eq!(outcome_count(&html, "recovered"), "0");
    assert_eq!(w.payment(&lost).await["status"], "pending", "an auditor's run moves no money");
}

#[tokio::test]
async fn an_upload_without_its_csrf_token_is_refused_before_the_statement_is_read() {
    let w = World::new().await;
    let lost = older_order(&w, "H12-CS-1").await;
    let at = rfc3339(now_s() - 60);
    let statement = format!("{STATEMENT_HEADER}\nFT-CS-1,{lost},{AMOUNT},{at},VND\n");
    let admin = Operator::sign_in(&w.app, &w.app.admin_key).await;
    let before = state(&w.app).await;

    for token in ["", "not-the-token"] {
        let response = admin.upload(token, &vietnam_date(now_s() - 60), &statement).await;
        assert_eq!(response.status(), 403, "token {token:?}");
    }
    // A plain form, not multipart, is no upload and carries no token either.
    let response = admin.post("/console/reconciliation", &[("bank", BANK)]).await;
    assert_eq!(response.status(), 403);
    assert_eq!(state(&w.app).await, before);
    assert_eq!(w.payment(&lost).await["status"], "pending");
}

#[tokio::test]
async fn a_note_added_in_the_console_is_on_the_case_and_a_note_without_a_token_is_not() {
    let w = World::new().await;
    let case = double_payment(&w, "H12-NT").await;
    let auditor = Operator::sign_in(&w.app, &w.auditor_key).await;
    let path = format!("/console/cases/{case}/notes");

    let before = state(&w.app).await;
    for fields in [vec![("message", "giả mạo")], vec![("csrf", "forged"), ("message", "giả mạo")]]
    {
        assert_eq!(auditor.post(&path, &fields).await.status(), 403);
    }
    assert_eq!(state(&w.app).await, before, "a forged form changes nothing");

    // Auditors may add notes, as through the API.
    let message = "Đã liên hệ ngân hàng; chờ chứng từ.";
    let target = auditor.submit(&path, &[("message", message)]).await;
    assert_eq!(target, format!("/console/cases/{case}"));
    let read = w.audit(&format!("/v1/cases/{case}")).await;
    let notes = read["notes"].as_array().expect("notes");
    assert_eq!(notes.len(), 1, "{read}");
    assert_eq!(notes[0]["message"], message);
    assert_eq!(notes[0]["by"]["via"], "console");
    assert_eq!(notes[0]["by"]["role"], "auditor");
    assert!(auditor.page(&target).await.contains(message));
    // In English, the same page has English labels.
    let switch = auditor.get(&format!("/console/lang?to=en&back={target}")).await;
    assert_eq!(switch.status(), 303);
    let english = auditor.page(&target).await;
    assert!(english.contains("Add the note") && english.contains(message), "{english}");
    // An empty note is the API's 422, and is not added.
    let token = auditor.csrf().await;
    let response = auditor.post(&path, &[("csrf", &token), ("message", "")]).await;
    assert_eq!(response.status(), 422);
    assert!(response.text().await.unwrap().contains("validation_failed"));
}

#[tokio::test]
async fn a_refund_one_admin_requests_is_refused_to_them_and_to_an_auditor_and_approved_by_another()
{
    let w = World::new().await;
    let case = double_payment(&w, "H12-4E").await;
    let case_page = format!("/console/cases/{case}");
    let maker = Operator::sign_in(&w.app, &w.app.admin_key).await;

    // The first admin resolves the case by a refund.
    let note = "Người nộp thanh toán hai lần; hoàn lại lần thứ hai.";
    let target = maker
        .submit(&format!("{case_page}/resolve"), &[("resolution", "refund"), ("note", note)])
        .await;
    assert_eq!(target, case_page);
    let read = w.audit(&format!("/v1/cases/{case}")).await;
    assert_eq!(read["status"], "resolving", "{read}");
    assert_eq!(read["resolution"]["by"]["via"], "console", "{read}");
    let refund = read["resolution"]["refund_id"].as_str().expect("a refund").to_owned();
    let refund_path = format!("/console/refunds/{refund}");

    // The requester sees that another admin must decide, and no button to do it.
    let html = maker.page(&case_page).await;
    assert!(html.contains(r#"data-refund-status="pending_approval""#), "{html}");
    assert!(!html.contains(r#"data-action="approve""#), "{html}");
    assert!(!html.contains(r#"data-action="reject""#), "{html}");
    assert!(html.contains(r#"class="waiting""#), "{html}");
    assert!(html.contains("một quản trị viên khác phải phê duyệt"), "{html}");
    assert!(!maker.page("/console/cases").await.contains(r#"data-action="approve""#));
    // Posting anyway is the domain's refusal.
    let before = state(&w.app).await;
    let token = maker.csrf().await;
    let response = maker.post(&format!("{refund_path}/approve"), &[("csrf", &token)]).await;
    assert_eq!(response.status(), 403);
    assert!(response.text().await.unwrap().contains("same_approver"));
    let response =
        maker.post(&format!("{refund_path}/reject"), &[("csrf", &token), ("reason", "x")]).await;
    assert_eq!(response.status(), 403);
    assert_eq!(state(&w.app).await, before);

    // An auditor sees the refund and no control that needs an admin; posting is refused.
    let auditor = Operator::sign_in(&w.app, &w.auditor_key).await;
    let html = auditor.page(&case_page).await;
    assert!(html.contains(r#"data-refund-status="pending_approval""#), "{html}");
    for control in [r#"data-action="approve""#, r#"data-action="reject""#, r#"id="resolve""#] {
        assert!(!html.contains(control), "{control}: {html}");
    }
    assert!(!auditor.page("/console/cases").await.contains(r#"data-action="approve""#));
    let token = auditor.csrf().await;
    for (path, fields) in [
        (format!("{refund_path}/approve"), vec![("csrf", token.as_str())]),
        (format!("{refund_path}/reject"), vec![("csrf", token.as_str()), ("reason", "x")]),
        (format!("{case_page}/approve"), vec![("csrf", token.as_str())]),
        (
            format!("{case_page}/resolve"),
            vec![("csrf", token.as_str()), ("resolution", "no_action"), ("note", "x")],
        ),
    ] {
        assert_eq!(auditor.post(&path, &fields).await.status(), 403, "{path}");
    }
    assert_eq!(state(&w.app).await, before, "nothing changed");

    // A second admin sees the buttons and approves.
    let checker_key = w.app.key_with_role("admin").await;
    let checker = Operator::sign_in(&w.app, &checker_key).await;
    let html = checker.page(&case_page).await;
    assert!(html.contains(r#"data-action="approve""#), "{html}");
    assert!(checker.page("/console/cases").await.contains(&refund));
    let target = checker.submit(&format!("{refund_path}/approve"), &[]).await;
    assert_eq!(target, case_page);
    let approved = w.audit(&format!("/v1/refunds/{refund}")).await;
    assert_eq!(approved["status"], "approved", "{approved}");
    assert_eq!(approved["approved_by"]["key_id"], key_id(&w.app, &checker_key).await.as_str());
    assert_eq!(approved["approved_by"]["via"], "console");
    let html = checker.page(&case_page).await;
    assert!(html.contains(r#"data-refund-status="approved""#), "{html}");
    assert!(!html.contains(r#"data-action="approve""#), "{html}");
    // The history shows who chose the refund and who approved it.
    assert!(html.contains("case.resolve") && html.contains("refund.approve"), "{html}");
}

#[tokio::test]
async fn an_apply_waits_for_a_second_admin_who_may_reject_it_or_approve_it() {
    let w = World::new().await;
    let closed = w.order("H12-AP-1").await;
    w.cancel(&closed).await;
    let answer = pay_at(&w, "FT-AP-1", &closed, &paid_a_minute_ago()).await;
    assert_eq!(answer["exception"], "order_closed", "{answer}");
    let case = case_of(&w, "order_closed").await;
    let target_order = w.order("H12-AP-2").await;
    let case_page = format!("/console/cases/{case}");
    let maker = Operator::sign_in(&w.app, &w.app.admin_key).await;
    let checker_key = w.app.key_with_role("admin").await;
    let checker = Operator::sign_in(&w.app, &checker_key).await;
    let apply = [
        ("resolution", "apply"),
        ("note", "Dùng cho lệnh mới"),
        ("payment_id", target_order.as_str()),
    ];

    maker.submit(&format!("{case_page}/resolve"), &apply).await;
    assert_eq!(w.audit(&format!("/v1/cases/{case}")).await["status"], "pending_approval");
    let html = maker.page(&case_page).await;
    assert!(!html.contains(r#"data-action="approve""#), "{html}");
    let token = maker.csrf().await;
    let response = maker.post(&format!("{case_page}/approve"), &[("csrf", &token)]).await;
    assert_eq!(response.status(), 403);
    assert!(response.text().await.unwrap().contains("same_approver"));

    // The checker rejects it: the case is open again, with the reason as a note.
    assert!(checker.page(&case_page).await.contains(r#"data-action="reject""#));
    let reason = "Lệnh được chọn thuộc hồ sơ khác.";
    checker.submit(&format!("{case_page}/reject"), &[("reason", reason)]).await;
    let read = w.audit(&format!("/v1/cases/{case}")).await;
    assert_eq!(read["status"], "open", "{read}");
    assert!(read["notes"][0]["message"].as_str().unwrap().contains(reason), "{read}");

    // Chosen again, and approved by the checker: the order is paid with the case's money.
    maker.submit(&format!("{case_page}/resolve"), &apply).await;
    checker.submit(&format!("{case_page}/approve"), &[]).await;
    let read = w.audit(&format!("/v1/cases/{case}")).await;
    assert_eq!(read["status"], "resolved", "{read}");
    assert_eq!(read["resolution"]["approved_by"]["key_id"], key_id(&w.app, &checker_key).await);
    assert_eq!(w.payment(&target_order).await["status"], "paid");
}

#[tokio::test]
async fn an_admin_redelivers_a_dead_event_and_an_auditor_cannot() {
    let w = World::new().await;
    let id = w.order("H12-EV-1").await;
    w.cancel(&id).await;
    let event: String =
        w.app.row("SELECT id FROM events WHERE payment_id = $1", &[&id]).await.get(0);
    // Arranged as the delivery worker leaves an event whose every attempt failed.
    w.app
        .execute(
            "UPDATE events SET status = 'dead', attempts = 8, last_error = 'connection refused'
             WHERE id = $1",
            &[&event],
        )
        .await;
    let status = || async {
        let row = w.app.row("SELECT status FROM events WHERE id = $1", &[&event]).await;
        row.get::<_, String>(0)
    };
    let redeliver = format!("/console/notifications/{event}/redeliver");

    // The auditor sees the dead event, no button, and is refused when posting anyway.
    let auditor = Operator::sign_in(&w.app, &w.auditor_key).await;
    let html = auditor.page("/console/notifications").await;
    assert!(html.contains(&event) && html.contains("connection refused"), "{html}");
    assert!(!html.contains(&redeliver), "{html}");
    let token = auditor.csrf().await;
    assert_eq!(auditor.post(&redeliver, &[("csrf", &token)]).await.status(), 403);
    assert_eq!(status().await, "dead");

    // The admin's form without its token is refused too.
    let admin = Operator::sign_in(&w.app, &w.app.admin_key).await;
    let html = admin.page(&format!("/console/notifications?status=dead&agency={AGENCY}")).await;
    assert!(html.contains(&redeliver), "{html}");
    assert_eq!(admin.post(&redeliver, &[]).await.status(), 403);
    assert_eq!(status().await, "dead");

    let target = admin.submit(&redeliver, &[]).await;
    assert!(target.starts_with("/console/notifications"), "{target}");
    assert_eq!(status().await, "pending");
    assert!(admin.page(&target).await.contains(&event));
    let entries = json_200(
        w.app
            .get_with(
                &w.auditor_key,
                &format!("/v1/audit?action=event.redeliver&target=event:{event}"),
            )
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(entries["items"][0]["actor"]["via"], "console", "{entries}");
    assert_eq!(entries["items"][0]["actor"]["role"], "admin", "{entries}");
    // An unknown event is the API's 404.
    let token = admin.csrf().await;
    let response =
        admin.post("/console/notifications/evt_nowhere/redeliver", &[("csrf", &token)]).await;
    assert_eq!(response.status(), 404);
}
