//! The daily report: the orders paid on a business day (Vietnam time).

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use super::engine::business_day;
use super::{parse_date, READERS};
use crate::auth::Principal;
use crate::http::body::Validator;
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::payments::domain::Obligation;

#[derive(Debug, Serialize, ToSchema)]
pub struct Total {
    pub count: i64,
    #[schema(example = "150000")]
    pub amount: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgencyTotal {
    pub agency: String,
    pub count: i64,
    pub amount: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BankTotal {
    pub bank: String,
    pub count: i64,
    pub amount: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DailyReport {
    #[schema(example = "2026-11-22")]
    pub date: String,
    pub totals: Total,
    /// Every obligation, zeros included.
    #[schema(value_type = Object)]
    pub by_obligation: Value,
    pub by_agency: Vec<AgencyTotal>,
    pub by_bank: Vec<BankTotal>,
}

fn text(amount: Decimal) -> String {
    amount.normalize().to_string()
}

/// Orders paid on a business day, in total and by obligation, agency and bank.
#[utoipa::path(get, path = "/v1/reports/daily", tag = "reconciliation",
    params(("date" = String, Query, description = "The business day (Vietnam time), YYYY-MM-DD")),
    responses(
        (status = 200, description = "The report", body = DailyReport),
        (status = 422, description = "`validation_failed`: a missing or invalid date", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn daily(
    principal: Principal,
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    principal.require(READERS)?;
    let mut v = Validator::new();
    let date = match query.get("date") {
        Some(date) => v.check("date", parse_date(date)),
        None => {
            v.error("date", "is required");
            None
        }
    };
    v.finish()?;
    let date = date.expect("validated");
    let (start, end) = business_day(date);
    let mut client = state.pool.get().await?;
    // One snapshot for every total, so that they agree with each other.
    let transaction = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let rows = transaction
        .query(
            "SELECT GROUPING(obligation, agency_code, bank_code) AS level, obligation, agency_code,
                    bank_code, count(*), coalesce(sum(amount), 0)
             FROM payments
             WHERE status = 'paid' AND paid_at >= $1 AND paid_at < $2
             GROUP BY GROUPING SETS ((), (obligation), (agency_code), (bank_code))
             ORDER BY 1, 2, 3, 4",
            &[&start, &end],
        )
        .await?;
    transaction.commit().await?;
    let mut totals = Total {
        count: 0,
        amount: "0".to_owned(),
    };
    let mut by_obligation = Map::new();
    for obligation in Obligation::ALL {
        by_obligation.insert(
            obligation.as_str().to_owned(),
            json!({"count": 0, "amount": "0"}),
        );
    }
    let mut by_agency = Vec::new();
    let mut by_bank = Vec::new();
    for row in &rows {
        let count: i64 = row.get(4);
        let amount: Decimal = row.get(5);
        let obligation: Option<String> = row.get(1);
        let agency: Option<String> = row.get(2);
        let bank: Option<String> = row.get(3);
        match (obligation, agency, bank) {
            (Some(obligation), None, None) => {
                by_obligation.insert(obligation, json!({"count": count, "amount": text(amount)}));
            }
            (None, Some(agency), None) => by_agency.push(AgencyTotal {
                agency,
                count,
                amount: text(amount),
            }),
            (None, None, Some(bank)) => by_bank.push(BankTotal {
                bank,
                count,
                amount: text(amount),
            }),
            _ => {
                totals = Total {
                    count,
                    amount: text(amount),
                }
            }
        }
    }
    Ok(HttpResponse::Ok().json(DailyReport {
        date: date.to_string(),
        totals,
        by_obligation: Value::Object(by_obligation),
        by_agency,
        by_bank,
    }))
}
