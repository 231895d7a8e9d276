//! Reading a bank's daily statement (contract section 9): CSV (RFC 4180), UTF-8 with an
//! optional BOM, a header row, columns found by name, extra columns ignored. Read one record at
//! a time, so memory does not grow with the file.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;

use crate::payments::domain::Amount;

const REQUIRED: [&str; 4] = ["bank_txn_id", "payment_id", "amount", "paid_at"];

/// A problem with the file as a whole: the run is refused (422) and nothing is recorded.
#[derive(Debug, thiserror::Error)]
pub enum StatementError {
    #[error("the statement has no header row")]
    NoHeader,
    #[error("the statement's header lacks the required column(s): {0}")]
    MissingColumns(String),
    #[error("the statement is not UTF-8 (line {0})")]
    NotUtf8(u64),
    #[error("the statement could not be read: {0}")]
    Unreadable(String),
}

/// A data line that could be read.
#[derive(Debug, Clone, PartialEq)]
pub struct StatementLine {
    pub line: i32,
    pub bank_txn_id: String,
    pub payment_id: String,
    pub amount: Amount,
    pub currency: String,
    pub paid_at: OffsetDateTime,
}

/// One data line of the statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    Valid(StatementLine),
    /// A line that cannot be read: its number and why. The other lines still count.
    Invalid {
        line: i32,
        reason: String,
    },
}

struct Columns {
    bank_txn_id: usize,
    payment_id: usize,
    amount: usize,
    paid_at: usize,
    currency: Option<usize>,
}

/// The newlines of the bytes the CSV reader has read but not yet parsed. The CSV reader does
/// not count blank lines in its line numbers, and reports a record as starting on the line
/// terminator before it; the contract's line numbers are the file's. Only the newlines of the
/// reader's buffer are kept, so this stays small.
type Newlines = Arc<Mutex<VecDeque<Newline>>>;

#[derive(Debug, Clone, Copy)]
struct Newline {
    offset: u64,
    /// It ends a line with nothing on it (but a carriage return).
    blank: bool,
    /// A carriage return comes right before it.
    crlf: bool,
}

struct NewlineTracker<R> {
    inner: R,
    offset: u64,
    line_has_content: bool,
    after_cr: bool,
    newlines: Newlines,
}

impl<R: Read> Read for NewlineTracker<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut newlines = self
            .newlines
            .lock()
            .expect("the tracker's lock is never poisoned");
        for (i, byte) in buf[..n].iter().enumerate() {
            match byte {
                b'\n' => {
                    newlines.push_back(Newline {
                        offset: self.offset + i as u64,
                        blank: !self.line_has_content,
                        crlf: self.after_cr,
                    });
                    self.line_has_content = false;
                }
                b'\r' => {}
                _ => self.line_has_content = true,
            }
            self.after_cr = *byte == b'\r';
        }
        self.offset += n as u64;
        Ok(n)
    }
}

pub struct StatementReader<R: Read> {
    csv: csv::Reader<BufReader<NewlineTracker<R>>>,
    columns: Columns,
    record: csv::ByteRecord,
    newlines: Newlines,
    /// Newlines before the last record read, and the BOM's length (the CSV reader's byte
    /// offsets start after it).
    lines_before: u64,
    bom_bytes: u64,
}

impl<R: Read> StatementReader<R> {
    /// Reads the header row; a file without one, or without a required column, is refused.
    pub fn new(source: R) -> Result<Self, StatementError> {
        let newlines = Newlines::default();
        let tracker = NewlineTracker {
            inner: source,
            offset: 0,
            line_has_content: false,
            after_cr: false,
            newlines: newlines.clone(),
        };
        let mut buffered = BufReader::with_capacity(256 * 1024, tracker);
        let start = buffered
            .fill_buf()
            .map_err(|err| StatementError::Unreadable(err.to_string()))?;
        let bom_bytes = if start.starts_with(b"\xEF\xBB\xBF") {
            buffered.consume(3);
            3
        } else {
            0
        };
        let mut csv = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(buffered);
        let header = csv.byte_headers().map_err(read_error)?.clone();
        if header.is_empty() || header.iter().all(|field| field.is_empty()) {
            return Err(StatementError::NoHeader);
        }
        let names: Vec<String> = header
            .iter()
            .map(|name| {
                std::str::from_utf8(name)
                    .map(|name| name.trim().to_owned())
                    .map_err(|_| StatementError::NotUtf8(1))
            })
            .collect::<Result<_, _>>()?;
        let find = |wanted: &str| names.iter().position(|name| name == wanted);
        let missing: Vec<&str> = REQUIRED
            .iter()
            .copied()
            .filter(|name| find(name).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(StatementError::MissingColumns(missing.join(", ")));
        }
        let column = |name: &str| find(name).expect("required columns were checked");
        let columns = Columns {
            bank_txn_id: column("bank_txn_id"),
            payment_id: column("payment_id"),
            amount: column("amount"),
            paid_at: column("paid_at"),
            currency: find("currency"),
        };
        Ok(StatementReader {
            csv,
            columns,
            record: csv::ByteRecord::new(),
            newlines,
            lines_before: 0,
            bom_bytes,
        })
    }

    /// The next data line (blank lines are skipped), or `None` at the end.
    pub fn next_line(&mut self) -> Result<Option<Line>, StatementError> {
        loop {
            let more = self
                .csv
                .read_byte_record(&mut self.record)
                .map_err(read_error)?;
            if !more {
                return Ok(None);
            }
            let start = self.record.position().map_or(0, |p| p.byte()) + self.bom_bytes;
            {
                let mut newlines = self
                    .newlines
                    .lock()
                    .expect("the tracker's lock is never poisoned");
                // Before the record, the terminator it is reported to start on, and blank lines.
                let before_record =
                    |n: &Newline| n.offset <= start || (n.crlf && n.offset == start + 1) || n.blank;
                while newlines.front().is_some_and(before_record) {
                    newlines.pop_front();
                    self.lines_before += 1;
                }
            }
            let line_number = self.lines_before + 1;
            if std::str::from_utf8(self.record.as_slice()).is_err() {
                return Err(StatementError::NotUtf8(line_number));
            }
            if self.record.len() == 1 && self.record[0].iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let line = i32::try_from(line_number).unwrap_or(i32::MAX);
            return Ok(Some(match self.parse(line) {
                Ok(valid) => Line::Valid(valid),
                Err(reason) => Line::Invalid { line, reason },
            }));
        }
    }

    fn field(&self, index: usize, name: &str) -> Result<&str, String> {
        let bytes = self
            .record
            .get(index)
            .ok_or_else(|| format!("the line has no {name} field"))?;
        Ok(std::str::from_utf8(bytes).expect("the record was checked to be UTF-8"))
    }

    fn parse(&self, line: i32) -> Result<StatementLine, String> {
        let c = &self.columns;
        let bank_txn_id = self.field(c.bank_txn_id, "bank_txn_id")?.trim();
        if bank_txn_id.is_empty() || bank_txn_id.chars().count() > 64 {
            return Err("bank_txn_id must be 1 to 64 characters".to_owned());
        }
        let payment_id = self.field(c.payment_id, "payment_id")?.trim();
        if payment_id.is_empty() || payment_id.chars().count() > 64 {
            return Err("payment_id must be 1 to 64 characters".to_owned());
        }
        let amount = Amount::parse(self.field(c.amount, "amount")?.trim())
            .map_err(|message| format!("amount {message}"))?;
        let paid_at = crate::timefmt::parse_rfc3339(self.field(c.paid_at, "paid_at")?.trim())
            .map_err(|message| format!("paid_at {message}"))?;
        let currency = match c.currency {
            Some(index) => match self.record.get(index).map(|bytes| {
                std::str::from_utf8(bytes)
                    .expect("the record was checked to be UTF-8")
                    .trim()
            }) {
                None | Some("") => "VND".to_owned(),
                Some(currency) if currency.chars().count() <= 16 => currency.to_owned(),
                Some(_) => return Err("currency must be at most 16 characters".to_owned()),
            },
            None => "VND".to_owned(),
        };
        Ok(StatementLine {
            line,
            bank_txn_id: bank_txn_id.to_owned(),
            payment_id: payment_id.to_owned(),
            amount,
            currency,
            paid_at,
        })
    }
}

fn read_error(err: csv::Error) -> StatementError {
    match err.kind() {
        csv::ErrorKind::Utf8 { pos, .. } => {
            StatementError::NotUtf8(pos.as_ref().map_or(0, |p| p.line()))
        }
        csv::ErrorKind::Io(io) => StatementError::Unreadable(io.to_string()),
        _ => StatementError::Unreadable(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &[u8]) -> Result<Vec<Line>, StatementError> {
        let mut reader = StatementReader::new(text)?;
        let mut out = Vec::new();
        while let Some(line) = reader.next_line()? {
            out.push(line);
        }
        Ok(out)
    }

    #[test]
    fn columns_are_found_by_name_with_a_bom_and_extra_columns() {
        let text = "\u{feff}note,paid_at,amount,payment_id,bank_txn_id\nxin chào,2026-11-22T16:30:00Z,150000,pay_1,FT1\n";
        let read = lines(text.as_bytes()).unwrap();
        let Line::Valid(line) = &read[0] else {
            panic!("{read:?}")
        };
        assert_eq!(line.line, 2);
        assert_eq!(line.bank_txn_id, "FT1");
        assert_eq!(line.payment_id, "pay_1");
        assert_eq!(line.amount.to_string(), "150000");
        assert_eq!(line.currency, "VND");
    }

    #[test]
    fn broken_lines_are_reported_with_their_numbers_and_the_rest_still_count() {
        let text = b"bank_txn_id,payment_id,amount,paid_at,currency\n\
FT1,pay_1,150000,2026-11-22T01:00:00Z,VND\n\
FT2,pay_2,abc,2026-11-22T01:00:00Z,\n\
\n\
FT3,pay_3\n\
FT4,pay_4,5,yesterday\n\
FT5,pay_5,7,2026-11-22T01:00:00+07:00,USD\n";
        let read = lines(text).unwrap();
        assert_eq!(read.len(), 5, "the blank line is skipped: {read:?}");
        assert!(matches!(read[0], Line::Valid(_)));
        assert!(
            matches!(&read[1], Line::Invalid { line: 3, reason } if reason.starts_with("amount"))
        );
        assert!(
            matches!(&read[2], Line::Invalid { line: 5, .. }),
            "{:?}",
            read[2]
        );
        assert!(
            matches!(&read[3], Line::Invalid { line: 6, reason } if reason.starts_with("paid_at"))
        );
        let Line::Valid(last) = &read[4] else {
            panic!()
        };
        assert_eq!(last.currency, "USD");
    }

    #[test]
    fn a_file_without_required_columns_or_header_is_refused() {
        let err = lines(b"bank_txn_id,amount\nFT1,5\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the statement's header lacks the required column(s): payment_id, paid_at"
        );
        assert!(matches!(lines(b"").unwrap_err(), StatementError::NoHeader));
    }

    #[test]
    fn a_file_that_is_not_utf8_is_refused() {
        let err =
            lines(b"bank_txn_id,payment_id,amount,paid_at\nFT1,pay_\xff,5,2026-11-22T01:00:00Z\n")
                .unwrap_err();
        assert!(matches!(err, StatementError::NotUtf8(2)), "{err:?}");
    }

    #[test]
    fn line_numbers_are_the_files_with_crlf_blank_lines_and_quoted_newlines() {
        let text = b"bank_txn_id,payment_id,amount,paid_at,note\r\n\r\n\r\nFT1,pay_1,5,2026-11-22T01:00:00Z,\"two\r\nlines\"\r\n\r\nFT2,pay_2,5,2026-11-22T01:00:00Z,x\r\n";
        let read = lines(text).unwrap();
        let numbers: Vec<i32> = read
            .iter()
            .map(|l| match l {
                Line::Valid(v) => v.line,
                Line::Invalid { line, .. } => *line,
            })
            .collect();
        assert_eq!(numbers, [4, 7]);
    }

    #[test]
    fn a_header_alone_is_an_empty_statement() {
        assert!(lines(b"bank_txn_id,payment_id,amount,paid_at\n")
            .unwrap()
            .is_empty());
    }
}
