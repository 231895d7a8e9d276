//! Amounts of money: positive whole VND, exact, with one spelling on the wire.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Serialize, Serializer};
use serde_json::Value;

/// The message for an amount that is not in the wire format, shared by every way one can be wrong
/// so that a caller sees the exact rule whatever mistake they made.
const AMOUNT_FORMAT: &str =
    "must match ^[1-9][0-9]{0,14}$ (a whole number of VND from 1 to 999999999999999, such as \"150000\")";

/// The message for an amount sent as anything but a JSON string; a JSON number is the usual
/// mistake, and the example shows the fix.
const AMOUNT_NOT_STRING: &str = "must be a string such as \"150000\"";

/// Positive whole VND, exact (rust_decimal inside), at most 999_999_999_999_999.
///
/// The Vietnamese đồng has no minor unit in use, so an amount is always a whole number. It is
/// kept as a `Decimal` so that it maps exactly onto the database's `NUMERIC` column and no
/// arithmetic ever passes through floating point. The inner value is always normalised (scale
/// zero), so two equal amounts print identically whatever their source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(Decimal);

impl Amount {
    /// The largest amount accepted: fifteen digits, which every bank's system and the portal can
    /// carry without loss.
    pub const MAX: i64 = 999_999_999_999_999;

    /// Parses the wire format only: a positive whole number written with ASCII digits and no
    /// leading zero, sign, fraction, exponent or whitespace.
    ///
    /// The format is strict so that an amount has exactly one spelling, which matters because
    /// signed request bodies and stored records are compared as text.
    pub fn parse(text: &str) -> Result<Amount, String> {
        let bytes = text.as_bytes();
        let well_formed = (1..=15).contains(&bytes.len())
            && matches!(bytes[0], b'1'..=b'9')
            && bytes.iter().all(u8::is_ascii_digit);
        if !well_formed {
            return Err(AMOUNT_FORMAT.to_owned());
        }
        let whole: i64 = text.parse().map_err(|_| AMOUNT_FORMAT.to_owned())?;
        Ok(Amount(Decimal::from(whole)))
    }

    /// Accepts a decimal that is a whole number from 1 to [`Amount::MAX`], and `None` otherwise.
    ///
    /// A value read back from a `NUMERIC` column may carry a scale (`150000.00`) although its
    /// fraction is zero; such a value is accepted and normalised, so that it prints as plain
    /// digits and compares equal to the same amount parsed from the wire.
    pub fn from_decimal(value: Decimal) -> Option<Amount> {
        let in_range = value > Decimal::ZERO && value <= Decimal::from(Self::MAX);
        if in_range && value.fract().is_zero() {
            Some(Amount(value.normalize()))
        } else {
            None
        }
    }

    /// The exact value, with scale zero, for storing and for arithmetic that must not round.
    pub fn decimal(self) -> Decimal {
        self.0
    }

    /// Adds two amounts, or gives `None` when the sum would pass [`Amount::MAX`], so that totals
    /// can never grow into a value the wire format cannot carry.
    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).and_then(Amount::from_decimal)
    }
}

impl fmt::Display for Amount {
    /// Prints plain digits, e.g. `150000`: the same text as the wire format, so logs and
    /// responses agree.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for Amount {
    /// Writes the amount as a JSON string, because a JSON number would lose precision in clients
    /// that read numbers as doubles.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Parses a JSON value that must be a string in the wire format (a JSON number gets the message
/// "must be a string such as \"150000\"").
///
/// A number is refused even when its value is fine, because the API fixes the string form
/// and accepting both would let the same request be signed two ways.
pub fn amount_field(value: &Value) -> Result<Amount, String> {
    match value {
        Value::String(text) => Amount::parse(text),
        _ => Err(AMOUNT_NOT_STRING.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn amounts_in_the_wire_format_parse_and_print_unchanged() {
        for text in ["1", "150000", "999999999999999"] {
            let amount = Amount::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(amount.to_string(), text);
            assert_eq!(amount.decimal().scale(), 0, "{text:?}");
        }
        assert_eq!(
            Amount::parse("999999999999999").unwrap().decimal(),
            Decimal::from(Amount::MAX)
        );
    }

    #[test]
    fn amounts_outside_the_wire_format_are_rejected_with_the_pattern() {
        for text in [
            "0",
            "-1",
            "+1",
            "01",
            "1.0",
            "1e3",
            " 1",
            "1 ",
            "1000000000000000",
            "",
            "١٢",
            "1_000",
        ] {
            let err = Amount::parse(text).expect_err(text);
            assert!(
                err.starts_with("must match ^[1-9][0-9]{0,14}$"),
                "{text:?}: {err}"
            );
        }
    }

    #[test]
    fn amount_field_accepts_only_a_json_string() {
        assert_eq!(
            amount_field(&json!("150000")),
            Ok(Amount::parse("150000").unwrap())
        );
        let cases = [
            (json!(150000), AMOUNT_NOT_STRING),
            (json!(150000.0), AMOUNT_NOT_STRING),
            (json!(null), AMOUNT_NOT_STRING),
            (json!(["150000"]), AMOUNT_NOT_STRING),
            (json!("150000.5"), AMOUNT_FORMAT),
        ];
        for (value, message) in cases {
            assert_eq!(amount_field(&value), Err(message.to_owned()), "{value}");
        }
        assert_eq!(
            amount_field(&json!(150000)).unwrap_err(),
            "must be a string such as \"150000\""
        );
    }

    #[test]
    fn from_decimal_accepts_a_whole_value_with_a_scale_and_prints_plain_digits() {
        let read_back = Decimal::new(15_000_000, 2);
        assert_eq!(read_back.to_string(), "150000.00");
        let amount = Amount::from_decimal(read_back).expect("150000.00 is whole");
        assert_eq!(amount.to_string(), "150000");
        assert_eq!(amount.decimal().scale(), 0);
        assert_eq!(amount, Amount::parse("150000").unwrap());
        assert_eq!(
            Amount::from_decimal(Decimal::from(Amount::MAX)).map(|a| a.to_string()),
            Some("999999999999999".to_owned())
        );
    }

    #[test]
    fn from_decimal_rejects_zero_negative_fractional_and_too_large_values() {
        for value in [
            Decimal::ZERO,
            Decimal::new(0, 2),
            Decimal::from(-150_000),
            Decimal::new(15, 1),
            Decimal::new(150_000_001, 3),
            Decimal::from(Amount::MAX + 1),
        ] {
            assert_eq!(Amount::from_decimal(value), None, "{value}");
        }
    }

    #[test]
    fn checked_add_sums_up_to_max_and_gives_none_beyond_it() {
        let one = Amount::parse("1").unwrap();
        let almost = Amount::parse("999999999999998").unwrap();
        let max = Amount::parse("999999999999999").unwrap();
        assert_eq!(one.checked_add(almost), Some(max));
        assert_eq!(max.checked_add(one), None);
        assert_eq!(max.checked_add(max), None);
        assert_eq!(
            Amount::parse("150000")
                .unwrap()
                .checked_add(Amount::parse("50000").unwrap())
                .map(|a| a.to_string()),
            Some("200000".to_owned())
        );
    }

    #[test]
    fn an_amount_serializes_as_a_json_string() {
        let amount = Amount::from_decimal(Decimal::new(15_000_000, 2)).unwrap();
        assert_eq!(serde_json::to_value(amount).unwrap(), json!("150000"));
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;
        use rust_decimal::Decimal;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn amount_parse_never_panics_and_accepts_only_the_wire_format(text in "\\PC{0,24}") {
                if let Ok(amount) = Amount::parse(&text) {
                    let bytes = text.as_bytes();
                    prop_assert!((1..=15).contains(&bytes.len()));
                    prop_assert!(matches!(bytes[0], b'1'..=b'9'));
                    prop_assert!(bytes.iter().all(u8::is_ascii_digit));
                    prop_assert_eq!(amount.to_string(), text);
                }
            }

            #[test]
            fn amount_parse_never_panics_on_digit_strings_of_any_length(text in "[0-9]{0,40}") {
                let _ = Amount::parse(&text);
            }

            #[test]
            fn an_amount_text_parses_and_prints_back_identically(value in 1..=Amount::MAX) {
                let text = value.to_string();
                let amount = Amount::parse(&text).expect("a whole number in range");
                prop_assert_eq!(amount.to_string(), text.clone());
                prop_assert_eq!(amount.decimal(), Decimal::from(value));
                prop_assert_eq!(amount.decimal().scale(), 0);
                prop_assert_eq!(amount_field(&Value::String(text)), Ok(amount));
                // Read back from a NUMERIC column with a scale, it is the same amount.
                let scaled = Decimal::new(value, 0) * Decimal::new(100, 2);
                prop_assert_eq!(Amount::from_decimal(scaled), Some(amount));
            }
        }
    }
}
