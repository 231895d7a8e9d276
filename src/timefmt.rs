//! Times on the wire (contract section 2): UTC, `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`, at microsecond
//! precision, so an answer and a later read of the same object are identical.

use std::fmt::Write;

use serde::{Serialize, Serializer};
use time::OffsetDateTime;

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

/// Parses RFC 3339 with any offset, truncated to microseconds like the database stores it.
pub fn parse_rfc3339(text: &str) -> Result<OffsetDateTime, String> {
    let at = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| "must be an RFC 3339 time such as 2026-11-24T10:00:00Z".to_owned())?;
    let micros = at.nanosecond() / 1_000 * 1_000;
    at.replace_nanosecond(micros)
        .map_err(|_| "must be an RFC 3339 time".to_owned())
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
}
