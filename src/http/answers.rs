//! The problem answers that several operations document alike, named once so that each
//! handler's `responses(...)` lists them by name and their wording cannot drift apart.

use std::collections::BTreeMap;

use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::IntoResponses;

/// A documented problem answer: `application/problem+json` with the `Problem` schema.
pub fn problem(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(RefOr::Ref(Ref::from_schema_name("Problem"))))
                .build(),
        )
        .build()
        .into()
}

/// Declares unit types that document one problem answer each, for `responses(...)`.
macro_rules! problem_answers {
    ($($(#[$doc:meta])* $name:ident = $status:literal, $description:literal;)*) => {
        $(
            $(#[$doc])*
            pub struct $name;

            impl IntoResponses for $name {
                fn responses() -> BTreeMap<String, RefOr<Response>> {
                    BTreeMap::from([($status.to_string(), problem($description))])
                }
            }
        )*
    };
}

problem_answers! {
    /// 422 for a body with invalid fields.
    ValidationFailed = 422, "`validation_failed`";
    /// 422 for a list without filters whose page is invalid.
    InvalidPage = 422, "`validation_failed`: an invalid `limit` or `cursor`";
    /// 422 for a list whose filters or page are invalid.
    InvalidFilter = 422, "`validation_failed`: an invalid filter";
    AgencyNotFound = 404, "`agency_not_found`";
    BankNotFound = 404, "`bank_not_found`";
    KeyNotFound = 404, "`key_not_found`";
    PaymentNotFound = 404, "`payment_not_found`";
    ReconciliationNotFound = 404, "`reconciliation_not_found`";
    DuplicateCode = 409, "`duplicate_code`";
}
