//! Schemas and examples that exist only to document the API.

use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::payments::model::{Payer, Payment};

/// The body of `POST /v1/payments`. Unknown top-level fields are ignored; unknown `details`
/// fields are rejected.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // Documents the body; the handler validates the JSON field by field.
pub struct CreatePaymentRequest {
    /// fee, tax, social_insurance, fine, electricity or court_advance.
    obligation: String,
    /// The agency's own reference, 1-64 characters; unique among its pending and paid orders.
    reference: String,
    /// Positive whole VND as a string, `^[1-9][0-9]{0,14}$`.
    #[schema(pattern = "^[1-9][0-9]{0,14}$")]
    amount: String,
    /// Optional; only `VND`.
    currency: Option<String>,
    /// 1-255 characters.
    description: String,
    /// `name` 1-128 characters; `id_number` optional (1-64), never logged.
    payer: Payer,
    /// Per obligation: fee `procedure_code` (1-32), `dossier_code` (1-64); tax `tax_code`
    /// (`^[0-9]{10}(-[0-9]{3})?$`), optional `tax_period` (1-32); social_insurance
    /// `insurance_code` (`^[0-9]{10}$`), `period` (`YYYY-MM`); fine `decision_number` (1-64),
    /// optional `violation_date` (`YYYY-MM-DD`); electricity `customer_code`
    /// (`^[A-Z]{2}[A-Z0-9]{11}$`), `billing_period` (`YYYY-MM`); court_advance `case_number`
    /// (1-64), `court_code` (1-32).
    #[schema(value_type = Object)]
    details: Value,
    /// Optional RFC 3339; in the future and at most 30 days ahead. Default: 24 hours after
    /// creation.
    expires_at: Option<String>,
}

/// The body of a bank's payment callback.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // Documents the body; the handler validates the JSON field by field.
pub struct CallbackRequest {
    /// The bank's own transaction id, 1-64 characters, unique per bank.
    bank_txn_id: String,
    payment_id: String,
    /// Positive whole VND as a string.
    #[schema(pattern = "^[1-9][0-9]{0,14}$")]
    amount: String,
    /// Optional, default `VND`.
    currency: Option<String>,
    /// `succeeded` or `failed`.
    status: String,
    /// RFC 3339, required when succeeded; at most 5 minutes in the future.
    paid_at: Option<String>,
    failure_reason: Option<String>,
}

/// One page of payment orders.
#[derive(Serialize, ToSchema)]
pub struct PaymentPage {
    pub items: Vec<Payment>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// A realistic create body for `obligation`.
pub fn create_body(obligation: &str) -> Value {
    let (reference, amount, description, details) = match obligation {
        "fee" => (
            "H12.99-261122-0001",
            "150000",
            "Lệ phí cấp đổi giấy phép lái xe",
            json!({"procedure_code": "1.002804", "dossier_code": "H12.99-261122-0001"}),
        ),
        "tax" => (
            "TCT-2026-000123",
            "2350000",
            "Thuế thu nhập cá nhân quý 3/2026",
            json!({"tax_code": "0101234567-001", "tax_period": "2026-Q3"}),
        ),
        "social_insurance" => (
            "BHXH-0123456789-202611",
            "1875000",
            "Đóng bảo hiểm xã hội tự nguyện tháng 11/2026",
            json!({"insurance_code": "0123456789", "period": "2026-11"}),
        ),
        "fine" => (
            "CSGT-123-QD-XPVPHC",
            "4000000",
            "Nộp phạt vi phạm hành chính giao thông",
            json!({"decision_number": "123/QĐ-XPVPHC", "violation_date": "2026-11-20"}),
        ),
        "electricity" => (
            "EVN-PE01000123456-202611",
            "856400",
            "Tiền điện kỳ tháng 11/2026",
            json!({"customer_code": "PE01000123456", "billing_period": "2026-11"}),
        ),
        _ => (
            "TAND-HN-2026-0456",
            "300000",
            "Tạm ứng án phí dân sự sơ thẩm",
            json!({"case_number": "456/2026/TLST-DS", "court_code": "TAND-HN"}),
        ),
    };
    json!({
        "obligation": obligation,
        "reference": reference,
        "amount": amount,
        "currency": "VND",
        "description": description,
        "payer": {"name": "Nguyễn Văn A", "id_number": "001099012345"},
        "details": details,
        "expires_at": "2026-11-25T10:00:00Z"
    })
}
