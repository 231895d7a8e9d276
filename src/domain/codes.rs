//! Codes of agencies and banks: `^[A-Z0-9][A-Z0-9._-]{1,31}$`.
//!
//! Each is its own type, so an agency code can never be passed where a bank code is meant.

fn check_code(value: &str) -> Result<(), String> {
    let bytes = value.as_bytes();
    let first_ok = bytes
        .first()
        .is_some_and(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    let rest_ok = bytes
        .iter()
        .skip(1)
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'));
    if first_ok && rest_ok && (2..=32).contains(&bytes.len()) {
        Ok(())
    } else {
        Err("must match ^[A-Z0-9][A-Z0-9._-]{1,31}$".to_owned())
    }
}

macro_rules! code_type {
    ($(#[$doc:meta])* $name:ident) => {
        string_newtype!($(#[$doc])* $name);

        impl $name {
            pub fn parse(value: &str) -> Result<Self, String> {
                check_code(value).map(|()| $name(value.to_owned()))
            }
        }
    };
}

code_type!(
    /// An agency's code, e.g. `000.00.00.H12`.
    AgencyCode
);
code_type!(
    /// A bank's or payment intermediary's code, e.g. `VCB`.
    BankCode
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realistic_codes_are_accepted() {
        for code in ["000.00.00.H12", "VCB", "G12.34-X_1", "A1"] {
            assert_eq!(AgencyCode::parse(code).unwrap().as_str(), code);
        }
    }

    #[test]
    fn codes_outside_the_pattern_are_rejected() {
        let too_long = "A".repeat(33);
        for code in [
            "",
            "A",
            ".ABC",
            "vcb",
            "VC B",
            "VCB/1",
            "ĐN01",
            too_long.as_str(),
        ] {
            assert!(BankCode::parse(code).is_err(), "{code:?}");
        }
        assert!(BankCode::parse(&"A".repeat(32)).is_ok());
    }
}
