//! Times as the tests write them: unix seconds now, and RFC 3339 in UTC or at an offset.

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// Valid RFC 3339 texts whose instant lies outside the years 2000-9998 in UTC, which paygate
/// refuses wherever it takes a time.
pub const TIMES_OUT_OF_RANGE: [&str; 5] = [
    "9999-12-31T23:30:00-01:00",
    "9999-01-01T00:00:00Z",
    "1999-12-31T23:59:59Z",
    "2000-01-01T06:59:59+07:00",
    "0000-01-01T00:00:00Z",
];

/// Seconds since the unix epoch, now.
pub fn now_s() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// `unix_s` as RFC 3339 in UTC, `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(unix_s: i64) -> String {
    at_offset(unix_s, UtcOffset::UTC)
}

/// The same instant as `rfc3339(unix_s)`, written with a whole-hour offset such as `+07:00`.
pub fn rfc3339_at_offset(unix_s: i64, offset_hours: i8) -> String {
    let offset = UtcOffset::from_hms(offset_hours, 0, 0).expect("an offset within a day");
    at_offset(unix_s, offset)
}

fn at_offset(unix_s: i64, offset: UtcOffset) -> String {
    OffsetDateTime::from_unix_timestamp(unix_s)
        .expect("a time the tests can write")
        .to_offset(offset)
        .format(&Rfc3339)
        .expect("RFC 3339 can write every such time")
}

/// A bank's time of payment a minute ago.
pub fn paid_a_minute_ago() -> String {
    rfc3339(now_s() - 60)
}

/// The business day (Vietnam time, UTC+7) of `unix_s`, `YYYY-MM-DD`.
pub fn vietnam_date(unix_s: i64) -> String {
    rfc3339_at_offset(unix_s, 7)[..10].to_owned()
}
