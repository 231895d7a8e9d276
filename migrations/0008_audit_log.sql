-- The audit trail: one row per operator action, written in the same transaction as the change
-- it describes, chained by SHA-256 so that an entry changed, removed or inserted afterwards is
-- found by recomputing the chain (docs/api-guide.md, "Audit trail").

CREATE TABLE audit_log (
    -- 1, 2, 3, ... without gaps: appenders serialise on an advisory lock and take the head's
    -- seq plus one (src/audit/mod.rs), so a gap can only be a deleted entry.
    seq          bigint PRIMARY KEY CONSTRAINT audit_log_seq_positive CHECK (seq > 0),
    id           text NOT NULL CONSTRAINT audit_log_id_key UNIQUE
                     CONSTRAINT audit_log_id_of_seq CHECK (id = 'aud_' || lpad(to_hex(seq), 16, '0')),
    at           timestamptz NOT NULL,
    -- Who: a key's id (never the key) for the API; none for the command line and paygate itself.
    actor_key_id text,
    actor_role   text NOT NULL CHECK (actor_role IN ('admin', 'auditor', 'agency', 'system')),
    actor_agency text,
    actor_label  text,
    actor_via    text NOT NULL CHECK (actor_via IN ('api', 'cli', 'system')),
    action       text NOT NULL CHECK (action ~ '^[a-z_]+(\.[a-z_]+)+$'),
    target       text NOT NULL CHECK (char_length(target) BETWEEN 1 AND 200),
    detail       jsonb NOT NULL CHECK (jsonb_typeof(detail) = 'object'),
    request_id   text,
    prev_hash    text NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
    hash         text NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$')
);
-- The list's filters, each walked newest first (by seq) as the list is.
CREATE INDEX audit_log_action_seq ON audit_log (action, seq DESC);
CREATE INDEX audit_log_key_seq ON audit_log (actor_key_id, seq DESC) WHERE actor_key_id IS NOT NULL;
CREATE INDEX audit_log_target_seq ON audit_log (target, seq DESC);
CREATE INDEX audit_log_at ON audit_log (at);

-- Append-only, even for the owner: history is never edited. A superuser can still disable the
-- triggers; the hash chain is what then exposes the change.
CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();

-- The service may read and append, nothing else (the rule of migration 0007).
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM paygate_service;
