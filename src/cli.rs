//! The command line (docs/operating.md describes each command).

use std::io::Read;
use std::net::TcpListener;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::auth::{self, Role};
use crate::config::Config;
use crate::db::{self, migrate, Database};
use crate::startup::Application;

#[derive(Debug, Parser)]
#[command(
    name = "paygate",
    version,
    about = "Payment broker between government agencies and banks"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP service and its background workers (applies pending migrations first).
    Serve {
        /// Do not apply migrations at start (when a separate job runs `paygate migrate`).
        #[arg(long)]
        no_migrate: bool,
    },
    /// Apply the pending SQL migrations and exit.
    Migrate,
    /// Administration from the command line.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Print a Paygate-Signature header value for the body read from stdin.
    ///
    /// The HMAC secret (a bank's secret, or an agency's notify secret) comes from exactly one
    /// of: the environment variable PAYGATE_SIGN_SECRET, --secret-file, or --secret.
    Sign {
        /// Read the secret from this file (one trailing newline is ignored). Safer than
        /// --secret: the secret appears neither in the process list nor in shell history.
        #[arg(long, value_name = "FILE")]
        secret_file: Option<std::path::PathBuf>,
        /// The secret itself. The least safe way: every user of the machine can read it in the
        /// process list (`ps`), and it stays in shell history. Prefer PAYGATE_SIGN_SECRET or
        /// --secret-file; kept for compatibility.
        #[arg(long, value_name = "SECRET")]
        secret: Option<String>,
        /// The key id to name in the header.
        #[arg(long)]
        kid: String,
        /// Unix seconds to sign with (default: now).
        #[arg(long)]
        timestamp: Option<i64>,
    },
    /// Reconcile a bank's daily statement (the same engine as POST /v1/reconciliations); prints
    /// the run as JSON. Refuses to start while migrations are pending (run `paygate migrate`).
    Reconcile {
        /// The bank's code, e.g. VCB.
        #[arg(long)]
        bank: String,
        /// The business day (Vietnam time), YYYY-MM-DD.
        #[arg(long)]
        date: String,
        /// The statement CSV file.
        #[arg(long)]
        statement: std::path::PathBuf,
        /// Also write the run's items (the report) to this file. In CSV, a cell that starts
        /// with =, +, -, @, a tab or a carriage return is written with a leading ' so that a
        /// spreadsheet shows it as text; JSON keeps every value as it is.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
        /// Format of --out.
        #[arg(long, value_enum, default_value = "csv")]
        format: ReportFormat,
    },
    /// The audit trail of operator actions.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// The ledger's seals: checkpoints for outside auditors, verification, the signing key.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// Print the OpenAPI document (regenerate the checked-in copy with
    /// `cargo run -- openapi > openapi/openapi.json`).
    Openapi,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Create an API key; the key is the last line of stdout. Applies pending migrations first.
    CreateKey {
        #[arg(long, value_enum)]
        role: KeyRole,
        /// Whose key it is (1-64 characters), shown in the key list; never the key itself.
        #[arg(long, value_parser = auth::parse_label)]
        label: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Recompute the audit trail's hash chain; prints the verdict as JSON and exits 1 when the
    /// chain is broken. Needs only read access (the service role's URL suffices).
    Verify,
}

#[derive(Debug, Subcommand)]
enum LedgerCommand {
    /// Print the newest seal with its signature as one JSON line, for an outside auditor to
    /// keep (and give to `paygate ledger verify --checkpoint` later). Fails when nothing is
    /// sealed yet.
    Checkpoint,
    /// Verify the ledger: balances, and every seal's hash, chain and signature; prints the
    /// verdict as JSON and exits 1 when it fails. Needs only read access.
    Verify {
        /// A line printed by `paygate ledger checkpoint` earlier: verification also fails when
        /// the ledger no longer leads to that seal, even if every hash was recomputed.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<std::path::PathBuf>,
    },
    /// Replace the seal key in $PAYGATE_DATA_DIR/seal.key with a new one; the old public key is
    /// kept in seal.previous-keys so that earlier seals still verify. Prints the new public
    /// key. Restart paygate to sign with it. (With PAYGATE_SEAL_KEY, rotate the Secret
    /// instead: docs/operating.md.)
    RotateKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReportFormat {
    Json,
    Csv,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum KeyRole {
    Admin,
    Auditor,
}

/// Runs a parsed command line and returns the process's exit code.
pub async fn run(cli: Cli) -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("paygate: {err}");
            return ExitCode::from(2);
        }
    };
    crate::telemetry::init_logging();
    let result = match cli.command {
        Command::Sign {
            secret_file,
            secret,
            kid,
            timestamp,
        } => sign_secret(secret, secret_file, std::env::var_os(SIGN_SECRET_VARIABLE))
            .and_then(|secret| sign(&secret, &kid, timestamp)),
        Command::Openapi => {
            print!("{}", crate::openapi::to_json(&crate::openapi::document()));
            Ok(())
        }
        Command::Serve { no_migrate } => {
            with_database(&config, |db| serve(&config, db, no_migrate)).await
        }
        Command::Migrate => with_database(&config, migrate_only).await,
        Command::Ledger {
            command: LedgerCommand::Checkpoint,
        } => with_database(&config, ledger_checkpoint).await,
        Command::Ledger {
            command: LedgerCommand::Verify { checkpoint },
        } => {
            return with_database_verdict(&config, |db| ledger_verify(&config, db, checkpoint))
                .await
        }
        Command::Ledger {
            command: LedgerCommand::RotateKey,
        } => rotate_seal_key(&config),
        Command::Audit {
            command: AuditCommand::Verify,
        } => return with_database_verdict(&config, audit_verify).await,
        Command::Admin {
            command: AdminCommand::CreateKey { role, label },
        } => with_database(&config, |db| create_key(db, role, label)).await,
        Command::Reconcile {
            bank,
            date,
            statement,
            out,
            format,
        } => {
            with_database(&config, |db| {
                reconcile(db, &bank, &date, statement, out, format)
            })
            .await
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("paygate: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Opens the database (starting the embedded cluster if need be), runs `work`, and leaves the
/// embedded cluster again whatever `work` returned.
async fn with_database<F, Fut>(config: &Config, work: F) -> anyhow::Result<()>
where
    F: FnOnce(db::Connections) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let owned = config.clone();
    let database = tokio::task::spawn_blocking(move || {
        Database::open(
            owned.database_url.as_ref(),
            owned.migration_database_url.as_ref(),
            &owned.data_dir,
        )
    })
    .await??;
    let result = work(database.connections.clone()).await;
    tokio::task::spawn_blocking(move || database.close()).await?;
    result
}

/// Applies the pending migrations as the owner role.
async fn apply_migrations(settings: &db::Settings) -> anyhow::Result<()> {
    let pool = db::pool(settings, 1);
    db::check(&pool)
        .await
        .map_err(|err| err.context("cannot reach the database to migrate it"))?;
    let mut client = pool.get().await?;
    let result = migrate::run(&mut client).await;
    drop(client);
    pool.close();
    match result {
        Ok(_) => Ok(()),
        Err(err) if err.is_permission_denied() => Err(anyhow::anyhow!(
            "{err}: migrations must run as the owner of the schema; set \
             PAYGATE_MIGRATION_DATABASE_URL to the owner's URL (DATABASE_URL is the service role)"
        )),
        Err(err) => Err(err.into()),
    }
}

/// Applies pending migrations as the owner, then returns a small pool connected as the service.
/// When nothing is pending, the migration step only reads which migrations are applied, which
/// the service role may do; so a command run with only the service role's URL works on an
/// up-to-date database and fails clearly on an outdated one.
async fn migrate_pool(connections: &db::Connections) -> anyhow::Result<deadpool_postgres::Pool> {
    apply_migrations(&connections.migrations).await?;
    let pool = db::pool(&connections.service, 2);
    db::check(&pool)
        .await
        // The causes matter here (a refused certificate, a role that may not log in).
        .map_err(|err| err.context("cannot reach the database"))?;
    Ok(pool)
}

async fn migrate_only(connections: db::Connections) -> anyhow::Result<()> {
    apply_migrations(&connections.migrations).await
}

async fn create_key(
    settings: db::Connections,
    role: KeyRole,
    label: Option<String>,
) -> anyhow::Result<()> {
    let pool = migrate_pool(&settings).await?;
    let role = match role {
        KeyRole::Admin => Role::Admin,
        KeyRole::Auditor => Role::Auditor,
    };
    // The key and its audit entry are one transaction: there is never one without the other.
    let actor = crate::audit::Actor::command_line();
    let key = crate::admin::api_keys::create(&pool, role, label.as_deref(), &actor)
        .await
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    println!("{}", key.api_key);
    Ok(())
}

/// `paygate audit verify`: the verdict on stdout; `Ok(false)` when the chain is broken.
async fn audit_verify(connections: db::Connections) -> anyhow::Result<bool> {
    require_migrated(&connections.migrations).await?;
    let pool = db::pool(&connections.service, 1);
    db::check(&pool)
        .await
        .map_err(|err| err.context("cannot reach the database"))?;
    let verdict = crate::audit::store::verify(&pool)
        .await
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    println!("{}", serde_json::to_string(&verdict)?);
    Ok(verdict.ok)
}

/// A small pool as the service role on an up-to-date database, for the ledger commands (which
/// only read).
async fn reading_pool(connections: &db::Connections) -> anyhow::Result<deadpool_postgres::Pool> {
    require_migrated(&connections.migrations).await?;
    let pool = db::pool(&connections.service, 1);
    db::check(&pool)
        .await
        .map_err(|err| err.context("cannot reach the database"))?;
    Ok(pool)
}

/// `paygate ledger checkpoint`: the newest seal as one JSON line.
async fn ledger_checkpoint(connections: db::Connections) -> anyhow::Result<()> {
    let pool = reading_pool(&connections).await?;
    let seal = crate::ledger::seals::newest(&pool)
        .await
        .map_err(|err| anyhow::anyhow!("{err}"))?
        .ok_or_else(|| anyhow::anyhow!("the ledger has no seal yet"))?;
    println!("{}", serde_json::to_string(&seal)?);
    Ok(())
}

/// The largest checkpoint file read: a checkpoint is one line of a few hundred bytes.
const MAX_CHECKPOINT_FILE_BYTES: u64 = 64 * 1024;

/// `paygate ledger verify`: the verdict on stdout; `Ok(false)` when the ledger fails it.
async fn ledger_verify(
    config: &Config,
    connections: db::Connections,
    checkpoint: Option<std::path::PathBuf>,
) -> anyhow::Result<bool> {
    let checkpoint = match checkpoint {
        None => None,
        Some(path) => {
            let mut text = String::new();
            std::fs::File::open(&path)
                .and_then(|file| {
                    file.take(MAX_CHECKPOINT_FILE_BYTES)
                        .read_to_string(&mut text)
                })
                .map_err(|err| {
                    anyhow::anyhow!("cannot read --checkpoint {}: {err}", path.display())
                })?;
            let value: serde_json::Value = serde_json::from_str(&text).map_err(|err| {
                anyhow::anyhow!("--checkpoint {} is not JSON: {err}", path.display())
            })?;
            let checkpoint = crate::ledger::seals::Checkpoint::from_json(&value)
                .map_err(|err| anyhow::anyhow!("--checkpoint {}: {err}", path.display()))?;
            Some(checkpoint)
        }
    };
    let keys = crate::ledger::signing::Keyring::load_for_verifying(config.seal_key_source())
        .map_err(|err| anyhow::anyhow!("cannot read the seal keys: {err}"))?;
    let pool = reading_pool(&connections).await?;
    let verdict = crate::ledger::store::verify(&pool, &keys, checkpoint.as_ref())
        .await
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    println!("{}", serde_json::to_string(&verdict)?);
    Ok(verdict.ok)
}

/// `paygate ledger rotate-key`: a new seal key in the data directory.
fn rotate_seal_key(config: &Config) -> anyhow::Result<()> {
    anyhow::ensure!(
        config.seal_key.is_none(),
        "PAYGATE_SEAL_KEY is set: rotate by giving it a new seed and adding the old public key \
         to PAYGATE_SEAL_PREVIOUS_KEYS (docs/operating.md)"
    );
    let public_key = crate::ledger::signing::rotate(&config.data_dir)
        .map_err(|err| anyhow::anyhow!("cannot rotate the seal key: {err}"))?;
    eprintln!("paygate: new seal key; restart paygate to sign with it");
    println!("{public_key}");
    Ok(())
}

/// Runs a verification with the database open: exit 0 when it holds, 1 when it does not, and
/// 1 with the error on stderr when it could not be made.
async fn with_database_verdict<F, Fut>(config: &Config, work: F) -> ExitCode
where
    F: FnOnce(db::Connections) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let mut holds = false;
    let result = with_database(config, |connections| async {
        holds = work(connections).await?;
        Ok(())
    })
    .await;
    match result {
        Ok(()) if holds => ExitCode::SUCCESS,
        Ok(()) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("paygate: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(
    config: &Config,
    connections: db::Connections,
    no_migrate: bool,
) -> anyhow::Result<()> {
    if !no_migrate {
        apply_migrations(&connections.migrations).await?;
    }
    let pool = db::pool(&connections.service, db::POOL_MAX_SIZE);
    db::check(&pool)
        .await
        // The causes matter here (a refused certificate, a role that may not log in).
        .map_err(|err| err.context("cannot reach the database"))?;
    let listener = TcpListener::bind(config.listen)
        .map_err(|err| anyhow::anyhow!("cannot listen on {}: {err}", config.listen))?;
    tracing::info!(address = %config.listen, "paygate is listening");
    let app = Application::build(config.clone(), pool, connections.service.clone(), listener)?;
    let handle = app.handle();
    tokio::spawn(async move {
        wait_for_stop_signal().await;
        tracing::info!("stopping: no new connections; in-flight requests may finish");
        crate::console::overview::end_live_streams();
        handle.stop(true).await;
    });
    app.run_until_stopped().await?;
    tracing::info!("paygate stopped");
    Ok(())
}

async fn reconcile(
    settings: db::Connections,
    bank: &str,
    date: &str,
    statement: std::path::PathBuf,
    out: Option<std::path::PathBuf>,
    format: ReportFormat,
) -> anyhow::Result<()> {
    use std::io::IsTerminal;

    let bank =
        crate::domain::BankCode::parse(bank).map_err(|err| anyhow::anyhow!("--bank {err}"))?;
    let date = crate::timefmt::parse_date(date).map_err(|err| anyhow::anyhow!("--date {err}"))?;
    let file = std::fs::File::open(&statement)
        .map_err(|err| anyhow::anyhow!("cannot open {}: {err}", statement.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    require_migrated(&settings.migrations).await?;
    let pool = db::pool(&settings.service, db::POOL_MAX_SIZE);
    db::check(&pool)
        .await
        // The causes matter here (a refused certificate, a role that may not log in).
        .map_err(|err| err.context("cannot reach the database"))?;
    // A progress bar only for a person watching; logs and pipes get none.
    let progress: Option<crate::reconciliation::engine::Progress> =
        if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(size).with_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {elapsed} {msg}",
                )
                .expect("a valid progress template"),
            );
            bar.set_message("reading the statement");
            Some(Box::new(move |read| bar.set_position(read)))
        } else {
            None
        };
    // The command line is run by an operator with access to the database: it applies
    // recoveries, like an admin key.
    let by = crate::reconciliation::engine::RunBy::CommandLine;
    let actor = crate::audit::Actor::command_line();
    let run = crate::reconciliation::engine::run(&pool, &bank, date, file, progress, by, &actor)
        .await
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    if let Some(out) = out {
        crate::reconciliation::items::write_report(
            &pool,
            &run.id,
            &out,
            format == ReportFormat::Json,
        )
        .await?;
    }
    println!("{}", serde_json::to_string_pretty(&run)?);
    Ok(())
}

/// Refuses to go on while a migration is pending. A reconciliation run moves money, so it must
/// never meet a schema older than its code; and it must not migrate either, because in
/// Kubernetes only the migrate Job changes the schema (a CronJob that migrated could race it).
/// The check only reads `schema_migrations`, so the service role's URL suffices.
async fn require_migrated(settings: &db::Settings) -> anyhow::Result<()> {
    let pool = db::pool(settings, 1);
    db::check(&pool)
        .await
        .map_err(|err| err.context("cannot reach the database"))?;
    let client = pool.get().await?;
    let current = migrate::up_to_date(&client).await;
    drop(client);
    pool.close();
    if current? {
        Ok(())
    } else {
        Err(anyhow::anyhow!(
            "the database has pending migrations; run `paygate migrate` first \
             (reconcile never changes the schema)"
        ))
    }
}

/// SIGTERM (Kubernetes) or SIGINT (Ctrl-C): both stop gracefully.
async fn wait_for_stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM can be handled");
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// The environment variable `paygate sign` reads its secret from.
const SIGN_SECRET_VARIABLE: &str = "PAYGATE_SIGN_SECRET";
/// A secret file larger than this is surely the wrong file.
const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// The secret of `paygate sign`, from exactly one of its three sources: `--secret`,
/// `--secret-file` or the environment variable. Two sources are refused rather than ranked, so
/// that a forgotten exported variable never silently signs with the wrong secret.
fn sign_secret(
    argument: Option<String>,
    file: Option<std::path::PathBuf>,
    variable: Option<std::ffi::OsString>,
) -> anyhow::Result<Vec<u8>> {
    use std::os::unix::ffi::OsStringExt;
    let given: Vec<&str> = [
        argument.as_ref().map(|_| "--secret"),
        file.as_ref().map(|_| "--secret-file"),
        variable.as_ref().map(|_| SIGN_SECRET_VARIABLE),
    ]
    .into_iter()
    .flatten()
    .collect();
    let secret = match (argument, file, variable) {
        _ if given.len() > 1 => anyhow::bail!(
            "the secret is given {} times ({}); give exactly one of {SIGN_SECRET_VARIABLE}, \
             --secret-file or --secret",
            given.len(),
            given.join(", ")
        ),
        (Some(secret), None, None) => secret.into_bytes(),
        (None, None, Some(secret)) => secret.into_vec(),
        (None, Some(path), None) => {
            let mut secret = Vec::new();
            std::fs::File::open(&path)
                .and_then(|file| {
                    file.take(MAX_SECRET_FILE_BYTES + 1)
                        .read_to_end(&mut secret)
                })
                .map_err(|err| {
                    anyhow::anyhow!("cannot read --secret-file {}: {err}", path.display())
                })?;
            anyhow::ensure!(
                secret.len() as u64 <= MAX_SECRET_FILE_BYTES,
                "--secret-file {} is larger than {MAX_SECRET_FILE_BYTES} bytes; is it the \
                 right file?",
                path.display()
            );
            // Editors and `echo` end a file with a newline that is not part of the secret.
            if secret.ends_with(b"\r\n") {
                secret.truncate(secret.len() - 2);
            } else if secret.ends_with(b"\n") {
                secret.truncate(secret.len() - 1);
            }
            secret
        }
        _ => anyhow::bail!(
            "no secret given: set {SIGN_SECRET_VARIABLE} or pass --secret-file FILE \
             (or --secret, which shows the secret to other users of the machine)"
        ),
    };
    anyhow::ensure!(
        !secret.is_empty(),
        "the secret is empty ({})",
        given.join("")
    );
    Ok(secret)
}

fn sign(secret: &[u8], kid: &str, timestamp: Option<i64>) -> anyhow::Result<()> {
    let mut body = Vec::new();
    std::io::stdin().read_to_end(&mut body)?;
    let timestamp = timestamp.unwrap_or_else(|| time::OffsetDateTime::now_utc().unix_timestamp());
    println!("{}", crate::signature::sign(secret, kid, timestamp, &body));
    Ok(())
}
