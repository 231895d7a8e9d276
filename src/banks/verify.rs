//! Verifying a bank's signed request (see "Signatures" in `docs/api-guide.md`), over the raw
//! body bytes and before anything is parsed: parse the header, find the path's bank and the key
//! `kid` among that bank's live keys, check the MAC (constant time), then the timestamp.

use actix_web::HttpRequest;
use time::OffsetDateTime;

use crate::db::DbError;
use crate::domain::BankCode;
use crate::http::AppState;
use crate::signature::{SignatureError, SignatureHeader, HEADER};
use crate::telemetry::ReasonLabels;

/// Why a signed request was not verified.
#[derive(Debug, thiserror::Error)]
pub enum Rejected {
    /// The signature is missing, malformed, unknown, wrong or outside the tolerance (401).
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// The bank's keys could not be read.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Returns the verified bank. A rejected signature is counted and logged here, so that every
/// signed endpoint reports it alike.
pub async fn verify(
    state: &AppState,
    bank_in_path: &str,
    req: &HttpRequest,
    body: &[u8],
) -> Result<BankCode, Rejected> {
    match check(
        state,
        bank_in_path,
        req,
        body,
        state.config.signature_tolerance_s,
    )
    .await
    {
        Ok(bank) => Ok(bank),
        Err(Rejected::Signature(err)) => {
            state
                .metrics
                .signature_failures
                .get_or_create(&ReasonLabels {
                    reason: err.reason(),
                })
                .inc();
            tracing::warn!(
                bank = bank_in_path,
                reason = err.reason(),
                "bank signature rejected"
            );
            Err(Rejected::Signature(err))
        }
        Err(err @ Rejected::Db(_)) => Err(err),
    }
}

async fn check(
    state: &AppState,
    bank_in_path: &str,
    req: &HttpRequest,
    body: &[u8],
    tolerance_s: u64,
) -> Result<BankCode, Rejected> {
    let mut values = req.headers().get_all(HEADER);
    let value = values.next().ok_or(SignatureError::Malformed)?;
    if values.next().is_some() {
        return Err(SignatureError::Malformed.into());
    }
    let header = SignatureHeader::parse(value.to_str().map_err(|_| SignatureError::Malformed)?)?;
    let bank = BankCode::parse(bank_in_path).map_err(|_| SignatureError::UnknownKey)?;
    let secret = state
        .bank_keys
        .secret(&state.pool, &bank, &header.kid)
        .await?
        .ok_or(SignatureError::UnknownKey)?;
    header.verify(
        secret.as_bytes(),
        body,
        OffsetDateTime::now_utc().unix_timestamp(),
        tolerance_s,
    )?;
    Ok(bank)
}
