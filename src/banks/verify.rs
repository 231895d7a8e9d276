//! Verifying a bank's signed request (see "Signatures" in `docs/api-guide.md`), over the raw
//! body bytes and before anything is parsed: parse the header, find the path's bank and the key
//! `kid` among that bank's live keys, check the MAC (constant time), then the timestamp.

use actix_web::HttpRequest;
use time::OffsetDateTime;

use crate::checklist::BankStep;
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

/// Returns the verified bank. A rejected signature is counted, logged and marked on the bank's
/// checklist here, so that every signed endpoint reports it alike; so is a request signed with
/// a key the bank received after its first.
pub async fn verify(
    state: &AppState,
    bank_in_path: &str,
    req: &HttpRequest,
    body: &[u8],
) -> Result<BankCode, Rejected> {
    let mut values = req.headers().get_all(HEADER);
    let header = match (values.next(), values.next()) {
        (Some(value), None) => value.to_str().ok(),
        _ => None,
    };
    verify_header(state, bank_in_path, header, body).await
}

/// As [`verify`], with the request's one `Paygate-Signature` value (`None`: missing, repeated
/// or not text).
pub async fn verify_header(
    state: &AppState,
    bank_in_path: &str,
    header: Option<&str>,
    body: &[u8],
) -> Result<BankCode, Rejected> {
    match check(
        state,
        bank_in_path,
        header,
        body,
        state.config.signature_tolerance_s,
    )
    .await
    {
        Ok((bank, rotated)) => {
            if rotated {
                let step = BankStep::KeyRotated;
                state
                    .checklist
                    .note_bank(&state.pool, bank.as_str(), step)
                    .await;
            }
            Ok(bank)
        }
        Err(Rejected::Signature(err)) => {
            let step = match err {
                SignatureError::Expired => BankStep::ExpiredSignatureRejected,
                _ => BankStep::BadSignatureRejected,
            };
            if BankCode::parse(bank_in_path).is_ok() {
                state
                    .checklist
                    .note_bank(&state.pool, bank_in_path, step)
                    .await;
            }
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

/// The verified bank, and whether the key it signed with came after its first.
async fn check(
    state: &AppState,
    bank_in_path: &str,
    header: Option<&str>,
    body: &[u8],
    tolerance_s: u64,
) -> Result<(BankCode, bool), Rejected> {
    let header = SignatureHeader::parse(header.ok_or(SignatureError::Malformed)?)?;
    let bank = BankCode::parse(bank_in_path).map_err(|_| SignatureError::UnknownKey)?;
    let key = state
        .bank_keys
        .key(&state.pool, &bank, &header.kid)
        .await?
        .ok_or(SignatureError::UnknownKey)?;
    header.verify(
        key.secret.as_bytes(),
        body,
        OffsetDateTime::now_utc().unix_timestamp(),
        tolerance_s,
    )?;
    Ok((bank, key.rotated))
}
