//! The code of an obligation in the catalog: the kind of public obligation an order pays.
//!
//! Obligations are rows of the `obligations` table (see `crate::catalog`), not a fixed list: the
//! six paygate started with are built-in entries and admins add more at run time. A code is
//! only checked for syntax here; whether it names an entry, and whether that entry is active and
//! allowed for the agency, is read from the database when an order is created.

use std::fmt;

use serde::Serialize;

/// A catalog code, `^[a-z][a-z0-9_]{1,31}$`, as the wire and the database spell it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ObligationCode(String);

impl ObligationCode {
    pub const FEE: &'static str = "fee";
    pub const TAX: &'static str = "tax";
    pub const SOCIAL_INSURANCE: &'static str = "social_insurance";
    pub const FINE: &'static str = "fine";
    pub const ELECTRICITY: &'static str = "electricity";
    pub const COURT_ADVANCE: &'static str = "court_advance";

    /// The built-in entries, in the order `docs/api-guide.md` lists them; lists that show every
    /// obligation put these first, in this order, then the others by code.
    pub const BUILTINS: [&'static str; 6] = [
        Self::FEE,
        Self::TAX,
        Self::SOCIAL_INSURANCE,
        Self::FINE,
        Self::ELECTRICITY,
        Self::COURT_ADVANCE,
    ];

    /// Parses a code's syntax exactly (case matters); the message names the rule so that a
    /// caller can correct the request without reading the documentation.
    pub fn parse(text: &str) -> Result<ObligationCode, String> {
        let bytes = text.as_bytes();
        let valid = (2..=32).contains(&bytes.len())
            && bytes[0].is_ascii_lowercase()
            && bytes[1..]
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_');
        if valid {
            Ok(ObligationCode(text.to_owned()))
        } else {
            Err(
                "must be the code of an obligation of the catalog (^[a-z][a-z0-9_]{1,31}$)"
                    .to_owned(),
            )
        }
    }

    /// A code read from a column the database constrains to the code syntax.
    pub fn from_trusted(text: impl Into<String>) -> ObligationCode {
        ObligationCode(text.into())
    }

    /// The wire and database name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Where this code sorts in lists of obligations: the built-ins in their documented order,
    /// then every other code alphabetically.
    pub fn list_key(&self) -> (usize, &str) {
        let position = Self::BUILTINS.iter().position(|b| *b == self.0);
        (position.unwrap_or(Self::BUILTINS.len()), self.as_str())
    }
}

impl AsRef<str> for ObligationCode {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObligationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_builtin_code_parses_and_serializes_to_the_name_it_prints() {
        for name in ObligationCode::BUILTINS
            .into_iter()
            .chain(["hospital_fee", "s2", "a_1"])
        {
            let code = ObligationCode::parse(name).unwrap();
            assert_eq!(code.as_str(), name);
            assert_eq!(serde_json::to_value(&code).unwrap(), json!(name));
            assert_eq!(code.to_string(), name);
        }
    }

    #[test]
    fn a_code_outside_the_syntax_is_rejected() {
        for text in [
            "",
            "f",
            "Fee",
            "FEE",
            "socialInsurance",
            "social-insurance",
            " fee",
            "1fee",
            "_fee",
            "fée",
            "a23456789012345678901234567890123",
        ] {
            assert!(ObligationCode::parse(text).is_err(), "{text:?}");
        }
        assert!(ObligationCode::parse("a2345678901234567890123456789012").is_ok());
    }

    #[test]
    fn lists_put_the_builtins_first_in_their_order_then_the_rest_by_code() {
        let mut codes: Vec<ObligationCode> = ["zoo", "tax", "hospital_fee", "fee", "court_advance"]
            .into_iter()
            .map(ObligationCode::from_trusted)
            .collect();
        codes.sort_by(|a, b| a.list_key().cmp(&b.list_key()));
        let names: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            names,
            ["fee", "tax", "court_advance", "hospital_fee", "zoo"]
        );
    }
}
