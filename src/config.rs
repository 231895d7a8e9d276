//! Configuration from the environment (docs/operating.md lists it), validated once at start-up.
//!
//! A bad value stops the process with one line that names the variable, so an operator never
//! has to guess which of several settings was wrong.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

/// The default notification retry schedule (docs/api-guide.md, notifications), in seconds.
pub const DEFAULT_NOTIFY_BACKOFF_S: &[u64] =
    &[10, 30, 60, 300, 900, 3_600, 10_800, 21_600, 43_200, 86_400];
/// A retry schedule longer than this is surely a typo, and would keep dead endpoints busy.
const MAX_NOTIFY_BACKOFF_STEPS: usize = 50;
/// One week: no single retry step may wait longer.
const MAX_NOTIFY_BACKOFF_STEP_S: u64 = 7 * 86_400;
/// Banks' clocks drift, but a signature older than an hour is a replay, not drift.
const MAX_SIGNATURE_TOLERANCE_S: u64 = 3_600;
/// The ledger is sealed this often by default.
pub const DEFAULT_SEAL_INTERVAL_MS: u64 = 2_000;
/// Callback lanes by default: enough batches in flight to keep a small database server busy
/// while one batch waits for its commit (BENCHMARKS.md section 8 measured 1 to 8).
pub const DEFAULT_CALLBACK_LANES: usize = 2;
/// The most callback lanes: each holds a database connection while its batch runs.
pub const MAX_CALLBACK_LANES: usize = 16;
/// Order lanes by default (BENCHMARKS.md section 10), and at most, as for callbacks.
pub const DEFAULT_ORDER_LANES: usize = 2;
pub const MAX_ORDER_LANES: usize = 16;
/// New transactions must be sealed within 10 seconds, so no longer interval is accepted.
const MAX_SEAL_INTERVAL_MS: u64 = 10_000;

#[derive(Debug, Clone)]
pub struct Config {
    /// `DATABASE_URL`: what the service connects as; `None` selects the embedded cluster under
    /// `data_dir`.
    pub database_url: Option<crate::db::Settings>,
    /// `PAYGATE_MIGRATION_DATABASE_URL`: what migrations connect as (the owner of the schema);
    /// `None` migrates as `DATABASE_URL`.
    pub migration_database_url: Option<crate::db::Settings>,
    /// `PAYGATE_LISTEN`.
    pub listen: SocketAddr,
    /// `PAYGATE_DATA_DIR`.
    pub data_dir: PathBuf,
    /// `PAYGATE_SIGNATURE_TOLERANCE_S`.
    pub signature_tolerance_s: u64,
    /// `PAYGATE_NOTIFY_BACKOFF_S`.
    pub notify_backoff_s: Vec<u64>,
    /// `PAYGATE_NOTIFY_ALLOW_PRIVATE`.
    pub notify_allow_private: bool,
    /// HTTP worker threads; not an environment setting, tests lower it to keep threads few.
    pub http_workers: usize,
    /// How often the expiry sweep runs. Overdue orders must be expired within 60 seconds;
    /// tests shorten it.
    pub expiry_interval_ms: u64,
    /// How often the delivery worker looks for due events when it has nothing to do.
    pub notify_poll_interval_ms: u64,
    /// `PAYGATE_SEAL_INTERVAL_MS`: how often the ledger is sealed; 0 turns sealing off.
    pub seal_interval_ms: u64,
    /// `PAYGATE_SEAL_KEY`: the seed of the key that signs seals; `None` keeps it in
    /// `data_dir/seal.key`.
    pub seal_key: Option<crate::ledger::signing::SealSeed>,
    /// `PAYGATE_SEAL_PREVIOUS_KEYS`: public keys of earlier seal keys, still trusted.
    pub seal_previous_keys: Vec<String>,
    /// `PAYGATE_CALLBACK_LANES`: how many batches of callbacks may be in flight at once (see
    /// `banks::group_commit`).
    pub callback_lanes: usize,
    /// How long a callback lane waits for more callbacks after the first of a batch; 0 takes
    /// only those already waiting. Not an environment setting: tests raise it to put
    /// concurrent callbacks into one batch for certain.
    pub callback_gather_ms: u64,
    /// `PAYGATE_ORDER_LANES`: how many batches of new orders may be in flight at once (see
    /// `payments::group_commit`).
    pub order_lanes: usize,
    /// As `callback_gather_ms`, for new orders; not an environment setting.
    pub order_gather_ms: u64,
}

/// A configuration variable with a value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid {variable}={value:?}: {expected}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub value: String,
    pub expected: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: None,
            migration_database_url: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            signature_tolerance_s: 300,
            notify_backoff_s: DEFAULT_NOTIFY_BACKOFF_S.to_vec(),
            notify_allow_private: false,
            http_workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            expiry_interval_ms: 5_000,
            notify_poll_interval_ms: 1_000,
            seal_interval_ms: DEFAULT_SEAL_INTERVAL_MS,
            seal_key: None,
            seal_previous_keys: Vec::new(),
            callback_lanes: DEFAULT_CALLBACK_LANES,
            callback_gather_ms: 0,
            order_lanes: DEFAULT_ORDER_LANES,
            order_gather_ms: 0,
        }
    }
}

impl Config {
    /// Where the ledger seals' keys come from.
    pub fn seal_key_source(&self) -> crate::ledger::signing::KeySource<'_> {
        crate::ledger::signing::KeySource {
            seed: self.seal_key.as_ref(),
            previous: &self.seal_previous_keys,
            data_dir: &self.data_dir,
        }
    }

    /// Reads every configuration variable from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut config = Config::default();
        let get = |name: &str| lookup(name).filter(|value| !value.is_empty());
        let database_url =
            |variable: &'static str| -> Result<Option<crate::db::Settings>, ConfigError> {
                let Some(value) = get(variable) else {
                    return Ok(None);
                };
                crate::db::Settings::from_str(&value)
                    .map(Some)
                    .map_err(|err| ConfigError {
                        variable,
                        // The URL may carry a password: never echo it back.
                        value: "<hidden>".to_owned(),
                        expected: format!("a PostgreSQL connection URL ({err})"),
                    })
            };
        config.database_url = database_url("DATABASE_URL")?;
        config.migration_database_url = database_url("PAYGATE_MIGRATION_DATABASE_URL")?;
        if config.migration_database_url.is_some() && config.database_url.is_none() {
            return Err(ConfigError {
                variable: "PAYGATE_MIGRATION_DATABASE_URL",
                value: "<hidden>".to_owned(),
                expected: "to be set together with DATABASE_URL (the embedded database sets up \
                           its own roles)"
                    .to_owned(),
            });
        }
        if let Some(value) = get("PAYGATE_LISTEN") {
            config.listen = value.parse().map_err(|_| ConfigError {
                variable: "PAYGATE_LISTEN",
                value: value.clone(),
                expected: "an address and port such as 127.0.0.1:8080".to_owned(),
            })?;
        }
        if let Some(value) = get("PAYGATE_DATA_DIR") {
            config.data_dir = PathBuf::from(value);
        }
        if let Some(value) = get("PAYGATE_SIGNATURE_TOLERANCE_S") {
            config.signature_tolerance_s = value
                .parse::<u64>()
                .ok()
                .filter(|s| (1..=MAX_SIGNATURE_TOLERANCE_S).contains(s))
                .ok_or_else(|| ConfigError {
                    variable: "PAYGATE_SIGNATURE_TOLERANCE_S",
                    value: value.clone(),
                    expected: format!("whole seconds from 1 to {MAX_SIGNATURE_TOLERANCE_S}"),
                })?;
        }
        if let Some(value) = get("PAYGATE_NOTIFY_BACKOFF_S") {
            config.notify_backoff_s = parse_backoff(&value).ok_or_else(|| ConfigError {
                variable: "PAYGATE_NOTIFY_BACKOFF_S",
                value: value.clone(),
                expected: format!(
                    "comma-separated whole seconds, 1 to {MAX_NOTIFY_BACKOFF_STEP_S} each, \
                     at most {MAX_NOTIFY_BACKOFF_STEPS} steps (e.g. 10,30,60)"
                ),
            })?;
        }
        if let Some(value) = get("PAYGATE_NOTIFY_ALLOW_PRIVATE") {
            config.notify_allow_private = match value.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => {
                    return Err(ConfigError {
                        variable: "PAYGATE_NOTIFY_ALLOW_PRIVATE",
                        value,
                        expected: "true or false".to_owned(),
                    })
                }
            };
        }
        if let Some(value) = get("PAYGATE_SEAL_INTERVAL_MS") {
            config.seal_interval_ms = value
                .parse::<u64>()
                .ok()
                .filter(|ms| *ms <= MAX_SEAL_INTERVAL_MS)
                .ok_or_else(|| ConfigError {
                    variable: "PAYGATE_SEAL_INTERVAL_MS",
                    value: value.clone(),
                    expected: format!(
                        "whole milliseconds from 0 (sealing off) to {MAX_SEAL_INTERVAL_MS}"
                    ),
                })?;
        }
        for (variable, lanes, max) in [
            (
                "PAYGATE_CALLBACK_LANES",
                &mut config.callback_lanes,
                MAX_CALLBACK_LANES,
            ),
            (
                "PAYGATE_ORDER_LANES",
                &mut config.order_lanes,
                MAX_ORDER_LANES,
            ),
        ] {
            if let Some(value) = get(variable) {
                *lanes = value
                    .parse::<usize>()
                    .ok()
                    .filter(|count| (1..=max).contains(count))
                    .ok_or_else(|| ConfigError {
                        variable,
                        value: value.clone(),
                        expected: format!("a whole number from 1 to {max}"),
                    })?;
            }
        }
        if let Some(value) = get("PAYGATE_SEAL_KEY") {
            config.seal_key = Some(
                crate::ledger::signing::SealSeed::parse_hex(&value).ok_or_else(|| ConfigError {
                    variable: "PAYGATE_SEAL_KEY",
                    // A seed is a secret: never echo it back.
                    value: "<hidden>".to_owned(),
                    expected: "64 hex digits (a 32-byte Ed25519 seed)".to_owned(),
                })?,
            );
        }
        if let Some(value) = get("PAYGATE_SEAL_PREVIOUS_KEYS") {
            config.seal_previous_keys = value
                .split(',')
                .map(str::trim)
                .filter(|key| !key.is_empty())
                .map(crate::ledger::signing::parse_public_key)
                .collect::<Option<Vec<String>>>()
                .filter(|keys| keys.len() <= crate::ledger::signing::MAX_PREVIOUS_KEYS)
                .ok_or_else(|| ConfigError {
                    variable: "PAYGATE_SEAL_PREVIOUS_KEYS",
                    value: value.clone(),
                    expected: "comma-separated hex Ed25519 public keys (64 hex digits each)"
                        .to_owned(),
                })?;
        }
        if let Some(value) = get("RUST_LOG") {
            tracing_subscriber::EnvFilter::try_new(&value).map_err(|err| ConfigError {
                variable: "RUST_LOG",
                value: value.clone(),
                expected: format!("a tracing filter such as info or paygate=debug ({err})"),
            })?;
        }
        Ok(config)
    }
}

fn parse_backoff(value: &str) -> Option<Vec<u64>> {
    let steps = value
        .split(',')
        .map(|step| step.trim().parse::<u64>().ok())
        .collect::<Option<Vec<u64>>>()?;
    let valid = !steps.is_empty()
        && steps.len() <= MAX_NOTIFY_BACKOFF_STEPS
        && steps
            .iter()
            .all(|s| (1..=MAX_NOTIFY_BACKOFF_STEP_S).contains(s));
    valid.then_some(steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config_from(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn an_empty_environment_gives_the_documented_defaults() {
        let config = config_from(&[]).unwrap();
        assert!(config.database_url.is_none());
        assert!(config.migration_database_url.is_none());
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.data_dir, PathBuf::from("./data"));
        assert_eq!(config.signature_tolerance_s, 300);
        assert_eq!(config.notify_backoff_s.len(), 10);
        assert!(!config.notify_allow_private);
    }

    #[test]
    fn every_variable_is_read() {
        let config = config_from(&[
            ("DATABASE_URL", "postgres://u:p@db.internal:5432/paygate"),
            (
                "PAYGATE_MIGRATION_DATABASE_URL",
                "postgres://owner:p@db.internal:5432/paygate?sslmode=require",
            ),
            ("PAYGATE_LISTEN", "0.0.0.0:9000"),
            ("PAYGATE_DATA_DIR", "/var/lib/paygate"),
            ("PAYGATE_SIGNATURE_TOLERANCE_S", "120"),
            ("PAYGATE_NOTIFY_BACKOFF_S", "1, 2,3"),
            ("PAYGATE_NOTIFY_ALLOW_PRIVATE", "true"),
            ("RUST_LOG", "paygate=debug"),
        ])
        .unwrap();
        assert_eq!(
            config.database_url.unwrap().config.get_dbname(),
            Some("paygate")
        );
        let migrations = config.migration_database_url.unwrap();
        assert_eq!(migrations.config.get_user(), Some("owner"));
        assert_eq!(migrations.ssl_mode(), crate::db::settings::SslMode::Require);
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/paygate"));
        assert_eq!(config.signature_tolerance_s, 120);
        assert_eq!(config.notify_backoff_s, vec![1, 2, 3]);
        assert!(config.notify_allow_private);
    }

    #[test]
    fn the_seal_variables_are_read() {
        let seed = "0a".repeat(32);
        let previous = crate::ledger::signing::Keyring::new(
            &crate::ledger::signing::SealSeed::from_bytes([1; 32]),
            Vec::new(),
        )
        .public_key()
        .unwrap();
        let config = config_from(&[
            ("PAYGATE_SEAL_INTERVAL_MS", "0"),
            ("PAYGATE_SEAL_KEY", &seed),
            (
                "PAYGATE_SEAL_PREVIOUS_KEYS",
                &format!(" {} ,", previous.to_uppercase()),
            ),
        ])
        .unwrap();
        assert_eq!(config.seal_interval_ms, 0);
        assert_eq!(
            config.seal_key,
            crate::ledger::signing::SealSeed::parse_hex(&seed)
        );
        assert_eq!(config.seal_previous_keys, vec![previous]);
        assert_eq!(config_from(&[]).unwrap().seal_interval_ms, 2_000);
    }

    #[test]
    fn the_callback_and_order_lanes_are_read() {
        let config = config_from(&[
            ("PAYGATE_CALLBACK_LANES", "4"),
            ("PAYGATE_ORDER_LANES", "3"),
        ])
        .unwrap();
        assert_eq!((config.callback_lanes, config.order_lanes), (4, 3));
        let config = config_from(&[]).unwrap();
        assert_eq!(
            (config.callback_lanes, config.order_lanes),
            (DEFAULT_CALLBACK_LANES, DEFAULT_ORDER_LANES)
        );
    }

    #[test]
    fn a_migration_url_without_a_database_url_is_refused() {
        let err = config_from(&[(
            "PAYGATE_MIGRATION_DATABASE_URL",
            "postgres://owner:secret@db.internal/paygate",
        )])
        .unwrap_err();
        assert_eq!(err.variable, "PAYGATE_MIGRATION_DATABASE_URL");
        assert!(err.to_string().contains("DATABASE_URL"), "{err}");
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn each_bad_value_is_rejected_naming_its_variable() {
        let cases = [
            ("DATABASE_URL", "postgres://u:secret@host:notaport/db"),
            (
                "DATABASE_URL",
                "postgres://u:secret@host/db?sslmode=verify-everything",
            ),
            (
                "DATABASE_URL",
                "postgres://u:secret@host/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.crt",
            ),
            (
                "PAYGATE_MIGRATION_DATABASE_URL",
                "postgres://u:secret@host:notaport/db",
            ),
            ("PAYGATE_LISTEN", "localhost"),
            ("PAYGATE_SIGNATURE_TOLERANCE_S", "0"),
            ("PAYGATE_SIGNATURE_TOLERANCE_S", "-5"),
            ("PAYGATE_SIGNATURE_TOLERANCE_S", "86400"),
            ("PAYGATE_NOTIFY_BACKOFF_S", "10,,30"),
            ("PAYGATE_NOTIFY_BACKOFF_S", "10,0"),
            ("PAYGATE_NOTIFY_BACKOFF_S", "ten"),
            ("PAYGATE_NOTIFY_ALLOW_PRIVATE", "maybe"),
            ("PAYGATE_SEAL_INTERVAL_MS", "10001"),
            ("PAYGATE_SEAL_INTERVAL_MS", "-1"),
            ("PAYGATE_CALLBACK_LANES", "0"),
            ("PAYGATE_CALLBACK_LANES", "17"),
            ("PAYGATE_CALLBACK_LANES", "two"),
            ("PAYGATE_ORDER_LANES", "0"),
            ("PAYGATE_ORDER_LANES", "17"),
            ("PAYGATE_SEAL_KEY", "abc"),
            ("PAYGATE_SEAL_PREVIOUS_KEYS", "zz"),
            ("RUST_LOG", "paygate=loud"),
        ];
        for (variable, value) in cases {
            let err = config_from(&[(variable, value)]).unwrap_err();
            assert_eq!(err.variable, variable, "{value}");
            let line = err.to_string();
            assert!(line.starts_with(&format!("invalid {variable}=")), "{line}");
            assert!(!line.contains('\n'), "one line: {line}");
            assert!(!line.contains("secret"), "no password in {line}");
        }
    }
}
