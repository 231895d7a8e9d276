//! Database access: the connection pool, the embedded default cluster and the migrations.

pub mod embedded;
pub mod migrate;

use std::time::Duration;

use deadpool_postgres::{
    Manager, ManagerConfig, Pool, PoolConfig, RecyclingMethod, Runtime, Timeouts,
};
use tokio_postgres::NoTls;

use crate::config::Config;
use embedded::{Cluster, ClusterOptions};

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

/// Where the database is: given by `DATABASE_URL`, or the embedded cluster this process uses.
pub struct Database {
    pub config: tokio_postgres::Config,
    pub cluster: Option<Cluster>,
}

impl Database {
    /// Resolves `DATABASE_URL`, or starts (or joins) the embedded cluster.
    pub fn open(config: &Config) -> anyhow::Result<Database> {
        if let Some(url) = &config.database_url {
            return Ok(Database {
                config: url.clone(),
                cluster: None,
            });
        }
        let cluster = Cluster::start(
            &config.data_dir.join("postgres"),
            &ClusterOptions::default(),
        )?;
        Ok(Database {
            config: cluster.connection_config(embedded::DATABASE),
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
pub fn pool(config: &tokio_postgres::Config, max_size: usize) -> Pool {
    let mut config = config.clone();
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
        NoTls,
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
pub async fn check(pool: &Pool) -> anyhow::Result<()> {
    let client = pool.get().await?;
    client.simple_query("SELECT 1").await?;
    Ok(())
}
