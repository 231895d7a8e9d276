//! What the administration stores share: their error, and the one way they read a page of a
//! list newest first.

use deadpool_postgres::{GenericClient, Pool};
use serde_json::{json, Map, Value};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use url::Url;

use crate::audit::redact;
use crate::db::DbError;
use crate::domain::{AgencyCode, BankCode};
use crate::http::pagination::{Page, PageRequest};

/// Why an administrative change or read did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("no agency with code {0}")]
    AgencyNotFound(AgencyCode),
    #[error("no bank with code {0}")]
    BankNotFound(BankCode),
    #[error("bank {bank} has no key {key_id}")]
    BankKeyNotFound { bank: BankCode, key_id: String },
    /// No API key has this id (as the API writes it, `key_<number>`).
    #[error("no API key {0}")]
    KeyNotFound(String),
    #[error("an agency with code {0} already exists")]
    DuplicateAgency(AgencyCode),
    #[error("a bank with code {0} already exists")]
    DuplicateBank(BankCode),
    /// Revoking this key would leave no live admin key.
    #[error("{0} is the last live admin key; create another admin key first")]
    LastAdminKey(String),
    /// An agency's allowed obligations name codes that no catalog entry has.
    #[error("{} is not an obligation of the catalog", .0.join(", "))]
    UnknownObligations(Vec<String>),
    /// The built-in sandbox bank has no keys: nobody signs as it.
    #[error("the built-in sandbox bank {0} has no signing keys: paygate alone acts as it")]
    BuiltinBank(BankCode),
    #[error(transparent)]
    Db(#[from] DbError),
}

crate::from_db_errors!(AdminError);

/// One page of a list, newest first.
///
/// `sql` takes `filters` as `$1..$n`, then the cursor as `$n+1` (a position, or NULL for the
/// first page: it selects the rows below it) and the row limit as `$n+2`, and orders by
/// position descending. One row more than the page holds is fetched: it only tells that
/// another page follows.
pub async fn newest_first<T>(
    pool: &Pool,
    sql: &str,
    filters: &[&(dyn ToSql + Sync)],
    page: PageRequest,
    read: impl Fn(&Row) -> T,
    position: impl Fn(&T) -> i64,
) -> Result<Page<T>, AdminError> {
    let fetch = page.limit + 1;
    let mut params: Vec<&(dyn ToSql + Sync)> = filters.to_vec();
    params.push(&page.cursor);
    params.push(&fetch);
    let client = pool.get().await?;
    let rows = client.query(sql, &params).await?;
    let items = rows.iter().map(read).collect();
    Ok(Page::from_rows(items, page.limit, position))
}

/// What a `PATCH` of an agency or a bank changes: only the fields it names. The address is an
/// agency's `notify_url` or a bank's `refund_url`.
#[derive(Debug, Default)]
pub struct Changes {
    /// `Some(None)` clears the address (an agency's events then wait, pending).
    pub address: Option<Option<Url>>,
    pub disabled: Option<bool>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.address.is_none() && self.disabled.is_none()
    }
}

/// Applies `changes` with `statement`, an `UPDATE` of one row that takes the code as `$1`,
/// whether to set the address as `$2`, the address as `$3` and the switch (NULL: unchanged) as
/// `$4`. False when no row has `code`; true, and nothing written, when nothing changes.
pub async fn apply_changes(
    client: &impl GenericClient,
    statement: &str,
    code: &str,
    changes: &Changes,
) -> Result<bool, AdminError> {
    if changes.is_empty() {
        return Ok(true);
    }
    let set_address = changes.address.is_some();
    let address = changes.address.clone().flatten().map(String::from);
    let updated = client
        .execute(
            statement,
            &[&code, &set_address, &address, &changes.disabled],
        )
        .await?;
    Ok(updated > 0)
}

/// What `changes` change, for the audit trail: each field whose value differs from the one
/// before, as `{"from": ..., "to": ...}`; the address (named `address_field`) recorded without
/// what may carry a credential. Empty when nothing differs.
pub fn changed_fields(
    address_field: &str,
    address_before: Option<String>,
    disabled_before: bool,
    changes: &Changes,
) -> Map<String, Value> {
    let mut changed = Map::new();
    if let Some(address) = &changes.address {
        let after = address.as_ref().map(|url| url.as_str().to_owned());
        if after != address_before {
            changed.insert(
                address_field.to_owned(),
                json!({
                    "from": address_before.as_deref().and_then(redact::stored_address),
                    "to": address.as_ref().map(redact::address),
                }),
            );
        }
    }
    if let Some(disabled) = changes.disabled {
        if disabled != disabled_before {
            changed.insert(
                "disabled".to_owned(),
                json!({"from": disabled_before, "to": disabled}),
            );
        }
    }
    changed
}

/// The agency code in column `column` of a row; the column is constrained to valid codes.
pub fn agency_code(row: &Row, column: &str) -> AgencyCode {
    AgencyCode::parse(row.get(column)).expect("agency codes are constrained")
}

/// The bank code in column `column` of a row; the column is constrained to valid codes.
pub fn bank_code(row: &Row, column: &str) -> BankCode {
    BankCode::parse(row.get(column)).expect("bank codes are constrained")
}
