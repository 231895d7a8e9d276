//! Helpers shared by the tests that run the `paygate` binary.

// Each test file uses its own subset of these helpers.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const PAYGATE: &str = env!("CARGO_BIN_EXE_paygate");

/// A data directory under the system's temporary directory (the `postgres` account can enter
/// it), cleaned up with whatever cluster runs in it when the test ends, passed or failed.
pub struct DataDir(pub PathBuf);

impl DataDir {
    pub fn new(prefix: &str) -> DataDir {
        let dir = std::env::temp_dir().join(paygate::domain::ids::random_id(prefix, 6));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        DataDir(dir)
    }

    pub fn pid_file(&self) -> PathBuf {
        self.0.join("postgres/postmaster.pid")
    }

    pub fn log_file(&self) -> PathBuf {
        self.0.join("serve.log")
    }

    /// The server's stderr so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_file()).unwrap_or_default()
    }

    /// `paygate <args>` on this data directory's embedded cluster.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(PAYGATE);
        command
            .args(args)
            .env_remove("DATABASE_URL")
            .env("PAYGATE_DATA_DIR", &self.0)
            .env("RUST_LOG", "info");
        command
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        if let Ok(text) = std::fs::read_to_string(self.pid_file()) {
            if let Some(pid) = text.lines().next() {
                let _ = Command::new("kill").args(["-QUIT", pid.trim()]).status();
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `paygate serve` on a data directory's embedded cluster, listening on a free port; its stderr
/// goes to the data directory's log. Killed if the test ends without stopping it.
pub struct Server {
    child: Child,
    pub base: String,
}

impl Server {
    /// Starts the server and waits until `/readyz` answers 200.
    pub async fn start(data: &DataDir) -> Server {
        Server::start_with(data, &[]).await
    }

    /// As [`Server::start`], with more environment variables.
    pub async fn start_with(data: &DataDir, env: &[(&str, &str)]) -> Server {
        let port = free_port();
        let log = std::fs::File::create(data.log_file()).unwrap();
        let child = data
            .command(&["serve"])
            .envs(env.iter().copied())
            .env("PAYGATE_LISTEN", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
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
            assert!(
                Instant::now() < deadline,
                "serve did not become ready: {}",
                data.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGTERM, as Kubernetes stops a pod; waits for the server to exit and returns how it did.
    pub fn terminate(mut self) -> ExitStatus {
        // SAFETY: kill has no memory-safety preconditions; the pid is our own child's.
        let sent = unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        assert_eq!(sent, 0);
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
