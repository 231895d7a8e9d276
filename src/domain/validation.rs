//! What is wrong with an input, field by field: every capability reports invalid input this way,
//! and the HTTP edge sends the list as it is.

use serde::Serialize;
use utoipa::ToSchema;

/// One invalid input field, named by its dotted path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// Dotted path of the field, e.g. `details.tax_code`.
    #[schema(example = "details.tax_code")]
    pub field: String,
    #[schema(example = "must match ^[0-9]{10}(-[0-9]{3})?$")]
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}
