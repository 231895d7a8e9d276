//! Database failures as the capabilities see them: no connection, or a statement that failed.
//!
//! Stores return [`DbError`]; each capability wraps it in its own error, and the HTTP edge alone
//! decides what a client is told (503 for what a retry would cure, an opaque 500 otherwise).

/// A database operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection within the pool's wait timeout, or none could be opened.
    #[error("no database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// A statement failed, or the connection broke under it.
    #[error("database error: {0}")]
    Query(#[from] tokio_postgres::Error),
}

/// Lets `?` turn the driver's and the pool's errors into `$error::Db` inside a capability, whose
/// error enum has a `Db(#[from] DbError)` variant.
#[macro_export]
macro_rules! from_db_errors {
    ($error:ident) => {
        impl From<tokio_postgres::Error> for $error {
            fn from(err: tokio_postgres::Error) -> Self {
                $error::Db(err.into())
            }
        }

        impl From<deadpool_postgres::PoolError> for $error {
            fn from(err: deadpool_postgres::PoolError) -> Self {
                $error::Db(err.into())
            }
        }
    };
}

impl DbError {
    /// The name of the constraint the statement violated, if it violated one.
    pub fn violated_constraint(&self) -> Option<&str> {
        match self {
            DbError::Query(err) => violated_constraint(err),
            DbError::Pool(_) => None,
        }
    }

    /// Whether running the same work again later would likely succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            DbError::Pool(_) => true,
            DbError::Query(err) => err
                .as_db_error()
                .is_none_or(|db_error| is_transient_sqlstate(db_error.code().code())),
        }
    }
}

/// Whether a statement that failed with this SQLSTATE would succeed if the client retried it
/// later, so that the answer is 503 `unavailable` rather than an internal error:
///
/// - class 08: the connection broke or could not be made;
/// - 40001 and 40P01: the transaction lost a serialization conflict or was chosen as a
///   deadlock's victim; nothing of it was kept, and running it again succeeds;
/// - 53300: the server has no connection slot left;
/// - 55P03: a lock wait ran past `lock_timeout`;
/// - 57P01, 57P02, 57P03: the server is shutting down, crashed, or is still starting.
pub fn is_transient_sqlstate(code: &str) -> bool {
    code.starts_with("08")
        || matches!(
            code,
            "40001" | "40P01" | "53300" | "55P03" | "57P01" | "57P02" | "57P03"
        )
}

/// The name of the constraint a statement violated, if it violated one.
pub fn violated_constraint(err: &tokio_postgres::Error) -> Option<&str> {
    let db_error = err.as_db_error()?;
    let integrity = db_error.code().code().starts_with("23");
    integrity.then(|| db_error.constraint()).flatten()
}
