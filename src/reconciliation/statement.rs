//! Reading a bank's daily statement: CSV (RFC 4180), UTF-8 with an optional BOM, a header row,
//! columns found by name, extra columns ignored (see `docs/api-guide.md`).
//!
//! The reader scans the file itself, one record at a time, through a fixed-size buffer, so its
//! memory stays bounded whatever the file holds: blank lines cost nothing, and a record (one line,
//! or several when a quoted field holds line breaks) is kept only up to [`LINE_LIMIT_BYTES`].
//! A longer record is skipped to its end and reported as an invalid line; the rest of the file
//! still counts.
//!
//! Line numbers are the file's: the header is line 1 (or the first line that is not blank), and
//! a line ends at a line feed, a carriage return and line feed, or a lone carriage return. Blank
//! lines and the line breaks inside quoted fields are counted like any other line.

use std::io::{BufRead, BufReader, ErrorKind, Read};

use time::OffsetDateTime;

use crate::domain::Amount;

/// The longest record the reader keeps, in bytes of the file (line breaks inside quoted fields
/// included, the record's own line break excluded). A longer one is an invalid line.
pub const LINE_LIMIT_BYTES: usize = 64 * 1024;
/// The reader's buffer over the file. Reading in large blocks keeps system calls few; the buffer
/// never grows.
const READ_BUFFER_BYTES: usize = 256 * 1024;
/// The longest `bank_txn_id` and `payment_id`, in characters.
const ID_MAX_CHARS: usize = 64;
/// The longest `currency`, in characters.
const CURRENCY_MAX_CHARS: usize = 16;

const REQUIRED: [&str; 4] = ["bank_txn_id", "payment_id", "amount", "paid_at"];

/// A problem with the file as a whole: the run is refused (422) and nothing is recorded.
#[derive(Debug, thiserror::Error)]
pub enum StatementError {
    #[error("the statement has no header row")]
    NoHeader,
    #[error("the statement's header row is longer than {LINE_LIMIT_BYTES} bytes")]
    HeaderTooLong,
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

/// Where the scanner is within a record (the states of an RFC 4180 reader: a quote opens a
/// quoted field only at the start of a field, and `""` inside one is a quote).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing of the record read yet.
    StartRecord,
    StartField,
    Unquoted,
    Quoted,
    /// A quote inside a quoted field: the field's end, or the first half of `""`.
    QuoteInQuoted,
}

/// One record, kept up to [`LINE_LIMIT_BYTES`]. Its buffers are reused from record to record and
/// never hold more than the limit, so a file of a million columns costs no more than any other.
#[derive(Debug, Default)]
struct Record {
    /// The line the record starts on.
    line: u64,
    /// The fields' contents (quotes removed), one after the other.
    bytes: Vec<u8>,
    /// Where each field ends in `bytes`.
    ends: Vec<usize>,
    /// Bytes of the file the record spans, its own line break excluded.
    raw_bytes: usize,
    /// Fields seen, kept or not.
    fields: usize,
    too_long: bool,
    has_nul: bool,
    /// Some content is not ASCII white space.
    has_content: bool,
}

impl Record {
    fn start(&mut self, line: u64) {
        self.line = line;
        self.bytes.clear();
        self.ends.clear();
        self.raw_bytes = 0;
        self.fields = 0;
        self.too_long = false;
        self.has_nul = false;
        self.has_content = false;
    }

    /// One byte of the file that belongs to the record.
    fn raw(&mut self, byte: u8) {
        self.raw_bytes += 1;
        self.has_nul |= byte == 0;
        if self.raw_bytes > LINE_LIMIT_BYTES && !self.too_long {
            // Nothing more is kept; what was kept is released for the next record.
            self.too_long = true;
            self.bytes.clear();
            self.ends.clear();
        }
    }

    /// One byte of a field's content.
    fn push(&mut self, byte: u8) {
        self.has_content |= !byte.is_ascii_whitespace();
        if !self.too_long {
            self.bytes.push(byte);
        }
    }

    fn end_field(&mut self) {
        self.fields += 1;
        if !self.too_long {
            self.ends.push(self.bytes.len());
        }
    }

    /// A line with nothing on it but white space: skipped, like an empty one.
    fn is_blank(&self) -> bool {
        self.fields <= 1 && !self.has_content
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn get(&self, index: usize) -> Option<&[u8]> {
        let end = *self.ends.get(index)?;
        let start = if index == 0 { 0 } else { self.ends[index - 1] };
        Some(&self.bytes[start..end])
    }

    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.len()).filter_map(|index| self.get(index))
    }
}

/// Scans records off the file: the RFC 4180 state machine, line counting, and the limit.
struct Scanner<R: Read> {
    source: BufReader<R>,
    /// The line the next byte is on.
    line: u64,
    /// The last byte scanned was a carriage return, so a line feed right after it ends the same
    /// line.
    after_cr: bool,
}

impl<R: Read> Scanner<R> {
    /// Reads the next record into `record`; `false` at the end of the file.
    fn next(&mut self, record: &mut Record) -> Result<bool, StatementError> {
        let mut state = State::StartRecord;
        loop {
            let buffer = loop {
                match self.source.fill_buf() {
                    Ok(buffer) => break buffer,
                    Err(err) if err.kind() == ErrorKind::Interrupted => continue,
                    Err(err) => return Err(StatementError::Unreadable(err.to_string())),
                }
            };
            if buffer.is_empty() {
                // The end of the file ends the record (an unclosed quote included).
                if state == State::StartRecord {
                    return Ok(false);
                }
                record.end_field();
                return Ok(true);
            }
            let mut used = 0;
            let mut ended = false;
            for &byte in buffer {
                used += 1;
                let after_cr = self.after_cr;
                self.after_cr = byte == b'\r';
                if state == State::StartRecord {
                    if byte == b'\n' && after_cr {
                        // The second half of the CRLF that ended the previous record.
                        continue;
                    }
                    record.start(self.line);
                    state = State::StartField;
                }
                let line_break = byte == b'\r' || (byte == b'\n' && !after_cr);
                if line_break {
                    self.line += 1;
                }
                match (state, byte) {
                    (State::Quoted, b'"') => {
                        record.raw(byte);
                        state = State::QuoteInQuoted;
                    }
                    (State::Quoted, _) => {
                        record.raw(byte);
                        record.push(byte);
                    }
                    (State::QuoteInQuoted, b'"') => {
                        record.raw(byte);
                        record.push(byte);
                        state = State::Quoted;
                    }
                    (_, b'\r' | b'\n') => {
                        record.end_field();
                        ended = true;
                        break;
                    }
                    (_, b',') => {
                        record.raw(byte);
                        record.end_field();
                        state = State::StartField;
                    }
                    (State::StartField, b'"') => {
                        record.raw(byte);
                        state = State::Quoted;
                    }
                    _ => {
                        record.raw(byte);
                        record.push(byte);
                        state = State::Unquoted;
                    }
                }
            }
            self.source.consume(used);
            if ended {
                return Ok(true);
            }
        }
    }
}

pub struct StatementReader<R: Read> {
    scanner: Scanner<R>,
    columns: Columns,
    record: Record,
}

impl<R: Read> StatementReader<R> {
    /// Reads the header row; a file without one, or without a required column, is refused.
    pub fn new(source: R) -> Result<Self, StatementError> {
        let mut source = BufReader::with_capacity(READ_BUFFER_BYTES, source);
        let start = loop {
            match source.fill_buf() {
                Ok(start) => break start,
                Err(err) if err.kind() == ErrorKind::Interrupted => continue,
                Err(err) => return Err(StatementError::Unreadable(err.to_string())),
            }
        };
        if start.starts_with(b"\xEF\xBB\xBF") {
            source.consume(3);
        }
        let mut scanner = Scanner {
            source,
            line: 1,
            after_cr: false,
        };
        let mut header = Record::default();
        loop {
            if !scanner.next(&mut header)? {
                return Err(StatementError::NoHeader);
            }
            if !header.is_blank() {
                break;
            }
        }
        if header.too_long {
            return Err(StatementError::HeaderTooLong);
        }
        if header.iter().all(|field| field.is_empty()) {
            return Err(StatementError::NoHeader);
        }
        let names: Vec<&str> = header
            .iter()
            .map(|name| {
                std::str::from_utf8(name)
                    .map(str::trim)
                    .map_err(|_| StatementError::NotUtf8(header.line))
            })
            .collect::<Result<_, _>>()?;
        let find = |wanted: &str| names.iter().position(|name| *name == wanted);
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
            scanner,
            columns,
            record: Record::default(),
        })
    }

    /// The next data line (blank lines are skipped), or `None` at the end.
    pub fn next_line(&mut self) -> Result<Option<Line>, StatementError> {
        loop {
            if !self.scanner.next(&mut self.record)? {
                return Ok(None);
            }
            if self.record.is_blank() {
                continue;
            }
            let line = i32::try_from(self.record.line).unwrap_or(i32::MAX);
            if self.record.too_long {
                return Ok(Some(Line::Invalid {
                    line,
                    reason: format!("the line is longer than {LINE_LIMIT_BYTES} bytes"),
                }));
            }
            if self
                .record
                .iter()
                .any(|field| std::str::from_utf8(field).is_err())
            {
                return Err(StatementError::NotUtf8(self.record.line));
            }
            if self.record.has_nul {
                return Ok(Some(Line::Invalid {
                    line,
                    reason: "the line contains a NUL character (U+0000)".to_owned(),
                }));
            }
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
        if bank_txn_id.is_empty() || bank_txn_id.chars().count() > ID_MAX_CHARS {
            return Err(format!(
                "bank_txn_id must be 1 to {ID_MAX_CHARS} characters"
            ));
        }
        let payment_id = self.field(c.payment_id, "payment_id")?.trim();
        if payment_id.is_empty() || payment_id.chars().count() > ID_MAX_CHARS {
            return Err(format!("payment_id must be 1 to {ID_MAX_CHARS} characters"));
        }
        let amount = Amount::parse(self.field(c.amount, "amount")?.trim())
            .map_err(|message| format!("amount {message}"))?;
        // The time parser refuses instants outside the years paygate accepts (2000-9998 UTC),
        // which the database and the reports could not handle.
        let paid_at = crate::timefmt::parse_rfc3339(self.field(c.paid_at, "paid_at")?.trim())
            .map_err(|message| format!("paid_at {message}"))?;
        let currency = match c.currency {
            Some(index) => match self.record.get(index).map(|bytes| {
                std::str::from_utf8(bytes)
                    .expect("the record was checked to be UTF-8")
                    .trim()
            }) {
                None | Some("") => "VND".to_owned(),
                Some(currency) if currency.chars().count() <= CURRENCY_MAX_CHARS => {
                    currency.to_owned()
                }
                Some(_) => {
                    return Err(format!(
                        "currency must be at most {CURRENCY_MAX_CHARS} characters"
                    ))
                }
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

    fn numbers(read: &[Line]) -> Vec<i32> {
        read.iter()
            .map(|l| match l {
                Line::Valid(v) => v.line,
                Line::Invalid { line, .. } => *line,
            })
            .collect()
    }

    fn reason(line: &Line) -> &str {
        match line {
            Line::Invalid { reason, .. } => reason,
            Line::Valid(valid) => panic!("a valid line: {valid:?}"),
        }
    }

    const HEADER: &str = "bank_txn_id,payment_id,amount,paid_at,currency,note\n";
    const GOOD: &str = "FT1,pay_1,150000,2026-11-22T01:00:00Z,VND,";

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
        assert!(matches!(
            lines(b"\n\r\n  \n").unwrap_err(),
            StatementError::NoHeader
        ));
        assert!(matches!(
            lines(b",,,\n").unwrap_err(),
            StatementError::NoHeader
        ));
    }

    #[test]
    fn a_file_that_is_not_utf8_is_refused() {
        let err =
            lines(b"bank_txn_id,payment_id,amount,paid_at\nFT1,pay_\xff,5,2026-11-22T01:00:00Z\n")
                .unwrap_err();
        assert!(matches!(err, StatementError::NotUtf8(2)), "{err:?}");
        let err = lines(b"bank_txn_id,payment_id,amount,paid_at,n\xc3\n").unwrap_err();
        assert!(matches!(err, StatementError::NotUtf8(1)), "{err:?}");
    }

    #[test]
    fn line_numbers_are_the_files_with_crlf_blank_lines_and_quoted_newlines() {
        let text = b"bank_txn_id,payment_id,amount,paid_at,note\r\n\r\n\r\nFT1,pay_1,5,2026-11-22T01:00:00Z,\"two\r\nlines\"\r\n\r\nFT2,pay_2,5,2026-11-22T01:00:00Z,x\r\n";
        let read = lines(text).unwrap();
        assert_eq!(numbers(&read), [4, 7]);
    }

    #[test]
    fn a_lone_carriage_return_ends_a_line_like_a_line_feed() {
        let text = format!("{}\r{GOOD}\r\r{GOOD}\rFT9\r\n{GOOD}", HEADER.trim_end());
        let read = lines(text.as_bytes()).unwrap();
        assert_eq!(numbers(&read), [2, 4, 5, 6]);
        assert!(reason(&read[2]).contains("payment_id"));
    }

    #[test]
    fn a_header_alone_is_an_empty_statement() {
        assert!(lines(b"bank_txn_id,payment_id,amount,paid_at\n")
            .unwrap()
            .is_empty());
        assert!(lines(b"bank_txn_id,payment_id,amount,paid_at")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn blank_lines_before_the_header_and_lines_of_white_space_are_skipped() {
        let text = format!("\n\r\n{HEADER}   \n\t\n\"\"\n{GOOD}\n");
        let read = lines(text.as_bytes()).unwrap();
        assert_eq!(numbers(&read), [7]);
    }

    #[test]
    fn quoted_fields_hold_commas_quotes_and_line_breaks_and_a_quote_mid_field_is_text() {
        let text = format!(
            "{HEADER}\"F,T\"\"1\",pay_1,5,2026-11-22T01:00:00Z,,\"a\nb\"\nFT\"2,pay_2,5,2026-11-22T01:00:00Z\n"
        );
        let read = lines(text.as_bytes()).unwrap();
        let [Line::Valid(first), Line::Valid(second)] = &read[..] else {
            panic!("{read:?}")
        };
        assert_eq!(first.bank_txn_id, "F,T\"1");
        assert_eq!((first.line, second.line), (2, 4));
        assert_eq!(second.bank_txn_id, "FT\"2");
    }

    #[test]
    fn a_line_of_exactly_the_limit_is_read_and_one_byte_more_is_an_invalid_line() {
        let pad = |total: usize| format!("{GOOD}{}", "x".repeat(total - GOOD.len()));
        let text = format!(
            "{HEADER}{}\n{}\r\n{GOOD}\n",
            pad(LINE_LIMIT_BYTES),
            pad(LINE_LIMIT_BYTES + 1)
        );
        let read = lines(text.as_bytes()).unwrap();
        assert_eq!(numbers(&read), [2, 3, 4]);
        assert!(matches!(read[0], Line::Valid(_)));
        assert_eq!(reason(&read[1]), "the line is longer than 65536 bytes");
        assert!(matches!(read[2], Line::Valid(_)));
    }

    #[test]
    fn a_quoted_record_over_several_lines_is_capped_as_a_whole() {
        let long_field = format!("\"{}\"", "ab\r\n".repeat(LINE_LIMIT_BYTES / 4));
        let text = format!("{HEADER}{GOOD}{long_field}\n{GOOD}\n");
        let read = lines(text.as_bytes()).unwrap();
        let newlines_inside = LINE_LIMIT_BYTES / 4;
        assert_eq!(numbers(&read), [2, 3 + newlines_inside as i32]);
        assert_eq!(reason(&read[0]), "the line is longer than 65536 bytes");
    }

    #[test]
    fn an_endless_line_or_a_million_columns_keep_the_readers_memory_bounded() {
        let mut text = HEADER.as_bytes().to_vec();
        text.extend(std::iter::repeat_n(b'y', 5 * 1024 * 1024));
        text.push(b'\n');
        text.extend(std::iter::repeat_n(b',', 1_000_000));
        text.push(b'\n');
        text.extend(std::iter::repeat_n(b'\n', 1_000_000));
        text.extend(GOOD.as_bytes());
        let mut reader = StatementReader::new(&text[..]).unwrap();
        let mut read = Vec::new();
        while let Some(line) = reader.next_line().unwrap() {
            read.push(line);
            assert!(reader.record.bytes.capacity() <= LINE_LIMIT_BYTES);
            assert!(reader.record.ends.capacity() <= 2 * (LINE_LIMIT_BYTES + 1));
        }
        assert_eq!(numbers(&read), [2, 3, 1_000_004]);
        assert_eq!(reason(&read[0]), "the line is longer than 65536 bytes");
        assert_eq!(reason(&read[1]), "the line is longer than 65536 bytes");
        assert!(matches!(read[2], Line::Valid(_)));
    }

    #[test]
    fn a_header_over_the_limit_is_refused() {
        let text = format!("{}{}\n", HEADER.trim_end(), ",x".repeat(LINE_LIMIT_BYTES));
        assert!(matches!(
            lines(text.as_bytes()).unwrap_err(),
            StatementError::HeaderTooLong
        ));
    }

    #[test]
    fn a_nul_character_anywhere_in_a_line_makes_it_invalid() {
        let text = format!(
            "{HEADER}FT1\0,pay_1,5,2026-11-22T01:00:00Z\n{GOOD}note \0\n\"FT3\",pay_3,5,2026-11-22T01:00:00Z\n"
        );
        let read = lines(text.as_bytes()).unwrap();
        assert_eq!(numbers(&read), [2, 3, 4]);
        assert_eq!(
            reason(&read[0]),
            "the line contains a NUL character (U+0000)"
        );
        assert_eq!(
            reason(&read[1]),
            "the line contains a NUL character (U+0000)"
        );
        assert!(matches!(read[2], Line::Valid(_)));
    }

    #[test]
    fn a_paid_at_outside_the_years_2000_to_9998_utc_is_an_invalid_line() {
        let text = format!(
            "{HEADER}FT1,pay_1,5,9999-12-31T23:30:00-01:00\nFT2,pay_2,5,1999-12-31T23:59:59Z\n\
             FT3,pay_3,5,0000-01-01T00:00:00Z\nFT4,pay_4,5,9998-12-31T23:59:59Z\n"
        );
        let read = lines(text.as_bytes()).unwrap();
        for line in &read[..3] {
            assert!(reason(line).starts_with("paid_at must fall in the years 2000 to 9998"));
        }
        assert!(matches!(read[3], Line::Valid(_)));
    }

    mod properties {
        use super::super::*;
        use super::numbers;
        use proptest::prelude::*;

        /// One generated line: its fields as the file spells them once read back.
        #[derive(Debug, Clone)]
        struct Generated {
            bank_txn_id: String,
            payment_id: String,
            amount: u64,
            paid_at: OffsetDateTime,
            offset_minutes: i16,
            currency: Option<String>,
            note: String,
            blank_lines_before: usize,
        }

        /// Text without white space at either end (the reader trims ids), with the characters
        /// that need quoting.
        fn id() -> impl Strategy<Value = String> {
            "[A-Za-z0-9_\\-,\"ăơưĐ]([A-Za-z0-9_\\-,\" \n\r\tăơư]{0,30}[A-Za-z0-9,\"Đ])?"
        }

        fn generated() -> impl Strategy<Value = Generated> {
            let first = time::macros::datetime!(2000-01-02 00:00 UTC).unix_timestamp();
            let last = time::macros::datetime!(9998-12-30 00:00 UTC).unix_timestamp();
            (
                id(),
                id(),
                1u64..=999_999_999_999_999,
                (first..=last, 0u32..1_000_000),
                -720i16..=840,
                proptest::option::of("[A-Z]{3}"),
                "[a-z ,\"\r\n]{0,20}",
                0usize..3,
            )
                .prop_map(
                    |(
                        bank_txn_id,
                        payment_id,
                        amount,
                        (seconds, micros),
                        offset_minutes,
                        currency,
                        note,
                        blank_lines_before,
                    )| {
                        Generated {
                            bank_txn_id,
                            payment_id,
                            amount,
                            paid_at: OffsetDateTime::from_unix_timestamp(seconds)
                                .unwrap()
                                .replace_microsecond(micros)
                                .unwrap(),
                            offset_minutes,
                            currency,
                            note,
                            blank_lines_before,
                        }
                    },
                )
        }

        /// A field as RFC 4180 writes it: quoted when it holds a comma, quote or line break.
        fn quoted(text: &str) -> String {
            if text.contains([',', '"', '\r', '\n']) || text.trim() != text {
                format!("\"{}\"", text.replace('"', "\"\""))
            } else {
                text.to_owned()
            }
        }

        /// Line breaks `text` spans: CRLF is one, a lone CR or LF one each.
        fn breaks(text: &str) -> usize {
            text.replace("\r\n", "\n").matches(['\r', '\n']).count()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn the_reader_never_panics_on_arbitrary_bytes(
                body in proptest::collection::vec(any::<u8>(), 0..600),
                with_header in any::<bool>(),
            ) {
                let mut text = Vec::new();
                if with_header {
                    text.extend_from_slice(b"bank_txn_id,payment_id,amount,paid_at\n");
                }
                text.extend_from_slice(&body);
                if let Ok(mut reader) = StatementReader::new(&text[..]) {
                    let mut last = 0;
                    while let Ok(Some(line)) = reader.next_line() {
                        let number = numbers(std::slice::from_ref(&line))[0];
                        prop_assert!(number > last, "line numbers grow: {number} after {last}");
                        last = number;
                    }
                }
            }

            #[test]
            fn the_reader_never_panics_on_text_made_of_csv_punctuation(
                body in "[,\"\r\n a0\u{0}é]{0,400}",
            ) {
                let text = format!("bank_txn_id,payment_id,amount,paid_at\n{body}");
                let mut reader = StatementReader::new(text.as_bytes()).unwrap();
                while let Ok(Some(_)) = reader.next_line() {}
            }

            #[test]
            fn a_well_formed_statement_reads_back_field_for_field_with_its_line_numbers(
                generated in proptest::collection::vec(generated(), 0..20),
                crlf in any::<bool>(),
            ) {
                let end = if crlf { "\r\n" } else { "\n" };
                let mut text = format!("note,bank_txn_id,payment_id,amount,paid_at,currency{end}");
                let mut line = 2;
                let mut expected = Vec::new();
                for g in &generated {
                    for _ in 0..g.blank_lines_before {
                        text.push_str(end);
                        line += 1;
                    }
                    let offset = time::UtcOffset::from_whole_seconds(i32::from(g.offset_minutes) * 60).unwrap();
                    let paid_at = g
                        .paid_at
                        .to_offset(offset)
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap();
                    text.push_str(&format!(
                        "{},{},{},{},{},{}{end}",
                        quoted(&g.note),
                        quoted(&g.bank_txn_id),
                        quoted(&g.payment_id),
                        g.amount,
                        paid_at,
                        g.currency.as_deref().unwrap_or(""),
                    ));
                    expected.push((line, g));
                    line += 1 + breaks(&g.note) + breaks(&g.bank_txn_id) + breaks(&g.payment_id);
                }
                let mut reader = StatementReader::new(text.as_bytes()).unwrap();
                for (line, g) in expected {
                    let Some(Line::Valid(read)) = reader.next_line().unwrap() else {
                        panic!("line {line} of {text:?} is not valid");
                    };
                    prop_assert_eq!(read.line, line as i32);
                    prop_assert_eq!(&read.bank_txn_id, &g.bank_txn_id);
                    prop_assert_eq!(&read.payment_id, &g.payment_id);
                    prop_assert_eq!(read.amount.to_string(), g.amount.to_string());
                    prop_assert_eq!(read.paid_at, g.paid_at);
                    prop_assert_eq!(read.currency.as_str(), g.currency.as_deref().unwrap_or("VND"));
                }
                prop_assert!(reader.next_line().unwrap().is_none());
            }
        }
    }
}
