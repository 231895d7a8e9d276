//! Why a reconciliation request or run failed.

use crate::banks::callbacks::CallbackError;
use crate::db::DbError;
use crate::domain::{BankCode, RunId};

use super::statement::StatementError;

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The statement names a bank paygate does not know.
    #[error("no bank with code {0}")]
    UnknownBank(BankCode),
    /// The statement file as a whole cannot be read (no header row, a missing column, not
    /// UTF-8): nothing is recorded.
    #[error(transparent)]
    Statement(#[from] StatementError),
    #[error("no reconciliation run {0}")]
    RunNotFound(RunId),
    /// A lost callback could not be applied for a reason other than the order or its amount
    /// having changed (those become `missing_in_gateway` items).
    #[error(transparent)]
    Callback(#[from] CallbackError),
    /// A statement of the run failed; kept as it is, so that the run can tell a lost deadlock
    /// or serialization conflict (worth running again) from anything else.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A broken invariant: the statement reader's thread died, or the database holds a value
    /// its constraints forbid.
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

crate::from_db_errors!(ReconcileError);

/// SQLSTATEs after which the same run, started again, succeeds: a serialization failure and a
/// deadlock's victim (PostgreSQL rolled the transaction back, so nothing of it was kept).
const RETRIABLE_SQLSTATES: [&str; 2] = ["40001", "40P01"];

impl ReconcileError {
    /// Whether running the whole run again may succeed: the run's own statement lost a conflict
    /// or found no connection, or a recovery's callback path met a passing failure of the
    /// database. Running again after any of those is safe (the failed attempt kept nothing),
    /// and the attempts are bounded.
    pub fn is_retriable(&self) -> bool {
        match self {
            ReconcileError::Db(DbError::Pool(_)) => true,
            ReconcileError::Db(DbError::Query(err)) => err
                .as_db_error()
                .is_some_and(|db| RETRIABLE_SQLSTATES.contains(&db.code().code())),
            ReconcileError::Callback(err) => err.is_transient(),
            ReconcileError::UnknownBank(_)
            | ReconcileError::Statement(_)
            | ReconcileError::RunNotFound(_)
            | ReconcileError::Internal(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_conflicts_and_outages_make_a_run_worth_running_again() {
        let outage = ReconcileError::Db(DbError::Pool(deadpool_postgres::PoolError::Closed));
        assert!(outage.is_retriable());
        let callback_outage = ReconcileError::Callback(CallbackError::Db(DbError::Pool(
            deadpool_postgres::PoolError::Closed,
        )));
        assert!(callback_outage.is_retriable());
        let unknown = ReconcileError::UnknownBank(BankCode::parse("XYZ").unwrap());
        assert!(!unknown.is_retriable());
        let statement = ReconcileError::Statement(StatementError::NoHeader);
        assert!(!statement.is_retriable());
        let internal = ReconcileError::Internal(anyhow::anyhow!("a bug"));
        assert!(!internal.is_retriable());
        assert!(!ReconcileError::Callback(CallbackError::AmountMismatch).is_retriable());
    }

    #[test]
    fn an_unknown_bank_is_named_in_the_message() {
        let err = ReconcileError::UnknownBank(BankCode::parse("XYZ").unwrap());
        assert_eq!(err.to_string(), "no bank with code XYZ");
    }
}
