//! Database access: the connection pool, the embedded default cluster, the migrations, and the
//! connection settings (TLS) every connection shares.
//!
//! Two roles connect. The owner of the schema applies the migrations; the service role, which
//! owns nothing, serves. The service may read and insert the ledger's tables but may not
//! update, delete or truncate them nor switch their triggers off (see
//! `migrations/0007_service_role.sql` and `docs/database.md`).

pub mod embedded;
pub mod error;
pub mod lanes;
pub mod migrate;
pub mod settings;
pub mod snapshot;

pub use error::DbError;
pub use snapshot::snapshot;

use std::path::Path;
use std::time::Duration;

use deadpool_postgres::{
    Manager, ManagerConfig, Pool, PoolConfig, RecyclingMethod, Runtime, Timeouts,
};
use embedded::{Cluster, ClusterOptions};
pub use settings::Settings;

/// The role the service connects as. Migration 0007 creates it (without LOGIN) when it is
/// missing and grants it what the service needs; a deployment gives it LOGIN and a password
/// (the embedded default and the Kubernetes manifests do so themselves).
pub const SERVICE_ROLE: &str = "paygate_service";

/// Connections per process. PostgreSQL serves best with a few connections per core; several
/// replicas share one server, so each keeps a modest pool.
pub const POOL_MAX_SIZE: usize = 16;
/// A request that cannot get a connection within this time fails with 503 instead of queueing
/// without bound behind a slow database.
pub const POOL_WAIT_TIMEOUT_MS: u64 = 5_000;
/// Opening a new connection (TCP or socket, authentication) may take this long.
pub const POOL_CREATE_TIMEOUT_MS: u64 = 5_000;
/// Checking a returned connection before reuse may take this long.
pub const POOL_RECYCLE_TIMEOUT_MS: u64 = 5_000;
/// No statement may run longer than this; a stuck query must not hold a connection for ever.
pub const STATEMENT_TIMEOUT_MS: u64 = 30_000;
/// No statement waits longer than this for a row lock (an order being paid, an idempotency
/// key in flight); the request then fails as retriable instead of piling up.
pub const LOCK_TIMEOUT_MS: u64 = 10_000;

/// Where the database is and the two ways paygate connects to it: from `DATABASE_URL` (and
/// `PAYGATE_MIGRATION_DATABASE_URL`), or to the embedded cluster this process uses.
pub struct Database {
    pub connections: Connections,
    pub cluster: Option<Cluster>,
}

/// The two roles paygate connects as.
#[derive(Debug, Clone)]
pub struct Connections {
    /// What the service (and every command's work) connects as: the service role.
    pub service: Settings,
    /// What migrations run as: the owner of the schema.
    pub migrations: Settings,
}

impl Database {
    /// Connects to `service` (`DATABASE_URL`), migrating as `migrations` when given and as
    /// `service` otherwise; without `service`, starts (or joins) the embedded cluster under
    /// `data_dir`. The values come from the configuration, which the caller reads.
    pub fn open(
        service: Option<&Settings>,
        migrations: Option<&Settings>,
        data_dir: &Path,
    ) -> anyhow::Result<Database> {
        if let Some(service) = service {
            return Ok(Database {
                connections: Connections {
                    service: service.clone(),
                    migrations: migrations.unwrap_or(service).clone(),
                },
                cluster: None,
            });
        }
        let cluster = Cluster::start(&data_dir.join("postgres"), &ClusterOptions::default())?;
        // The bootstrap superuser owns the embedded database and migrates it; the service
        // connects as the service role, which the cluster lets log in over its private socket.
        Ok(Database {
            connections: Connections {
                service: Settings::from(
                    cluster.connection_config_as(embedded::DATABASE, SERVICE_ROLE),
                ),
                migrations: Settings::from(cluster.connection_config(embedded::DATABASE)),
            },
            cluster: Some(cluster),
        })
    }

    /// Leaves the embedded cluster, stopping it if this process was its last user.
    pub fn close(self) {
        if let Some(cluster) = self.cluster {
            if let Err(err) = cluster.release() {
                tracing::error!(error = %err, "could not stop the embedded PostgreSQL cluster");
            }
        }
    }
}

/// Builds the pool. Connections are opened lazily; call [`check`] to fail fast at start-up.
/// A plain `tokio_postgres::Config` is accepted too (its own sslmode, no certificate checks).
pub fn pool(settings: impl Into<Settings>, max_size: usize) -> Pool {
    let settings: Settings = settings.into();
    let mut config = settings.effective_config();
    config
        .options(format!(
            "-c statement_timeout={STATEMENT_TIMEOUT_MS} -c lock_timeout={LOCK_TIMEOUT_MS}"
        ))
        .connect_timeout(Duration::from_millis(POOL_CREATE_TIMEOUT_MS));
    if config.get_application_name().is_none() {
        config.application_name("paygate");
    }
    // `Fast` recycling trusts a connection that is not closed; a connection broken by a database
    // restart is closed by tokio-postgres and so is replaced on its next checkout, which is what
    // lets `/readyz` recover by itself.
    let manager = Manager::from_config(
        config,
        settings.connector(),
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool_config = PoolConfig {
        max_size,
        timeouts: Timeouts {
            wait: Some(Duration::from_millis(POOL_WAIT_TIMEOUT_MS)),
            create: Some(Duration::from_millis(POOL_CREATE_TIMEOUT_MS)),
            recycle: Some(Duration::from_millis(POOL_RECYCLE_TIMEOUT_MS)),
        },
        ..PoolConfig::default()
    };
    Pool::builder(manager)
        .config(pool_config)
        .runtime(Runtime::Tokio1)
        .build()
        .expect("a pool with a runtime and timeouts always builds")
}

/// One round trip, to fail fast at start-up with a clear message when the database is away.
/// The error carries its causes (a refused certificate, a role that may not log in) for the
/// operator reading the start-up message.
pub async fn check(pool: &Pool) -> anyhow::Result<()> {
    let client = pool.get().await.map_err(|err| match err {
        // The pool's own wording repeats the database error's; keep the database error alone.
        deadpool_postgres::PoolError::Backend(err) => anyhow::Error::new(err),
        other => anyhow::Error::new(other),
    })?;
    client.simple_query("SELECT 1").await?;
    Ok(())
}
