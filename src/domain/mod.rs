//! The values every capability shares, parsed once at the edge so that the code behind it can
//! never hold an invalid one: agency and bank codes, amounts of money, obligations, ids, money
//! totals, and the field-by-field account of invalid input.

/// A string newtype: the struct, serialised as its string, with `as_str`, `Display` and
/// `AsRef<str>`. Each kind adds how a value comes to be (parsed, generated or trusted).
macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

pub mod amount;
pub mod canonical;
pub mod codes;
pub mod ids;
pub mod money;
pub mod obligation;
pub mod validation;

pub use amount::{amount_field, Amount};
pub use codes::{AgencyCode, BankCode};
pub use ids::{BankTxnId, EventId, PaymentId, RunId};
pub use money::Totals;
pub use obligation::ObligationCode;
pub use validation::FieldError;
