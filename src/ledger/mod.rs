//! The double-entry ledger: append-only, every transaction balanced.
//!
//! Accounts: `bank:<BANK>` (money the bank holds for us), `agency:<AGENCY>:<obligation>` (money
//! owed to the agency's beneficiary), `suspense:<BANK>` (money to refund or investigate).

pub mod exceptions;
pub mod http;

pub use http::configure;

use deadpool_postgres::GenericClient;
use rust_decimal::Decimal;

use crate::codes::BankCode;
use crate::payments::domain::{Amount, Obligation};

pub fn bank_account(bank: &BankCode) -> String {
    format!("bank:{bank}")
}

pub fn agency_account(agency: &str, obligation: Obligation) -> String {
    format!("agency:{agency}:{}", obligation.as_str())
}

pub fn suspense_account(bank: &BankCode) -> String {
    format!("suspense:{bank}")
}

/// Why money moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An accepted payment: the bank holds money owed to the agency.
    Payment,
    /// Money received that must be refunded or investigated.
    Suspense,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Payment => "payment",
            Kind::Suspense => "suspense",
        }
    }
}

/// One ledger transaction before it is written.
#[derive(Debug, Clone)]
pub struct Posting {
    pub kind: Kind,
    pub callback_id: i64,
    pub payment_id: String,
    /// (account, debit, credit); exactly one side of each entry is non-zero.
    pub entries: Vec<(String, Decimal, Decimal)>,
}

impl Posting {
    /// Money the bank received, owed to `credit_account`: debit the bank, credit the other.
    pub fn transfer(
        kind: Kind,
        callback_id: i64,
        payment_id: &str,
        bank: &BankCode,
        credit_account: String,
        amount: Amount,
    ) -> Posting {
        Posting {
            kind,
            callback_id,
            payment_id: payment_id.to_owned(),
            entries: vec![
                (bank_account(bank), amount.decimal(), Decimal::ZERO),
                (credit_account, Decimal::ZERO, amount.decimal()),
            ],
        }
    }

    fn balanced(&self) -> bool {
        let one_sided = self.entries.iter().all(|(_, debit, credit)| {
            (debit.is_zero() != credit.is_zero())
                && !debit.is_sign_negative()
                && !credit.is_sign_negative()
        });
        let debits: Decimal = self.entries.iter().map(|(_, debit, _)| *debit).sum();
        let credits: Decimal = self.entries.iter().map(|(_, _, credit)| *credit).sum();
        self.entries.len() >= 2 && one_sided && debits == credits
    }
}

/// Writes `posting` (one statement); call it inside the transaction that decided it. An
/// unbalanced posting is a broken invariant, not an operating error: it stops the operation
/// (and the database's deferred trigger would refuse it at commit anyway).
pub async fn post(
    client: &impl GenericClient,
    posting: &Posting,
) -> Result<i64, tokio_postgres::Error> {
    assert!(posting.balanced(), "unbalanced ledger posting: {posting:?}");
    let accounts: Vec<&str> = posting.entries.iter().map(|(a, _, _)| a.as_str()).collect();
    let debits: Vec<Decimal> = posting.entries.iter().map(|(_, d, _)| *d).collect();
    let credits: Vec<Decimal> = posting.entries.iter().map(|(_, _, c)| *c).collect();
    let statement = client
        .prepare_cached(
            "WITH t AS (
                 INSERT INTO ledger_transactions (kind, callback_id, payment_id)
                 VALUES ($1, $2, $3) RETURNING id)
             INSERT INTO ledger_entries (transaction_id, account, debit, credit)
             SELECT t.id, e.account, e.debit, e.credit
             FROM t, unnest($4::text[], $5::numeric[], $6::numeric[]) AS e(account, debit, credit)
             RETURNING transaction_id",
        )
        .await?;
    let rows = client
        .query(
            &statement,
            &[
                &posting.kind.as_str(),
                &posting.callback_id,
                &posting.payment_id,
                &accounts,
                &debits,
                &credits,
            ],
        )
        .await?;
    Ok(rows.first().map(|row| row.get(0)).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transfer_balances_and_an_edited_one_does_not() {
        let bank = BankCode::parse("VCB").unwrap();
        let amount = Amount::parse("150000").unwrap();
        let mut posting = Posting::transfer(
            Kind::Payment,
            1,
            "pay_1",
            &bank,
            agency_account("H12", Obligation::Fee),
            amount,
        );
        assert!(posting.balanced());
        assert_eq!(posting.entries[0].0, "bank:VCB");
        assert_eq!(posting.entries[1].0, "agency:H12:fee");
        posting.entries[1].2 = Decimal::from(149_999);
        assert!(!posting.balanced());
        posting.entries.truncate(1);
        assert!(!posting.balanced());
    }
}
