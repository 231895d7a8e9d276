//! Why a statement cannot be given; `statements/http.rs` alone turns it into an HTTP answer.

use crate::db::DbError;
use crate::domain::AgencyCode;

#[derive(Debug, thiserror::Error)]
pub enum StatementError {
    /// No agency has this code.
    #[error("no agency with code {0}")]
    AgencyNotFound(AgencyCode),
    /// A day's totals do not fit the exact decimal type: a broken invariant (every amount is at
    /// most fifteen digits, so it would take some 10^13 items), which stops the answer.
    #[error("the statement's totals overflow")]
    TotalsOverflow,
    #[error(transparent)]
    Db(#[from] DbError),
}

crate::from_db_errors!(StatementError);
