//! Totals of money: how many payments and how much, as reports and reconciliation runs give them.

use rust_decimal::Decimal;
use serde::{Serialize, Serializer};
use utoipa::ToSchema;

// The sum is zero for an empty total, which an `Amount` (always positive) cannot hold, so it is a
// `Decimal`, written like every amount as a string of plain digits.
/// A count of payments and the exact sum of their amounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, ToSchema)]
pub struct Totals {
    pub count: i64,
    #[serde(serialize_with = "plain_digits")]
    #[schema(value_type = String, example = "150000")]
    pub amount: Decimal,
}

impl Totals {
    pub const ZERO: Totals = Totals {
        count: 0,
        amount: Decimal::ZERO,
    };

    pub fn new(count: i64, amount: Decimal) -> Totals {
        Totals { count, amount }
    }
}

/// Writes a sum as `150000`: no scale that a `NUMERIC` column may have given it, no exponent.
fn plain_digits<S: Serializer>(amount: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&amount.normalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_write_their_sum_as_plain_digits() {
        let totals = Totals::new(2, Decimal::new(45_000_000, 2));
        assert_eq!(
            serde_json::to_value(totals).unwrap(),
            serde_json::json!({"count": 2, "amount": "450000"})
        );
        assert_eq!(
            serde_json::to_value(Totals::ZERO).unwrap(),
            serde_json::json!({"count": 0, "amount": "0"})
        );
    }
}
