//! The embedded default database: a private PostgreSQL cluster under `$PAYGATE_DATA_DIR/postgres`.
//!
//! It is made with the machine's own server binaries (`pg_config --bindir`, then `PATH`), listens
//! only on a Unix socket inside its own directory (no TCP port to collide with), and is shared by
//! every paygate process that uses the same data directory. Each process holds a shared `flock`
//! on `postgres.lock` while it uses the cluster; the last one to leave stops it, so `paygate
//! migrate` run while `serve` is up never pulls the database from under the server.
//!
//! Two roles use it: the bootstrap superuser owns the database and applies the migrations, and
//! the service role (made here with LOGIN, so it exists before the first migration) serves.
//! Both authenticate by `trust`, which the private socket makes safe.
//!
//! PostgreSQL refuses to run as root. When paygate runs as root, the cluster's files belong to
//! the unprivileged `postgres` account (made by Debian's `postgresql` package) and its processes
//! run as that account.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Unix socket paths are limited to 107 bytes; the file PostgreSQL makes is `.s.PGSQL.5432`.
const MAX_SOCKET_DIR_BYTES: usize = 107 - ".s.PGSQL.5432".len() - 1;
/// How long `pg_ctl` may take to start or stop the cluster before we give up.
const PG_CTL_TIMEOUT_S: &str = "60";
/// The superuser that `initdb` creates; connections come over the private socket only.
pub const SUPERUSER: &str = "postgres";
/// The database paygate keeps its data in, made after `initdb`.
pub const DATABASE: &str = "paygate";
/// The port in the socket's file name (and of TCP, for a cluster told to listen there), unless
/// the cluster's settings name another.
const PORT: u16 = 5432;

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "no PostgreSQL server binaries found (looked in `pg_config --bindir` and PATH for initdb \
         and pg_ctl): install the Debian package `postgresql` (apt-get install postgresql), or \
         set DATABASE_URL to use an existing server"
    )]
    BinariesNotFound,
    #[error(
        "paygate runs as root and PostgreSQL refuses root, but there is no `postgres` account \
         to run it as: install the Debian package `postgresql`, which creates it, or set \
         DATABASE_URL"
    )]
    NoUnprivilegedUser,
    #[error(
        "the `postgres` account cannot reach {0}: a parent directory is closed to it. Set \
         PAYGATE_DATA_DIR to a directory it can enter (e.g. PAYGATE_DATA_DIR=/var/lib/paygate), \
         or let it through with `chmod o+x` on each parent directory"
    )]
    Unreachable(PathBuf),
    #[error(
        "the data directory path {0} is too long for a Unix socket (at most {MAX_SOCKET_DIR_BYTES} \
         bytes): set PAYGATE_DATA_DIR to a shorter path"
    )]
    PathTooLong(PathBuf),
    #[error("{command} failed: {detail}")]
    Command { command: String, detail: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

fn io_error(context: impl Into<String>) -> impl FnOnce(io::Error) -> EmbeddedError {
    let context = context.into();
    move |source| EmbeddedError::Io { context, source }
}

/// The account the cluster's processes run as.
#[derive(Debug, Clone, Copy)]
struct Account {
    uid: u32,
    gid: u32,
}

/// A running (or about to run) private cluster. Dropping it does not stop it: call
/// [`Cluster::release`] on a clean shutdown.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    port: u16,
    bindir: PathBuf,
    account: Option<Account>,
    lock: Option<LockPair>,
}

/// The two lock files of a cluster in use (see [`Cluster::start`]).
#[derive(Debug)]
struct LockPair {
    starting: File,
    users: File,
}

fn open_lock(path: &Path) -> Result<File, EmbeddedError> {
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io_error(format!("opening {}", path.display())))
}

/// Settings written into a new cluster's `postgresql.conf`.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Extra `name = value` settings, e.g. `fsync = off` for throwaway test clusters. A `port`
    /// among them is also the port connections use; string values carry their own quotes.
    pub settings: Vec<(String, String)>,
}

impl ClusterOptions {
    fn port(&self) -> u16 {
        self.settings
            .iter()
            .rev()
            .find(|(name, _)| name == "port")
            .and_then(|(_, value)| value.trim().parse().ok())
            .unwrap_or(PORT)
    }
}

impl Cluster {
    /// Makes sure the cluster in `dir` exists and runs, creating it on first use, and registers
    /// this process as one of its users.
    pub fn start(dir: &Path, options: &ClusterOptions) -> Result<Cluster, EmbeddedError> {
        let bindir = find_bindir().ok_or(EmbeddedError::BinariesNotFound)?;
        fs::create_dir_all(dir).map_err(io_error(format!("creating {}", dir.display())))?;
        let dir = dir
            .canonicalize()
            .map_err(io_error(format!("resolving {}", dir.display())))?;
        if dir.as_os_str().len() > MAX_SOCKET_DIR_BYTES {
            return Err(EmbeddedError::PathTooLong(dir));
        }
        let account = unprivileged_account()?;
        let starting = open_lock(&dir.with_extension("start.lock"))?;
        let users = open_lock(&dir.with_extension("lock"))?;
        // `starting` is held only while the cluster is created, started or stopped, so that two
        // commands started together do not both run initdb, and no process starts using the
        // cluster while the last one stops it. `users` is held shared by every process using it.
        starting
            .lock()
            .map_err(io_error("locking the cluster's start lock"))?;
        let mut cluster = Cluster {
            dir,
            port: options.port(),
            bindir,
            account,
            lock: None,
        };
        let prepared = cluster.prepare(options);
        let joined = prepared.and_then(|()| {
            users
                .lock_shared()
                .map_err(io_error("locking the cluster's users lock"))
        });
        starting
            .unlock()
            .map_err(io_error("unlocking the cluster's start lock"))?;
        joined?;
        cluster.lock = Some(LockPair { starting, users });
        Ok(cluster)
    }

    fn prepare(&self, options: &ClusterOptions) -> Result<(), EmbeddedError> {
        if let Some(account) = self.account {
            std::os::unix::fs::chown(&self.dir, Some(account.uid), Some(account.gid))
                .map_err(io_error(format!("chown {}", self.dir.display())))?;
            let reachable = Command::new("test")
                .arg("-w")
                .arg(&self.dir)
                .uid(account.uid)
                .gid(account.gid)
                .status()
                .map_err(io_error("running test"))?;
            if !reachable.success() {
                return Err(EmbeddedError::Unreachable(self.dir.clone()));
            }
        }
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))
            .map_err(io_error(format!("chmod {}", self.dir.display())))?;
        if !self.dir.join("PG_VERSION").exists() {
            self.initdb(options)?;
        }
        if !self.is_running() {
            self.remove_stale_pid_file()?;
            self.pg_ctl(
                &["start", "-w", "-t", PG_CTL_TIMEOUT_S, "-l"],
                Some("server.log"),
            )?;
            tracing::info!(dir = %self.dir.display(), "started the embedded PostgreSQL cluster");
        }
        // Every start, not only the first: a cluster made by an earlier release has no service
        // role yet. The start lock keeps two processes from doing it at once.
        self.psql(
            "postgres",
            &format!(
                "DO $$ BEGIN
                     IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
                         CREATE ROLE {role} LOGIN;
                     ELSIF NOT (SELECT rolcanlogin FROM pg_roles WHERE rolname = '{role}') THEN
                         ALTER ROLE {role} LOGIN;
                     END IF;
                 END $$",
                role = super::SERVICE_ROLE
            ),
            "psql CREATE ROLE",
        )?;
        Ok(())
    }

    fn psql(&self, dbname: &str, sql: &str, what: &str) -> Result<(), EmbeddedError> {
        let output = self
            .command("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.dir)
            .args(["-p", &self.port.to_string(), "-U", SUPERUSER, "-d", dbname])
            .args(["-c", sql])
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(io_error("running psql"))?;
        check(what, &output)
    }

    fn initdb(&self, options: &ClusterOptions) -> Result<(), EmbeddedError> {
        tracing::info!(dir = %self.dir.display(), "creating the embedded PostgreSQL cluster");
        let output = self
            .command("initdb")
            .arg("-D")
            .arg(&self.dir)
            .args(["-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C"])
            .arg("--no-instructions")
            .output()
            .map_err(io_error("running initdb"))?;
        check("initdb", &output)?;
        // Only the Unix socket in the cluster's own directory (mode 0700) is reachable, which is
        // what makes `trust` authentication safe here.
        let socket_dir = self.dir.display().to_string().replace('\'', "''");
        let mut conf = format!(
            "\n# paygate embedded cluster\nlisten_addresses = ''\nunix_socket_directories = '{socket_dir}'\nport = {PORT}\nmax_connections = 200\n"
        );
        for (name, value) in &options.settings {
            conf.push_str(&format!("{name} = {value}\n"));
        }
        let conf_path = self.dir.join("postgresql.conf");
        let mut text = fs::read_to_string(&conf_path)
            .map_err(io_error(format!("reading {}", conf_path.display())))?;
        text.push_str(&conf);
        fs::write(&conf_path, text)
            .map_err(io_error(format!("writing {}", conf_path.display())))?;
        self.pg_ctl(
            &["start", "-w", "-t", PG_CTL_TIMEOUT_S, "-l"],
            Some("server.log"),
        )?;
        self.psql(
            "postgres",
            &format!("CREATE DATABASE {DATABASE}"),
            "psql CREATE DATABASE",
        )?;
        Ok(())
    }

    /// True when the postmaster named in `postmaster.pid` is alive and really is PostgreSQL.
    fn is_running(&self) -> bool {
        let Some(pid) = self.recorded_pid() else {
            return false;
        };
        fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|comm| comm.trim() == "postgres")
            .unwrap_or(false)
    }

    fn recorded_pid(&self) -> Option<u32> {
        let text = fs::read_to_string(self.dir.join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// After a crash `postmaster.pid` stays behind, and its PID may since belong to another
    /// process, which would make PostgreSQL refuse to start. `is_running` has ruled that out.
    fn remove_stale_pid_file(&self) -> Result<(), EmbeddedError> {
        let pid_file = self.dir.join("postmaster.pid");
        if pid_file.exists() {
            tracing::warn!(file = %pid_file.display(), "removing a stale postmaster.pid");
            fs::remove_file(&pid_file)
                .map_err(io_error(format!("removing {}", pid_file.display())))?;
        }
        Ok(())
    }

    fn pg_ctl(&self, args: &[&str], log_file: Option<&str>) -> Result<(), EmbeddedError> {
        let mut command = self.command("pg_ctl");
        command.arg("-D").arg(&self.dir).args(args);
        if let Some(log_file) = log_file {
            command.arg(self.dir.join(log_file));
        }
        // pg_ctl's server inherits our stdout otherwise, and stdout is for results only.
        let output = command
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(io_error("running pg_ctl"))?;
        check(&format!("pg_ctl {}", args[0]), &output)
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bindir.join(program));
        command.current_dir(&self.dir).env("LC_ALL", "C");
        if let Some(account) = self.account {
            command.uid(account.uid).gid(account.gid);
        }
        command
    }

    /// The port the cluster listens on (its socket's name; TCP too when told to listen there).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory of the cluster's Unix socket, which is also its data directory.
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// Connection settings for `dbname` over the private socket, as the superuser (the owner).
    pub fn connection_config(&self, dbname: &str) -> tokio_postgres::Config {
        self.connection_config_as(dbname, SUPERUSER)
    }

    /// Connection settings for `dbname` over the private socket, as `user`.
    pub fn connection_config_as(&self, dbname: &str, user: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(&self.dir)
            .port(self.port)
            .user(user)
            .dbname(dbname)
            .application_name("paygate");
        config
    }

    /// Leaves the cluster; the last process to leave stops it.
    pub fn release(mut self) -> Result<(), EmbeddedError> {
        let Some(LockPair { starting, users }) = self.lock.take() else {
            return Ok(());
        };
        starting
            .lock()
            .map_err(io_error("locking the cluster's start lock"))?;
        users
            .unlock()
            .map_err(io_error("unlocking the cluster's users lock"))?;
        let result = match users.try_lock() {
            Ok(()) => self
                .pg_ctl(&["stop", "-w", "-t", PG_CTL_TIMEOUT_S, "-m", "fast"], None)
                .map(|()| {
                    tracing::info!(dir = %self.dir.display(), "stopped the embedded PostgreSQL cluster");
                }),
            Err(_) => {
                tracing::info!("the embedded PostgreSQL cluster is still in use; leaving it running");
                Ok(())
            }
        };
        // Closing the files releases both locks.
        drop(users);
        drop(starting);
        result
    }

    /// Stops the cluster whoever else uses it (tests use this to take the database away).
    pub fn stop_now(&self) -> Result<(), EmbeddedError> {
        self.pg_ctl(
            &["stop", "-w", "-t", PG_CTL_TIMEOUT_S, "-m", "immediate"],
            None,
        )
    }

    /// Starts the cluster again after [`Cluster::stop_now`].
    pub fn start_again(&self) -> Result<(), EmbeddedError> {
        self.remove_stale_pid_file()?;
        self.pg_ctl(
            &["start", "-w", "-t", PG_CTL_TIMEOUT_S, "-l"],
            Some("server.log"),
        )
    }
}

fn check(command: &str, output: &Output) -> Result<(), EmbeddedError> {
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    Err(EmbeddedError::Command {
        command: command.to_owned(),
        detail: format!("{} {}", stderr.trim(), stdout.trim())
            .trim()
            .to_owned(),
    })
}

/// The directory holding `initdb` and `pg_ctl`: `pg_config --bindir` first (Debian keeps the
/// server binaries off PATH), then PATH.
fn find_bindir() -> Option<PathBuf> {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output() {
        if output.status.success() {
            let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
            if has_server(&dir) {
                return Some(dir);
            }
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        if let Some(dir) = std::env::split_paths(&path).find(|dir| has_server(dir)) {
            return Some(dir);
        }
    }
    // Debian's server packages without pg_config (it comes with libpq-dev): the newest
    // /usr/lib/postgresql/<version>/bin.
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_server(dir))
        .collect();
    versions.sort();
    versions.pop().map(|(_, dir)| dir)
}

/// `None` when we are not root (the cluster then runs as ourselves).
fn unprivileged_account() -> Result<Option<Account>, EmbeddedError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let passwd = fs::read_to_string("/etc/passwd").map_err(io_error("reading /etc/passwd"))?;
    passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.len() >= 4 && fields[0] == "postgres")
        .and_then(|fields| {
            Some(Account {
                uid: fields[2].parse().ok()?,
                gid: fields[3].parse().ok()?,
            })
        })
        .map(Some)
        .ok_or(EmbeddedError::NoUnprivilegedUser)
}
