//! The kinds of public obligation a citizen or company can pay.

use std::fmt;

use serde::Serialize;

/// The kind of public obligation an order pays; it decides which `details` the order carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Obligation {
    Fee,
    Tax,
    SocialInsurance,
    Fine,
    Electricity,
    CourtAdvance,
}

impl Obligation {
    /// Every obligation, in the order `docs/api-guide.md` lists them, so that lists and messages
    /// never miss one.
    pub const ALL: [Obligation; 6] = [
        Obligation::Fee,
        Obligation::Tax,
        Obligation::SocialInsurance,
        Obligation::Fine,
        Obligation::Electricity,
        Obligation::CourtAdvance,
    ];

    /// The wire and database name, the same text that serde writes.
    pub fn as_str(self) -> &'static str {
        match self {
            Obligation::Fee => "fee",
            Obligation::Tax => "tax",
            Obligation::SocialInsurance => "social_insurance",
            Obligation::Fine => "fine",
            Obligation::Electricity => "electricity",
            Obligation::CourtAdvance => "court_advance",
        }
    }

    /// Parses the wire name exactly (case matters); the error lists the six values so that a
    /// caller can correct the request without reading the documentation.
    pub fn parse(text: &str) -> Result<Obligation, String> {
        Obligation::ALL
            .into_iter()
            .find(|obligation| obligation.as_str() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = Obligation::ALL.iter().map(|o| o.as_str()).collect();
                format!("must be one of {}", names.join(", "))
            })
    }
}

impl fmt::Display for Obligation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_obligation_parses_from_the_name_it_prints_and_serializes_to() {
        for obligation in Obligation::ALL {
            assert_eq!(Obligation::parse(obligation.as_str()), Ok(obligation));
            assert_eq!(
                serde_json::to_value(obligation).unwrap(),
                json!(obligation.as_str())
            );
            assert_eq!(obligation.to_string(), obligation.as_str());
        }
    }

    #[test]
    fn an_unknown_obligation_is_rejected_with_the_six_values_listed() {
        for text in [
            "",
            "Fee",
            "FEE",
            "socialInsurance",
            "social-insurance",
            "toll",
            " fee",
        ] {
            assert_eq!(
                Obligation::parse(text),
                Err(
                    "must be one of fee, tax, social_insurance, fine, electricity, court_advance"
                        .to_owned()
                ),
                "{text:?}"
            );
        }
    }
}
