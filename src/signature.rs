//! Request signatures carried in the `Paygate-Signature` header.
//!
//! Every signed request carries a header of the form
//! `Paygate-Signature: t=<unix seconds>,kid=<key id>,v1=<hex HMAC-SHA256>`,
//! where `v1` is the lowercase hex HMAC-SHA256, keyed with the shared secret,
//! of the decimal timestamp, a `.` and the raw request body bytes.
//!
//! The timestamp is part of the signed message so that an attacker cannot
//! replay an old body under a fresh timestamp, and it is checked against a
//! tolerance window so that a captured request cannot be replayed forever.
//! The key id lets the caller rotate secrets: it looks the secret up by `kid`
//! between [`SignatureHeader::parse`] and [`SignatureHeader::verify`].
//!
//! Verification always checks the MAC before the timestamp. A request whose
//! MAC is wrong is therefore reported as [`SignatureError::BadMac`] whatever
//! its age, and only a genuinely signed request can be reported as
//! [`SignatureError::Expired`], so the error never tells an unauthenticated
//! sender anything about our clock.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The name of the HTTP header that carries the signature.
///
/// It is a constant so that the signing client, the verifying middleware and
/// the tests cannot drift apart on its spelling.
pub const HEADER: &str = "Paygate-Signature";

/// The longest header value, in bytes, that [`SignatureHeader::parse`] accepts.
///
/// A well-formed value is well under 200 bytes, so the limit only rejects
/// garbage early and bounds the work an unauthenticated sender can cause.
const MAX_HEADER_LEN: usize = 512;

/// The longest key id, in bytes, that [`SignatureHeader::parse`] accepts.
const MAX_KID_LEN: usize = 64;

/// The length of an HMAC-SHA256 tag in bytes.
const MAC_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// A parsed `Paygate-Signature` header value.
///
/// Parsing and verifying are separate steps because the secret to verify with
/// depends on `kid`, which is only known once the header has been parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    /// The signing time in Unix seconds, as the sender claimed it.
    ///
    /// It is authenticated only once [`SignatureHeader::verify`] has
    /// succeeded, so it must not be trusted before then.
    pub timestamp: i64,
    /// The id of the key the sender used, which the caller maps to a secret.
    ///
    /// It is restricted to `[A-Za-z0-9._-]{1,64}` so that it is safe to log
    /// and to use as a lookup key without further escaping.
    pub kid: String,
    /// The raw HMAC-SHA256 tag decoded from `v1`.
    ///
    /// It is private so that the only thing a caller can do with it is hand
    /// it to [`SignatureHeader::verify`], which compares it in constant time.
    mac: [u8; MAC_LEN],
}

/// Why a signed request was rejected.
///
/// The variants are deliberately coarse: the caller answers every one of them
/// with the same 401 response, and the distinction exists only for logs and
/// metrics, so no variant carries details that would help an attacker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The header is missing a field, repeats or invents one, has an invalid
    /// value or is too long.
    #[error("the signature header is malformed")]
    Malformed,
    /// The header names a key id that the caller does not know.
    ///
    /// This module never returns it itself; it is here so that the caller's
    /// key lookup can report its failure in the same type and metric.
    #[error("the signature names an unknown key")]
    UnknownKey,
    /// The MAC does not match the secret, the timestamp and the body.
    #[error("the signature does not match the request")]
    BadMac,
    /// The MAC is right but the timestamp is outside the tolerance window,
    /// which means the request is a replay or the sender's clock is wrong.
    #[error("the signature timestamp is outside the allowed window")]
    Expired,
}

impl SignatureError {
    /// A short, stable, snake_case name for the error.
    ///
    /// It is used as a metrics label, so it must never change for an existing
    /// variant, and it is kept separate from the `Display` text so that
    /// rewording a message does not break dashboards and alerts.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnknownKey => "unknown_key",
            Self::BadMac => "bad_mac",
            Self::Expired => "expired",
        }
    }
}

impl SignatureHeader {
    /// Parses a `Paygate-Signature` header value such as
    /// `t=1700000000,kid=k1,v1=<64 lowercase hex chars>`.
    ///
    /// The fields may come in any order, and spaces (or tabs) around each
    /// item and around `=` are ignored, because HTTP intermediaries and
    /// hand-written clients are known to add them. Everything else is
    /// rejected as [`SignatureError::Malformed`] rather than guessed at: a
    /// missing, repeated or unknown field, an empty value, a `t` that is not
    /// plain ASCII digits fitting in an `i64`, a `v1` that is not exactly 64
    /// lowercase hex characters, a `kid` outside `[A-Za-z0-9._-]{1,64}`, or a
    /// value longer than 512 bytes. Being strict here keeps a single canonical
    /// form, so that two parsers can never disagree on what was signed.
    ///
    /// A `t` with leading zeros is malformed: the MAC covers the decimal text
    /// of `t`, and only the canonical form (as [`sign`] writes it) is one
    /// text per number.
    pub fn parse(value: &str) -> Result<Self, SignatureError> {
        if value.len() > MAX_HEADER_LEN {
            return Err(SignatureError::Malformed);
        }

        let mut timestamp = None;
        let mut kid = None;
        let mut mac = None;

        for part in value.split(',') {
            let (name, field) = part.split_once('=').ok_or(SignatureError::Malformed)?;
            let name = trim_ows(name);
            let field = trim_ows(field);
            if field.is_empty() {
                return Err(SignatureError::Malformed);
            }
            match name {
                "t" => set_once(&mut timestamp, parse_timestamp(field)?)?,
                "kid" => set_once(&mut kid, parse_kid(field)?)?,
                "v1" => set_once(&mut mac, parse_mac(field)?)?,
                _ => return Err(SignatureError::Malformed),
            }
        }

        match (timestamp, kid, mac) {
            (Some(timestamp), Some(kid), Some(mac)) => Ok(Self {
                timestamp,
                kid,
                mac,
            }),
            _ => Err(SignatureError::Malformed),
        }
    }

    /// Checks the MAC (constant time) and then the timestamp against `now_unix_s` with `tolerance_s`.
    ///
    /// The MAC is compared with `hmac`'s `Mac::verify_slice`, which takes the
    /// same time wherever the first differing byte is, so a sender cannot
    /// forge a tag byte by byte by timing our answers. The timestamp is only
    /// looked at after the MAC has been accepted, so that a forged request is
    /// always [`SignatureError::BadMac`], never [`SignatureError::Expired`].
    ///
    /// A request is accepted when `|now_unix_s - timestamp| <= tolerance_s`.
    /// The window is symmetric because a sender's clock may run ahead of ours
    /// as well as behind it. The difference is computed exactly in `u64`, so
    /// even `i64::MIN` against `i64::MAX` cannot overflow or panic.
    pub fn verify(
        &self,
        secret: &[u8],
        body: &[u8],
        now_unix_s: i64,
        tolerance_s: u64,
    ) -> Result<(), SignatureError> {
        keyed_mac(secret, self.timestamp, body)
            .verify_slice(&self.mac)
            .map_err(|_| SignatureError::BadMac)?;

        if now_unix_s.abs_diff(self.timestamp) > tolerance_s {
            return Err(SignatureError::Expired);
        }
        Ok(())
    }
}

/// Lowercase hex HMAC-SHA256 over "<t>." + body.
///
/// It is public so that clients, tests and tooling compute the tag with the
/// very same code that the verifier uses, instead of a copy that could drift.
pub fn compute_mac_hex(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    hex::encode(keyed_mac(secret, timestamp, body).finalize().into_bytes())
}

/// The full header value "t=..,kid=..,v1=..".
///
/// It writes the fields in the canonical order without spaces, which is the
/// form that every other implementation should produce too. The caller is
/// responsible for passing a `kid` that matches `[A-Za-z0-9._-]{1,64}` and a
/// non-negative timestamp; otherwise the value it returns is one that
/// [`SignatureHeader::parse`] rejects as malformed.
pub fn sign(secret: &[u8], kid: &str, timestamp: i64, body: &[u8]) -> String {
    let mac = compute_mac_hex(secret, timestamp, body);
    format!("t={timestamp},kid={kid},v1={mac}")
}

/// Returns an HMAC-SHA256 state keyed with `secret` that has absorbed
/// `"<timestamp>."` and then `body`.
///
/// Signing and verifying both go through this one function so that they can
/// never disagree on the signed message. The pieces are fed to the MAC one
/// after the other instead of being concatenated, so that a large body is not
/// copied into a second buffer.
fn keyed_mac(secret: &[u8], timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length (long keys are hashed first), so
    // `new_from_slice` cannot fail; `expect` documents that instead of
    // inventing an error case that can never happen.
    let mut mac =
        HmacSha256::new_from_slice(secret).expect("HMAC-SHA256 accepts keys of any length");
    // Formatting straight into the MAC avoids allocating a string for the
    // timestamp. `MacWriter` never fails and formatting an `i64` does not
    // fail on its own, so the result is always `Ok`.
    fmt::Write::write_fmt(&mut MacWriter(&mut mac), format_args!("{timestamp}."))
        .expect("writing into a MAC cannot fail");
    mac.update(body);
    mac
}

/// Adapts a MAC to `fmt::Write`, so that the timestamp can be formatted
/// directly into it without an intermediate string.
struct MacWriter<'a>(&'a mut HmacSha256);

impl fmt::Write for MacWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.update(s.as_bytes());
        Ok(())
    }
}

/// Strips the optional whitespace that HTTP allows around list items and
/// around `=`: spaces and horizontal tabs, nothing else.
fn trim_ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// Stores `value` in `slot`, rejecting a second occurrence of the same field,
/// because a repeated field would leave it ambiguous which one was meant.
fn set_once<T>(slot: &mut Option<T>, value: T) -> Result<(), SignatureError> {
    if slot.is_some() {
        return Err(SignatureError::Malformed);
    }
    *slot = Some(value);
    Ok(())
}

/// Parses `t`: plain ASCII digits only, which `i64::from_str` alone would not
/// enforce because it also accepts a leading `+` or `-`.
fn parse_timestamp(field: &str) -> Result<i64, SignatureError> {
    let padded = field.len() > 1 && field.starts_with('0');
    if padded || !field.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::Malformed);
    }
    field.parse().map_err(|_| SignatureError::Malformed)
}

/// Parses `kid`, which must match `^[A-Za-z0-9._-]{1,64}$`.
fn parse_kid(field: &str) -> Result<String, SignatureError> {
    let valid = (1..=MAX_KID_LEN).contains(&field.len())
        && field
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !valid {
        return Err(SignatureError::Malformed);
    }
    Ok(field.to_owned())
}

/// Parses `v1`: exactly 64 lowercase hex characters. Uppercase is rejected,
/// although `hex::decode` would take it, so that there is a single canonical
/// spelling of every tag.
fn parse_mac(field: &str) -> Result<[u8; MAC_LEN], SignatureError> {
    let valid = field.len() == 2 * MAC_LEN
        && field
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !valid {
        return Err(SignatureError::Malformed);
    }
    let mut mac = [0u8; MAC_LEN];
    hex::decode_to_slice(field, &mut mac).map_err(|_| SignatureError::Malformed)?;
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"bsk_test_secret";
    const TIMESTAMP: i64 = 1_700_000_000;
    const BODY: &[u8] = br#"{"a":1}"#;
    /// HMAC-SHA256 of `1700000000.{"a":1}` keyed with `bsk_test_secret`,
    /// computed independently of this code with
    /// `printf '%s' '1700000000.{"a":1}' | openssl dgst -sha256 -hmac 'bsk_test_secret'`
    /// and cross-checked with Python's `hmac.new(..., hashlib.sha256).hexdigest()`.
    const EXPECTED_MAC: &str = "b50b41ebc0a1b2ee156f4d5d7ad1cd9701e73c9191cc16295002728c966b978e";
    const TOLERANCE: u64 = 300;

    fn valid_header() -> String {
        format!("t={TIMESTAMP},kid=k1,v1={EXPECTED_MAC}")
    }

    /// Pads a valid header with spaces after its first comma until it is
    /// exactly `len` bytes long, so that only its length can make it invalid.
    fn padded_header(len: usize) -> String {
        let header = valid_header();
        let (first, rest) = header.split_once(',').unwrap();
        let padding = " ".repeat(len - header.len());
        let padded = format!("{first},{padding}{rest}");
        assert_eq!(padded.len(), len);
        padded
    }

    /// Verifies [`valid_header`] with `secret` and `body` at `now`, under the usual tolerance.
    fn verify_valid_header(secret: &[u8], body: &[u8], now: i64) -> Result<(), SignatureError> {
        let header = SignatureHeader::parse(&valid_header()).unwrap();
        header.verify(secret, body, now, TOLERANCE)
    }

    #[test]
    fn the_mac_matches_a_vector_computed_with_openssl() {
        assert_eq!(compute_mac_hex(SECRET, TIMESTAMP, BODY), EXPECTED_MAC);
    }

    #[test]
    fn sign_writes_the_canonical_header_value() {
        assert_eq!(sign(SECRET, "k1", TIMESTAMP, BODY), valid_header());
    }

    #[test]
    fn a_signed_header_parses_and_verifies() {
        let value = sign(SECRET, "key-2024.01_a", TIMESTAMP, BODY);
        let header = SignatureHeader::parse(&value).unwrap();
        assert_eq!(header.timestamp, TIMESTAMP);
        assert_eq!(header.kid, "key-2024.01_a");
        assert_eq!(header.verify(SECRET, BODY, TIMESTAMP, TOLERANCE), Ok(()));
    }

    #[test]
    fn an_empty_body_round_trips() {
        let value = sign(SECRET, "k1", TIMESTAMP, b"");
        let header = SignatureHeader::parse(&value).unwrap();
        assert_eq!(header.verify(SECRET, b"", TIMESTAMP, 0), Ok(()));
    }

    /// Asserts that every one of `values` parses to the same header as [`valid_header`].
    fn assert_each_parses_as_the_valid_header(values: &[String]) {
        let expected = SignatureHeader::parse(&valid_header()).unwrap();
        for value in values {
            assert_eq!(
                SignatureHeader::parse(value),
                Ok(expected.clone()),
                "{value:?}"
            );
        }
    }

    #[test]
    fn spaces_around_items_and_equals_signs_are_allowed() {
        assert_each_parses_as_the_valid_header(&[
            format!("t={TIMESTAMP}, kid=k1 , v1={EXPECTED_MAC}"),
            format!(" t = {TIMESTAMP} ,kid= k1,\tv1 ={EXPECTED_MAC} "),
        ]);
    }

    #[test]
    fn fields_in_any_order_are_accepted() {
        assert_each_parses_as_the_valid_header(&[
            format!("kid=k1,v1={EXPECTED_MAC},t={TIMESTAMP}"),
            format!("v1={EXPECTED_MAC},t={TIMESTAMP},kid=k1"),
            format!("t={TIMESTAMP},v1={EXPECTED_MAC},kid=k1"),
        ]);
    }

    #[test]
    fn a_kid_of_sixty_four_allowed_characters_is_accepted() {
        let kid = "aZ0._-".repeat(11)[..64].to_owned();
        let header = SignatureHeader::parse(&sign(SECRET, &kid, TIMESTAMP, BODY)).unwrap();
        assert_eq!(header.kid, kid);
    }

    #[test]
    fn a_header_of_exactly_512_bytes_is_accepted() {
        assert!(SignatureHeader::parse(&padded_header(512)).is_ok());
    }

    #[test]
    fn every_malformed_form_is_rejected() {
        let m = EXPECTED_MAC;
        let t = TIMESTAMP;
        let cases: Vec<(&str, String)> = vec![
            ("empty string", String::new()),
            ("only spaces", "   ".into()),
            ("missing t", format!("kid=k1,v1={m}")),
            ("missing kid", format!("t={t},v1={m}")),
            ("missing v1", format!("t={t},kid=k1")),
            ("repeated t", format!("t={t},t={t},kid=k1,v1={m}")),
            ("repeated kid", format!("t={t},kid=k1,kid=k1,v1={m}")),
            ("repeated v1", format!("t={t},kid=k1,v1={m},v1={m}")),
            ("unknown field", format!("t={t},kid=k1,v1={m},v0={m}")),
            ("field name in wrong case", format!("T={t},kid=k1,v1={m}")),
            ("empty t", format!("t=,kid=k1,v1={m}")),
            ("t with plus sign", format!("t=+{t},kid=k1,v1={m}")),
            ("t with minus sign", format!("t=-{t},kid=k1,v1={m}")),
            ("t non-numeric", format!("t=abc,kid=k1,v1={m}")),
            ("t with a decimal point", format!("t={t}.5,kid=k1,v1={m}")),
            ("t with inner space", format!("t=1700 000000,kid=k1,v1={m}")),
            ("t with non-ASCII digits", format!("t=١٧,kid=k1,v1={m}")),
            (
                "t overflowing i64",
                format!("t=9223372036854775808,kid=k1,v1={m}"),
            ),
            ("empty v1", format!("t={t},kid=k1,v1=")),
            ("v1 too short", format!("t={t},kid=k1,v1={}", &m[..63])),
            ("v1 too long", format!("t={t},kid=k1,v1={m}0")),
            (
                "v1 uppercase",
                format!("t={t},kid=k1,v1={}", m.to_uppercase()),
            ),
            ("v1 non-hex", format!("t={t},kid=k1,v1={}g", &m[..63])),
            ("kid empty", format!("t={t},kid=,v1={m}")),
            ("kid with a space", format!("t={t},kid=k 1,v1={m}")),
            ("kid with a slash", format!("t={t},kid=k/1,v1={m}")),
            ("kid with an equals sign", format!("t={t},kid=k=1,v1={m}")),
            (
                "kid too long",
                format!("t={t},kid={},v1={m}", "k".repeat(65)),
            ),
            ("no '=' in a part", format!("t{t},kid=k1,v1={m}")),
            ("trailing comma", format!("t={t},kid=k1,v1={m},")),
            ("leading comma", format!(",t={t},kid=k1,v1={m}")),
            ("double comma", format!("t={t},,kid=k1,v1={m}")),
            ("semicolon separators", format!("t={t};kid=k1;v1={m}")),
            ("header over 512 bytes", padded_header(513)),
        ];
        for (what, value) in cases {
            assert_eq!(
                SignatureHeader::parse(&value),
                Err(SignatureError::Malformed),
                "{what}: {value:?}"
            );
        }
    }

    #[test]
    fn a_wrong_secret_is_a_bad_mac() {
        let verified = verify_valid_header(b"bsk_test_secreT", BODY, TIMESTAMP);
        assert_eq!(verified, Err(SignatureError::BadMac));
    }

    #[test]
    fn a_body_changed_by_one_byte_is_a_bad_mac() {
        let verified = verify_valid_header(SECRET, br#"{"a":2}"#, TIMESTAMP);
        assert_eq!(verified, Err(SignatureError::BadMac));
    }

    #[test]
    fn a_timestamp_changed_after_signing_is_a_bad_mac() {
        let value = format!("t={},kid=k1,v1={EXPECTED_MAC}", TIMESTAMP + 1);
        let header = SignatureHeader::parse(&value).unwrap();
        assert_eq!(
            header.verify(SECRET, BODY, TIMESTAMP, TOLERANCE),
            Err(SignatureError::BadMac)
        );
    }

    #[test]
    fn a_stale_timestamp_with_the_right_mac_is_expired() {
        let now = TIMESTAMP + TOLERANCE as i64 + 1;
        assert_eq!(
            verify_valid_header(SECRET, BODY, now),
            Err(SignatureError::Expired)
        );
    }

    #[test]
    fn a_timestamp_exactly_at_the_tolerance_is_accepted() {
        let tolerance = TOLERANCE as i64;
        assert_eq!(
            verify_valid_header(SECRET, BODY, TIMESTAMP + tolerance),
            Ok(())
        );
        assert_eq!(
            verify_valid_header(SECRET, BODY, TIMESTAMP - tolerance),
            Ok(())
        );
    }

    #[test]
    fn a_future_timestamp_beyond_the_tolerance_is_expired() {
        let too_early = TIMESTAMP - TOLERANCE as i64 - 1;
        assert_eq!(
            verify_valid_header(SECRET, BODY, too_early),
            Err(SignatureError::Expired)
        );
    }

    #[test]
    fn a_stale_timestamp_with_a_wrong_mac_is_a_bad_mac_because_the_mac_is_checked_first() {
        let now = TIMESTAMP + TOLERANCE as i64 + 1;
        let verified = verify_valid_header(b"wrong secret", BODY, now);
        assert_eq!(verified, Err(SignatureError::BadMac));
    }

    #[test]
    fn extreme_timestamps_do_not_overflow() {
        let header = SignatureHeader::parse(&sign(SECRET, "k1", i64::MAX, BODY)).unwrap();
        assert_eq!(header.timestamp, i64::MAX);
        assert_eq!(
            header.verify(SECRET, BODY, i64::MIN, u64::MAX - 1),
            Err(SignatureError::Expired)
        );
        assert_eq!(header.verify(SECRET, BODY, i64::MIN, u64::MAX), Ok(()));
        assert_eq!(header.verify(SECRET, BODY, i64::MAX, 0), Ok(()));

        // `sign` cannot express a negative timestamp that `parse` accepts,
        // so this header is built directly, with a correct MAC, to reach the
        // time check with the most negative timestamp there is.
        let mut mac = [0u8; MAC_LEN];
        hex::decode_to_slice(compute_mac_hex(SECRET, i64::MIN, BODY), &mut mac).unwrap();
        let oldest = SignatureHeader {
            timestamp: i64::MIN,
            kid: "k1".into(),
            mac,
        };
        assert_eq!(
            oldest.verify(SECRET, BODY, i64::MAX, TOLERANCE),
            Err(SignatureError::Expired)
        );
        assert_eq!(oldest.verify(SECRET, BODY, i64::MIN, 0), Ok(()));
    }

    #[test]
    fn a_zero_padded_timestamp_is_malformed() {
        let value = format!("t=0{TIMESTAMP},kid=k1,v1={EXPECTED_MAC}");
        assert_eq!(
            SignatureHeader::parse(&value),
            Err(SignatureError::Malformed)
        );
        let zero = format!("t=0,kid=k1,v1={EXPECTED_MAC}");
        assert_eq!(SignatureHeader::parse(&zero).unwrap().timestamp, 0);
    }

    #[test]
    fn reasons_are_the_stable_metric_labels() {
        assert_eq!(SignatureError::Malformed.reason(), "malformed");
        assert_eq!(SignatureError::UnknownKey.reason(), "unknown_key");
        assert_eq!(SignatureError::BadMac.reason(), "bad_mac");
        assert_eq!(SignatureError::Expired.reason(), "expired");
    }

    #[test]
    fn the_header_name_is_paygate_signature() {
        assert_eq!(HEADER, "Paygate-Signature");
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        /// Optional whitespace as HTTP allows it around items and `=`.
        fn ows() -> impl Strategy<Value = &'static str> {
            prop_oneof![Just(""), Just(" "), Just("\t"), Just("  ")]
        }

        /// One `name=value` item, well formed or nearly so, for the parser's edge cases.
        fn item() -> impl Strategy<Value = String> {
            let name = prop_oneof![
                Just("t"),
                Just("kid"),
                Just("v1"),
                Just("v0"),
                Just("T"),
                Just(""),
            ];
            let value = prop_oneof![
                "[0-9]{0,20}",
                "[+-]?[0-9]{1,19}",
                "[A-Za-z0-9._-]{0,70}",
                "[0-9a-fA-F]{60,68}",
                "\\PC{0,12}",
            ];
            (
                ows(),
                name,
                ows(),
                prop_oneof![Just("="), Just("=="), Just("")],
                ows(),
                value,
            )
                .prop_map(|(a, name, b, eq, c, value)| format!("{a}{name}{b}{eq}{c}{value}"))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn parse_never_panics_on_any_text(value in "\\PC{0,600}") {
                let _ = SignatureHeader::parse(&value);
            }

            #[test]
            fn parse_never_panics_on_near_misses_and_accepts_only_complete_headers(
                items in proptest::collection::vec(item(), 0..6),
                separator in prop_oneof![Just(","), Just(", "), Just(";")],
            ) {
                let value = items.join(separator);
                if let Ok(header) = SignatureHeader::parse(&value) {
                    prop_assert!(value.len() <= MAX_HEADER_LEN);
                    prop_assert!(header.timestamp >= 0);
                    prop_assert!(parse_kid(&header.kid).is_ok());
                    // What parsed is one of each field, so writing it canonically parses
                    // back to the same parts.
                    let canonical = format!(
                        "t={},kid={},v1={}", header.timestamp, header.kid, hex::encode(header.mac)
                    );
                    prop_assert_eq!(SignatureHeader::parse(&canonical), Ok(header));
                }
            }

            #[test]
            fn a_header_built_from_its_parts_parses_back_to_the_same_parts(
                timestamp in 0..=i64::MAX,
                kid in "[A-Za-z0-9._-]{1,64}",
                mac in proptest::array::uniform32(any::<u8>()),
                order in 0usize..6,
                spaces in proptest::collection::vec(ows(), 12),
            ) {
                let fields = [
                    ("t", timestamp.to_string()),
                    ("kid", kid.clone()),
                    ("v1", hex::encode(mac)),
                ];
                let permutations = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
                let value = permutations[order]
                    .iter()
                    .enumerate()
                    .map(|(i, &field)| {
                        let (name, text) = &fields[field];
                        let s = &spaces[4 * i..4 * i + 4];
                        format!("{}{name}{}={}{text}{}", s[0], s[1], s[2], s[3])
                    })
                    .collect::<Vec<_>>()
                    .join(",");
                let header = SignatureHeader::parse(&value).expect("a well-formed header");
                prop_assert_eq!(header.timestamp, timestamp);
                prop_assert_eq!(header.kid, kid);
                prop_assert_eq!(header.mac, mac);
            }

            #[test]
            fn what_sign_writes_parses_and_verifies_with_the_same_secret_only(
                secret in proptest::collection::vec(any::<u8>(), 1..80),
                kid in "[A-Za-z0-9._-]{1,64}",
                timestamp in 0..=i64::MAX,
                body in proptest::collection::vec(any::<u8>(), 0..200),
            ) {
                let value = sign(&secret, &kid, timestamp, &body);
                let header = SignatureHeader::parse(&value).expect("sign writes a valid header");
                prop_assert_eq!(&header.kid, &kid);
                prop_assert_eq!(header.timestamp, timestamp);
                prop_assert_eq!(header.verify(&secret, &body, timestamp, 0), Ok(()));
                let mut other = secret.clone();
                other[0] ^= 1;
                prop_assert_eq!(
                    header.verify(&other, &body, timestamp, 0),
                    Err(SignatureError::BadMac)
                );
            }
        }
    }
}
