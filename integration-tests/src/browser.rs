//! A real browser for the console's tests: Debian's headless Chromium, driven through its
//! chromedriver over WebDriver with `fantoccini`. Each [`Browser`] has its own chromedriver on a
//! free port and its own empty profile, both gone when it is dropped.
//!
//! `.ci/run` installs the packages (`chromium`, `chromium-driver`) and the accessibility checker
//! (`axe-core`, from the npm registry) when they are missing. `PAYGATE_TEST_CHROMIUM`,
//! `PAYGATE_TEST_CHROMEDRIVER` and `PAYGATE_TEST_AXE` name other copies.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::wd::TimeoutConfiguration;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

use crate::repository_root;

/// How long a page, a script or a wait may take before the test fails.
const PAGE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long chromedriver may take to start listening.
const DRIVER_START_TIMEOUT: Duration = Duration::from_secs(20);

/// The accessibility rules every console page is held to: WCAG 2.1 levels A and AA, as axe-core
/// checks them.
const AXE_TAGS: &[&str] = &["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"];

pub struct Browser {
    pub client: Client,
    base_url: String,
    _driver: tokio::process::Child,
    profile: PathBuf,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// Where screenshots go: `target/console-screenshots/` of the repository, for a person to look
/// at after a run.
pub fn screenshot_dir() -> PathBuf {
    repository_root().join("target").join("console-screenshots")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free local port")
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session; `base_url` is the app under test.
    pub async fn start(base_url: &str) -> Browser {
        let port = free_port();
        let chromedriver = env_or("PAYGATE_TEST_CHROMEDRIVER", "chromedriver");
        let driver = tokio::process::Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| {
                panic!("start {chromedriver} (apt-get install chromium-driver): {err}")
            });
        let webdriver = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + DRIVER_START_TIMEOUT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start listening");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile =
            std::env::temp_dir().join(paygate::domain::ids::random_id("paygate-browser", 6));
        // As root, Chromium needs --no-sandbox; background networking is off because this
        // machine has no way out and everything the console needs comes from paygate itself.
        let args = json!([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,1000",
            format!("--user-data-dir={}", profile.display()),
        ]);
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({"binary": binary_path(&env_or("PAYGATE_TEST_CHROMIUM", "chromium")), "args": args}),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&webdriver)
            .await
            .expect("a WebDriver session with headless Chromium");
        client
            .update_timeouts(TimeoutConfiguration::new(
                Some(PAGE_TIMEOUT),
                Some(PAGE_TIMEOUT),
                Some(Duration::ZERO),
            ))
            .await
            .expect("set the session's timeouts");
        Browser {
            client,
            base_url: base_url.trim_end_matches('/').to_owned(),
            _driver: driver,
            profile,
        }
    }

    /// Opens `path` of the app under test.
    pub async fn open(&self, path: &str) {
        let url = format!("{}{path}", self.base_url);
        self.client.goto(&url).await.unwrap_or_else(|err| panic!("open {url}: {err}"));
    }

    /// The path (and query) of the page now shown.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("the current URL");
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// The first element matching the CSS selector, waiting for it to appear.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(PAGE_TIMEOUT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|err| panic!("find {css}: {err}"))
    }

    /// How many elements match the CSS selector now.
    pub async fn count(&self, css: &str) -> usize {
        self.client.find_all(Locator::Css(css)).await.map(|found| found.len()).unwrap_or(0)
    }

    /// The visible text of the first element matching the CSS selector.
    pub async fn text(&self, css: &str) -> String {
        // A live page may replace the element between finding it and reading it: find it again.
        for _ in 0..20 {
            match self.find(css).await.text().await {
                Ok(text) => return text,
                Err(err) if err.is_stale_element_reference() => continue,
                Err(err) => panic!("the text of {css}: {err}"),
            }
        }
        panic!("{css} was replaced every time its text was read");
    }

    /// Types `text` into the field matching `css`, replacing what it held.
    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.expect("clear a field");
        field.send_keys(text).await.expect("type into a field");
    }

    /// Clicks the element matching `css`.
    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap_or_else(|err| panic!("click {css}: {err}"));
    }

    /// Runs `script` in the page and answers what it returns.
    pub async fn run(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|err| panic!("run a script in the page: {err}"))
    }

    /// Waits until `condition` (a script returning a boolean) holds, at most `within`.
    pub async fn wait_until(&self, condition: &str, within: Duration, what: &str) {
        let deadline = Instant::now() + within;
        loop {
            if self.run(condition, vec![]).await == Value::Bool(true) {
                return;
            }
            assert!(Instant::now() < deadline, "{what} within {within:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a PNG of the page as `target/console-screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("a screenshot");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("create the screenshot directory");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write a screenshot");
        path
    }

    /// Runs axe-core's WCAG 2.1 A and AA rules on the page and fails with every violation.
    pub async fn assert_accessible(&self, page: &str) {
        let loaded = self.run("return typeof window.axe === 'object';", vec![]).await;
        if loaded != Value::Bool(true) {
            self.run(&axe_source(), vec![]).await;
        }
        let script = r#"
            const done = arguments[arguments.length - 1];
            axe.run(document, {runOnly: {type: 'tag', values: arguments[0]}})
                .then(result => done(result.violations.map(v => ({
                    id: v.id, impact: v.impact, help: v.help,
                    nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ') + ' ' + n.failureSummary)
                }))))
                .catch(err => done([{id: 'axe-error', help: String(err)}]));
        "#;
        let violations = self
            .client
            .execute_async(script, vec![json!(AXE_TAGS)])
            .await
            .unwrap_or_else(|err| panic!("run axe-core on {page}: {err}"));
        let violations = violations.as_array().cloned().unwrap_or_default();
        assert!(
            violations.is_empty(),
            "{page} breaks accessibility rules: {}",
            serde_json::to_string_pretty(&violations).unwrap_or_default()
        );
    }

    /// Ends the session and removes the profile.
    pub async fn close(self) {
        let _ = self.client.close().await;
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// A program's absolute path (chromedriver wants one), searched for on `PATH` when bare.
fn binary_path(program: &str) -> String {
    if program.contains('/') {
        return program.to_owned();
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .map(|found| found.display().to_string())
        .unwrap_or_else(|| panic!("{program} is not on PATH (apt-get install chromium)"))
}

/// axe-core's script: `PAYGATE_TEST_AXE`, or where `.ci/run` installs it.
fn axe_source() -> String {
    let path = std::env::var("PAYGATE_TEST_AXE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repository_root().join("target/axe/node_modules/axe-core/axe.min.js"));
    std::fs::read_to_string(&path).unwrap_or_else(|err| {
        panic!(
            "read axe-core at {} ({err}); install it with \
             `npm install --prefix target/axe axe-core@4.14.1`, as .ci/run does",
            path.display()
        )
    })
}
