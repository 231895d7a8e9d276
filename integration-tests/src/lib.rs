//! The test harness: a throwaway PostgreSQL cluster (or `TEST_DATABASE_URL`), one migrated
//! template database, and per test a fresh database copied from it and the real app serving on
//! port 0.
//!
//! The template is migrated by the superuser (the owner), and the app under test connects as
//! the service role, as in production: every test thus also proves that the service role's
//! privileges suffice. The tests' own `db` pool connects as the owner, to arrange and assert.

pub mod answers;
pub mod bank_simulator;
pub mod browser;
pub mod clock;
pub mod orders;
pub mod receiver;
pub mod signer;
pub mod world;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use deadpool_postgres::Pool;
use paygate::auth::{self, Role};
use paygate::config::Config;
use paygate::db::embedded::{Cluster, ClusterOptions};
use paygate::db::Settings;
use paygate::startup::Application;
use serde_json::{json, Value};

use crate::answers::RequestExt;

/// Where test databases are made: a server, and the template each test database copies.
struct Server {
    /// Connection settings for an administrative database on the server, as its superuser.
    admin: Settings,
    template: String,
    /// Keeps the throwaway cluster registered as in use for the whole test process.
    _cluster: Option<Cluster>,
}

static SERVER: OnceLock<Server> = OnceLock::new();

/// The parameters of an SQL statement the tests run.
pub type Params<'a> = &'a [&'a (dyn tokio_postgres::types::ToSql + Sync)];

/// A throwaway cluster in a fresh directory under the system's temporary directory (which the
/// unprivileged `postgres` account can enter, unlike many checkouts). A watchdog process stops
/// it and deletes the directory once this test process has exited, however it exits.
///
/// A `durable` cluster keeps PostgreSQL's default fsync and commit settings, for tests that
/// crash the server and expect committed data to survive.
pub fn throwaway_cluster(durable: bool) -> Cluster {
    let dir = std::env::temp_dir().join(paygate::domain::ids::random_id("paygate-test", 6));
    std::fs::create_dir_all(&dir).expect("create the test cluster's directory");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
        .expect("open the test cluster's directory to the postgres account");
    let cluster_dir = dir.join("pg");
    // Durability is pointless for data that is thrown away, and costs seconds per test run.
    let settings = if durable {
        Vec::new()
    } else {
        [("fsync", "off"), ("synchronous_commit", "off"), ("full_page_writes", "off")]
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .to_vec()
    };
    let cluster = Cluster::start(&cluster_dir, &ClusterOptions { settings })
        .unwrap_or_else(|err| panic!("cannot start a throwaway PostgreSQL cluster: {err}"));
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
         pid=$(head -n 1 '{dir}/pg/postmaster.pid' 2>/dev/null) && kill -QUIT \"$pid\"; \
         sleep 2; rm -rf '{dir}'",
        pid = std::process::id(),
        dir = dir.display()
    );
    // The watchdog must outlive this process, so it is never waited for; init reaps it.
    #[allow(clippy::zombie_processes)]
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group, so that Ctrl-C on the test run does not kill the watchdog.
        .process_group(0)
        .spawn()
        .expect("start the test cluster's watchdog");
    cluster
}

fn server() -> &'static Server {
    SERVER.get_or_init(|| {
        // The template is made on a runtime of its own: test runtimes come and go.
        std::thread::spawn(|| {
            tokio::runtime::Runtime::new().expect("a tokio runtime").block_on(make_server())
        })
        .join()
        .expect("setting up the test database server")
    })
}

/// The service role's password on the test server. Only `TEST_DATABASE_URL` servers ask for it
/// (the throwaway cluster trusts its private socket); a fixed value lets test processes that
/// share such a server agree on it.
pub const SERVICE_ROLE_TEST_PASSWORD: &str = "paygate-service-test-only";

/// `settings` as the service role, which is what the app under test connects as.
pub fn as_service_role(settings: &tokio_postgres::Config) -> tokio_postgres::Config {
    let mut settings = settings.clone();
    settings.user(paygate::db::SERVICE_ROLE).password(SERVICE_ROLE_TEST_PASSWORD);
    settings
}

async fn make_server() -> Server {
    let (admin, cluster) = match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            (Settings::from_str(&url).expect("TEST_DATABASE_URL is a PostgreSQL URL"), None)
        }
        _ => {
            let cluster = throwaway_cluster(false);
            (
                Settings::from(cluster.connection_config(paygate::db::embedded::DATABASE)),
                Some(cluster),
            )
        }
    };
    let template = paygate::domain::ids::random_id("paygate_template", 6);
    execute(&admin, &format!("CREATE DATABASE {template}")).await;
    let mut settings = admin.clone();
    settings.config.dbname(&template);
    let (mut client, connection) = settings
        .effective_config()
        .connect(settings.connector())
        .await
        .expect("connect to the template database");
    let connection = tokio::spawn(connection);
    paygate::db::migrate::run(&mut client).await.expect("migrate the template database");
    drop(client);
    // No session may remain on a template while it is copied.
    let _ = connection.await;
    // The migration made the service role if it was missing, unable to log in; the app under
    // test logs in as it.
    execute(
        &admin,
        &format!(
            "ALTER ROLE {} WITH LOGIN PASSWORD '{SERVICE_ROLE_TEST_PASSWORD}'",
            paygate::db::SERVICE_ROLE
        ),
    )
    .await;
    Server { admin, template, _cluster: cluster }
}

async fn execute(settings: &Settings, sql: &str) {
    try_execute(settings, sql).await.unwrap_or_else(|err| panic!("{err}"));
}

async fn try_execute(settings: &Settings, sql: &str) -> Result<(), String> {
    let (client, connection) = settings
        .effective_config()
        .connect(settings.connector())
        .await
        .map_err(|err| format!("connect to run {sql}: {err}"))?;
    let connection = tokio::spawn(connection);
    let result = client.batch_execute(sql).await.map_err(|err| format!("{sql}: {err}"));
    drop(client);
    let _ = connection.await;
    result
}

/// How long a finished test waits for its database to be dropped. Dropping a small database is
/// a matter of milliseconds; a server that takes longer is left to finish on its own, and the
/// test goes on rather than hang.
const DROP_DATABASE_WAIT_MS: u64 = 10_000;

/// How many live `TestApp`s serve each database the harness made. Two apps may share one
/// database (a second replica); it is dropped when the last of them is.
static DATABASES_IN_USE: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());

/// Drops a test database the harness made, forcing off whatever is still connected (the app's
/// pool, the test's own pool). Drop is synchronous, so the work runs on a small runtime of its
/// own on a thread of its own, waited for at most `DROP_DATABASE_WAIT_MS`. It never fails a
/// test: a failure (say a server older than PostgreSQL 13, which lacks `WITH (FORCE)`) is only
/// printed, and the database is left behind as before.
fn drop_database(name: String) {
    let (done, finished) = std::sync::mpsc::channel();
    let work = move || {
        let result = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|err| format!("a runtime to drop {name}: {err}"))
            .and_then(|runtime| {
                runtime.block_on(try_execute(
                    &server().admin,
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                ))
            });
        let _ = done.send(result);
    };
    if std::thread::Builder::new().name("drop-test-database".to_owned()).spawn(work).is_err() {
        return;
    }
    match finished.recv_timeout(Duration::from_millis(DROP_DATABASE_WAIT_MS)) {
        Ok(Ok(())) => {}
        Ok(Err(err)) => eprintln!("leaving a test database behind: {err}"),
        Err(_) => eprintln!("leaving a test database behind: dropping it took too long"),
    }
}

/// A fresh, migrated database for one test; returns its connection settings.
pub async fn fresh_database() -> tokio_postgres::Config {
    copy_of(&server().template).await
}

/// A fresh database with no migrations applied.
pub async fn empty_database() -> tokio_postgres::Config {
    copy_of("template0").await
}

/// The prefix of every database a test gets, so that the harness drops only its own.
const TEST_DATABASE_PREFIX: &str = "paygate_test";

async fn copy_of(template: &str) -> tokio_postgres::Config {
    let server = server();
    let name = paygate::domain::ids::random_id(TEST_DATABASE_PREFIX, 8);
    execute(&server.admin, &format!("CREATE DATABASE {name} TEMPLATE {template}")).await;
    let mut settings = server.admin.config.clone();
    settings.dbname(&name);
    settings
}

/// The seed of the key that signs the test apps' ledger seals.
pub const TEST_SEAL_SEED: [u8; 32] = [0x5e; 32];

/// A configuration for tests: few threads, private notify URLs allowed.
pub fn test_config() -> Config {
    Config {
        http_workers: 1,
        notify_allow_private: true,
        expiry_interval_ms: 200,
        notify_poll_interval_ms: 100,
        // Seal often, and with a fixed key so that no test writes a key file into ./data.
        seal_interval_ms: 200,
        seal_key: Some(paygate::ledger::signing::SealSeed::from_bytes(TEST_SEAL_SEED)),
        ..Config::default()
    }
}

/// The real application serving on an ephemeral port, with its own database.
pub struct TestApp {
    pub address: String,
    /// Direct access to the app's database as its owner, for arranging and asserting.
    pub db: Pool,
    /// The owner's connection settings (the app itself connects as the service role).
    pub db_settings: tokio_postgres::Config,
    pub http: reqwest::Client,
    /// An API key of role admin.
    pub admin_key: String,
    handle: actix_web_handle::Handle,
    /// The database this app serves, dropped with the last app that serves it when the harness
    /// made it (`None` for a database the harness did not make).
    database: Option<String>,
}

/// Keeps `actix-web` out of the tests' own dependencies.
mod actix_web_handle {
    pub struct Handle(pub paygate::startup::ServerHandle);
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(test_config()).await
    }

    pub async fn spawn_with(config: Config) -> TestApp {
        let settings = fresh_database().await;
        Self::spawn_on(config, settings).await
    }

    /// Serves `config` against the database at `settings` (the owner's, already migrated), as
    /// the service role.
    pub async fn spawn_on(config: Config, settings: tokio_postgres::Config) -> TestApp {
        if std::env::var_os("RUST_LOG").is_some() {
            paygate::telemetry::init_logging();
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let pool = paygate::db::pool(as_service_role(&settings), 4);
        let app = Application::build(config, pool, as_service_role(&settings).into(), listener)
            .expect("build the app");
        let address = format!("http://127.0.0.1:{}", app.port());
        let handle = actix_web_handle::Handle(app.handle());
        tokio::spawn(app.run_until_stopped());
        let db = paygate::db::pool(&settings, 2);
        let admin_key = {
            let client = db.get().await.expect("a test database connection");
            auth::create_api_key(&client, Role::Admin, None)
                .await
                .expect("create the test admin key")
        };
        let database = settings
            .get_dbname()
            .filter(|name| name.starts_with(TEST_DATABASE_PREFIX))
            .map(str::to_owned);
        if let Some(name) = &database {
            let mut in_use = DATABASES_IN_USE.lock().unwrap_or_else(|e| e.into_inner());
            *in_use.entry(name.clone()).or_default() += 1;
        }
        TestApp {
            address,
            db,
            db_settings: settings,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                // The server closes a connection idle for 5 s (actix-web's keep-alive). A client
                // that reused one at that moment would see its request cut off
                // (`IncompleteMessage`); dropping idle connections sooner avoids the race.
                .pool_idle_timeout(Duration::from_secs(2))
                .build()
                .expect("an HTTP client"),
            admin_key,
            handle,
            database,
        }
    }

    /// Stops the app and keeps its database, for a test that starts another app on it (a
    /// restart); returns the database's owner settings for `spawn_on`.
    pub fn stop_keeping_database(mut self) -> tokio_postgres::Config {
        self.release_database();
        self.db_settings.clone()
    }

    /// Forgets that this app serves its database; returns its name when no other live app
    /// serves it and the harness made it, that is when it may be dropped.
    fn release_database(&mut self) -> Option<String> {
        let name = self.database.take()?;
        let mut in_use = DATABASES_IN_USE.lock().unwrap_or_else(|e| e.into_inner());
        let count = in_use.entry(name.clone()).or_default();
        *count = count.saturating_sub(1);
        if *count > 0 {
            return None;
        }
        in_use.remove(&name);
        Some(name)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// A request without a key.
    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(path))
    }

    /// A request without a key.
    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(self.url(path))
    }

    /// A request with `api_key`.
    pub fn get_with(&self, api_key: &str, path: &str) -> reqwest::RequestBuilder {
        self.get(path).bearer_auth(api_key)
    }

    /// A request with `api_key`.
    pub fn post_with(&self, api_key: &str, path: &str) -> reqwest::RequestBuilder {
        self.post(path).bearer_auth(api_key)
    }

    /// A request with the admin key.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(&self.admin_key)
    }

    /// The number of rows `sql` (a `SELECT count(*) ...`) counts.
    pub async fn count(&self, sql: &str) -> i64 {
        let client = self.db.get().await.expect("a test database connection");
        client.query_one(sql, &[]).await.expect(sql).get(0)
    }

    /// The rows `sql` reads with `params`, as the owner.
    pub async fn rows(&self, sql: &str, params: Params<'_>) -> Vec<tokio_postgres::Row> {
        let client = self.db.get().await.expect("a test database connection");
        client.query(sql, params).await.unwrap_or_else(|err| panic!("{sql}: {err}"))
    }

    /// Asserts that `sql` (a `SELECT count(*) ...`) counts `expected` rows.
    pub async fn assert_count(&self, sql: &str, expected: i64) {
        assert_eq!(self.count(sql).await, expected, "{sql}");
    }

    /// The one row `sql` reads with `params`, as the owner.
    pub async fn row(&self, sql: &str, params: Params<'_>) -> tokio_postgres::Row {
        let rows = self.rows(sql, params).await;
        assert_eq!(rows.len(), 1, "{sql} reads one row");
        rows.into_iter().next().expect("one row")
    }

    /// Runs the statement `sql` with `params`, as the owner; returns how many rows it changed.
    pub async fn execute(&self, sql: &str, params: Params<'_>) -> u64 {
        let client = self.db.get().await.expect("a test database connection");
        client.execute(sql, params).await.unwrap_or_else(|err| panic!("{sql}: {err}"))
    }

    /// Creates an agency through the API and returns the answer.
    pub async fn create_agency(&self, code: &str) -> Value {
        self.admin(reqwest::Method::POST, "/v1/agencies")
            .json(&json!({"code": code, "name": format!("Cơ quan {code}")}))
            .json_with(201)
            .await
    }

    /// Creates a bank through the API and returns the answer.
    pub async fn create_bank(&self, code: &str) -> Value {
        self.admin(reqwest::Method::POST, "/v1/banks")
            .json(&json!({"code": code, "name": format!("Ngân hàng {code}")}))
            .json_with(201)
            .await
    }

    /// A fresh app with the agency `agency` and the bank `bank`, created through the API.
    pub async fn with_agency_and_bank(agency: &str, bank: &str) -> TestApp {
        let app = TestApp::spawn().await;
        app.create_agency(agency).await;
        app.create_bank(bank).await;
        app
    }

    /// Creates an API key of `role` directly in the database.
    pub async fn key_with_role(&self, role: &str) -> String {
        let body = self
            .admin(reqwest::Method::POST, "/v1/api-keys")
            .json(&json!({ "role": role }))
            .json_with(201)
            .await;
        body["api_key"].as_str().expect("api_key").to_owned()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // `stop` sends its command at once; the returned future only waits for completion.
        drop(self.handle.0.stop(false));
        if let Some(name) = self.release_database() {
            // Every test's audit trail is scanned before its database goes: no test may leave a
            // secret, a key or an id_number in it (a test that already fails is not scanned).
            let findings = if std::thread::panicking() {
                Vec::new()
            } else {
                scan_audit_blocking(&self.db_settings)
            };
            drop_database(name);
            assert!(
                findings.is_empty(),
                "the audit trail of this test's database holds secrets: {findings:#?}"
            );
        }
    }
}

/// The shortest stored `id_number` the scan looks for; a shorter one (no real identity number
/// is) would match digits that happen to occur in any detail.
const SCANNED_ID_NUMBER_MIN_CHARS: usize = 6;

/// The prefixes of paygate's secrets: API keys, bank secrets, notification secrets.
const SECRET_PREFIXES: [&str; 3] = ["pgk_", "bsk_", "nsk_"];
/// The base64url characters after a secret's prefix (32 bytes, unpadded).
const SECRET_BODY_CHARS: usize = 43;

/// Whether `text` holds something shaped like one of paygate's secrets: a prefix followed by
/// 43 base64url characters.
pub fn holds_secret_pattern(text: &str) -> bool {
    SECRET_PREFIXES.iter().any(|prefix| {
        text.match_indices(prefix).any(|(at, _)| {
            let body = &text.as_bytes()[at + prefix.len()..];
            body.len() >= SECRET_BODY_CHARS
                && body[..SECRET_BODY_CHARS]
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
        })
    })
}

/// Reads every audit entry of the database at `settings` (as its owner) and names each whose
/// `detail` or `target` holds a secret: anything shaped like an API key, bank secret or
/// notification secret, any notification or bank secret stored in that database, or any payer
/// `id_number` stored in its payments. A database without an audit trail has nothing to scan.
pub async fn scan_audit(settings: &tokio_postgres::Config) -> Result<Vec<String>, String> {
    let client = Settings::from(settings)
        .connect()
        .await
        .map_err(|err| format!("connect to scan the audit trail: {err}"))?;
    let query = |sql: &'static str| {
        let client = &client;
        async move { client.query(sql, &[]).await.map_err(|err| format!("{sql}: {err}")) }
    };
    let exists: bool = query("SELECT to_regclass('audit_log') IS NOT NULL").await?[0].get(0);
    if !exists {
        return Ok(Vec::new());
    }
    let mut stored: Vec<String> = Vec::new();
    for sql in [
        "SELECT notify_secret FROM agencies",
        "SELECT previous_notify_secret FROM agencies WHERE previous_notify_secret IS NOT NULL",
        "SELECT secret FROM bank_keys",
        "SELECT DISTINCT payer_id_number FROM payments WHERE payer_id_number IS NOT NULL",
    ] {
        stored.extend(query(sql).await?.iter().map(|row| row.get::<_, String>(0)));
    }
    stored.retain(|value| value.chars().count() >= SCANNED_ID_NUMBER_MIN_CHARS);
    let mut findings = Vec::new();
    for row in query("SELECT seq, target, detail::text FROM audit_log ORDER BY seq").await? {
        let (seq, target, detail): (i64, String, String) = (row.get(0), row.get(1), row.get(2));
        // The detail as stored (jsonb text escapes nothing but quotes, backslashes and control
        // characters), and its strings unescaped, so that no escaping hides a value.
        let unescaped = serde_json::from_str::<Value>(&detail)
            .map(|value| strings_of(&value).join("\n"))
            .unwrap_or_default();
        for text in [&target, &detail, &unescaped] {
            if holds_secret_pattern(text) {
                findings.push(format!("entry {seq}: a secret-shaped string in {text}"));
            }
            if let Some(value) = stored.iter().find(|value| text.contains(value.as_str())) {
                findings.push(format!(
                    "entry {seq}: a stored secret or id_number ({} characters) in {text}",
                    value.chars().count()
                ));
            }
        }
    }
    findings.dedup();
    Ok(findings)
}

/// Every string in `value`, object keys included.
fn strings_of(value: &Value) -> Vec<String> {
    match value {
        Value::String(text) => vec![text.clone()],
        Value::Array(items) => items.iter().flat_map(strings_of).collect(),
        Value::Object(map) => map
            .iter()
            .flat_map(|(key, member)| std::iter::once(key.clone()).chain(strings_of(member)))
            .collect(),
        _ => Vec::new(),
    }
}

/// [`scan_audit`] from a synchronous context (a `Drop`), on a runtime and thread of its own,
/// waited for at most `DROP_DATABASE_WAIT_MS`. A database that cannot be read (a test that took
/// its server away) is reported on stderr and not scanned.
fn scan_audit_blocking(settings: &tokio_postgres::Config) -> Vec<String> {
    let (done, finished) = std::sync::mpsc::channel();
    let settings = settings.clone();
    let work = move || {
        let result = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|err| format!("a runtime to scan the audit trail: {err}"))
            .and_then(|runtime| runtime.block_on(scan_audit(&settings)));
        let _ = done.send(result);
    };
    if std::thread::Builder::new().name("scan-audit-trail".to_owned()).spawn(work).is_err() {
        return Vec::new();
    }
    match finished.recv_timeout(Duration::from_millis(DROP_DATABASE_WAIT_MS)) {
        Ok(Ok(findings)) => findings,
        Ok(Err(err)) => {
            eprintln!("the audit trail was not scanned: {err}");
            Vec::new()
        }
        Err(_) => {
            eprintln!("the audit trail was not scanned: reading it took too long");
            Vec::new()
        }
    }
}

/// Valid `details` of each obligation, with realistic codes (docs/api-guide.md lists them).
pub fn details(obligation: &str) -> Value {
    match obligation {
        "fee" => json!({"procedure_code": "1.002804", "dossier_code": "H12.99-261122-0001"}),
        "tax" => json!({"tax_code": "0101234567", "tax_period": "Quý 4/2026"}),
        "social_insurance" => json!({"insurance_code": "0123456789", "period": "2026-11"}),
        "fine" => json!({"decision_number": "123/QĐ-XPVPHC", "violation_date": "2026-11-20"}),
        "electricity" => json!({"customer_code": "PE01000123456", "billing_period": "2026-11"}),
        "court_advance" => json!({"case_number": "456/2026/TLST-DS", "court_code": "TAND-HN"}),
        other => panic!("no details for {other}"),
    }
}

/// Asserts a problem+json answer with `status` and `code`, and returns its body.
pub async fn assert_problem(response: reqwest::Response, status: u16, code: &str) -> Value {
    let actual = response.status().as_u16();
    let content_type = answers::content_type(&response);
    let text = response.text().await.expect("an answer");
    assert_eq!(actual, status, "expected {status} {code}, got: {text}");
    assert_eq!(content_type, "application/problem+json", "{text}");
    let body: Value = serde_json::from_str(&text).expect("a JSON problem");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(body["type"], format!("urn:paygate:problem:{code}"), "{body}");
    body
}

/// The dotted field names a `validation_failed` problem lists.
pub fn invalid_fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .expect("validation_failed lists errors")
        .iter()
        .map(|e| e["field"].as_str().expect("field").to_owned())
        .collect()
}

/// A connection URL for `settings`, for tools that take one (e.g. `stmtgen`).
pub fn database_url(settings: &tokio_postgres::Config) -> String {
    let user = settings.get_user().unwrap_or("postgres");
    let dbname = settings.get_dbname().unwrap_or("postgres");
    let port = settings.get_ports().first().copied().unwrap_or(5432);
    match settings.get_hosts().first() {
        Some(tokio_postgres::config::Host::Unix(dir)) => {
            format!("postgresql:///{dbname}?host={}&port={port}&user={user}", dir.display())
        }
        Some(tokio_postgres::config::Host::Tcp(host)) => {
            let password = settings
                .get_password()
                .map(|p| format!(":{}", String::from_utf8_lossy(p)))
                .unwrap_or_default();
            format!("postgresql://{user}{password}@{host}:{port}/{dbname}")
        }
        None => format!("postgresql:///{dbname}?user={user}"),
    }
}

/// The repository's top-level directory.
pub fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("integration-tests sits in the repository")
        .to_path_buf()
}
