//! Ledger transactions before they are written: the accounts, the entries and the balance check.

use rust_decimal::Decimal;

use crate::domain::{AgencyCode, Amount, BankCode, ObligationCode, PaymentId};

/// The books money is kept in: the live ones, or the sandbox's, whose accounts carry the
/// prefix `sandbox:` so that no live balance, report or reconciliation ever counts them. A
/// ledger transaction keeps to one book (the database refuses one that mixes them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Book {
    Live,
    Sandbox,
}

impl Book {
    /// The book of an order's money: a sandbox order's is the sandbox's.
    pub fn of(sandbox: bool) -> Book {
        if sandbox {
            Book::Sandbox
        } else {
            Book::Live
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Book::Live => "",
            Book::Sandbox => "sandbox:",
        }
    }

    /// Money the bank holds for paygate.
    pub fn bank(self, bank: &BankCode) -> String {
        format!("{}bank:{bank}", self.prefix())
    }

    /// Money owed to the agency's beneficiary for an obligation.
    pub fn agency(self, agency: &AgencyCode, obligation: &ObligationCode) -> String {
        format!("{}agency:{agency}:{}", self.prefix(), obligation.as_str())
    }

    /// Money received from the bank that must be refunded or investigated.
    pub fn suspense(self, bank: &BankCode) -> String {
        format!("{}suspense:{bank}", self.prefix())
    }
}

/// Why money moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An accepted payment: the bank holds money owed to the agency.
    Payment,
    /// Money received that must be refunded or investigated.
    Suspense,
    /// A payment refund the bank completed: the agency gives the money back through the bank.
    Refund,
    /// A suspense refund the bank completed: money in suspense goes back to the payer.
    SuspenseRefund,
    /// An approved `apply` resolution: money in suspense pays a pending order.
    Apply,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Payment => "payment",
            Kind::Suspense => "suspense",
            Kind::Refund => "refund",
            Kind::SuspenseRefund => "suspense_refund",
            Kind::Apply => "apply",
        }
    }
}

/// The side of an account an entry moves money on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Debit,
    Credit,
}

/// One line of a ledger transaction: an account debited or credited with a positive amount.
/// An entry holds one side and one [`Amount`], so that it can neither move both sides nor a zero
/// or negative sum; the database stores it as a debit and a credit, the other side zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub account: String,
    pub side: Side,
    pub amount: Amount,
}

impl Entry {
    pub fn debit(account: String, amount: Amount) -> Entry {
        Entry {
            account,
            side: Side::Debit,
            amount,
        }
    }

    pub fn credit(account: String, amount: Amount) -> Entry {
        Entry {
            account,
            side: Side::Credit,
            amount,
        }
    }

    /// The debit column: the amount for a debit, zero for a credit.
    pub fn debit_column(&self) -> Decimal {
        match self.side {
            Side::Debit => self.amount.decimal(),
            Side::Credit => Decimal::ZERO,
        }
    }

    /// The credit column: the amount for a credit, zero for a debit.
    pub fn credit_column(&self) -> Decimal {
        match self.side {
            Side::Credit => self.amount.decimal(),
            Side::Debit => Decimal::ZERO,
        }
    }
}

/// What made a ledger transaction: each source posts at most once (the database's unique
/// `callback_id`, `refund_id` and `case_id` columns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A bank callback (kinds `payment` and `suspense`).
    Callback(i64),
    /// A refund the bank completed (kinds `refund` and `suspense_refund`).
    Refund(String),
    /// A case whose `apply` resolution was approved (kind `apply`).
    Case(String),
}

impl Source {
    pub fn callback_id(&self) -> Option<i64> {
        match self {
            Source::Callback(id) => Some(*id),
            _ => None,
        }
    }

    pub fn refund_id(&self) -> Option<&str> {
        match self {
            Source::Refund(id) => Some(id),
            _ => None,
        }
    }

    pub fn case_id(&self) -> Option<&str> {
        match self {
            Source::Case(id) => Some(id),
            _ => None,
        }
    }
}

/// One ledger transaction before it is written.
#[derive(Debug, Clone)]
pub struct Posting {
    pub kind: Kind,
    pub source: Source,
    pub payment_id: PaymentId,
    pub entries: Vec<Entry>,
}

impl Posting {
    /// Money the bank received, owed to `credit_account`: debit the bank (in `book`), credit
    /// the other.
    pub fn transfer(
        book: Book,
        kind: Kind,
        callback_id: i64,
        payment_id: &PaymentId,
        bank: &BankCode,
        credit_account: String,
        amount: Amount,
    ) -> Posting {
        Posting {
            kind,
            source: Source::Callback(callback_id),
            payment_id: payment_id.clone(),
            entries: vec![
                Entry::debit(book.bank(bank), amount),
                Entry::credit(credit_account, amount),
            ],
        }
    }

    /// At least two entries, and as much debited as credited. (Each entry is one-sided and
    /// positive by its type.)
    pub fn balanced(&self) -> bool {
        let debits: Decimal = self.entries.iter().map(Entry::debit_column).sum();
        let credits: Decimal = self.entries.iter().map(Entry::credit_column).sum();
        self.entries.len() >= 2 && debits == credits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transfer_balances_and_an_edited_one_does_not() {
        let bank = BankCode::parse("VCB").unwrap();
        let amount = Amount::parse("150000").unwrap();
        let agency = AgencyCode::parse("H12").unwrap();
        let fee = ObligationCode::from_trusted(ObligationCode::FEE);
        let mut posting = Posting::transfer(
            Book::Live,
            Kind::Payment,
            1,
            &PaymentId::from_trusted("pay_1".to_owned()),
            &bank,
            Book::Live.agency(&agency, &fee),
            amount,
        );
        assert!(posting.balanced());
        assert_eq!(posting.entries[0].account, "bank:VCB");
        assert_eq!(posting.entries[0].side, Side::Debit);
        assert_eq!(posting.entries[1].account, "agency:H12:fee");
        assert_eq!(posting.entries[1].side, Side::Credit);
        posting.entries[1].amount = Amount::parse("149999").unwrap();
        assert!(!posting.balanced());
        posting.entries.truncate(1);
        assert!(!posting.balanced());
    }

    #[test]
    fn sandbox_money_has_accounts_of_its_own() {
        let bank = BankCode::parse("SANDBOX").unwrap();
        let agency = AgencyCode::parse("SBX.H12").unwrap();
        let fee = ObligationCode::from_trusted(ObligationCode::FEE);
        assert_eq!(Book::Sandbox.bank(&bank), "sandbox:bank:SANDBOX");
        assert_eq!(
            Book::Sandbox.agency(&agency, &fee),
            "sandbox:agency:SBX.H12:fee"
        );
        assert_eq!(Book::Sandbox.suspense(&bank), "sandbox:suspense:SANDBOX");
        assert_eq!(Book::of(false).bank(&bank), "bank:SANDBOX");
    }

    #[test]
    fn an_entry_writes_its_amount_on_its_side_and_zero_on_the_other() {
        let amount = Amount::parse("150000").unwrap();
        let debit = Entry::debit("bank:VCB".to_owned(), amount);
        assert_eq!(debit.debit_column(), Decimal::from(150_000));
        assert_eq!(debit.credit_column(), Decimal::ZERO);
        let credit = Entry::credit("suspense:VCB".to_owned(), amount);
        assert_eq!(credit.debit_column(), Decimal::ZERO);
        assert_eq!(credit.credit_column(), Decimal::from(150_000));
    }
}
