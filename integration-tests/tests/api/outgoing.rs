//! Requests paygate makes to the outside (agency notifications): they go straight to the
//! receiver whatever proxy the environment names, and never to an address the rule refuses.

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use integration_tests::answers::RequestExt;
use integration_tests::receiver::{Behaviour, Receiver};
use integration_tests::{database_url, details, fresh_database, invalid_fields, TestApp};
use serde_json::{json, Value};

/// Set (to any value) in the child process that the proxy test starts.
const CHILD_MARKER: &str = "PAYGATE_TEST_PROXY_CHILD";
/// Every spelling of the proxy variables that HTTP clients read.
const PROXY_VARIABLES: [&str; 6] =
    ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"];

/// A listener standing where the proxy variables point: it counts the connections made to it,
/// reads what it is sent and closes, so a request sent through it fails.
struct ProxyTrap {
    port: u16,
    connections: Arc<AtomicUsize>,
}

impl ProxyTrap {
    fn start() -> ProxyTrap {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        // A plain thread: it lives until the test process ends, blocked in accept.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                counted.fetch_add(1, Ordering::SeqCst);
                if let Ok(mut stream) = stream {
                    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
                    let mut buf = [0u8; 4096];
                    let _ = stream.read(&mut buf);
                }
            }
        });
        ProxyTrap { port, connections }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// The proxy variables are read from the environment by the HTTP client when it is built, and
/// setting variables in a running, multi-threaded test process is unsound; so the delivery runs
/// in a child process (this test binary again, running only the test below) that starts with
/// the variables set.
#[tokio::test]
async fn notifications_go_straight_to_the_receiver_whatever_proxy_the_environment_names() {
    let proxy = ProxyTrap::start();
    let proxy_url = format!("http://127.0.0.1:{}", proxy.port);
    // The child makes its databases on this test process's server.
    let server = database_url(&fresh_database().await);
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "outgoing::child_delivers_one_notification",
            "--exact",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_MARKER, "1")
        .env("TEST_DATABASE_URL", server)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy");
    for variable in PROXY_VARIABLES {
        command.env(variable, &proxy_url);
    }
    let output = tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the child failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "the child ran its test:\n{stdout}");
    assert_eq!(proxy.connections(), 0, "nothing went through the proxy");
}

/// Run by the test above, in a process whose environment names a proxy: an agency's
/// notification reaches its receiver. Its own requests to the app bypass the proxy explicitly.
#[tokio::test]
#[ignore = "run by notifications_go_straight_to_the_receiver_whatever_proxy_the_environment_names"]
async fn child_delivers_one_notification() {
    if std::env::var_os(CHILD_MARKER).is_none() {
        return;
    }
    let app = TestApp::spawn().await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let receiver = Receiver::start(Behaviour::status(200)).await;
    let port = receiver.address().port();

    let agency: Value = http
        .post(app.url("/v1/agencies"))
        .bearer_auth(&app.admin_key)
        .json(&json!({
            "code": "H12",
            "name": "Sở Tư pháp",
            "notify_url": format!("http://127.0.0.1:{port}/hooks/paygate"),
        }))
        .answer_json()
        .await;
    let agency_key = agency["api_key"].as_str().expect("api_key").to_owned();
    let payment: Value = http
        .post(app.url("/v1/payments"))
        .bearer_auth(&agency_key)
        .header("Idempotency-Key", "proxy-test-1")
        .json(&json!({
            "obligation": "fee",
            "reference": "H12-PROXY-1",
            "amount": "150000",
            "currency": "VND",
            "description": "Lệ phí",
            "payer": {"name": "Nguyễn Văn A", "id_number": "001099012345"},
            "details": details("fee"),
        }))
        .answer_json()
        .await;
    let id = payment["id"].as_str().expect("a payment id");
    let cancelled = http
        .post(app.url(&format!("/v1/payments/{id}/cancel")))
        .bearer_auth(&agency_key)
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 200);

    let received = receiver.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(received[0].json()["type"], "payment.cancelled");
}

#[tokio::test]
async fn a_notify_url_at_a_never_allowed_address_is_refused_even_with_private_allowed() {
    // The test configuration allows private addresses.
    let app = TestApp::spawn().await;
    for host in [
        "0.0.0.0",
        "0.1.2.3",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "169.254.169.254",
        "[::]",
        "[ff02::1]",
        "[fe80::1]",
        "[::ffff:169.254.169.254]",
        "[64:ff9b::a9fe:a9fe]",
        "[2002:a9fe:a9fe::1]",
        "[2001::1]",
    ] {
        assert_notify_url_refused(&app, &format!("http://{host}/hooks/paygate"), "never allowed")
            .await;
    }
    assert_eq!(app.count("SELECT count(*) FROM agencies").await, 0);
}

#[tokio::test]
async fn a_notify_url_at_a_private_address_is_refused_without_the_switch() {
    let app = TestApp::spawn_with(paygate::config::Config {
        notify_allow_private: false,
        ..integration_tests::test_config()
    })
    .await;
    for host in [
        "127.0.0.1",
        "10.0.0.1",
        "100.64.0.1",
        "198.18.0.1",
        "192.168.1.1",
        "[::1]",
        "[fd00::1]",
        "[::ffff:127.0.0.1]",
        "[64:ff9b::a00:1]",
        "[2002:c0a8:101::1]",
        "localhost",
    ] {
        let url = format!("http://{host}:8080/hooks/paygate");
        assert_notify_url_refused(&app, &url, "PAYGATE_NOTIFY_ALLOW_PRIVATE").await;
    }
    assert_eq!(app.count("SELECT count(*) FROM agencies").await, 0);
}

/// Asserts that an agency with `url` as its notify URL is refused, naming the field, with a
/// reason that contains `reason`.
async fn assert_notify_url_refused(app: &TestApp, url: &str, reason: &str) {
    let problem = app
        .admin(reqwest::Method::POST, "/v1/agencies")
        .json(&json!({"code": "H12", "name": "Sở Tư pháp", "notify_url": url}))
        .problem(422, "validation_failed")
        .await;
    assert_eq!(invalid_fields(&problem), ["notify_url"], "{url}");
    assert!(problem.to_string().contains(reason), "{url}: {problem}");
}
