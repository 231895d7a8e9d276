//! The database connection as an operator configures it: TLS with each `sslmode` against a real
//! server with a generated certificate, and the embedded default serving as the service role.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use paygate::db::embedded::{Cluster, ClusterOptions};
use paygate::db::Settings;

mod common;

use common::{free_port, DataDir};

fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("{command:?}: {err}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A certificate authority, a server certificate it signed for `localhost` and 127.0.0.1, and a
/// second authority that signed nothing, made with the openssl command line (which Debian's
/// PostgreSQL packages depend on). EC P-256 keys, so that making them takes milliseconds.
struct Certificates {
    ca: PathBuf,
    other_ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
}

fn make_certificates(dir: &Path) -> Certificates {
    std::fs::create_dir_all(dir).unwrap();
    let openssl = |args: &[&str]| run(Command::new("openssl").args(args).current_dir(dir));
    for name in ["ca", "other-ca"] {
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-days",
            "2",
            "-subj",
            &format!("/CN=paygate test {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
    }
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName = DNS:localhost, IP:127.0.0.1\n\
         basicConstraints = critical, CA:FALSE\n\
         keyUsage = critical, digitalSignature\n\
         extendedKeyUsage = serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-set_serial",
        "2",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.crt",
    ]);
    // PostgreSQL refuses a key that others can read, and must own it.
    run(Command::new("chmod").arg("600").arg(dir.join("server.key")));
    if unsafe { libc::geteuid() } == 0 {
        run(Command::new("chown")
            .arg("postgres")
            .arg(dir.join("server.key")));
    }
    Certificates {
        ca: dir.join("ca.crt"),
        other_ca: dir.join("other-ca.crt"),
        server_cert: dir.join("server.crt"),
        server_key: dir.join("server.key"),
    }
}

/// A cluster that listens on 127.0.0.1 with TLS, and accepts TCP connections only over TLS
/// (`hostssl`); its private socket stays open to the tests' own set-up.
fn tls_cluster(data: &DataDir) -> (Cluster, Certificates, u16) {
    let certificates = make_certificates(&data.0.join("tls"));
    let hba = data.0.join("tls/pg_hba.conf");
    std::fs::write(
        &hba,
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
    )
    .unwrap();
    let port = free_port();
    let quoted = |path: &Path| format!("'{}'", path.display());
    let settings = [
        ("listen_addresses", "'127.0.0.1'".to_owned()),
        ("port", port.to_string()),
        ("ssl", "on".to_owned()),
        ("ssl_cert_file", quoted(&certificates.server_cert)),
        ("ssl_key_file", quoted(&certificates.server_key)),
        ("hba_file", quoted(&hba)),
        ("fsync", "off".to_owned()),
    ]
    .map(|(name, value)| (name.to_owned(), value))
    .to_vec();
    let cluster = Cluster::start(&data.0.join("postgres"), &ClusterOptions { settings })
        .unwrap_or_else(|err| panic!("cannot start a PostgreSQL cluster with TLS: {err}"));
    (cluster, certificates, port)
}

/// An error and its causes on one line, as the command line prints them.
fn with_causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Connects with `url` and answers whether the session is encrypted, or the error.
async fn session_uses_tls(url: &str) -> Result<bool, String> {
    let settings = Settings::from_str(url).map_err(|err| format!("configuration: {err}"))?;
    let client = settings.connect().await.map_err(|err| with_causes(&err))?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .map_err(|err| err.to_string())?;
    Ok(row.get(0))
}

#[tokio::test]
async fn each_sslmode_connects_or_refuses_as_libpq_would() {
    let data = DataDir::new("paygate-tls");
    let (cluster, certificates, port) = tls_cluster(&data);
    let ca = certificates.ca.display().to_string();
    let other_ca = certificates.other_ca.display().to_string();
    let url = |host: &str, query: &str| {
        format!("postgresql://postgres@{host}:{port}/paygate?connect_timeout=10&{query}")
    };
    // The certificate names localhost and 127.0.0.1; `wrong.example` reaches the same server
    // through hostaddr but is not a name in its certificate.
    let misnamed = |query: &str| url("wrong.example", &format!("hostaddr=127.0.0.1&{query}"));

    let connects = [
        url(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        ),
        url(
            "127.0.0.1",
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        ),
        url("localhost", &format!("sslmode=verify-ca&sslrootcert={ca}")),
        misnamed(&format!("sslmode=verify-ca&sslrootcert={ca}")),
        url("localhost", "sslmode=require"),
        url("localhost", "sslmode=prefer"),
    ];
    for url in &connects {
        assert_eq!(session_uses_tls(url).await, Ok(true), "{url}");
    }

    let refused_certificate = [
        url(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={other_ca}"),
        ),
        url(
            "localhost",
            &format!("sslmode=verify-ca&sslrootcert={other_ca}"),
        ),
        // As in libpq, a CA file makes require check the chain.
        url(
            "localhost",
            &format!("sslmode=require&sslrootcert={other_ca}"),
        ),
        misnamed(&format!("sslmode=verify-full&sslrootcert={ca}")),
    ];
    for url in &refused_certificate {
        let err = session_uses_tls(url).await.unwrap_err();
        assert!(
            err.contains("certificate"),
            "{url} is refused naming the certificate: {err}"
        );
    }
    let wrong_ca = session_uses_tls(&refused_certificate[0]).await.unwrap_err();
    assert!(wrong_ca.contains("UnknownIssuer"), "{wrong_ca}");
    let wrong_name = session_uses_tls(&refused_certificate[3]).await.unwrap_err();
    assert!(wrong_name.contains("not valid for name"), "{wrong_name}");

    // The server takes TCP connections only over TLS.
    let settings = Settings::from_str(&url("localhost", "sslmode=disable")).unwrap();
    let err = settings.connect().await.unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::INVALID_AUTHORIZATION_SPECIFICATION),
        "{err}"
    );
    assert!(
        with_causes(&err).contains("no encryption"),
        "{}",
        with_causes(&err)
    );

    // The pool connects through the same connector.
    let settings = Settings::from_str(&url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    ))
    .unwrap();
    let pool = paygate::db::pool(&settings, 1);
    paygate::db::check(&pool).await.unwrap();
    let client = pool.get().await.unwrap();
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "the pool's connection is encrypted");
    drop(client);
    pool.close();

    // The Unix socket never carries TLS, whatever sslmode says.
    let socket = format!(
        "postgresql:///paygate?host={}&port={port}&user=postgres&sslmode=require",
        cluster.socket_dir().display()
    );
    assert_eq!(session_uses_tls(&socket).await, Ok(false));
    cluster.release().unwrap();
}

/// `paygate <args>` with the given database variables (and no others from this process).
fn paygate(args: &[&str], database_url: &str, migration_url: Option<&str>) -> std::process::Output {
    let mut command = Command::new(common::PAYGATE);
    command
        .args(args)
        .env("DATABASE_URL", database_url)
        .env_remove("PAYGATE_MIGRATION_DATABASE_URL")
        .env("RUST_LOG", "warn");
    if let Some(url) = migration_url {
        command.env("PAYGATE_MIGRATION_DATABASE_URL", url);
    }
    command.output().unwrap()
}

#[tokio::test]
async fn the_commands_migrate_as_the_owner_and_work_as_the_service_role_over_verified_tls() {
    let data = DataDir::new("paygate-roles-tls");
    let (cluster, certificates, port) = tls_cluster(&data);
    let url = |user: &str| {
        format!(
            "postgresql://{user}@localhost:{port}/paygate?connect_timeout=10\
             &sslmode=verify-full&sslrootcert={}",
            certificates.ca.display()
        )
    };
    let (owner, service) = (url("postgres"), url(paygate::db::SERVICE_ROLE));

    // The service role alone cannot create the schema, and is told what to set.
    let output = paygate(&["migrate"], &service, None);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("PAYGATE_MIGRATION_DATABASE_URL"),
        "{stderr}"
    );

    // With the owner's URL, migrate applies everything.
    let output = paygate(&["migrate"], &service, Some(&owner));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // A command given only the service role's URL works on the up-to-date schema.
    let output = paygate(&["admin", "create-key", "--role", "admin"], &service, None);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout
            .trim()
            .lines()
            .last()
            .unwrap_or_default()
            .starts_with("pgk_"),
        "{stdout}"
    );
    cluster.release().unwrap();
}

struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn the_embedded_default_migrates_as_the_owner_and_serves_as_the_service_role() {
    let data = DataDir::new("paygate-roles");
    let port = free_port();
    let server = Server {
        child: data
            .command(&["serve"])
            .env("PAYGATE_LISTEN", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(data.log_file()).unwrap())
            .spawn()
            .unwrap(),
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(response) = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await {
            if response.status() == 200 {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "serve did not become ready: {}",
            data.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mut owner = tokio_postgres::Config::new();
    owner
        .host_path(data.0.join("postgres"))
        .port(5432)
        .user("postgres")
        .dbname("paygate");
    let owner = Settings::from(owner).connect().await.unwrap();
    let users: Vec<String> = owner
        .query(
            "SELECT DISTINCT usename::text FROM pg_stat_activity
             WHERE datname = 'paygate' AND application_name = 'paygate'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(users, [paygate::db::SERVICE_ROLE], "serve's connections");
    let table_owners: Vec<String> = owner
        .query(
            "SELECT DISTINCT tableowner::text FROM pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        table_owners,
        ["postgres"],
        "the migrations ran as the owner"
    );
    drop(owner);
    drop(server);
}
