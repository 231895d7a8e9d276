//! How the console writes numbers, amounts, times and dates in each language: Vietnamese
//! groups thousands with dots (`1.500.000 ₫`), English with commas (`1,500,000 ₫`). Times are
//! Vietnam time (UTC+7), which every page states once.

use rust_decimal::Decimal;
use time::{Date, OffsetDateTime, UtcOffset};

use super::i18n::Lang;

/// Vietnam's offset from UTC; the country has no daylight saving time.
pub const VIETNAM: UtcOffset = match UtcOffset::from_hms(7, 0, 0) {
    Ok(offset) => offset,
    Err(_) => panic!("UTC+07:00 is a valid offset"),
};

fn separator(lang: Lang) -> char {
    match lang {
        Lang::Vi => '.',
        Lang::En => ',',
    }
}

/// Groups the digits of a whole number's absolute value in threes.
fn group(digits: &str, sep: char) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(sep);
        }
        out.push(digit);
    }
    out
}

/// A count with thousands separators: vi `12.345`, en `12,345`.
pub fn count(lang: Lang, n: i64) -> String {
    let grouped = group(&n.unsigned_abs().to_string(), separator(lang));
    if n < 0 {
        format!("-{grouped}")
    } else {
        grouped
    }
}

/// An amount of đồng: vi `1.500.000 ₫`, en `1,500,000 ₫`. VND has no minor unit; a fraction
/// (which paygate never stores) would be shown rather than hidden, after the language's
/// decimal mark.
pub fn money(lang: Lang, amount: Decimal) -> String {
    let normalized = amount.normalize();
    let text = normalized.abs().to_string();
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text.as_str(), None),
    };
    let mut out = String::new();
    if normalized.is_sign_negative() && !normalized.is_zero() {
        out.push('-');
    }
    out.push_str(&group(whole, separator(lang)));
    if let Some(fraction) = fraction {
        out.push(match lang {
            Lang::Vi => ',',
            Lang::En => '.',
        });
        out.push_str(fraction);
    }
    out.push_str(" ₫");
    out
}

/// A share as a percentage with one decimal: vi `42,5 %`, en `42.5%`.
pub fn percent(lang: Lang, part: i64, whole: i64) -> String {
    if whole <= 0 {
        return match lang {
            Lang::Vi => "0 %".to_owned(),
            Lang::En => "0%".to_owned(),
        };
    }
    let tenths = (i128::from(part) * 1000 + i128::from(whole) / 2) / i128::from(whole);
    let (units, tenth) = (tenths / 10, tenths % 10);
    match lang {
        Lang::Vi => format!("{units},{tenth} %"),
        Lang::En => format!("{units}.{tenth}%"),
    }
}

/// A moment in Vietnam time, to the second: vi `22/11/2026 10:15:00`, en `2026-11-22 10:15:00`.
pub fn time(lang: Lang, at: OffsetDateTime) -> String {
    let at = at.to_offset(VIETNAM);
    format!(
        "{} {:02}:{:02}:{:02}",
        date(lang, at.date()),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// A calendar date: vi `22/11/2026`, en `2026-11-22`.
pub fn date(lang: Lang, day: Date) -> String {
    let (year, month, dom) = (day.year(), u8::from(day.month()), day.day());
    match lang {
        Lang::Vi => format!("{dom:02}/{month:02}/{year:04}"),
        Lang::En => format!("{year:04}-{month:02}-{dom:02}"),
    }
}

/// An ISO date (`2026-11-22`), for links and form values, whatever the language.
pub fn iso_date(day: Date) -> String {
    date(Lang::En, day)
}

/// The Vietnam business day now.
pub fn vn_today() -> Date {
    OffsetDateTime::now_utc().to_offset(VIETNAM).date()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn dec(text: &str) -> Decimal {
        text.parse().expect("a decimal literal")
    }

    #[test]
    fn amounts_group_thousands_by_language() {
        let cases = [
            ("1500000", "1.500.000 ₫", "1,500,000 ₫"),
            ("0", "0 ₫", "0 ₫"),
            ("999", "999 ₫", "999 ₫"),
            ("1000", "1.000 ₫", "1,000 ₫"),
            ("123456789012", "123.456.789.012 ₫", "123,456,789,012 ₫"),
            ("1500000.00", "1.500.000 ₫", "1,500,000 ₫"),
            ("-25000", "-25.000 ₫", "-25,000 ₫"),
            ("1000.5", "1.000,5 ₫", "1,000.5 ₫"),
        ];
        for (amount, vi, en) in cases {
            assert_eq!(money(Lang::Vi, dec(amount)), vi, "{amount}");
            assert_eq!(money(Lang::En, dec(amount)), en, "{amount}");
        }
    }

    #[test]
    fn counts_group_thousands_by_language() {
        assert_eq!(count(Lang::Vi, 1_234_567), "1.234.567");
        assert_eq!(count(Lang::En, 1_234_567), "1,234,567");
        assert_eq!(count(Lang::En, 12), "12");
        assert_eq!(count(Lang::En, -1_000), "-1,000");
        assert_eq!(count(Lang::Vi, i64::MIN), "-9.223.372.036.854.775.808");
    }

    #[test]
    fn times_are_shown_in_vietnam_time() {
        let at = datetime!(2026-11-22 03:15:00 UTC);
        assert_eq!(time(Lang::Vi, at), "22/11/2026 10:15:00");
        assert_eq!(time(Lang::En, at), "2026-11-22 10:15:00");
        // 17:00 UTC is already the next day in Vietnam.
        let late = datetime!(2026-11-22 17:00:00 UTC);
        assert_eq!(time(Lang::Vi, late), "23/11/2026 00:00:00");
    }

    #[test]
    fn percentages_round_to_one_decimal() {
        assert_eq!(percent(Lang::En, 1, 3), "33.3%");
        assert_eq!(percent(Lang::Vi, 2, 3), "66,7 %");
        assert_eq!(percent(Lang::En, 0, 0), "0%");
        assert_eq!(percent(Lang::En, 5, 5), "100.0%");
    }
}
