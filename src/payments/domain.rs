//! The typed `details` that identify what an order pays for (amounts and obligations are shared
//! values of `crate::domain`).
//!
//! Everything here is checked by hand, byte by byte, rather than with regular expressions: the
//! patterns are few and small, and plain code keeps each rule and its error message side by side.

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::domain::{FieldError, ObligationCode};

/// The typed `details` of an order; one variant per obligation.
///
/// Text is kept exactly as the agency sent it (no trimming, no Unicode normalisation), because
/// these values are quoted back to banks and agencies who match them against their own records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Details {
    Fee {
        procedure_code: String,
        dossier_code: String,
    },
    Tax {
        tax_code: String,
        tax_period: Option<String>,
    },
    SocialInsurance {
        insurance_code: String,
        period: String,
    },
    Fine {
        decision_number: String,
        violation_date: Option<String>,
    },
    Electricity {
        customer_code: String,
        billing_period: String,
    },
    CourtAdvance {
        case_number: String,
        court_code: String,
    },
    /// The details of an obligation an admin added to the catalog: the object as sent, which
    /// the entry's JSON Schema validates when the order is created (`crate::catalog`).
    Catalog(Map<String, Value>),
}

impl Details {
    /// Validates `value` (the `details` member) for `obligation`. Errors name fields as
    /// `"details.<name>"`; a value that is not a JSON object gives one error on `"details"`.
    /// Every invalid, missing or unknown field is reported, not just the first. Missing required:
    /// `"is required"`. Unknown: `"is not a field of <obligation> details"`.
    ///
    /// The known fields are reported in the order of the API guide's table, then the unknown ones
    /// in the order they were sent, so that the same request always gets the same answer.
    pub fn parse(obligation: &str, value: &Value) -> Result<Details, Vec<FieldError>> {
        let Value::Object(object) = value else {
            return Err(vec![FieldError::new("details", "must be a JSON object")]);
        };
        let mut reader = Reader::new(object);
        // Arguments are evaluated in the order written, which is the table's order, so errors
        // come out in that order too; the details exist only when every field is valid.
        let details = match obligation {
            ObligationCode::FEE => both(
                reader.required("procedure_code", Rule::Text(32)),
                reader.required("dossier_code", Rule::Text(64)),
                |procedure_code, dossier_code| Details::Fee {
                    procedure_code,
                    dossier_code,
                },
            ),
            ObligationCode::TAX => both(
                reader.required("tax_code", Rule::TaxCode),
                reader.optional("tax_period", Rule::Text(32)),
                |tax_code, tax_period| Details::Tax {
                    tax_code,
                    tax_period,
                },
            ),
            ObligationCode::SOCIAL_INSURANCE => both(
                reader.required("insurance_code", Rule::InsuranceCode),
                reader.required("period", Rule::Month),
                |insurance_code, period| Details::SocialInsurance {
                    insurance_code,
                    period,
                },
            ),
            ObligationCode::FINE => both(
                reader.required("decision_number", Rule::Text(64)),
                reader.optional("violation_date", Rule::Date),
                |decision_number, violation_date| Details::Fine {
                    decision_number,
                    violation_date,
                },
            ),
            ObligationCode::ELECTRICITY => both(
                reader.required("customer_code", Rule::CustomerCode),
                reader.required("billing_period", Rule::Month),
                |customer_code, billing_period| Details::Electricity {
                    customer_code,
                    billing_period,
                },
            ),
            ObligationCode::COURT_ADVANCE => both(
                reader.required("case_number", Rule::Text(64)),
                reader.required("court_code", Rule::Text(32)),
                |case_number, court_code| Details::CourtAdvance {
                    case_number,
                    court_code,
                },
            ),
            // Any other code is a catalog entry: its schema, not Rust, says what its details
            // are, and the order's transaction checks them against it. Only what the database
            // could not store is refused here, whatever the schema says.
            _ => {
                let mut errors = Vec::new();
                for (name, member) in object {
                    nul_errors(&format!("details.{name}"), member, &mut errors);
                }
                return if errors.is_empty() {
                    Ok(Details::Catalog(object.clone()))
                } else {
                    Err(errors)
                };
            }
        };
        reader.finish(obligation, details)
    }

    /// The JSON object as stored and returned: the fields in the order of the table above,
    /// optional ones omitted when absent.
    ///
    /// A fixed order and no nulls give every stored order one canonical text, so a record read
    /// back is byte-for-byte what was answered when it was created.
    pub fn to_json(&self) -> Value {
        let fields: [(&str, Option<&String>); 2] = match self {
            Details::Catalog(object) => return Value::Object(object.clone()),
            Details::Fee {
                procedure_code,
                dossier_code,
            } => [
                ("procedure_code", Some(procedure_code)),
                ("dossier_code", Some(dossier_code)),
            ],
            Details::Tax {
                tax_code,
                tax_period,
            } => [
                ("tax_code", Some(tax_code)),
                ("tax_period", tax_period.as_ref()),
            ],
            Details::SocialInsurance {
                insurance_code,
                period,
            } => [
                ("insurance_code", Some(insurance_code)),
                ("period", Some(period)),
            ],
            Details::Fine {
                decision_number,
                violation_date,
            } => [
                ("decision_number", Some(decision_number)),
                ("violation_date", violation_date.as_ref()),
            ],
            Details::Electricity {
                customer_code,
                billing_period,
            } => [
                ("customer_code", Some(customer_code)),
                ("billing_period", Some(billing_period)),
            ],
            Details::CourtAdvance {
                case_number,
                court_code,
            } => [
                ("case_number", Some(case_number)),
                ("court_code", Some(court_code)),
            ],
        };
        let object: Map<String, Value> = fields
            .into_iter()
            .filter_map(|(name, value)| {
                value.map(|text| (name.to_owned(), Value::String(text.clone())))
            })
            .collect();
        Value::Object(object)
    }
}

/// An error on `path` for each text inside `value` (member names included) that holds a NUL,
/// which PostgreSQL cannot store in `jsonb`.
fn nul_errors(path: &str, value: &Value, errors: &mut Vec<FieldError>) {
    match value {
        Value::String(text) if crate::http::body::has_nul(text) => {
            errors.push(FieldError::new(path, crate::http::body::NUL_MESSAGE));
        }
        Value::Array(items) => {
            for (n, item) in items.iter().enumerate() {
                nul_errors(&format!("{path}.{n}"), item, errors);
            }
        }
        Value::Object(members) => {
            for (name, member) in members {
                if crate::http::body::has_nul(name) {
                    errors.push(FieldError::new(path, crate::http::body::NUL_MESSAGE));
                } else {
                    nul_errors(&format!("{path}.{name}"), member, errors);
                }
            }
        }
        _ => {}
    }
}

/// Both fields of a variant, when both are valid.
fn both<A, B>(a: Option<A>, b: Option<B>, build: impl FnOnce(A, B) -> Details) -> Option<Details> {
    Some(build(a?, b?))
}

/// Details are answered exactly as they are stored: see [`Details::to_json`].
impl Serialize for Details {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

/// What a single `details` field must look like.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// Free text of 1 to the given number of characters (Unicode scalar values, not bytes, so
    /// Vietnamese text gets the same room as ASCII).
    Text(usize),
    /// `^[0-9]{10}(-[0-9]{3})?$`: a taxpayer's code, with the branch suffix when there is one.
    TaxCode,
    /// `^[0-9]{10}$`: a social insurance code.
    InsuranceCode,
    /// `YYYY-MM` with a month from 01 to 12.
    Month,
    /// `YYYY-MM-DD` naming a day that exists in the calendar.
    Date,
    /// `^[A-Z]{2}[A-Z0-9]{11}$`: an electricity customer's code.
    CustomerCode,
}

impl Rule {
    fn check(self, text: &str) -> Result<(), String> {
        let ok = match self {
            Rule::Text(max) => (1..=max).contains(&text.chars().count()),
            Rule::TaxCode => is_tax_code(text.as_bytes()),
            Rule::InsuranceCode => text.len() == 10 && all_digits(text.as_bytes()),
            Rule::Month => parse_month(text.as_bytes()).is_some(),
            Rule::Date => is_calendar_date(text.as_bytes()),
            Rule::CustomerCode => is_customer_code(text.as_bytes()),
        };
        if ok {
            Ok(())
        } else {
            Err(self.message())
        }
    }

    fn message(self) -> String {
        match self {
            Rule::Text(max) => format!("must be 1 to {max} characters long"),
            Rule::TaxCode => "must match ^[0-9]{10}(-[0-9]{3})?$".to_owned(),
            Rule::InsuranceCode => "must match ^[0-9]{10}$".to_owned(),
            Rule::Month => {
                "must be a month as YYYY-MM with MM from 01 to 12, such as 2026-01".to_owned()
            }
            Rule::Date => {
                "must be a real calendar date as YYYY-MM-DD, such as 2026-02-28".to_owned()
            }
            Rule::CustomerCode => "must match ^[A-Z]{2}[A-Z0-9]{11}$".to_owned(),
        }
    }
}

fn all_digits(bytes: &[u8]) -> bool {
    bytes.iter().all(u8::is_ascii_digit)
}

/// The value of a run of ASCII digits, which the caller has already checked.
fn digits_value(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(0, |value, digit| value * 10 + u32::from(digit - b'0'))
}

fn is_tax_code(bytes: &[u8]) -> bool {
    match bytes.len() {
        10 => all_digits(bytes),
        14 => all_digits(&bytes[..10]) && bytes[10] == b'-' && all_digits(&bytes[11..]),
        _ => false,
    }
}

/// Splits `YYYY-MM` into year and month, or `None` when the text is not a real month.
fn parse_month(bytes: &[u8]) -> Option<(u32, u32)> {
    let shaped =
        bytes.len() == 7 && all_digits(&bytes[..4]) && bytes[4] == b'-' && all_digits(&bytes[5..]);
    if !shaped {
        return None;
    }
    let month = digits_value(&bytes[5..]);
    (1..=12)
        .contains(&month)
        .then(|| (digits_value(&bytes[..4]), month))
}

fn is_calendar_date(bytes: &[u8]) -> bool {
    if bytes.len() != 10 || bytes[7] != b'-' || !all_digits(&bytes[8..]) {
        return false;
    }
    let Some((year, month)) = parse_month(&bytes[..7]) else {
        return false;
    };
    let day = digits_value(&bytes[8..]);
    // The year has four digits and the month and day two, so these conversions cannot fail; the
    // `time` crate then knows each month's length and the leap years.
    let (Ok(year), Ok(month), Ok(day)) =
        (i32::try_from(year), u8::try_from(month), u8::try_from(day))
    else {
        return false;
    };
    time::Month::try_from(month)
        .and_then(|month| time::Date::from_calendar_date(year, month, day))
        .is_ok()
}

fn is_customer_code(bytes: &[u8]) -> bool {
    bytes.len() == 13
        && bytes[..2].iter().all(u8::is_ascii_uppercase)
        && bytes[2..]
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// Reads the fields of one `details` object, collecting every error instead of stopping at the
/// first, and remembering which names it was asked for so that the rest can be reported as
/// unknown.
struct Reader<'a> {
    object: &'a Map<String, Value>,
    known: Vec<&'static str>,
    errors: Vec<FieldError>,
}

impl<'a> Reader<'a> {
    fn new(object: &'a Map<String, Value>) -> Self {
        Reader {
            object,
            known: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// A field that must be present and not null; `None` (with the error recorded) otherwise.
    fn required(&mut self, name: &'static str, rule: Rule) -> Option<String> {
        let value = self.optional(name, rule);
        if value == Some(None) {
            self.error(name, "is required".to_owned());
        }
        value.flatten()
    }

    /// A field that may be absent or null (both mean "not given": `Some(None)`); otherwise it
    /// must be a string that satisfies `rule`. `None` when it does not (the error is recorded).
    fn optional(&mut self, name: &'static str, rule: Rule) -> Option<Option<String>> {
        self.known.push(name);
        match self.object.get(name) {
            None | Some(Value::Null) => Some(None),
            // The database cannot store NUL in text; no rule admits it.
            Some(Value::String(text)) if crate::http::body::has_nul(text) => {
                self.error(name, crate::http::body::NUL_MESSAGE.to_owned());
                None
            }
            Some(Value::String(text)) => match rule.check(text) {
                Ok(()) => Some(Some(text.clone())),
                Err(message) => {
                    self.error(name, message);
                    None
                }
            },
            Some(_) => {
                self.error(name, "must be a string".to_owned());
                None
            }
        }
    }

    fn error(&mut self, name: &str, message: String) {
        self.errors
            .push(FieldError::new(format!("details.{name}"), message));
    }

    /// Reports the fields nobody asked for, then gives the details if nothing was wrong.
    /// (`details` is `None` only when an error was recorded for one of its fields.)
    fn finish(
        mut self,
        obligation: &str,
        details: Option<Details>,
    ) -> Result<Details, Vec<FieldError>> {
        let object = self.object;
        for name in object.keys() {
            if !self.known.contains(&name.as_str()) {
                self.error(name, format!("is not a field of {obligation} details"));
            }
        }
        match details {
            Some(details) if self.errors.is_empty() => Ok(details),
            _ => Err(self.errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn details_of_an_added_obligation_are_kept_as_sent_unless_the_database_could_not_store_them() {
        let value = json!({"patient_code": "BN000123", "visits": [{"day": "2026-11-20"}]});
        assert_eq!(
            Details::parse("hospital_fee", &value).unwrap().to_json(),
            value
        );
        let value = json!({"a": "x\u{0}", "b": [{"c": "\u{0}"}], "ok": 1});
        let errors = Details::parse("hospital_fee", &value).unwrap_err();
        assert_eq!(fields(&errors), ["details.a", "details.b.0.c"]);
        assert_eq!(
            fields(&Details::parse("hospital_fee", &json!([1])).unwrap_err()),
            ["details"]
        );
    }

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn valid_details_of_each_obligation_round_trip_through_to_json() {
        let cases = [
            (
                ObligationCode::FEE,
                json!({"procedure_code": "1.001234", "dossier_code": "000.00.00.H12-260101-0001"}),
            ),
            (
                ObligationCode::FEE,
                json!({"procedure_code": "ệ".repeat(32), "dossier_code": "Hồ sơ số 1"}),
            ),
            (ObligationCode::TAX, json!({"tax_code": "0101234567"})),
            (
                ObligationCode::TAX,
                json!({"tax_code": "0101234567-123", "tax_period": "Quý 1/2026"}),
            ),
            (
                ObligationCode::SOCIAL_INSURANCE,
                json!({"insurance_code": "0123456789", "period": "2026-01"}),
            ),
            (
                ObligationCode::SOCIAL_INSURANCE,
                json!({"insurance_code": "0123456789", "period": "2026-12"}),
            ),
            (
                ObligationCode::FINE,
                json!({"decision_number": "123/QĐ-XPVPHC"}),
            ),
            (
                ObligationCode::FINE,
                json!({"decision_number": "123/QĐ-XPVPHC", "violation_date": "2024-02-29"}),
            ),
            (
                ObligationCode::ELECTRICITY,
                json!({"customer_code": "PE01000123456", "billing_period": "2026-03"}),
            ),
            (
                ObligationCode::COURT_ADVANCE,
                json!({"case_number": "15/2026/DS-ST", "court_code": "TAND-HN"}),
            ),
            (
                ObligationCode::COURT_ADVANCE,
                json!({"case_number": "  spaced  ", "court_code": "Tòa án"}),
            ),
        ];
        for (obligation, value) in cases {
            let details = Details::parse(obligation, &value)
                .unwrap_or_else(|e| panic!("{obligation} {value}: {e:?}"));
            let stored = details.to_json();
            assert_eq!(stored, value);
            assert_eq!(
                serde_json::to_string(&stored).unwrap(),
                serde_json::to_string(&value).unwrap(),
                "the stored text keeps the table's field order"
            );
            assert_eq!(Details::parse(obligation, &stored), Ok(details));
        }
    }

    #[test]
    fn to_json_writes_fields_in_table_order_whatever_order_they_were_sent_in() {
        let value = json!({"dossier_code": "D1", "procedure_code": "P1"});
        let details = Details::parse(ObligationCode::FEE, &value).unwrap();
        assert_eq!(
            serde_json::to_string(&details.to_json()).unwrap(),
            r#"{"procedure_code":"P1","dossier_code":"D1"}"#
        );
    }

    #[test]
    fn null_for_an_optional_field_is_accepted_as_absent_and_omitted() {
        let cases = [
            (
                ObligationCode::TAX,
                json!({"tax_code": "0101234567", "tax_period": null}),
                json!({"tax_code": "0101234567"}),
            ),
            (
                ObligationCode::FINE,
                json!({"decision_number": "12/QĐ", "violation_date": null}),
                json!({"decision_number": "12/QĐ"}),
            ),
        ];
        for (obligation, value, stored) in cases {
            let details = Details::parse(obligation, &value).unwrap();
            assert_eq!(details.to_json(), stored);
        }
        assert_eq!(
            Details::parse(
                ObligationCode::TAX,
                &json!({"tax_code": "0101234567", "tax_period": null})
            ),
            Ok(Details::Tax {
                tax_code: "0101234567".to_owned(),
                tax_period: None
            })
        );
    }

    #[test]
    fn each_invalid_missing_or_unknown_field_is_named() {
        let long_vi = "ệ".repeat(33);
        let cases: Vec<(&str, Value, Vec<&str>)> = vec![
            // fee
            (
                ObligationCode::FEE,
                json!({}),
                vec!["details.procedure_code", "details.dossier_code"],
            ),
            (
                ObligationCode::FEE,
                json!({"procedure_code": long_vi, "dossier_code": "D"}),
                vec!["details.procedure_code"],
            ),
            (
                ObligationCode::FEE,
                json!({"procedure_code": "", "dossier_code": "x".repeat(65)}),
                vec!["details.procedure_code", "details.dossier_code"],
            ),
            (
                ObligationCode::FEE,
                json!({"procedurecode": "P", "dossier_code": "D"}),
                vec!["details.procedure_code", "details.procedurecode"],
            ),
            (
                ObligationCode::FEE,
                json!({"procedure_code": 1001234, "dossier_code": "D"}),
                vec!["details.procedure_code"],
            ),
            (
                ObligationCode::FEE,
                json!({"procedure_code": null, "dossier_code": ["D"]}),
                vec!["details.procedure_code", "details.dossier_code"],
            ),
            // tax
            (
                ObligationCode::TAX,
                json!({"tax_code": "12345678901"}),
                vec!["details.tax_code"],
            ),
            (
                ObligationCode::TAX,
                json!({"tax_code": "0101234567-12"}),
                vec!["details.tax_code"],
            ),
            (
                ObligationCode::TAX,
                json!({"tax_code": "0101234567-1234"}),
                vec!["details.tax_code"],
            ),
            (
                ObligationCode::TAX,
                json!({"tax_code": "0101234567_123"}),
                vec!["details.tax_code"],
            ),
            (
                ObligationCode::TAX,
                json!({"tax_code": "010123456"}),
                vec!["details.tax_code"],
            ),
            (
                ObligationCode::TAX,
                json!({"tax_code": 101234567}),
                vec!["details.tax_code"],
            ),
            (
                ObligationCode::TAX,
                json!({"tax_code": "0101234567", "tax_period": ""}),
                vec!["details.tax_period"],
            ),
            (
                ObligationCode::TAX,
                json!({"tax_code": "0101234567", "tax_period": 2026}),
                vec!["details.tax_period"],
            ),
            (
                ObligationCode::TAX,
                json!({"tax_period": "x".repeat(33), "dossier_code": "D"}),
                vec![
                    "details.tax_code",
                    "details.tax_period",
                    "details.dossier_code",
                ],
            ),
            // social_insurance
            (
                ObligationCode::SOCIAL_INSURANCE,
                json!({"insurance_code": "012345678", "period": "2026-01"}),
                vec!["details.insurance_code"],
            ),
            (
                ObligationCode::SOCIAL_INSURANCE,
                json!({"insurance_code": "0123456789", "period": "2026-13"}),
                vec!["details.period"],
            ),
            (
                ObligationCode::SOCIAL_INSURANCE,
                json!({"insurance_code": "0123456789", "period": "2026-1"}),
                vec!["details.period"],
            ),
            (
                ObligationCode::SOCIAL_INSURANCE,
                json!({"insurance_code": "0123456789", "period": "26-01"}),
                vec!["details.period"],
            ),
            (
                ObligationCode::SOCIAL_INSURANCE,
                json!({"insurance_code": "0123456789", "period": "2026-00"}),
                vec!["details.period"],
            ),
            (
                ObligationCode::SOCIAL_INSURANCE,
                json!({"insurance_code": "01234567890", "period": "2026/01"}),
                vec!["details.insurance_code", "details.period"],
            ),
            // fine
            (
                ObligationCode::FINE,
                json!({"decision_number": "1", "violation_date": "2026-02-30"}),
                vec!["details.violation_date"],
            ),
            (
                ObligationCode::FINE,
                json!({"decision_number": "1", "violation_date": "2026-2-1"}),
                vec!["details.violation_date"],
            ),
            (
                ObligationCode::FINE,
                json!({"decision_number": "1", "violation_date": "2025-02-29"}),
                vec!["details.violation_date"],
            ),
            (
                ObligationCode::FINE,
                json!({"decision_number": "1", "violation_date": "2026-04-31"}),
                vec!["details.violation_date"],
            ),
            (
                ObligationCode::FINE,
                json!({"decision_number": "1", "violation_date": "2026-01-01T00:00:00Z"}),
                vec!["details.violation_date"],
            ),
            (
                ObligationCode::FINE,
                json!({"violation_date": "2026-01-00"}),
                vec!["details.decision_number", "details.violation_date"],
            ),
            // electricity
            (
                ObligationCode::ELECTRICITY,
                json!({"customer_code": "pe01000123456", "billing_period": "2026-01"}),
                vec!["details.customer_code"],
            ),
            (
                ObligationCode::ELECTRICITY,
                json!({"customer_code": "PE0100012345", "billing_period": "2026-01"}),
                vec!["details.customer_code"],
            ),
            (
                ObligationCode::ELECTRICITY,
                json!({"customer_code": "P101000123456", "billing_period": "2026-01"}),
                vec!["details.customer_code"],
            ),
            (
                ObligationCode::ELECTRICITY,
                json!({"customer_code": "PE01000123456", "billing_period": "2026-13"}),
                vec!["details.billing_period"],
            ),
            (
                ObligationCode::ELECTRICITY,
                json!({"customer_code": "PE01000123456"}),
                vec!["details.billing_period"],
            ),
            // court_advance
            (
                ObligationCode::COURT_ADVANCE,
                json!({"case_number": "x".repeat(65), "court_code": "x".repeat(33)}),
                vec!["details.case_number", "details.court_code"],
            ),
            (
                ObligationCode::COURT_ADVANCE,
                json!({"case_number": "15/2026", "court_code": "TAND", "amount": "1", "note": null}),
                vec!["details.amount", "details.note"],
            ),
        ];
        for (obligation, value, expected) in cases {
            let errors = Details::parse(obligation, &value)
                .expect_err(&format!("{obligation} {value} must be rejected"));
            assert_eq!(fields(&errors), expected, "{obligation} {value}");
        }
    }

    #[test]
    fn texts_are_measured_in_characters_not_bytes() {
        for (count, valid) in [(32, true), (33, false)] {
            let value = json!({"procedure_code": "ệ".repeat(count), "dossier_code": "D"});
            assert_eq!(
                Details::parse(ObligationCode::FEE, &value).is_ok(),
                valid,
                "{count} characters"
            );
        }
    }

    #[test]
    fn errors_carry_the_documented_messages() {
        let errors = Details::parse(
            ObligationCode::FEE,
            &json!({"procedurecode": "P", "dossier_code": 7}),
        )
        .unwrap_err();
        assert_eq!(
            errors,
            vec![
                FieldError::new("details.procedure_code", "is required"),
                FieldError::new("details.dossier_code", "must be a string"),
                FieldError::new("details.procedurecode", "is not a field of fee details"),
            ]
        );
        let errors = Details::parse(
            ObligationCode::SOCIAL_INSURANCE,
            &json!({"insurance_code": "1", "period": "2026-13", "tax_code": "0101234567"}),
        )
        .unwrap_err();
        assert_eq!(
            errors,
            vec![
                FieldError::new("details.insurance_code", "must match ^[0-9]{10}$"),
                FieldError::new(
                    "details.period",
                    "must be a month as YYYY-MM with MM from 01 to 12, such as 2026-01"
                ),
                FieldError::new(
                    "details.tax_code",
                    "is not a field of social_insurance details"
                ),
            ]
        );
        let errors = Details::parse(
            ObligationCode::FEE,
            &json!({"procedure_code": "", "dossier_code": "D"}),
        )
        .unwrap_err();
        assert_eq!(errors[0].message, "must be 1 to 32 characters long");
    }

    #[test]
    fn a_nul_in_any_details_field_is_named() {
        for obligation in ObligationCode::BUILTINS {
            let valid = match obligation {
                ObligationCode::FEE => json!({"procedure_code": "1.002804", "dossier_code": "D1"}),
                ObligationCode::TAX => json!({"tax_code": "0101234567", "tax_period": "2026-Q3"}),
                ObligationCode::SOCIAL_INSURANCE => {
                    json!({"insurance_code": "0123456789", "period": "2026-10"})
                }
                ObligationCode::FINE => {
                    json!({"decision_number": "123/QĐ-XPHC", "violation_date": "2026-11-20"})
                }
                ObligationCode::ELECTRICITY => {
                    json!({"customer_code": "PE01000012345", "billing_period": "2026-10"})
                }
                _ => json!({"case_number": "12/2026", "court_code": "TAND"}),
            };
            assert!(Details::parse(obligation, &valid).is_ok(), "{obligation}");
            for name in valid.as_object().unwrap().keys() {
                let mut details = valid.clone();
                let text = details[name].as_str().unwrap().to_owned();
                details[name] = json!(format!("{text}\u{0}"));
                let errors = Details::parse(obligation, &details).unwrap_err();
                assert_eq!(fields(&errors), [format!("details.{name}")], "{obligation}");
                assert_eq!(errors[0].message, crate::http::body::NUL_MESSAGE);
            }
        }
    }

    #[test]
    fn details_that_is_not_an_object_gives_one_error_on_details() {
        for value in [
            json!([]),
            json!([{"tax_code": "0101234567"}]),
            json!("x"),
            json!(null),
            json!(1),
        ] {
            for obligation in ObligationCode::BUILTINS {
                assert_eq!(
                    Details::parse(obligation, &value),
                    Err(vec![FieldError::new("details", "must be a JSON object")]),
                    "{obligation} {value}"
                );
            }
        }
    }

    #[test]
    fn text_is_stored_exactly_as_given() {
        // "ệ" precomposed and as "e" plus two combining marks must both survive unchanged.
        let decomposed = "e\u{0323}\u{0302}";
        let value = json!({"case_number": format!(" {decomposed} "), "court_code": "ệ\t"});
        let details = Details::parse(ObligationCode::COURT_ADVANCE, &value).unwrap();
        assert_eq!(
            details,
            Details::CourtAdvance {
                case_number: format!(" {decomposed} "),
                court_code: "ệ\t".to_owned(),
            }
        );
        assert_eq!(details.to_json(), value);
    }
}
