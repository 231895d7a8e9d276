//! The `paygate` binary as an operator runs it: the embedded default database, the commands of
//! contract section 10, and configuration errors.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{free_port, DataDir, PAYGATE};

fn run(mut command: Command) -> Output {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

struct Server {
    child: Child,
    base: String,
}

impl Server {
    async fn start(data: &DataDir) -> Server {
        let port = free_port();
        let child = data
            .command(&["serve"])
            .env("PAYGATE_LISTEN", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(response) = reqwest::get(format!("{}/readyz", server.base)).await {
                if response.status() == 200 {
                    return server;
                }
            }
            assert!(Instant::now() < deadline, "serve did not become ready");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGTERM, as Kubernetes stops a pod; the server must exit cleanly.
    fn terminate(mut self) {
        // SAFETY: kill has no memory-safety preconditions; the pid is our own child's.
        let sent = unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        assert_eq!(sent, 0);
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "serve exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn owner_uid(path: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().uid()
}

#[tokio::test]
async fn the_embedded_default_serves_shares_its_cluster_and_keeps_data_across_restarts() {
    let data = DataDir::new("paygate-cli");
    let server = Server::start(&data).await;
    if unsafe { libc::geteuid() } == 0 {
        assert_ne!(
            owner_uid(&data.0.join("postgres")),
            0,
            "the cluster does not belong to root"
        );
    }

    // A second command while serve is up uses the same cluster, and leaves it running.
    let output = run(data.command(&["admin", "create-key", "--role", "admin"]));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let key = stdout.lines().last().unwrap().to_owned();
    assert!(key.starts_with("pgk_"), "{stdout}");
    let http = reqwest::Client::new();
    let response = http
        .post(format!("{}/v1/banks", server.base))
        .bearer_auth(&key)
        .json(&serde_json::json!({"code": "VCB", "name": "Vietcombank"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        201,
        "the running server accepts the new key"
    );

    // The process that started the cluster stops it on a clean shutdown.
    server.terminate();
    assert!(
        !data.pid_file().exists(),
        "the cluster was stopped with serve"
    );

    // A crash leaves postmaster.pid behind, and its PID may since belong to another process
    // (here: this test). That must not block the next start.
    std::fs::write(
        data.pid_file(),
        format!(
            "{}\n{}\n",
            std::process::id(),
            data.0.join("postgres").display()
        ),
    )
    .unwrap();
    let server = Server::start(&data).await;
    let response = http
        .get(format!("{}/v1/banks/VCB", server.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "the key and the bank survived the restart"
    );
    server.terminate();
}

#[test]
fn a_command_alone_starts_the_cluster_and_stops_it_when_done() {
    let data = DataDir::new("paygate-cli");
    run(data.command(&["migrate"]));
    assert!(data.0.join("postgres/PG_VERSION").exists());
    assert!(!data.pid_file().exists(), "the cluster was stopped again");
    let output = run(data.command(&["admin", "create-key", "--role", "auditor"]));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        stdout.lines().count(),
        1,
        "stdout carries only the key: {stdout}"
    );
    assert!(stdout.starts_with("pgk_"));
}

#[test]
fn sign_prints_the_signature_header_for_stdin() {
    let mut child = Command::new(PAYGATE)
        .args([
            "sign",
            "--secret",
            "bsk_test_secret",
            "--kid",
            "VCB",
            "--timestamp",
            "1700000000",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"a":1}"#)
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let expected =
        paygate::signature::sign(b"bsk_test_secret", "VCB", 1_700_000_000, br#"{"a":1}"#);
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        format!("{expected}\n")
    );
    assert!(expected.starts_with("t=1700000000,kid=VCB,v1="));
}

#[test]
fn a_bad_configuration_value_stops_the_process_with_one_line_naming_it() {
    for (variable, value) in [
        ("PAYGATE_LISTEN", "nowhere"),
        ("PAYGATE_SIGNATURE_TOLERANCE_S", "abc"),
        ("PAYGATE_NOTIFY_BACKOFF_S", "10,x"),
        ("PAYGATE_NOTIFY_ALLOW_PRIVATE", "perhaps"),
        ("DATABASE_URL", "postgres://u:pw@h:notaport/db"),
    ] {
        let output = Command::new(PAYGATE)
            .args(["migrate"])
            .env(variable, value)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{variable}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(variable), "{stderr}");
        assert!(output.stdout.is_empty());
    }
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["migrate", "--help"],
        vec!["admin", "create-key", "--help"],
        vec!["sign", "--help"],
    ] {
        let output = Command::new(PAYGATE).args(&args).output().unwrap();
        assert!(output.status.success(), "{args:?}");
        assert!(
            String::from_utf8(output.stdout).unwrap().contains("Usage"),
            "{args:?}"
        );
    }
}
