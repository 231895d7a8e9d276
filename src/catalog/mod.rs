//! The obligation catalog (see "Obligation catalog" in `docs/api-guide.md`): the kinds of
//! public obligation an order may pay, each with the JSON Schema its `details` must satisfy.
//!
//! The six obligations paygate started with are built-in entries; admins add more at run time.
//! A schema never changes once created, so a validator compiled from it never goes stale: each
//! replica compiles an entry the first time it needs it and keeps it. What may change (whether
//! an entry is active, its name) is read from the database on every use, never cached.

pub mod http;
pub mod schema;
pub mod store;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use deadpool_postgres::GenericClient;
use jsonschema::Validator;
use serde_json::Value;

use crate::db::DbError;
use crate::domain::FieldError;

pub use store::{CatalogEntry, StoreError};

/// Why an order's `details` cannot be accepted for its obligation.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// No catalog entry has this code.
    #[error("no obligation has this code")]
    Unknown,
    /// The entry exists but refuses new orders.
    #[error("the obligation is inactive")]
    Inactive,
    /// The details break the entry's schema; every failure, each on `details.<path>`.
    #[error("the details are invalid")]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Db(#[from] DbError),
}

crate::from_db_errors!(CatalogError);

/// How many compiled validators one process keeps at most. The catalog holds a few dozen entries;
/// the bound only stops a process that meets very many schemas (many test databases, say) from
/// growing without end: past it the cache starts again empty.
const CACHE_MAX_ENTRIES: usize = 1_024;

/// This process's compiled validators, keyed by the SHA-256 of the schema they were compiled
/// from (which the database computes when the entry is created). A schema never changes, so an
/// entry is never stale; keying by digest rather than code keeps that true even if the same code
/// names different schemas in different databases.
fn cache() -> &'static RwLock<HashMap<String, Arc<Validator>>> {
    static CACHE: OnceLock<RwLock<HashMap<String, Arc<Validator>>>> = OnceLock::new();
    CACHE.get_or_init(|| RwLock::new(HashMap::new()))
}

/// What the order path reads of an entry, in the order's transaction: whether it is active and
/// the digest of its schema (`None`: no entry has the code). See [`store::state`].
pub type EntryState = Option<(bool, String)>;

/// Checks that the obligation `code` exists and is active, and that `details` satisfies its
/// schema, given the entry's `state` as the caller read it inside the order-creating transaction
/// (the order path reads it in the statement that claims the request's idempotency key), so that
/// the entry's state is the one the order is stored under.
///
/// `active` is read from the database for every order, never cached, so a change made through
/// any replica applies to the next order everywhere; the compiled validator is cached, because
/// the schema it came from cannot change. The database is read again only to compile a schema
/// this process has not seen yet.
pub async fn check_details(
    client: &impl GenericClient,
    code: &str,
    state: EntryState,
    details: &Value,
) -> Result<(), CatalogError> {
    let Some((active, digest)) = state else {
        return Err(CatalogError::Unknown);
    };
    if !active {
        return Err(CatalogError::Inactive);
    }
    let validator = validator(client, code, &digest).await?;
    let errors = schema::failures(code, &validator, details);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(CatalogError::Invalid(errors))
    }
}

/// The compiled validator of the schema with this digest, compiling (and keeping) it on first use.
async fn validator(
    client: &impl GenericClient,
    code: &str,
    digest: &str,
) -> Result<Arc<Validator>, CatalogError> {
    if let Some(found) = read_cache().get(digest) {
        return Ok(Arc::clone(found));
    }
    let details_schema = store::details_schema(client, code)
        .await?
        .ok_or(CatalogError::Unknown)?;
    // Every stored schema compiled when it was created (the built-ins are tested to); one that no
    // longer does would be a broken invariant, reported as an internal error by the caller.
    let compiled = schema::compile(&details_schema).unwrap_or_else(|problem| {
        panic!("the stored schema of obligation {code} does not compile: {problem}")
    });
    let compiled = Arc::new(compiled);
    let mut cache = cache()
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if cache.len() >= CACHE_MAX_ENTRIES {
        cache.clear();
    }
    cache.insert(digest.to_owned(), Arc::clone(&compiled));
    Ok(compiled)
}

fn read_cache() -> std::sync::RwLockReadGuard<'static, HashMap<String, Arc<Validator>>> {
    cache()
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
