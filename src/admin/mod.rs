//! Administration (role `admin`): agencies, banks, API keys, and the switches that disable
//! agencies and banks. Auditors may read the lists of agencies and banks.
//!
//! `http` holds the handlers; `agencies`, `banks` and `api_keys` the SQL, answering with
//! [`AdminError`]; `notify_url` the rule for the addresses paygate calls out to.

pub mod agencies;
pub mod api_keys;
pub mod banks;
pub mod http;
pub mod notify_url;
pub mod store;

pub use http::configure;
pub use store::AdminError;
