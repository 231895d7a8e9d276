//! What reconciliation records and answers: the outcomes, runs, items, totals and the daily report.

use std::fmt;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use time::{Date, OffsetDateTime};
use tokio_postgres::types::{FromSql, Type};
use utoipa::ToSchema;

use crate::domain::{ObligationCode, RunId, Totals};

/// How one statement line (or one of paygate's records) compares, as `docs/api-guide.md`
/// describes each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Matched,
    Recovered,
    MissingInGateway,
    MissingInBank,
    Mismatch,
    DuplicateInStatement,
    InvalidLine,
}

impl Outcome {
    /// Every outcome, in the documented order (the order of a run's `summary`).
    pub const ALL: [Outcome; 7] = [
        Outcome::Matched,
        Outcome::Recovered,
        Outcome::MissingInGateway,
        Outcome::MissingInBank,
        Outcome::Mismatch,
        Outcome::DuplicateInStatement,
        Outcome::InvalidLine,
    ];

    /// The wire and database name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Matched => "matched",
            Outcome::Recovered => "recovered",
            Outcome::MissingInGateway => "missing_in_gateway",
            Outcome::MissingInBank => "missing_in_bank",
            Outcome::Mismatch => "mismatch",
            Outcome::DuplicateInStatement => "duplicate_in_statement",
            Outcome::InvalidLine => "invalid_line",
        }
    }

    /// Parses the wire name exactly; the error lists every outcome.
    pub fn parse(text: &str) -> Result<Outcome, String> {
        Outcome::ALL
            .into_iter()
            .find(|outcome| outcome.as_str() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
                format!("must be one of {}", names.join(", "))
            })
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Outcome {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Read from `reconciliation_items.outcome`, whose CHECK constraint allows exactly these names.
impl<'a> FromSql<'a> for Outcome {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let text = <&str as FromSql>::from_sql(ty, raw)?;
        Ok(Outcome::parse(text)?)
    }

    fn accepts(ty: &Type) -> bool {
        <&str as FromSql>::accepts(ty)
    }
}

/// Money totals by key (outcome or obligation): every key present, zeros included, in the
/// documented order, written as a JSON object `{"<key>": {"count", "amount"}, ...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotalsBy<K>(Vec<(K, Totals)>);

impl<K: PartialEq> TotalsBy<K> {
    /// Zero totals for each of `keys`, in their order.
    pub fn zeros(keys: impl IntoIterator<Item = K>) -> Self {
        TotalsBy(keys.into_iter().map(|key| (key, Totals::ZERO)).collect())
    }

    /// Replaces the totals of `key` (or adds them at the end, were `key` not among the keys).
    pub fn set(&mut self, key: K, totals: Totals) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = totals,
            None => self.0.push((key, totals)),
        }
    }
}

impl<K: fmt::Display> Serialize for TotalsBy<K> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, totals) in &self.0 {
            map.serialize_entry(&key.to_string(), totals)?;
        }
        map.end()
    }
}

impl TotalsBy<ObligationCode> {
    /// The totals of every obligation the catalog lists: each `active` entry (zeros included)
    /// plus each entry with totals (an inactive one's money still counts), the built-ins first in
    /// their documented order, then the others by code, so that the same data always gives the
    /// same text.
    pub fn of_obligations(
        active: impl IntoIterator<Item = ObligationCode>,
        totals: impl IntoIterator<Item = (ObligationCode, Totals)>,
    ) -> Self {
        let mut by = TotalsBy::zeros(active);
        for (code, totals) in totals {
            by.set(code, totals);
        }
        by.0.sort_by(|(a, _), (b, _)| a.list_key().cmp(&b.list_key()));
        by
    }
}

/// A recorded run, as every answer returns it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "rec_7d1e0f3a9b2c4d5e6f708192", "bank": "VCB", "date": "2026-11-22",
    "created_at": "2026-11-23T02:30:00.123456Z", "statement_lines": 3,
    "summary": {"matched": {"count": 1, "amount": "150000"}, "recovered": {"count": 1, "amount": "300000"},
        "missing_in_gateway": {"count": 0, "amount": "0"}, "missing_in_bank": {"count": 1, "amount": "200000"},
        "mismatch": {"count": 0, "amount": "0"}, "duplicate_in_statement": {"count": 0, "amount": "0"},
        "invalid_line": {"count": 1, "amount": "0"}},
    "by_obligation": {"fee": {"count": 2, "amount": "450000"}, "tax": {"count": 0, "amount": "0"},
        "social_insurance": {"count": 0, "amount": "0"}, "fine": {"count": 0, "amount": "0"},
        "electricity": {"count": 0, "amount": "0"}, "court_advance": {"count": 0, "amount": "0"}}
}))]
pub struct Run {
    #[schema(value_type = String)]
    pub id: RunId,
    pub bank: String,
    /// The business day (Vietnam time) reconciled.
    #[schema(value_type = String, format = Date)]
    pub date: String,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    pub statement_lines: i32,
    // As recorded with the run: a `TotalsBy<Outcome>` when it was written.
    /// Every outcome, zeros included: `{"count", "amount"}`.
    #[schema(value_type = Object)]
    pub summary: serde_json::Value,
    // As recorded with the run: a `TotalsBy<ObligationCode>` when it was written.
    /// The matched and recovered money credited to agencies, by obligation: every active entry of
    /// the obligation catalog (zeros included) plus any other with money in the run, the
    /// built-ins first.
    #[schema(value_type = Object)]
    pub by_obligation: serde_json::Value,
}

/// The columns [`Run::from_row`] reads, in its order.
pub const RUN_COLUMNS: &str =
    "id, bank_code, date, created_at, statement_lines, summary, by_obligation";

impl Run {
    pub fn from_row(row: &tokio_postgres::Row) -> Run {
        let date: Date = row.get(2);
        Run {
            id: RunId::from_trusted(row.get(0)),
            bank: row.get(1),
            date: date.to_string(),
            created_at: row.get(3),
            statement_lines: row.get(4),
            summary: row.get(5),
            by_obligation: row.get(6),
        }
    }
}

/// One difference (or match) between the statement and paygate.
#[derive(Debug, Serialize, ToSchema)]
pub struct Item {
    #[schema(value_type = String, example = "recovered")]
    pub outcome: Outcome,
    /// The statement's line number (header = line 1), or null.
    pub line: Option<i32>,
    pub bank_txn_id: Option<String>,
    pub payment_id: Option<String>,
    #[schema(example = "150000")]
    pub statement_amount: Option<String>,
    #[schema(example = "150000")]
    pub gateway_amount: Option<String>,
    pub detail: Option<String>,
    #[serde(skip)]
    pub seq: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgencyTotal {
    pub agency: String,
    #[serde(flatten)]
    pub totals: Totals,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BankTotal {
    pub bank: String,
    #[serde(flatten)]
    pub totals: Totals,
}

// The orders paid on a business day (Vietnam time).
#[derive(Debug, Serialize, ToSchema)]
pub struct DailyReport {
    #[schema(example = "2026-11-22")]
    pub date: String,
    pub totals: Totals,
    /// Every active obligation of the catalog (zeros included) plus any inactive one with orders
    /// paid that day, keyed by code: the built-ins first, then the others by code.
    #[schema(value_type = Object)]
    pub by_obligation: TotalsBy<ObligationCode>,
    pub by_agency: Vec<AgencyTotal>,
    pub by_bank: Vec<BankTotal>,
    /// Refunds (of orders and of money in suspense) the banks completed that day.
    pub refunds: Totals,
    pub cases: CaseTotals,
}

/// Cases on a business day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, ToSchema)]
pub struct CaseTotals {
    /// Opened that day.
    pub opened: i64,
    /// Resolved that day (a refund when the bank completed it, an apply when it was approved).
    pub resolved: i64,
    /// Opened by the end of the day and not resolved by then.
    pub open_at_end: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;

    #[test]
    fn every_outcome_parses_back_from_its_name() {
        for outcome in Outcome::ALL {
            assert_eq!(Outcome::parse(outcome.as_str()), Ok(outcome));
            assert_eq!(
                serde_json::to_value(outcome).unwrap(),
                serde_json::json!(outcome.as_str())
            );
        }
        assert!(Outcome::parse("Matched").is_err());
    }

    #[test]
    fn totals_by_key_keep_every_key_in_order_with_zeros() {
        let mut by = TotalsBy::zeros(ObligationCode::BUILTINS);
        by.set(ObligationCode::FINE, Totals::new(2, Decimal::from(450_000)));
        assert_eq!(
            serde_json::to_string(&by).unwrap(),
            r#"{"fee":{"count":0,"amount":"0"},"tax":{"count":0,"amount":"0"},"social_insurance":{"count":0,"amount":"0"},"fine":{"count":2,"amount":"450000"},"electricity":{"count":0,"amount":"0"},"court_advance":{"count":0,"amount":"0"}}"#
        );
    }

    #[test]
    fn totals_by_obligation_list_active_entries_and_any_with_money_builtins_first() {
        let code = ObligationCode::from_trusted;
        let by = TotalsBy::of_obligations(
            ["school_fee", "fee", "hospital_fee", "tax"].map(code),
            [
                (code("retired"), Totals::new(1, Decimal::from(5))),
                (code("tax"), Totals::new(2, Decimal::from(7))),
            ],
        );
        let keys: Vec<&str> = by.0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["fee", "tax", "hospital_fee", "retired", "school_fee"]
        );
        assert_eq!(by.0[1].1, Totals::new(2, Decimal::from(7)));
        assert_eq!(by.0[0].1, Totals::ZERO);
    }

    #[test]
    fn an_agency_total_names_the_agency_before_its_totals() {
        let total = AgencyTotal {
            agency: "H12".to_owned(),
            totals: Totals::new(1, Decimal::from(150_000)),
        };
        assert_eq!(
            serde_json::to_string(&total).unwrap(),
            r#"{"agency":"H12","count":1,"amount":"150000"}"#
        );
    }
}

/// The run being written: its id, which the API and the cases show, and its number, by which
/// its items are keyed (narrower than the id, and always increasing).
#[derive(Debug, Clone, Copy)]
pub struct NewRun<'a> {
    pub id: &'a RunId,
    pub seq: i64,
}
