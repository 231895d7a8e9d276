//! The audit trail: who did what, when, to what, recorded in the same database transaction as
//! the change, in a gap-free hash chain that an outside auditor can recompute
//! (`docs/api-guide.md`, "Audit trail").
//!
//! [`record`] appends one entry. It must be the last statement of the transaction that made
//! the change, right before its commit: it takes an advisory lock that every appender (in every
//! replica) takes, reads the head of the chain, and inserts the next entry. The lock is released
//! only after the commit, when the new head is visible to whoever takes the lock next, so the
//! chain can neither fork nor leave a gap; and since the lock is taken last, its holder never
//! waits for another lock, so it is held for a round trip and cannot deadlock. Should two
//! appenders ever race anyway, the primary key on `seq` turns the race into an error, never into
//! a fork.
//!
//! `store` reads the log (the list and the verification) and `http` serves it; `redact` removes
//! what must never be recorded from an address.

pub mod http;
pub mod redact;
pub mod store;

use deadpool_postgres::Transaction;
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::auth::{Principal, Role};
use crate::db::DbError;
use crate::domain::canonical::{chain_hash, to_canonical, GENESIS_HASH};

/// An arbitrary constant that identifies the audit log's append lock among advisory locks
/// ("paygaud1" in ASCII); the migrations and the ledger's sealer use others.
const APPEND_LOCK_KEY: i64 = 0x7061_7967_6175_6431;

/// How the actor reached paygate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// An HTTP request made with an API key.
    Api,
    /// A `paygate` command run by an operator with access to the database.
    Cli,
    /// The operator console, signed in with an API key.
    Console,
    /// paygate itself (a background job).
    System,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Api => "api",
            Via::Cli => "cli",
            Via::Console => "console",
            Via::System => "system",
        }
    }

    fn from_db(value: &str) -> Via {
        match value {
            "api" => Via::Api,
            "cli" => Via::Cli,
            "console" => Via::Console,
            "system" => Via::System,
            other => panic!("the via column is constrained, found {other}"),
        }
    }
}

/// Who did something.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Actor {
    /// The id of the API key (`key_42`), never the key; `null` for the command line and paygate
    /// itself.
    #[schema(example = "key_42", required = true)]
    pub key_id: Option<String>,
    /// `admin`, `auditor` or `agency` for a key; `admin` for the command line; `system` for
    /// paygate itself.
    #[schema(example = "admin")]
    pub role: String,
    /// The agency of an `agency` key.
    #[schema(required = true)]
    pub agency: Option<String>,
    /// The key's label; for the command line, the operating-system user who ran it.
    #[schema(example = "Nguyễn Văn A, quản trị", required = true)]
    pub label: Option<String>,
    pub via: Via,
    /// The request id of an API request (not part of the actor in an entry; see
    /// [`AuditEntry::request_id`]).
    #[serde(skip)]
    pub request_id: Option<String>,
}

impl Actor {
    /// The caller of an API request.
    pub fn api(principal: &Principal) -> Actor {
        Actor {
            key_id: Some(principal.key_id.clone()),
            role: principal.role.as_str().to_owned(),
            agency: principal
                .agency
                .as_ref()
                .map(|code| code.as_str().to_owned()),
            label: principal.label.clone(),
            via: Via::Api,
            request_id: principal.request_id.clone(),
        }
    }

    /// A person signed in to the operator console with the key `principal`: the same identity
    /// as the key's API requests, reached through the console.
    pub fn console(principal: &Principal) -> Actor {
        Actor {
            via: Via::Console,
            ..Actor::api(principal)
        }
    }

    /// An operator at the command line, who has the database's credentials and so acts as an
    /// admin; named by the operating-system user, when the environment tells it.
    pub fn command_line() -> Actor {
        let user = std::env::var("USER")
            .ok()
            .filter(|user| !user.is_empty())
            .map(|user| user.chars().take(crate::auth::LABEL_MAX_CHARS).collect());
        Actor {
            key_id: None,
            role: Role::Admin.as_str().to_owned(),
            agency: None,
            label: user,
            via: Via::Cli,
            request_id: None,
        }
    }

    /// paygate itself, e.g. a background job.
    pub fn system() -> Actor {
        Actor {
            key_id: None,
            role: "system".to_owned(),
            agency: None,
            label: None,
            via: Via::System,
            request_id: None,
        }
    }
}

/// What was done: the dotted names of the audit trail. Every name the trail may hold is listed,
/// so that the list's `action` filter can refuse a name that can never match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    AgencyCreate,
    AgencyUpdate,
    AgencyKeyCreate,
    AgencyNotifySecretRotate,
    BankCreate,
    BankUpdate,
    BankKeyCreate,
    BankKeyRevoke,
    ApiKeyCreate,
    ApiKeyRevoke,
    EventRedeliver,
    ReconciliationRun,
    CaseOpen,
    CaseNote,
    CaseResolve,
    RefundRequest,
    RefundApprove,
    RefundReject,
    ObligationCreate,
    ObligationUpdate,
    ConsoleSignIn,
    ConsoleSignOut,
}

impl Action {
    pub const ALL: [Action; 22] = [
        Action::AgencyCreate,
        Action::AgencyUpdate,
        Action::AgencyKeyCreate,
        Action::AgencyNotifySecretRotate,
        Action::BankCreate,
        Action::BankUpdate,
        Action::BankKeyCreate,
        Action::BankKeyRevoke,
        Action::ApiKeyCreate,
        Action::ApiKeyRevoke,
        Action::EventRedeliver,
        Action::ReconciliationRun,
        Action::CaseOpen,
        Action::CaseNote,
        Action::CaseResolve,
        Action::RefundRequest,
        Action::RefundApprove,
        Action::RefundReject,
        Action::ObligationCreate,
        Action::ObligationUpdate,
        Action::ConsoleSignIn,
        Action::ConsoleSignOut,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::AgencyCreate => "agency.create",
            Action::AgencyUpdate => "agency.update",
            Action::AgencyKeyCreate => "agency.key.create",
            Action::AgencyNotifySecretRotate => "agency.notify_secret.rotate",
            Action::BankCreate => "bank.create",
            Action::BankUpdate => "bank.update",
            Action::BankKeyCreate => "bank.key.create",
            Action::BankKeyRevoke => "bank.key.revoke",
            Action::ApiKeyCreate => "api_key.create",
            Action::ApiKeyRevoke => "api_key.revoke",
            Action::EventRedeliver => "event.redeliver",
            Action::ReconciliationRun => "reconciliation.run",
            Action::CaseOpen => "case.open",
            Action::CaseNote => "case.note",
            Action::CaseResolve => "case.resolve",
            Action::RefundRequest => "refund.request",
            Action::RefundApprove => "refund.approve",
            Action::RefundReject => "refund.reject",
            Action::ObligationCreate => "obligation.create",
            Action::ObligationUpdate => "obligation.update",
            Action::ConsoleSignIn => "console.sign_in",
            Action::ConsoleSignOut => "console.sign_out",
        }
    }

    /// The action named `value`.
    pub fn parse(value: &str) -> Option<Action> {
        Action::ALL
            .into_iter()
            .find(|action| action.as_str() == value)
    }
}

/// One entry of the audit trail, exactly as the API returns it and as its hash covers it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditEntry {
    /// `aud_` and the seq in 16 hex digits.
    #[schema(example = "aud_000000000000002a")]
    pub id: String,
    /// 1, 2, 3, ... without gaps.
    #[schema(example = 42)]
    pub seq: i64,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    pub actor: Actor,
    #[schema(example = "agency.update")]
    pub action: String,
    /// What was acted on: `agency:<code>`, `bank:<code>`, `bank:<code>/key:<kid>`,
    /// `api_key:key_<n>`, `event:<id>`, `reconciliation:<run id>`.
    #[schema(example = "agency:000.00.00.H12")]
    pub target: String,
    /// What changed; never a secret, a key or an `id_number`.
    #[schema(value_type = Object, example = json!({"disabled": true}))]
    pub detail: Value,
    /// The `X-Request-Id` of the API request; `null` otherwise.
    #[schema(example = "req_5c1f0a9e3b7d2468", required = true)]
    pub request_id: Option<String>,
    /// Lowercase hex SHA-256 of `prev_hash` followed by the canonical JSON of this entry
    /// without `hash`.
    pub hash: String,
    /// The previous entry's `hash`; 64 zeros for the first entry.
    pub prev_hash: String,
}

impl AuditEntry {
    /// The hash this entry should carry: its canonical JSON without `hash`, chained to its
    /// `prev_hash`.
    pub fn computed_hash(&self) -> String {
        let mut document = serde_json::to_value(self).expect("an entry serialises");
        document
            .as_object_mut()
            .expect("an entry is an object")
            .remove("hash");
        chain_hash(&self.prev_hash, &to_canonical(&document))
    }

    /// The id of the entry numbered `seq`.
    pub fn id_of(seq: i64) -> String {
        format!("aud_{seq:016x}")
    }

    pub(crate) fn from_row(row: &tokio_postgres::Row) -> AuditEntry {
        AuditEntry {
            id: row.get("id"),
            seq: row.get("seq"),
            at: row.get("at"),
            actor: Actor {
                key_id: row.get("actor_key_id"),
                role: row.get("actor_role"),
                agency: row.get("actor_agency"),
                label: row.get("actor_label"),
                via: Via::from_db(row.get("actor_via")),
                request_id: None,
            },
            action: row.get("action"),
            target: row.get("target"),
            detail: row.get("detail"),
            request_id: row.get("request_id"),
            hash: row.get("hash"),
            prev_hash: row.get("prev_hash"),
        }
    }
}

/// The columns every read of an entry selects, in the names [`AuditEntry::from_row`] reads.
pub(crate) const ENTRY_COLUMNS: &str = "seq, id, at, actor_key_id, actor_role, actor_agency, \
    actor_label, actor_via, action, target, detail, request_id, prev_hash, hash";

/// Appends one entry to the audit trail inside `transaction`, which made the change it
/// describes. Call it as the LAST statement before the commit (see the module's documentation):
/// the commit then publishes the change and its entry together, or neither.
///
/// `detail` is a small object of what changed. It must never hold a secret, an API key or an
/// `id_number`, and it holds only strings, integers, booleans, null, arrays and objects (a
/// fraction would not survive the canonical form unchanged).
pub async fn record(
    transaction: &Transaction<'_>,
    actor: &Actor,
    action: Action,
    target: &str,
    detail: Value,
) -> Result<AuditEntry, DbError> {
    assert!(detail.is_object(), "an audit detail is a JSON object");
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&APPEND_LOCK_KEY])
        .await?;
    // A statement of its own, after the lock: at READ COMMITTED it takes a new snapshot, which
    // holds the previous appender's commit (it released the lock only after committing).
    let head = transaction
        .query_one(
            "SELECT (SELECT seq FROM audit_log ORDER BY seq DESC LIMIT 1),
                    (SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1),
                    date_trunc('microseconds', clock_timestamp())",
            &[],
        )
        .await?;
    let seq = head.get::<_, Option<i64>>(0).unwrap_or(0) + 1;
    let prev_hash = head
        .get::<_, Option<String>>(1)
        .unwrap_or_else(|| GENESIS_HASH.to_owned());
    let mut entry = AuditEntry {
        id: AuditEntry::id_of(seq),
        seq,
        at: head.get(2),
        actor: actor.clone(),
        action: action.as_str().to_owned(),
        target: target.to_owned(),
        detail,
        request_id: actor.request_id.clone(),
        hash: String::new(),
        prev_hash,
    };
    entry.hash = entry.computed_hash();
    transaction
        .execute(
            "INSERT INTO audit_log (seq, id, at, actor_key_id, actor_role, actor_agency,
                 actor_label, actor_via, action, target, detail, request_id, prev_hash, hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            &[
                &entry.seq,
                &entry.id,
                &entry.at,
                &entry.actor.key_id,
                &entry.actor.role,
                &entry.actor.agency,
                &entry.actor.label,
                &entry.actor.via.as_str(),
                &entry.action,
                &entry.target,
                &entry.detail,
                &entry.request_id,
                &entry.prev_hash,
                &entry.hash,
            ],
        )
        .await?;
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_name_reads_back_as_itself() {
        for action in Action::ALL {
            assert_eq!(Action::parse(action.as_str()), Some(action));
        }
        for other in [
            "",
            "agency",
            "Agency.create",
            "agency.create ",
            "case.close",
        ] {
            assert_eq!(Action::parse(other), None, "{other}");
        }
    }

    #[test]
    fn an_entry_hash_covers_every_field_but_itself() {
        let entry = AuditEntry {
            id: AuditEntry::id_of(42),
            seq: 42,
            at: time::macros::datetime!(2026-12-02 08:30:00.123456 UTC),
            actor: Actor::system(),
            action: "agency.update".to_owned(),
            target: "agency:000.00.00.H12".to_owned(),
            detail: serde_json::json!({"name": "Sở Tư pháp", "disabled": true}),
            request_id: None,
            hash: "ignored".to_owned(),
            prev_hash: "ab".repeat(32),
        };
        assert_eq!(entry.id, "aud_000000000000002a");
        let canonical = concat!(
            r#"{"action":"agency.update","actor":{"agency":null,"key_id":null,"label":null,"#,
            r#""role":"system","via":"system"},"at":"2026-12-02T08:30:00.123456Z","#,
            r#""detail":{"disabled":true,"name":"Sở Tư pháp"},"id":"aud_000000000000002a","#,
            r#""prev_hash":"abababababababababababababababababababababababababababababababab","#,
            r#""request_id":null,"seq":42,"target":"agency:000.00.00.H12"}"#
        );
        assert_eq!(
            entry.computed_hash(),
            chain_hash(&entry.prev_hash, canonical)
        );
    }
}
