//! The OpenAPI 3.1 document, generated from the handlers' annotations.
//!
//! It is served at `/openapi.json`, checked in at `openapi/openapi.json` (a test fails when the
//! two differ; `cargo run -- openapi > openapi/openapi.json` regenerates it) and shown by Swagger
//! UI at `/docs` (see [`crate::http::ops`]).

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as OpenApiDocument;
use utoipa::{Modify, OpenApi};

use crate::domain::FieldError;
use crate::http::answers::problem;
use crate::http::error::Problem;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "paygate",
        description = "Payment broker between the agencies of Vietnam's national public-service portal and the banks that collect payments.\n\nConventions (the API guide, `docs/api-guide.md` in the repository, explains them in full):\n- Money is a JSON string of a positive whole number of VND, `^[1-9][0-9]{0,14}$`.\n- Times are RFC 3339; output is UTC, `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`.\n- Errors are RFC 9457 problem details (`application/problem+json`) with a stable `code`.\n- Agencies, auditors and admins authenticate with `Authorization: Bearer <api key>`; banks sign every request with `Paygate-Signature`.\n- JSON bodies over 1 MiB answer 413 `payload_too_large`; bodies that are not JSON answer 400 `malformed_json`.",
    ),
    paths(
        crate::http::ops::healthz,
        crate::http::ops::readyz,
        crate::http::ops::metrics,
        crate::http::ops::openapi_json,
        crate::http::ops::docs,
        crate::admin::http::create_agency,
        crate::admin::http::list_agencies,
        crate::admin::http::get_agency,
        crate::admin::http::update_agency,
        crate::admin::http::create_agency_key,
        crate::admin::http::rotate_notify_secret,
        crate::admin::http::create_bank,
        crate::admin::http::list_banks,
        crate::admin::http::get_bank,
        crate::admin::http::update_bank,
        crate::admin::http::create_bank_key,
        crate::admin::http::revoke_bank_key,
        crate::admin::http::create_api_key,
        crate::admin::http::list_api_keys,
        crate::admin::http::revoke_api_key,
        crate::catalog::http::list_obligations,
        crate::catalog::http::create_obligation,
        crate::catalog::http::update_obligation,
        crate::payments::http::create_payment,
        crate::payments::http::get_payment,
        crate::payments::http::list_payments,
        crate::payments::http::cancel_payment,
        crate::banks::http::inquiry,
        crate::banks::http::callback,
        crate::refunds::http::request_refund,
        crate::refunds::http::list_refunds,
        crate::refunds::http::get_refund,
        crate::refunds::http::approve_refund,
        crate::refunds::http::reject_refund,
        crate::refunds::http::bank_result,
        crate::sandbox::http::pay,
        crate::sandbox::http::refund_result,
        crate::checklist::http::agency_checklist,
        crate::checklist::http::bank_checklist,
        crate::ledger::http::balances,
        crate::ledger::http::verify,
        crate::ledger::http::list_seals,
        crate::ledger::http::seal_keys,
        crate::ledger::http::get_seal,
        crate::ledger::http::list_exceptions,
        crate::notifications::http::list_events,
        crate::notifications::http::redeliver,
        crate::reconciliation::http::create_run,
        crate::reconciliation::http::list_runs,
        crate::reconciliation::http::get_run,
        crate::reconciliation::http::list_items,
        crate::reconciliation::http::report_csv,
        crate::reconciliation::http::daily,
        crate::statements::http::daily,
        crate::statements::http::daily_csv,
        crate::cases::http::open_case,
        crate::cases::http::list_cases,
        crate::cases::http::get_case,
        crate::cases::http::add_note,
        crate::cases::http::resolve_case,
        crate::cases::http::approve_case,
        crate::cases::http::reject_case,
        crate::audit::http::list,
        crate::audit::http::verify,
    ),
    components(schemas(Problem, FieldError)),
    modifiers(&CommonResponses),
    security(("api_key" = [])),
    tags(
        (name = "payments", description = "Payment orders (role `agency`; admins and auditors read all)."),
        (name = "banks", description = "Signed requests from banks: inquiry, payment callbacks and refund results."),
        (name = "refunds", description = "Refunds of paid orders and of money in suspense, approved by a second key (roles `agency`, `admin`; auditors read)."),
        (name = "ledger", description = "The double-entry ledger and exceptions (roles `auditor`, `admin`)."),
        (name = "events", description = "Notifications to agencies: read and redeliver."),
        (name = "reconciliation", description = "Reconciliation against banks' statements, and reports (roles `auditor`, `admin`)."),
        (name = "statements", description = "Agency statements: an agency's orders paid and refunds completed on a business day, as JSON or CSV (role `agency` for its own; admins and auditors name the agency)."),
        (name = "administration", description = "Agencies, banks and keys (role `admin`; auditors may also list agencies and banks)."),
        (name = "obligations", description = "The obligation catalog: what orders may pay for and the schema of their `details` (any key lists; role `admin` changes)."),
        (name = "cases", description = "Investigation cases: every difference paygate finds, inquiries, and their resolution with a second admin for every money movement."),
        (name = "integration", description = "Integration support: the sandbox bank `SANDBOX`, which pays sandbox orders through the real callback code, and each agency's and bank's conformance checklist."),
        (name = "audit", description = "The audit trail of operator actions and its hash chain (roles `auditor`, `admin`)."),
        (name = "operations", description = "Health, readiness, metrics and this document; no key needed."),
    )
)]
struct ApiDoc;

/// The document, complete with security schemes and the error answers every operation shares.
pub fn document() -> OpenApiDocument {
    ApiDoc::openapi()
}

/// The document as it is served and checked in: pretty JSON with a final newline.
pub fn to_json(document: &OpenApiDocument) -> String {
    let mut json = document
        .to_pretty_json()
        .expect("the OpenAPI document serialises");
    json.push('\n');
    json
}

/// Adds the security schemes, and to every operation the error answers that the HTTP layer gives
/// anywhere (so that each handler documents only its own).
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut OpenApiDocument) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key of role admin, auditor or agency: `Authorization: Bearer pgk_...`.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "bank_signature",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Paygate-Signature",
                "`t=<unix seconds>,kid=<key id>,v1=<hex HMAC-SHA256(secret, \"<t>.\" + raw body)>`",
            ))),
        );
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                let public = operation.security.as_ref().is_some_and(|requirements| {
                    requirements.iter().all(|r| *r == Default::default())
                });
                let responses = &mut operation.responses.responses;
                let mut add = |status: &str, description: &str| {
                    responses
                        .entry(status.to_owned())
                        .or_insert_with(|| problem(description));
                };
                if operation.request_body.is_some() {
                    add("400", "`malformed_json`: the body is not JSON");
                    add("413", "`payload_too_large`: the body is over 1 MiB");
                }
                if !public {
                    add("401", "`unauthenticated`: no API key, or an unknown one");
                    add(
                        "403",
                        "`forbidden`: the key's role may not do this; `agency_disabled`: the key belongs to a disabled agency",
                    );
                }
                add("500", "`internal_error`: the cause is logged, never sent");
                add(
                    "503",
                    "`unavailable`: the database is unreachable; retry later",
                );
            }
        }
    }
}
