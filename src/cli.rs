//! The command line (contract section 10).

use std::io::Read;
use std::net::TcpListener;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::auth::{self, Role};
use crate::config::Config;
use crate::db::{self, migrate, Database};
use crate::http::Application;

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
    Sign {
        /// The HMAC secret (a bank's secret, or an agency's notify secret).
        #[arg(long)]
        secret: String,
        /// The key id to name in the header.
        #[arg(long)]
        kid: String,
        /// Unix seconds to sign with (default: now).
        #[arg(long)]
        timestamp: Option<i64>,
    },
    /// Reconcile a bank's daily statement (the same engine as POST /v1/reconciliations); prints
    /// the run as JSON.
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
        /// Also write the run's items (the report) to this file.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
        /// Format of --out.
        #[arg(long, value_enum, default_value = "csv")]
        format: ReportFormat,
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
    },
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
            secret,
            kid,
            timestamp,
        } => sign(&secret, &kid, timestamp),
        Command::Openapi => {
            print!("{}", crate::openapi::to_json(&crate::openapi::document()));
            Ok(())
        }
        Command::Serve { no_migrate } => {
            with_database(&config, |db| serve(&config, db, no_migrate)).await
        }
        Command::Migrate => with_database(&config, migrate_only).await,
        Command::Admin {
            command: AdminCommand::CreateKey { role },
        } => with_database(&config, |db| create_key(db, role)).await,
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
    F: FnOnce(tokio_postgres::Config) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let owned = config.clone();
    let database = tokio::task::spawn_blocking(move || Database::open(&owned)).await??;
    let result = work(database.config.clone()).await;
    tokio::task::spawn_blocking(move || database.close()).await?;
    result
}

async fn migrate_pool(
    settings: &tokio_postgres::Config,
) -> anyhow::Result<deadpool_postgres::Pool> {
    let pool = db::pool(settings, 2);
    db::check(&pool)
        .await
        .map_err(|err| anyhow::anyhow!("cannot reach the database: {err}"))?;
    let mut client = pool.get().await?;
    migrate::run(&mut client).await?;
    drop(client);
    Ok(pool)
}

async fn migrate_only(settings: tokio_postgres::Config) -> anyhow::Result<()> {
    migrate_pool(&settings).await?;
    Ok(())
}

async fn create_key(settings: tokio_postgres::Config, role: KeyRole) -> anyhow::Result<()> {
    let pool = migrate_pool(&settings).await?;
    let role = match role {
        KeyRole::Admin => Role::Admin,
        KeyRole::Auditor => Role::Auditor,
    };
    let client = pool.get().await?;
    let key = auth::create_api_key(&client, role, None).await?;
    tracing::info!(role = role.as_str(), "API key created");
    println!("{key}");
    Ok(())
}

async fn serve(
    config: &Config,
    settings: tokio_postgres::Config,
    no_migrate: bool,
) -> anyhow::Result<()> {
    if !no_migrate {
        migrate_pool(&settings).await?.close();
    }
    let pool = db::pool(&settings, db::POOL_MAX_SIZE);
    db::check(&pool)
        .await
        .map_err(|err| anyhow::anyhow!("cannot reach the database: {err}"))?;
    let listener = TcpListener::bind(config.listen)
        .map_err(|err| anyhow::anyhow!("cannot listen on {}: {err}", config.listen))?;
    tracing::info!(address = %config.listen, "paygate is listening");
    let app = Application::build(config.clone(), pool, listener)?;
    let handle = app.handle();
    tokio::spawn(async move {
        wait_for_stop_signal().await;
        tracing::info!("stopping: no new connections; in-flight requests may finish");
        handle.stop(true).await;
    });
    app.run_until_stopped().await?;
    tracing::info!("paygate stopped");
    Ok(())
}

async fn reconcile(
    settings: tokio_postgres::Config,
    bank: &str,
    date: &str,
    statement: std::path::PathBuf,
    out: Option<std::path::PathBuf>,
    format: ReportFormat,
) -> anyhow::Result<()> {
    use std::io::IsTerminal;

    let bank =
        crate::codes::BankCode::parse(bank).map_err(|err| anyhow::anyhow!("--bank {err}"))?;
    let date =
        crate::reconciliation::parse_date(date).map_err(|err| anyhow::anyhow!("--date {err}"))?;
    let file = std::fs::File::open(&statement)
        .map_err(|err| anyhow::anyhow!("cannot open {}: {err}", statement.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let pool = migrate_pool(&settings).await?;
    pool.resize(db::POOL_MAX_SIZE);
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
    let run = crate::reconciliation::engine::run(&pool, &bank, date, Box::new(file), progress)
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

/// SIGTERM (Kubernetes) or SIGINT (Ctrl-C): both stop gracefully.
async fn wait_for_stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM can be handled");
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn sign(secret: &str, kid: &str, timestamp: Option<i64>) -> anyhow::Result<()> {
    let mut body = Vec::new();
    std::io::stdin().read_to_end(&mut body)?;
    let timestamp = timestamp.unwrap_or_else(|| time::OffsetDateTime::now_utc().unix_timestamp());
    println!(
        "{}",
        crate::signature::sign(secret.as_bytes(), kid, timestamp, &body)
    );
    Ok(())
}
