//! The stable error codes: one list in the code (`ErrorCode`), the same list in the OpenAPI
//! document, and every code an endpoint documents is one of them.

use std::collections::BTreeSet;

use paygate::http::error::ErrorCode;
use serde_json::Value;

fn document() -> Value {
    serde_json::to_value(paygate::openapi::document()).expect("the document serialises")
}

/// The `code` values named in backquotes in a response description, e.g. "`duplicate_code`".
fn codes_named_in(description: &str) -> Vec<String> {
    description
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|word| {
            word.contains('_') && word.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_documents_error_code_schema_lists_exactly_the_codes_of_the_code() {
    let document = document();
    let listed: Vec<&str> = document["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .expect("an ErrorCode enum schema")
        .iter()
        .map(|code| code.as_str().expect("a string code"))
        .collect();
    let known: Vec<&str> = ErrorCode::ALL.iter().map(|code| code.as_str()).collect();
    assert_eq!(listed, known);
    for code in ErrorCode::ALL {
        assert_eq!(
            serde_json::to_value(code).unwrap(),
            Value::String(code.as_str().to_owned()),
            "serde and as_str agree"
        );
    }
    let distinct: BTreeSet<&str> = known.iter().copied().collect();
    assert_eq!(distinct.len(), known.len(), "no code is listed twice");
}

#[test]
fn every_code_an_endpoint_documents_is_a_known_code() {
    let document = document();
    let known: BTreeSet<&str> = ErrorCode::ALL.iter().map(|code| code.as_str()).collect();
    let mut named = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            let Some(responses) = operation["responses"].as_object() else {
                continue;
            };
            for (status, response) in responses {
                let status: u16 = status.parse().unwrap_or(0);
                if status < 400 {
                    continue;
                }
                let description = response["description"].as_str().unwrap_or_default();
                for code in codes_named_in(description) {
                    assert!(
                        known.contains(code.as_str()),
                        "{method} {path} documents {status} `{code}`, which ErrorCode lacks"
                    );
                    named.insert(code);
                }
            }
        }
    }
    assert!(
        named.len() >= 10,
        "the endpoints document their codes: {named:?}"
    );
}
