//! A statement and its items, as the JSON answer and the CSV file show them.

use rust_decimal::Decimal;
use serde::Serialize;
use time::OffsetDateTime;
use tokio_postgres::Row;
use utoipa::ToSchema;

use super::error::StatementError;
use crate::domain::{Amount, Totals};
use crate::reconciliation::items::write_cells;
use crate::timefmt::format_utc;

/// What an item of a statement records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemType {
    /// An order paid that day: money credited to the agency.
    Payment,
    /// A refund of an order, completed by the bank that day: money debited from the agency.
    Refund,
}

impl ItemType {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemType::Payment => "payment",
            ItemType::Refund => "refund",
        }
    }

    fn from_db(value: &str) -> ItemType {
        match value {
            "payment" => ItemType::Payment,
            "refund" => ItemType::Refund,
            other => unreachable!("the statement's query writes no item type {other:?}"),
        }
    }
}

/// One movement of the agency's money on the day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "refund", "payment_id": "pay_3b1f0c9a7d2e4f6a8b0c1d2e", "reference": "HS-2026-000123",
    "obligation": "fee", "amount": "50000", "bank": "VCB", "bank_txn_id": "FT26327001",
    "at": "2026-11-23T05:00:00Z", "refund_id": "rfd_5b2e0c9a7d2e4f6a8b0c1d2e"
}))]
pub struct StatementItem {
    #[serde(rename = "type")]
    pub item_type: ItemType,
    /// The order paid, or the order refunded.
    pub payment_id: String,
    /// The agency's reference of that order.
    pub reference: String,
    #[schema(example = "fee")]
    pub obligation: String,
    /// The amount paid, or the amount refunded.
    #[schema(value_type = String, pattern = "^[1-9][0-9]{0,14}$", example = "150000")]
    pub amount: Amount,
    /// The bank that collected the payment, or that paid the refund out.
    #[schema(example = "VCB")]
    pub bank: String,
    /// The bank's transaction of the payment (for a refund too: the payment it returns).
    #[schema(example = "FT26327001")]
    pub bank_txn_id: String,
    /// When the order was paid (`paid_at`), or when the bank completed the refund
    /// (`completed_at`).
    #[serde(serialize_with = "crate::timefmt::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    /// The refund, for a refund; null for a payment.
    #[schema(required = true)]
    pub refund_id: Option<String>,
}

/// The columns of a statement's CSV file, in this order: exactly the items' fields.
pub const CSV_HEADER: &str =
    "type,payment_id,reference,obligation,amount,bank,bank_txn_id,at,refund_id\n";

impl StatementItem {
    /// A row of [`super::store`]'s statement query.
    pub fn from_row(row: &Row) -> StatementItem {
        let amount: Decimal = row.get(4);
        StatementItem {
            item_type: ItemType::from_db(row.get(0)),
            payment_id: row.get(1),
            reference: row.get(2),
            obligation: row.get(3),
            amount: Amount::from_decimal(amount)
                .expect("an order's and a refund's amount are constrained to 1..=999999999999999"),
            bank: row.get(5),
            bank_txn_id: row.get(6),
            at: row.get(7),
            refund_id: row.get(8),
        }
    }

    /// Writes the item as one CSV record under [`CSV_HEADER`], the way every CSV file paygate
    /// writes is written (a cell that a spreadsheet would run as a formula gets a leading `'`).
    pub fn write_csv<W: std::io::Write>(&self, writer: &mut csv::Writer<W>) -> csv::Result<()> {
        let amount = self.amount.to_string();
        let at = format_utc(self.at);
        write_cells(
            writer,
            &[
                Some(self.item_type.as_str()),
                Some(&self.payment_id),
                Some(&self.reference),
                Some(&self.obligation),
                Some(&amount),
                Some(&self.bank),
                Some(&self.bank_txn_id),
                Some(&at),
                self.refund_id.as_deref(),
            ],
        )
    }
}

/// The day's totals: what was paid, what was refunded, and the difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct StatementTotals {
    /// The orders paid that day.
    pub payments: Totals,
    /// The refunds of orders completed that day.
    pub refunds: Totals,
    /// `payments.amount - refunds.amount`; negative (`-50000`) on a day that refunded more than
    /// it collected.
    #[schema(example = "100000")]
    pub net: String,
}

impl StatementTotals {
    /// The totals of `items`, in exact arithmetic.
    pub fn of(items: &[StatementItem]) -> Result<StatementTotals, StatementError> {
        let mut payments = Totals::ZERO;
        let mut refunds = Totals::ZERO;
        for item in items {
            let totals = match item.item_type {
                ItemType::Payment => &mut payments,
                ItemType::Refund => &mut refunds,
            };
            totals.count += 1;
            totals.amount = totals
                .amount
                .checked_add(item.amount.decimal())
                .ok_or(StatementError::TotalsOverflow)?;
        }
        let net = payments
            .amount
            .checked_sub(refunds.amount)
            .ok_or(StatementError::TotalsOverflow)?;
        Ok(StatementTotals {
            payments,
            refunds,
            net: net.normalize().to_string(),
        })
    }
}

/// An agency's statement of one business day.
#[derive(Debug, Serialize, ToSchema)]
pub struct DailyStatement {
    #[schema(value_type = String, example = "000.00.00.H12")]
    pub agency: String,
    /// The business day (Vietnam time), `YYYY-MM-DD`.
    #[schema(example = "2026-11-23")]
    pub date: String,
    /// Ordered by `at`, then payments before refunds, then by id (the payment's, or the
    /// refund's).
    pub items: Vec<StatementItem>,
    pub totals: StatementTotals,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconciliation::items::csv_writer;
    use time::macros::datetime;

    fn item(item_type: ItemType, amount: &str, refund_id: Option<&str>) -> StatementItem {
        StatementItem {
            item_type,
            payment_id: "pay_1".to_owned(),
            reference: "=HYPERLINK(\"http://evil\")".to_owned(),
            obligation: "fee".to_owned(),
            amount: Amount::parse(amount).unwrap(),
            bank: "VCB".to_owned(),
            bank_txn_id: "FT1".to_owned(),
            at: datetime!(2026-11-23 05:00:00.25 UTC),
            refund_id: refund_id.map(str::to_owned),
        }
    }

    #[test]
    fn totals_count_payments_and_refunds_apart_and_net_may_be_negative() {
        let items = [
            item(ItemType::Payment, "150000", None),
            item(ItemType::Refund, "50000", Some("rfd_1")),
            item(ItemType::Refund, "150000", Some("rfd_2")),
        ];
        let totals = StatementTotals::of(&items).unwrap();
        assert_eq!(
            serde_json::to_value(totals).unwrap(),
            serde_json::json!({
                "payments": {"count": 1, "amount": "150000"},
                "refunds": {"count": 2, "amount": "200000"},
                "net": "-50000",
            })
        );
        let empty = StatementTotals::of(&[]).unwrap();
        assert_eq!(empty.net, "0");
    }

    #[test]
    fn an_item_is_written_with_null_as_an_empty_field_and_formulas_neutralised() {
        let mut writer = csv_writer(Vec::new());
        item(ItemType::Payment, "150000", None)
            .write_csv(&mut writer)
            .unwrap();
        item(ItemType::Refund, "50000", Some("rfd_1"))
            .write_csv(&mut writer)
            .unwrap();
        let text = String::from_utf8(writer.into_inner().unwrap()).unwrap();
        assert_eq!(
            text,
            "payment,pay_1,\"'=HYPERLINK(\"\"http://evil\"\")\",fee,150000,VCB,FT1,2026-11-23T05:00:00.250000Z,\n\
             refund,pay_1,\"'=HYPERLINK(\"\"http://evil\"\")\",fee,50000,VCB,FT1,2026-11-23T05:00:00.250000Z,rfd_1\n"
        );
    }
}
