//! Identifiers that paygate makes (payment, event and run ids) and the ones banks give
//! (transaction ids), each its own type so that one can never be passed where another is meant.
//!
//! Ids that paygate makes are `<prefix>_<hex>`: they match `^[A-Za-z0-9_-]{1,64}$`, so they are
//! safe in paths and query strings, and the prefix tells a reader what an id names.

/// A short random identifier: `<prefix>_` and `bytes` random bytes in hex, e.g. a bank key id
/// `kid_1f2e3d4c5b6a7988`.
pub fn random_id(prefix: &str, bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the operating system's random source is available");
    format!("{prefix}_{}", hex::encode(buf))
}

/// Random bytes in an id: 96 bits, so that ids made by any number of replicas never collide.
const ID_BYTES: usize = 12;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        string_newtype!($(#[$doc])* $name);

        impl $name {
            /// Wraps a value that is known to be an id of this kind: read from the database,
            /// or checked at the edge.
            pub fn from_trusted(value: String) -> Self {
                $name(value)
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }
    };
}

macro_rules! generated_id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        id_type!($(#[$doc])* $name);

        impl $name {
            /// The prefix of every id of this kind.
            pub const PREFIX: &'static str = $prefix;

            /// A new, random id.
            pub fn generate() -> Self {
                $name(random_id($prefix, ID_BYTES))
            }
        }
    };
}

generated_id_type!(
    /// A payment order, e.g. `pay_4285148955ee7d221d614688`.
    PaymentId,
    "pay"
);
generated_id_type!(
    /// An event of the notification outbox, e.g. `evt_5f0c2a9e1b3d4c6e8a7b9d0f`.
    EventId,
    "evt"
);
generated_id_type!(
    /// A reconciliation run, e.g. `rec_47f7196bd37bb97312027bbb`.
    RunId,
    "rec"
);
id_type!(
    /// A bank's own id of a transaction (1-64 characters, unique per bank), e.g. `FT26327001`.
    BankTxnId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_prefixed_distinct_and_safe_in_paths() {
        let a = PaymentId::generate();
        let b = PaymentId::generate();
        assert_ne!(a, b);
        assert!(a.as_str().starts_with("pay_"));
        assert_eq!(a.as_str().len(), 4 + 2 * ID_BYTES);
        for id in [
            a.into_string(),
            EventId::generate().into_string(),
            RunId::generate().into_string(),
        ] {
            assert!(id
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-'));
        }
    }
}
