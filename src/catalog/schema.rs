//! Compiling a `details_schema` into a validator, with the bounds that keep a hostile schema from
//! fetching anything or making validation slow, and turning validation failures into the
//! field-by-field errors the API answers with.

use jsonschema::error::ValidationErrorKind;
use jsonschema::paths::LocationSegment;
use jsonschema::{Draft, PatternOptions, Validator};
use serde_json::Value;

use crate::domain::FieldError;

/// The longest schema accepted, in bytes of its compact JSON text.
pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;
/// The deepest nesting of objects and arrays a schema may have.
pub const MAX_SCHEMA_DEPTH: usize = 32;
/// The longest `pattern` accepted, in characters.
pub const MAX_PATTERN_CHARS: usize = 1_000;
/// What one compiled `pattern` may take, in bytes: the linear-time `regex` engine guarantees time
/// linear in the input, and this keeps the compiled automaton (and so the constant) small.
const PATTERN_SIZE_LIMIT_BYTES: usize = 1024 * 1024;
/// The lazy DFA's transition cache for one `pattern`, in bytes.
const PATTERN_DFA_SIZE_LIMIT_BYTES: usize = 1024 * 1024;

/// The most JSON values a schema may have once every `$ref` is replaced by what it refers to.
/// References can share one definition many times (`anyOf` of two references to a definition
/// that does the same, 30 levels down, is 2^30 evaluations from a few kilobytes), and reporting
/// why details fail walks every branch, at roughly a microsecond per value in a release build:
/// this bound (with [`MAX_DETAILS_VALUES`]) keeps the worst invalid order within about ten
/// milliseconds, and a valid one far below a millisecond.
pub const MAX_UNFOLDED_NODES: usize = 2_000;
/// The most JSON values (members, items and scalars, `details` itself included) an order's
/// `details` may hold. Details name what is paid for (a code, a period); the built-ins need 3.
pub const MAX_DETAILS_VALUES: usize = 32;
/// How many `$ref`s deep one chain of references may go.
const MAX_REF_CHAIN: usize = 64;

/// The only `$schema` a catalog schema may declare (it may also declare none).
pub const DRAFT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";

/// Checks an admin's schema against the catalog's rules and compiles it; the error names the
/// problem in a sentence.
pub fn check(schema: &Value) -> Result<Validator, String> {
    let bytes = serde_json::to_vec(schema).map_or(usize::MAX, |text| text.len());
    if bytes > MAX_SCHEMA_BYTES {
        return Err(format!(
            "is {bytes} bytes long; a schema may be at most {MAX_SCHEMA_BYTES} bytes"
        ));
    }
    if depth(schema) > MAX_SCHEMA_DEPTH {
        return Err(format!(
            "nests objects and arrays more than {MAX_SCHEMA_DEPTH} levels deep"
        ));
    }
    let Value::Object(root) = schema else {
        return Err("must be a JSON object".to_owned());
    };
    if root.get("type") != Some(&Value::String("object".to_owned())) {
        return Err("must have \"type\": \"object\" at its root".to_owned());
    }
    if root.get("additionalProperties") != Some(&Value::Bool(false)) {
        return Err("must have \"additionalProperties\": false at its root".to_owned());
    }
    match root.get("$schema") {
        None => {}
        Some(Value::String(uri)) if uri == DRAFT_2020_12 => {}
        Some(_) => {
            return Err(format!(
                "must be JSON Schema draft 2020-12 ({DRAFT_2020_12})"
            ))
        }
    }
    if let Some(pattern) = long_pattern(schema) {
        let chars = pattern.chars().count();
        return Err(format!(
            "has a pattern of {chars} characters; a pattern may be at most {MAX_PATTERN_CHARS}"
        ));
    }
    unfolded_size(schema)?;
    compile(schema).map_err(|problem| format!("is not a valid JSON Schema: {problem}"))
}

/// Checks the references of a schema and that its unfolded size is within
/// [`MAX_UNFOLDED_NODES`]. Only references inside the schema by JSON Pointer (`#`, `#/$defs/..`)
/// are allowed; a cycle of references is refused, since no payment's details need a recursive
/// schema and a cycle has no finite unfolding to bound.
fn unfolded_size(root: &Value) -> Result<usize, String> {
    let mut sizes: std::collections::HashMap<*const Value, usize> = Default::default();
    let mut chain: Vec<*const Value> = Vec::new();
    size_of(root, root, &mut sizes, &mut chain)
}

fn size_of(
    root: &Value,
    value: &Value,
    sizes: &mut std::collections::HashMap<*const Value, usize>,
    chain: &mut Vec<*const Value>,
) -> Result<usize, String> {
    let key = value as *const Value;
    if let Some(size) = sizes.get(&key) {
        return Ok(*size);
    }
    let mut size = 1usize;
    match value {
        Value::Object(map) => {
            for (name, member) in map {
                match (name.as_str(), member) {
                    ("$dynamicRef" | "$recursiveRef", _) => {
                        return Err(format!(
                            "uses {name}; only \"$ref\" within the schema is allowed"
                        ))
                    }
                    ("$id", _) if !std::ptr::eq(value, root) => {
                        return Err("has an \"$id\" below its root".to_owned())
                    }
                    ("$ref", Value::String(reference)) => {
                        size += reference_size(root, reference, sizes, chain)?;
                    }
                    _ => {}
                }
                size = size.saturating_add(size_of(root, member, sizes, chain)?);
            }
        }
        Value::Array(items) => {
            for item in items {
                size = size.saturating_add(size_of(root, item, sizes, chain)?);
            }
        }
        _ => {}
    }
    if size > MAX_UNFOLDED_NODES {
        return Err(format!(
            "unfolds to more than {MAX_UNFOLDED_NODES} nodes once its $refs are followed"
        ));
    }
    sizes.insert(key, size);
    Ok(size)
}

fn reference_size(
    root: &Value,
    reference: &str,
    sizes: &mut std::collections::HashMap<*const Value, usize>,
    chain: &mut Vec<*const Value>,
) -> Result<usize, String> {
    let Some(pointer) = reference.strip_prefix('#') else {
        return Err(format!(
            "has \"$ref\": {reference:?}; only references within the schema (#/...) are allowed"
        ));
    };
    if !(pointer.is_empty() || pointer.starts_with('/')) {
        return Err(format!(
            "has \"$ref\": {reference:?}; only JSON Pointer references (#/...) are allowed"
        ));
    }
    // One that leads nowhere is left to the compiler, which names it.
    let Some(target) = root.pointer(pointer) else {
        return Ok(0);
    };
    let key = target as *const Value;
    if chain.contains(&key) || std::ptr::eq(target, root) {
        return Err(format!("has a cycle of references through {reference:?}"));
    }
    if chain.len() >= MAX_REF_CHAIN {
        return Err(format!("chains more than {MAX_REF_CHAIN} references"));
    }
    chain.push(key);
    let size = size_of(root, target, sizes, chain);
    chain.pop();
    size
}

/// Compiles a schema that is already in the catalog (and so passed [`check`] or is a built-in).
///
/// Drafts other than 2020-12 are not accepted; no `$ref` may leave the schema (there is no
/// retriever that fetches anything: neither HTTP nor files are compiled in, and the offline
/// retriever refuses whatever is not in the schema itself); `format` is asserted, so that `date`
/// means a real calendar date; patterns use the linear-time `regex` engine, which cannot be made
/// to backtrack.
pub fn compile(schema: &Value) -> Result<Validator, String> {
    jsonschema::options()
        .with_draft(Draft::Draft202012)
        .offline()
        .should_validate_formats(true)
        .with_pattern_options(
            PatternOptions::regex()
                .size_limit(PATTERN_SIZE_LIMIT_BYTES)
                .dfa_size_limit(PATTERN_DFA_SIZE_LIMIT_BYTES),
        )
        .build(schema)
        .map_err(|err| err.to_string())
}

/// How deeply objects and arrays nest in `value` (a scalar is 0 deep), walked without recursion
/// so that no input can exhaust the stack.
fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(value, 0usize)];
    while let Some((value, level)) = pending.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Object(map) => Box::new(map.values()),
            Value::Array(items) => Box::new(items.iter()),
            _ => continue,
        };
        deepest = deepest.max(level + 1);
        if deepest > MAX_SCHEMA_DEPTH {
            return deepest;
        }
        pending.extend(children.map(|child| (child, level + 1)));
    }
    deepest
}

/// The first `pattern` keyword value (anywhere in the schema) longer than the limit. Members
/// named `pattern` that are not keywords (a property called "pattern") are checked too: being
/// stricter there costs nothing.
fn long_pattern(value: &Value) -> Option<&str> {
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        match value {
            Value::Object(map) => {
                for (name, member) in map {
                    if let (true, Value::String(pattern)) = (name == "pattern", member) {
                        if pattern.chars().count() > MAX_PATTERN_CHARS {
                            return Some(pattern);
                        }
                    }
                    pending.push(member);
                }
            }
            Value::Array(items) => pending.extend(items),
            _ => {}
        }
    }
    None
}

/// Every way `details` breaks the schema, one error per field (the first reason found), each
/// named `details.<path>`: a missing required member is named by its own path, each unexpected
/// member by its own path, and a `details` that is not an object is `details`.
pub fn failures(code: &str, validator: &Validator, details: &Value) -> Vec<FieldError> {
    if too_many_values(details) {
        return vec![FieldError::new(
            "details",
            format!("must hold at most {MAX_DETAILS_VALUES} values (members, items and scalars)"),
        )];
    }
    // Most orders are valid: the quick yes/no first, the detailed walk only for the others.
    if validator.is_valid(details) {
        return Vec::new();
    }
    let mut errors: Vec<FieldError> = Vec::new();
    let mut push = |field: String, message: String| {
        if !errors.iter().any(|error| error.field == field) {
            errors.push(FieldError::new(field, message));
        }
    };
    for error in validator.iter_errors(details) {
        let mut path = String::from("details");
        for segment in error.instance_path().iter() {
            path.push('.');
            match segment {
                LocationSegment::Property(name) => path.push_str(&name),
                LocationSegment::Index(index) => path.push_str(&index.to_string()),
            }
        }
        match error.kind() {
            ValidationErrorKind::Required { property } => {
                let name = property
                    .as_str()
                    .map_or_else(|| property.to_string(), str::to_owned);
                push(format!("{path}.{name}"), "is required".to_owned());
            }
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                for name in unexpected {
                    push(
                        format!("{path}.{name}"),
                        format!("is not a field of {code} details"),
                    );
                }
            }
            kind => push(path, message(kind, &error.to_string())),
        }
    }
    errors
}

/// Whether `details` holds more than [`MAX_DETAILS_VALUES`] JSON values; stops counting there.
fn too_many_values(details: &Value) -> bool {
    let mut count = 0usize;
    let mut pending = vec![details];
    while let Some(value) = pending.pop() {
        count += 1;
        if count > MAX_DETAILS_VALUES {
            return true;
        }
        match value {
            Value::Object(map) => pending.extend(map.values()),
            Value::Array(items) => pending.extend(items),
            _ => {}
        }
    }
    false
}

/// A short sentence for one failure, in the words the API used before the catalog where there
/// are such words; otherwise the validator's own description.
fn message(kind: &ValidationErrorKind, fallback: &str) -> String {
    match kind {
        ValidationErrorKind::Type { .. } if fallback.contains("\"object\"") => {
            "must be a JSON object".to_owned()
        }
        ValidationErrorKind::MinLength { limit } => {
            format!("must be at least {limit} characters long")
        }
        ValidationErrorKind::MaxLength { limit } => {
            format!("must be at most {limit} characters long")
        }
        ValidationErrorKind::Pattern { pattern } => format!("must match {pattern}"),
        ValidationErrorKind::Format { format } if format == "date" => {
            "must be a real calendar date as YYYY-MM-DD, such as 2026-02-28".to_owned()
        }
        _ => fallback.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The built-in entries exactly as the migration inserts them: each `('<code>', ...` row's
    /// schema literal.
    fn builtins() -> Vec<(String, Value)> {
        let sql = include_str!("../../migrations/0011_obligation_catalog.sql");
        let mut found = Vec::new();
        let mut rest = sql;
        while let Some(start) = rest.find("\n('") {
            rest = &rest[start + 3..];
            let code = &rest[..rest.find('\'').unwrap()];
            let open = rest.find("'{").unwrap();
            let close = rest.find("}')").unwrap();
            let schema = serde_json::from_str(&rest[open + 1..=close]).unwrap();
            found.push((code.to_owned(), schema));
            rest = &rest[close..];
        }
        found
    }

    fn builtin(code: &str) -> Validator {
        let (_, schema) = builtins().into_iter().find(|(c, _)| c == code).unwrap();
        check(&schema).unwrap()
    }

    fn fields(code: &str, details: &Value) -> Vec<String> {
        failures(code, &builtin(code), details)
            .into_iter()
            .map(|error| error.field)
            .collect()
    }

    fn valid(obligation: &str) -> Value {
        match obligation {
            "fee" => json!({"procedure_code": "1.002804", "dossier_code": "H12.99-261122-0001"}),
            "tax" => json!({"tax_code": "0101234567", "tax_period": "Quý 4/2026"}),
            "social_insurance" => json!({"insurance_code": "0123456789", "period": "2026-11"}),
            "fine" => json!({"decision_number": "123/QĐ-XPVPHC", "violation_date": "2026-11-20"}),
            "electricity" => json!({"customer_code": "PE01000123456", "billing_period": "2026-11"}),
            "court_advance" => json!({"case_number": "456/2026/TLST-DS", "court_code": "TAND-HN"}),
            other => panic!("no details for {other}"),
        }
    }

    #[test]
    fn the_six_builtins_are_in_the_migration_and_pass_the_catalog_rules() {
        let codes: Vec<String> = builtins().into_iter().map(|(code, _)| code).collect();
        assert_eq!(
            codes,
            [
                "fee",
                "tax",
                "social_insurance",
                "fine",
                "electricity",
                "court_advance"
            ]
        );
        for (code, schema) in builtins() {
            assert!(check(&schema).is_ok(), "{code}");
        }
    }

    #[test]
    fn valid_details_of_each_builtin_are_accepted() {
        let cases = [
            ("fee", valid("fee")),
            (
                "fee",
                json!({"procedure_code": "ệ".repeat(32), "dossier_code": "ệ".repeat(64)}),
            ),
            ("tax", valid("tax")),
            ("tax", json!({"tax_code": "0101234567"})),
            (
                "tax",
                json!({"tax_code": "0101234567-001", "tax_period": null}),
            ),
            (
                "tax",
                json!({"tax_code": "0101234567", "tax_period": "ệ".repeat(32)}),
            ),
            ("social_insurance", valid("social_insurance")),
            (
                "social_insurance",
                json!({"insurance_code": "0123456789", "period": "2026-12"}),
            ),
            (
                "social_insurance",
                json!({"insurance_code": "0123456789", "period": "2026-01"}),
            ),
            ("fine", valid("fine")),
            ("fine", json!({"decision_number": "123/QĐ-XPVPHC"})),
            (
                "fine",
                json!({"decision_number": "1", "violation_date": "2024-02-29"}),
            ),
            (
                "fine",
                json!({"decision_number": "1", "violation_date": null}),
            ),
            ("electricity", valid("electricity")),
            (
                "electricity",
                json!({"customer_code": "PE0100012345Z", "billing_period": "2026-10"}),
            ),
            ("court_advance", valid("court_advance")),
        ];
        for (code, details) in cases {
            assert_eq!(
                fields(code, &details),
                Vec::<String>::new(),
                "{code}: {details}"
            );
        }
    }

    /// The same cases as the API's validation tests: each invalid value is named once, on its
    /// own field.
    #[test]
    fn each_invalid_details_field_of_each_builtin_is_named_exactly_once() {
        let s = |text: &str| Some(json!(text));
        let long = |n: usize| Some(json!("ệ".repeat(n)));
        let cases: Vec<(&str, &str, Vec<Option<Value>>)> = vec![
            (
                "fee",
                "procedure_code",
                vec![None, s(""), long(33), Some(json!(1.002804))],
            ),
            ("fee", "dossier_code", vec![None, s(""), long(65)]),
            ("fee", "dosier_code", vec![s("H12.99-261122-0001")]),
            (
                "tax",
                "tax_code",
                vec![
                    None,
                    s("010123456"),
                    s("01012345678"),
                    s("010123456A"),
                    s("0101234567-01"),
                    s("0101234567-0012"),
                    s("0101234567_001"),
                    s(" 0101234567"),
                    s("0101234567\n"),
                    s("٠١٠١٢٣٤٥٦٧"),
                    Some(json!(101234567)),
                    Some(Value::Null),
                ],
            ),
            (
                "tax",
                "tax_period",
                vec![s(""), long(33), Some(json!(2026))],
            ),
            ("tax", "tax_perod", vec![s("Quý 4/2026")]),
            (
                "social_insurance",
                "insurance_code",
                vec![None, s("012345678"), s("01234567890"), s("012345678A")],
            ),
            (
                "social_insurance",
                "period",
                vec![
                    None,
                    s("2026-13"),
                    s("2026-00"),
                    s("2026-1"),
                    s("11-2026"),
                    s("2026/11"),
                    s("2026-11-01"),
                ],
            ),
            ("social_insurance", "insurance_no", vec![s("0123456789")]),
            ("fine", "decision_number", vec![None, s(""), long(65)]),
            (
                "fine",
                "violation_date",
                vec![
                    s("2026-02-30"),
                    s("2025-02-29"),
                    s("2026-13-01"),
                    s("20-11-2026"),
                    s("2026/11/20"),
                    s("2026-11-20T08:00:00Z"),
                ],
            ),
            ("fine", "violation_day", vec![s("2026-11-20")]),
            (
                "electricity",
                "customer_code",
                vec![
                    None,
                    s("pe01000123456"),
                    s("PE0100012345"),
                    s("PE010001234567"),
                    s("1E01000123456"),
                    s("PE01000-23456"),
                ],
            ),
            (
                "electricity",
                "billing_period",
                vec![None, s("2026-13"), s("2026-11-01")],
            ),
            ("electricity", "billing_perid", vec![s("2026-11")]),
            ("court_advance", "case_number", vec![None, s(""), long(65)]),
            ("court_advance", "court_code", vec![None, s(""), long(33)]),
            ("court_advance", "court", vec![s("TAND-HN")]),
        ];
        for (code, field, values) in cases {
            for value in values {
                let mut details = valid(code);
                let object = details.as_object_mut().unwrap();
                match value {
                    Some(value) => object.insert(field.to_owned(), value),
                    None => object.remove(field),
                };
                assert_eq!(
                    fields(code, &details),
                    [format!("details.{field}")],
                    "{code}: {details}"
                );
            }
        }
    }

    #[test]
    fn details_that_are_not_an_object_are_named_as_details() {
        for details in [json!([]), json!("x"), json!(null), json!(1)] {
            assert_eq!(fields("fee", &details), ["details"], "{details}");
        }
    }

    #[test]
    fn details_of_another_obligation_name_the_missing_and_the_unexpected_fields() {
        let mut named = fields("fee", &valid("tax"));
        named.sort();
        assert_eq!(
            named,
            [
                "details.dossier_code",
                "details.procedure_code",
                "details.tax_code",
                "details.tax_period"
            ]
        );
        let errors = failures("fee", &builtin("fee"), &valid("tax"));
        let unexpected = errors
            .iter()
            .find(|e| e.field == "details.tax_code")
            .unwrap();
        assert_eq!(unexpected.message, "is not a field of fee details");
        let missing = errors
            .iter()
            .find(|e| e.field == "details.dossier_code")
            .unwrap();
        assert_eq!(missing.message, "is required");
    }

    #[test]
    fn nested_failures_are_named_by_their_dotted_path() {
        let schema = json!({
            "type": "object",
            "properties": {"beds": {"type": "array", "items": {
                "type": "object",
                "properties": {"ward": {"type": "string", "maxLength": 3}},
                "required": ["ward"],
                "additionalProperties": false
            }}},
            "additionalProperties": false
        });
        let validator = check(&schema).unwrap();
        let details = json!({"beds": [{"ward": "A1"}, {"ward": "ABCD"}, {"wing": "B"}]});
        let mut named: Vec<String> = failures("hospital_fee", &validator, &details)
            .into_iter()
            .map(|e| e.field)
            .collect();
        named.sort();
        assert_eq!(
            named,
            [
                "details.beds.1.ward",
                "details.beds.2.ward",
                "details.beds.2.wing"
            ]
        );
    }

    fn problem(schema: Value) -> String {
        check(&schema)
            .err()
            .unwrap_or_else(|| panic!("accepted: {schema}"))
    }

    #[test]
    fn schemas_breaking_the_catalog_rules_are_refused_naming_the_problem() {
        let object = |extra: Value| {
            let mut schema = json!({"type": "object", "additionalProperties": false});
            schema
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            schema
        };
        assert!(problem(json!([])).contains("JSON object"));
        assert!(problem(json!({"type": "array"})).contains("\"type\": \"object\""));
        assert!(problem(json!({"type": "object"})).contains("additionalProperties"));
        assert!(
            problem(json!({"type": "object", "additionalProperties": true}))
                .contains("additionalProperties")
        );
        assert!(problem(object(
            json!({"$schema": "http://json-schema.org/draft-07/schema#"})
        ))
        .contains("2020-12"));
        assert!(
            problem(object(json!({"properties": {"a": {"type": "strin"}}})))
                .contains("not a valid JSON Schema")
        );
        assert!(
            problem(object(json!({"properties": {"a": {"pattern": "(["}}})))
                .contains("not a valid JSON Schema")
        );
        assert!(problem(object(
            json!({"properties": {"a": {"pattern": "a".repeat(1_001)}}})
        ))
        .contains("pattern of 1001 characters"));
        assert!(problem(object(
            json!({"properties": {"a": {"$ref": "https://example.com/s.json"}}})
        ))
        .contains("within the schema"));
        assert!(problem(object(
            json!({"properties": {"a": {"$ref": "file:///etc/passwd"}}})
        ))
        .contains("within the schema"));
        let mut deep = json!({"type": "string"});
        for _ in 0..MAX_SCHEMA_DEPTH {
            deep = json!({"type": "object", "properties": {"a": deep}});
        }
        assert!(problem(object(json!({"properties": {"a": deep}}))).contains("levels deep"));
        let many: serde_json::Map<String, Value> = (0..3_000)
            .map(|n| {
                (
                    format!("field_{n}"),
                    json!({"type": "string", "maxLength": 100}),
                )
            })
            .collect();
        assert!(problem(object(json!({"properties": many}))).contains("bytes"));
    }

    #[test]
    fn references_that_leave_the_schema_cycle_or_multiply_the_work_are_refused() {
        let object = |extra: Value| {
            let mut schema = json!({"type": "object", "additionalProperties": false});
            schema
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            schema
        };
        assert!(problem(object(json!({"properties": {"a": {"$ref": "#/$defs/a"}}, "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}})))
            .contains("cycle"));
        assert!(problem(object(json!({"properties": {"a": {"$ref": "#"}}}))).contains("cycle"));
        assert!(
            problem(object(json!({"properties": {"a": {"$ref": "other.json"}}})))
                .contains("within the schema")
        );
        assert!(
            problem(object(json!({"properties": {"a": {"$ref": "#anchor"}}})))
                .contains("JSON Pointer")
        );
        assert!(
            problem(object(json!({"properties": {"a": {"$dynamicRef": "#x"}}})))
                .contains("$dynamicRef")
        );
        assert!(problem(object(
            json!({"properties": {"a": {"$id": "https://x.example/a"}}})
        ))
        .contains("$id"));
        // 2^30 evaluations from a few kilobytes: each level refers twice to the next.
        let mut defs = serde_json::Map::new();
        for level in 0..30 {
            let next = format!("#/$defs/d{}", level + 1);
            defs.insert(
                format!("d{level}"),
                json!({"anyOf": [{"$ref": next}, {"$ref": next}]}),
            );
        }
        defs.insert("d30".to_owned(), json!({"type": "null"}));
        let schema = object(json!({"properties": {"a": {"$ref": "#/$defs/d0"}}, "$defs": defs}));
        assert!(problem(schema).contains("unfolds to more than"));
    }

    #[test]
    fn a_schema_over_the_unfolded_bound_and_details_over_the_value_bound_are_refused() {
        let properties: serde_json::Map<String, Value> = (0..700)
            .map(|n| (format!("f{n}"), json!({"type": "string", "maxLength": 9})))
            .collect();
        let schema =
            json!({"type": "object", "properties": properties, "additionalProperties": false});
        assert!(problem(schema).contains("unfolds to more than 2000"));

        let validator = builtin("fee");
        let mut details = valid("fee");
        let many: Vec<Value> = (0..MAX_DETAILS_VALUES).map(Value::from).collect();
        details["extra"] = Value::from(many);
        let errors = failures("fee", &validator, &details);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "details");
        assert!(
            errors[0].message.contains("at most 32 values"),
            "{errors:?}"
        );
    }

    #[test]
    fn a_local_ref_works_and_a_pattern_that_would_backtrack_runs_in_linear_time() {
        let schema = json!({
            "type": "object",
            "$defs": {"code": {"type": "string", "pattern": "^(a+)+$"}},
            "properties": {"code": {"$ref": "#/$defs/code"}},
            "additionalProperties": false
        });
        let validator = check(&schema).unwrap();
        let hostile = format!("{}!", "a".repeat(100_000));
        assert_eq!(
            failures("x", &validator, &json!({"code": hostile}))[0].field,
            "details.code"
        );
        assert!(failures("x", &validator, &json!({"code": "aaaa"})).is_empty());
    }
}
