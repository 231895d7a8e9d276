//! The console in a real browser: headless Chromium driven over WebDriver. Every page is
//! checked with axe-core's WCAG 2.1 A and AA rules and saved as a screenshot under
//! `target/console-screenshots/` for a person to look at.

use std::time::Duration;

use integration_tests::answers::RequestExt;
use integration_tests::browser::Browser;
use integration_tests::clock::{now_s, paid_a_minute_ago, rfc3339, vietnam_date};
use integration_tests::world::{World, AMOUNT, BANK};
use serde_json::{json, Value};

/// Generous bound for what the console shows within a poll interval (it polls once a second).
const LIVE_WAIT: Duration = Duration::from_secs(10);

/// Every page of the console, with the name its screenshot gets.
const PAGES: [(&str, &str); 6] = [
    ("/console", "overview"),
    ("/console/reconciliation", "reconciliation"),
    ("/console/cases", "cases"),
    ("/console/notifications", "notifications"),
    ("/console/parties", "parties"),
    ("/console/audit", "audit"),
];

/// Signs in with `key` through the sign-in form and lands on the overview.
async fn sign_in(browser: &Browser, key: &str) {
    browser.open("/console").await;
    assert_eq!(browser.path().await, "/console/sign-in", "an anonymous visitor is sent to sign in");
    browser.fill("#sign-in input[name=key]", key).await;
    browser.click("#sign-in button[type=submit]").await;
    browser.find("#main").await;
    assert_eq!(browser.path().await, "/console");
}

/// A callback paying `id` in full a minute ago, signed now by the world's bank.
async fn pay(w: &World, id: &str, bank_txn_id: &str) -> Value {
    pay_at(w, id, bank_txn_id, &paid_a_minute_ago()).await
}

async fn pay_at(w: &World, id: &str, bank_txn_id: &str, paid_at: &str) -> Value {
    w.deliver_ok(&json!({
        "bank_txn_id": bank_txn_id, "payment_id": id, "amount": AMOUNT,
        "status": "succeeded", "paid_at": paid_at,
    }))
    .await
}

/// The count a run's page shows for `outcome`.
async fn count_of(browser: &Browser, outcome: &str) -> String {
    browser.text(&format!("[data-outcome={outcome}]")).await.trim().to_owned()
}

#[tokio::test]
async fn every_page_renders_in_vietnamese_and_english_and_passes_the_accessibility_rules() {
    let w = World::new().await;
    let id = w.order("H12-BR-1").await;
    pay(&w, &id, "FT-BR-1").await;
    let browser = Browser::start(&w.app.url("")).await;
    browser.open("/console").await;
    browser.find("#sign-in").await;
    assert_eq!(browser.run("return document.documentElement.lang;", vec![]).await, "vi");
    browser.screenshot("sign-in").await;
    browser.assert_accessible("sign-in").await;
    sign_in(&browser, &w.app.admin_key).await;
    for (path, name) in PAGES {
        browser.open(path).await;
        browser.find("#main h1").await;
        assert_eq!(browser.path().await, path);
        assert_eq!(browser.run("return document.documentElement.lang;", vec![]).await, "vi");
        browser.screenshot(name).await;
        browser.assert_accessible(name).await;
    }
    // The switch keeps the page and turns every label to English.
    browser.open("/console/audit").await;
    let vietnamese_title = browser.text("#main h1").await;
    browser.click("#lang-switch").await;
    browser
        .wait_until("return document.documentElement.lang === 'en';", LIVE_WAIT, "English")
        .await;
    assert_eq!(browser.path().await, "/console/audit");
    assert_ne!(browser.text("#main h1").await, vietnamese_title);
    for (path, name) in PAGES {
        browser.open(path).await;
        browser.find("#main h1").await;
        browser.screenshot(&format!("{name}-en")).await;
        browser.assert_accessible(&format!("{name} (English)")).await;
    }
    browser.close().await;
}

#[tokio::test]
async fn sandbox_money_is_shown_apart_and_every_party_shows_its_checklist() {
    let w = World::new().await;
    let id = w.order("H12-SBX-LIVE").await;
    pay(&w, &id, "FT-SBX-LIVE").await;
    // A sandbox agency whose order the built-in sandbox bank pays.
    let sandbox = "000.00.00.H12-SBX";
    let created = w
        .app
        .admin(reqwest::Method::POST, "/v1/agencies")
        .json(&json!({"code": sandbox, "name": "Sở Tư pháp (thử nghiệm)", "sandbox": true}))
        .json_with(201)
        .await;
    let key = created["api_key"].as_str().unwrap();
    let order = w.app.create_order(key, "fee", "SBX-1", "2500000").await;
    w.app
        .post_with(key, &format!("/v1/sandbox/payments/{order}/pay"))
        .json(&json!({"scenario": "succeeded"}))
        .json_with(200)
        .await;
    // A sandbox case (a callback of another amount) is the sandbox's business too.
    let mismatched = w.app.create_order(key, "fee", "SBX-2", "2500000").await;
    w.app
        .post_with(key, &format!("/v1/sandbox/payments/{mismatched}/pay"))
        .json(&json!({"scenario": "amount_mismatch"}))
        .problem(422, "amount_mismatch")
        .await;
    w.app.assert_count("SELECT count(*) FROM cases", 1).await;

    let browser = Browser::start(&w.app.url("")).await;
    sign_in(&browser, &w.app.admin_key).await;
    // The live figures count the live order only; the sandbox's are apart.
    assert_eq!(browser.text("#paid-count").await, "1");
    assert_eq!(browser.text("#paid-amount").await, "150.000 ₫");
    assert_eq!(browser.text("#open-cases").await, "0");
    let apart = browser.text("#sandbox-today").await;
    assert!(apart.contains("1 đơn đã thanh toán") && apart.contains("2.500.000 ₫"), "{apart}");

    browser.open("/console/parties").await;
    let row = format!("tr[data-code=\"{sandbox}\"]");
    assert!(browser.text(&row).await.contains("Thử nghiệm"), "the sandbox agency is marked");
    // The sandbox agency created an order: one step of eight.
    assert_eq!(browser.text(&format!("{row} details.checklist summary")).await, "1 / 8");
    browser
        .run("document.querySelectorAll('details.checklist').forEach(d => d.open = true);", vec![])
        .await;
    let steps = browser.text(&format!("{row} details.checklist ul")).await;
    assert!(steps.contains("order_created — đã thực hiện"), "{steps}");
    assert!(steps.contains("refund_requested — chưa thực hiện"), "{steps}");
    browser.screenshot("parties-checklists").await;
    browser.assert_accessible("parties with open checklists").await;
    browser.close().await;
}

#[tokio::test]
async fn the_overview_shows_a_callback_without_a_reload() {
    let w = World::new().await;
    let first = w.order("H12-LIVE-1").await;
    let second = w.order("H12-LIVE-2").await;
    pay(&w, &first, "FT-LIVE-1").await;
    let browser = Browser::start(&w.app.url("")).await;
    sign_in(&browser, &w.app.admin_key).await;
    assert_eq!(browser.text("#paid-count").await, "1");
    assert_eq!(browser.text("#paid-amount").await, "150.000 ₫");
    // A mark in the page's own state: a reload would lose it.
    browser.run("window.paygateNoReload = true;", vec![]).await;

    pay(&w, &second, "FT-LIVE-2").await;
    browser
        .wait_until(
            "return document.getElementById('paid-count').textContent.trim() === '2';",
            LIVE_WAIT,
            "the overview counts the second payment",
        )
        .await;
    assert_eq!(browser.text("#paid-amount").await, "300.000 ₫");
    assert_eq!(browser.run("return window.paygateNoReload === true;", vec![]).await, true);
    browser.screenshot("overview-live").await;
    browser.close().await;
}

#[tokio::test]
async fn a_statement_uploaded_in_the_browser_shows_the_runs_outcome_counts() {
    let w = World::new().await;
    let paid_unix_s = now_s() - 60;
    let at = rfc3339(paid_unix_s);
    let paid = w.order("H12-UP-1").await;
    pay_at(&w, &paid, "FT-UP-1", &at).await;
    let other = w.order("H12-UP-2").await;
    let other_paid = w.order("H12-UP-3").await;
    pay_at(&w, &other_paid, "FT-UP-3", &at).await;
    let day = vietnam_date(paid_unix_s);
    // One line matches; one names a pending order the bank says it was paid for (the bank has
    // money paygate never heard of); the other paid order is missing from the statement.
    let statement = format!(
        "bank_txn_id,payment_id,amount,paid_at,currency\n\
         FT-UP-1,{paid},{AMOUNT},{at},VND\n\
         FT-UP-2,{other},{AMOUNT},{at},VND\n"
    );
    let file = std::env::temp_dir().join(paygate::domain::ids::random_id("statement", 6) + ".csv");
    std::fs::write(&file, statement).unwrap();

    let browser = Browser::start(&w.app.url("")).await;
    sign_in(&browser, &w.app.admin_key).await;
    browser.open("/console/reconciliation").await;
    browser.find("#upload select[name=bank]").await.select_by_value(BANK).await.unwrap();
    browser
        .run(
            "document.querySelector('#upload input[name=date]').value = arguments[0];",
            vec![json!(day)],
        )
        .await;
    browser
        .find("#upload input[name=statement]")
        .await
        .send_keys(&file.display().to_string())
        .await
        .unwrap();
    browser.click("#upload button[type=submit]").await;
    browser.find("[data-outcome=matched]").await;
    assert!(browser.path().await.starts_with("/console/reconciliation/"));
    let run = w.app.get_json(&w.auditor_key, "/v1/reconciliations").await["items"][0].clone();
    let summary = run["summary"].as_object().expect("the run's summary").clone();
    assert_eq!(summary["matched"]["count"], 1, "{run}");
    // The page shows every outcome count the run has, as the API gives it.
    for (outcome, expected) in &summary {
        if let Some(expected) = expected["count"].as_u64() {
            assert_eq!(count_of(&browser, outcome).await, expected.to_string(), "{outcome}");
        }
    }
    browser.screenshot("reconciliation-run").await;
    browser.assert_accessible("reconciliation run").await;
    let _ = std::fs::remove_file(&file);
    browser.close().await;
}

#[tokio::test]
async fn a_refund_one_admin_requested_is_approved_by_another_and_never_by_the_first_or_an_auditor()
{
    let w = World::new().await;
    // A double payment: the second payment's money waits in suspense, in a case.
    let id = w.order("H12-4E-1").await;
    pay(&w, &id, "FT-4E-1").await;
    let again = pay(&w, &id, "FT-4E-2").await;
    assert_eq!(again["exception"], "double_payment", "{again}");
    let cases = w.audit("/v1/cases?kind=double_payment").await;
    let case = cases["items"][0]["id"].as_str().expect("a case").to_owned();

    // The first admin asks for the refund in the console.
    let browser = Browser::start(&w.app.url("")).await;
    sign_in(&browser, &w.app.admin_key).await;
    browser.open(&format!("/console/cases/{case}")).await;
    browser.find("#resolve select[name=resolution]").await.select_by_value("refund").await.unwrap();
    browser.fill("#resolve textarea[name=note]", "Hoàn lại lần nộp thứ hai").await;
    browser.click("#resolve button[type=submit]").await;
    browser.find("[data-refund-status]").await;
    assert_eq!(browser.text("[data-refund-status]").await.trim(), "pending_approval");
    assert_eq!(browser.count("[data-action=approve]").await, 0, "the requester may not approve");
    browser.screenshot("case-awaiting-approval").await;
    browser.assert_accessible("case awaiting approval").await;
    let refunds = w.audit("/v1/refunds").await;
    let refund = refunds["items"][0]["id"].as_str().expect("a refund").to_owned();
    assert_eq!(refunds["items"][0]["status"], "pending_approval");
    browser.close().await;

    // An auditor sees the case and no control that needs an admin.
    let auditor = Browser::start(&w.app.url("")).await;
    sign_in(&auditor, &w.auditor_key).await;
    auditor.open(&format!("/console/cases/{case}")).await;
    auditor.find("[data-refund-status]").await;
    assert_eq!(auditor.count("[data-action=approve]").await, 0);
    assert_eq!(auditor.count("[data-action=reject]").await, 0);
    assert_eq!(auditor.count("#resolve").await, 0);
    auditor.screenshot("case-as-auditor").await;
    auditor.close().await;

    // A second admin approves it with one click.
    let second_admin = w.app.key_with_role("admin").await;
    let checker = Browser::start(&w.app.url("")).await;
    sign_in(&checker, &second_admin).await;
    checker.open(&format!("/console/cases/{case}")).await;
    checker.click("[data-action=approve]").await;
    checker
        .wait_until(
            "const s = document.querySelector('[data-refund-status]'); \
             return !!s && s.textContent.trim() !== 'pending_approval';",
            LIVE_WAIT,
            "the refund leaves pending_approval",
        )
        .await;
    checker.screenshot("case-approved").await;
    let approved = w.audit(&format!("/v1/refunds/{refund}")).await;
    assert_ne!(approved["status"], "pending_approval", "{approved}");
    assert_eq!(approved["approved_by"]["role"], "admin", "{approved}");
    let actions = w.audit(&format!("/v1/audit?action=refund.approve&target=refund:{refund}")).await;
    assert_eq!(actions["items"][0]["actor"]["via"], "console", "{actions}");
    checker.close().await;
}

#[tokio::test]
async fn a_form_posted_without_its_csrf_token_is_refused_and_changes_nothing() {
    let w = World::new().await;
    let id = w.order("H12-CSRF-1").await;
    pay(&w, &id, "FT-CSRF-1").await;
    pay(&w, &id, "FT-CSRF-2").await;
    let cases = w.audit("/v1/cases").await;
    let case = cases["items"][0]["id"].as_str().expect("a case").to_owned();
    let browser = Browser::start(&w.app.url("")).await;
    sign_in(&browser, &w.app.admin_key).await;
    // The page's own cookie goes with the request; only the token is missing or wrong.
    let post = r#"
        const done = arguments[arguments.length - 1];
        const body = new URLSearchParams(arguments[1]);
        fetch(arguments[0], {method: 'POST', body, redirect: 'manual'})
            .then(r => done(r.status)).catch(e => done(String(e)));
    "#;
    let notes = format!("/console/cases/{case}/notes");
    for form in [json!({"note": "giả mạo"}), json!({"note": "giả mạo", "csrf": "not-the-token"})]
    {
        let status = browser.client.execute_async(post, vec![json!(notes), form]).await.unwrap();
        assert_eq!(status, 403, "a forged note is refused");
    }
    let sign_out = browser.client.execute_async(post, vec![json!("/console/sign-out"), json!({})]);
    assert_eq!(sign_out.await.unwrap(), 403, "a forged sign-out is refused");
    let case_now = w.audit(&format!("/v1/cases/{case}")).await;
    assert_eq!(case_now["notes"].as_array().map(Vec::len), Some(0), "{case_now}");
    // Still signed in: the forged sign-out did nothing.
    browser.open("/console/cases").await;
    assert_eq!(browser.path().await, "/console/cases");
    // The real form, with its token, works.
    browser.click("#sign-out button[type=submit]").await;
    browser.find("#sign-in").await;
    let signed = w.audit("/v1/audit?action=console.sign_out").await;
    assert_eq!(signed["items"].as_array().map(Vec::len), Some(1), "{signed}");
    browser.close().await;
}
