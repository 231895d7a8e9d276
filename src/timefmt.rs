//! Times on the wire (see "Conventions" in `docs/api-guide.md`): UTC,
//! `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`, at microsecond precision, so an answer and a later read of
//! the same object are identical. Every time and date accepted falls in the years
//! [`MIN_YEAR`] to [`MAX_YEAR`] (UTC).

use std::fmt::Write;

use serde::{Serialize, Serializer};
use time::{Date, OffsetDateTime};

/// Formats `at` in UTC; the fraction appears only when it is not zero, and then always with six
/// digits (the database stores microseconds).
pub fn format_utc(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    let mut text = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    let micros = at.microsecond();
    if micros != 0 {
        write!(text, ".{micros:06}").expect("writing to a String cannot fail");
    }
    text.push('Z');
    text
}

/// The first year (UTC) of any time or date paygate accepts.
pub const MIN_YEAR: i32 = 2000;
/// The last year (UTC) of any time or date paygate accepts. It stays a year short of 9999 so
/// that a day or an offset added to an accepted value (the end of a business day, a report's
/// next day) can never leave the range that the `time` crate and PostgreSQL both handle.
pub const MAX_YEAR: i32 = 9998;

fn out_of_range() -> String {
    format!("must fall in the years {MIN_YEAR} to {MAX_YEAR} (UTC)")
}

/// Parses RFC 3339 with any offset, truncated to microseconds like the database stores it.
///
/// The instant must fall in the years [`MIN_YEAR`] to [`MAX_YEAR`] once turned into UTC: an
/// input such as `9999-12-31T23:30:00-01:00` is a valid RFC 3339 text whose UTC year is 10000,
/// which neither formatting nor the database could handle.
pub fn parse_rfc3339(text: &str) -> Result<OffsetDateTime, String> {
    let at = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| "must be an RFC 3339 time such as 2026-11-24T10:00:00Z".to_owned())?;
    let at = at
        .checked_to_offset(time::UtcOffset::UTC)
        .filter(|at| (MIN_YEAR..=MAX_YEAR).contains(&at.year()))
        .ok_or_else(out_of_range)?;
    let micros = at.nanosecond() / 1_000 * 1_000;
    at.replace_nanosecond(micros)
        .map_err(|_| "must be an RFC 3339 time".to_owned())
}

/// Parses a calendar date written `YYYY-MM-DD`, in the years [`MIN_YEAR`] to [`MAX_YEAR`], so
/// that the day after it (where a business day ends) always exists.
pub fn parse_date(text: &str) -> Result<Date, String> {
    let malformed = || "must be a date as YYYY-MM-DD, such as 2026-11-24".to_owned();
    // The shape is checked byte by byte first, because the `time` parser would also take a
    // signed year such as `+2026-11-24`, a second spelling of the same date.
    let shaped = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    if !shaped {
        return Err(malformed());
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = Date::parse(text, &format).map_err(|_| malformed())?;
    if (MIN_YEAR..=MAX_YEAR).contains(&date.year()) {
        Ok(date)
    } else {
        Err(out_of_range())
    }
}

/// `serialize_with` helper for an `OffsetDateTime` field.
pub fn serialize<S: Serializer>(at: &OffsetDateTime, serializer: S) -> Result<S::Ok, S::Error> {
    format_utc(*at).serialize(serializer)
}

/// `serialize_with` helper for an optional `OffsetDateTime` field.
pub fn serialize_option<S: Serializer>(
    at: &Option<OffsetDateTime>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    at.map(format_utc).serialize(serializer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn whole_seconds_have_no_fraction_and_others_have_six_digits() {
        assert_eq!(
            format_utc(datetime!(2026-11-24 10:00:00 UTC)),
            "2026-11-24T10:00:00Z"
        );
        assert_eq!(
            format_utc(datetime!(2026-11-24 10:00:00.5 UTC)),
            "2026-11-24T10:00:00.500000Z"
        );
    }

    #[test]
    fn any_input_offset_is_turned_into_utc() {
        let at = parse_rfc3339("2026-11-24T06:30:00.1234567+07:00").unwrap();
        assert_eq!(format_utc(at), "2026-11-23T23:30:00.123456Z");
    }

    #[test]
    fn text_that_is_not_rfc3339_is_refused() {
        for text in [
            "2026-11-24",
            "2026-11-24 10:00:00",
            "yesterday",
            "2026-11-24T10:00:00",
        ] {
            assert!(parse_rfc3339(text).is_err(), "{text}");
        }
    }

    #[test]
    fn times_whose_utc_year_is_outside_2000_to_9998_are_refused() {
        for text in [
            "9999-12-31T23:30:00-01:00",
            "9999-01-01T00:00:00Z",
            "1999-12-31T23:59:59.999999Z",
            "2000-01-01T06:59:59+07:00",
            "0000-01-01T00:00:00+01:00",
            "0000-01-01T00:00:00Z",
        ] {
            let err = parse_rfc3339(text).expect_err(text);
            assert_eq!(err, "must fall in the years 2000 to 9998 (UTC)", "{text}");
        }
    }

    #[test]
    fn the_first_and_last_instants_of_the_range_are_accepted() {
        let first = parse_rfc3339("2000-01-01T07:00:00+07:00").unwrap();
        assert_eq!(format_utc(first), "2000-01-01T00:00:00Z");
        let last = parse_rfc3339("9998-12-31T23:59:59.999999Z").unwrap();
        assert_eq!(format_utc(last), "9998-12-31T23:59:59.999999Z");
        let last = parse_rfc3339("9999-01-01T00:30:00+01:00").unwrap();
        assert_eq!(format_utc(last), "9998-12-31T23:30:00Z");
    }

    #[test]
    fn dates_parse_in_the_range_and_the_next_day_always_exists() {
        for text in ["2000-01-01", "2026-02-28", "2028-02-29", "9998-12-31"] {
            let date = parse_date(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert!(date.next_day().is_some(), "{text}");
        }
    }

    #[test]
    fn dates_outside_the_range_or_the_shape_are_refused() {
        for (text, message) in [
            ("9999-12-31", "must fall in the years 2000 to 9998 (UTC)"),
            ("1999-12-31", "must fall in the years 2000 to 9998 (UTC)"),
            ("0000-01-01", "must fall in the years 2000 to 9998 (UTC)"),
            (
                "+2026-11-24",
                "must be a date as YYYY-MM-DD, such as 2026-11-24",
            ),
            (
                "-2026-11-24",
                "must be a date as YYYY-MM-DD, such as 2026-11-24",
            ),
            (
                "2026-2-28",
                "must be a date as YYYY-MM-DD, such as 2026-11-24",
            ),
            (
                "2026-02-30",
                "must be a date as YYYY-MM-DD, such as 2026-11-24",
            ),
            (
                "2026-13-01",
                "must be a date as YYYY-MM-DD, such as 2026-11-24",
            ),
            (
                "2026-11-24\0",
                "must be a date as YYYY-MM-DD, such as 2026-11-24",
            ),
            (
                "2026-11-2\0",
                "must be a date as YYYY-MM-DD, such as 2026-11-24",
            ),
            ("", "must be a date as YYYY-MM-DD, such as 2026-11-24"),
            (
                "２０２６-11-24",
                "must be a date as YYYY-MM-DD, such as 2026-11-24",
            ),
        ] {
            assert_eq!(parse_date(text).unwrap_err(), message, "{text:?}");
        }
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        /// Any instant paygate accepts, as Unix seconds and nanoseconds.
        fn instant() -> impl Strategy<Value = OffsetDateTime> {
            let first = time::macros::datetime!(2000-01-01 00:00 UTC).unix_timestamp();
            let last = time::macros::datetime!(9998-12-31 23:59:59 UTC).unix_timestamp();
            (first..=last, 0u32..1_000_000_000).prop_map(|(seconds, nanos)| {
                OffsetDateTime::from_unix_timestamp(seconds)
                    .unwrap()
                    .replace_nanosecond(nanos)
                    .unwrap()
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn parse_rfc3339_never_panics(text in "\\PC{0,40}") {
                let _ = parse_rfc3339(&text);
            }

            #[test]
            fn parse_rfc3339_never_panics_on_near_misses(
                year in 0u32..=9999, month in 0u32..=13, day in 0u32..=32,
                hour in 0u32..=24, minute in 0u32..=60, second in 0u32..=61,
                fraction in proptest::option::of("[0-9]{1,12}"),
                offset in prop_oneof![
                    Just("Z".to_owned()),
                    (0u32..=24, 0u32..=60, any::<bool>()).prop_map(|(h, m, east)| {
                        format!("{}{h:02}:{m:02}", if east { '+' } else { '-' })
                    }),
                ],
            ) {
                let fraction = fraction.map(|f| format!(".{f}")).unwrap_or_default();
                let text = format!(
                    "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{fraction}{offset}"
                );
                if let Ok(at) = parse_rfc3339(&text) {
                    prop_assert!((MIN_YEAR..=MAX_YEAR).contains(&at.year()), "{}", text);
                    prop_assert_eq!(at.offset(), time::UtcOffset::UTC);
                    prop_assert_eq!(parse_rfc3339(&format_utc(at)), Ok(at));
                }
            }

            #[test]
            fn an_accepted_time_printed_in_utc_parses_back_to_the_same_instant(
                at in instant(),
                offset_minutes in -(23 * 60 + 59)..=(23 * 60 + 59i32),
            ) {
                let offset = time::UtcOffset::from_whole_seconds(offset_minutes * 60).unwrap();
                let text = at
                    .to_offset(offset)
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap();
                // Near the ends of the range the local text may show another year than UTC
                // does; only the UTC year decides.
                let parsed = parse_rfc3339(&text).unwrap();
                prop_assert_eq!(parsed.unix_timestamp(), at.unix_timestamp());
                prop_assert_eq!(parsed.microsecond(), at.microsecond());
                let printed = format_utc(parsed);
                prop_assert_eq!(parse_rfc3339(&printed), Ok(parsed));
                prop_assert_eq!(format_utc(parse_rfc3339(&printed).unwrap()), printed);
            }

            #[test]
            fn an_accepted_date_prints_back_as_the_same_text(
                year in 1990i32..=10010, month in 1u8..=12, day in 1u8..=31,
            ) {
                let text = format!("{year:04}-{month:02}-{day:02}");
                match parse_date(&text) {
                    Ok(date) => {
                        prop_assert!((MIN_YEAR..=MAX_YEAR).contains(&year));
                        prop_assert!(date.next_day().is_some());
                        let printed = format!(
                            "{:04}-{:02}-{:02}", date.year(), u8::from(date.month()), date.day()
                        );
                        prop_assert_eq!(printed, text);
                    }
                    Err(_) => prop_assert!(
                        !(MIN_YEAR..=MAX_YEAR).contains(&year)
                            || time::Month::try_from(month)
                                .and_then(|m| Date::from_calendar_date(year, m, day))
                                .is_err()
                    ),
                }
            }

            #[test]
            fn parse_date_never_panics(text in "\\PC{0,16}") {
                let _ = parse_date(&text);
            }
        }
    }
}
