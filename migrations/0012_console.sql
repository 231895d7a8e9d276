-- The operator console: browser sessions of administrators and auditors, who sign in with
-- their API key.

-- One row per sign-in. The browser holds a random token; only its SHA-256 is stored, so a copy
-- of this table opens no session. Any replica serves any session, since it lives here.
CREATE TABLE console_sessions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_sha256 bytea NOT NULL CONSTRAINT console_sessions_token_key UNIQUE
                     CHECK (octet_length(token_sha256) = 32),
    -- The key signed in with: its revocation ends the session at once, because every request
    -- joins the key and refuses a revoked one.
    key_id       bigint NOT NULL REFERENCES api_keys (id),
    -- The token every form of the session carries (the double submit against cross-site
    -- requests); it is not a secret from the signed-in person.
    csrf         text NOT NULL CHECK (char_length(csrf) BETWEEN 32 AND 64),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    ended_at     timestamptz,
    CONSTRAINT console_sessions_expiry_after_creation CHECK (expires_at > created_at)
);
CREATE INDEX console_sessions_key ON console_sessions (key_id) WHERE ended_at IS NULL;

-- The audit trail names the console as the way an actor reached paygate.
ALTER TABLE audit_log DROP CONSTRAINT audit_log_actor_via_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_actor_via_check
    CHECK (actor_via IN ('api', 'cli', 'console', 'system'));

-- The overview's figures of the day read the orders paid in a time range; without this index
-- they would scan every order ever made.
CREATE INDEX payments_paid_at ON payments (paid_at) WHERE status = 'paid';

-- The overview counts the notifications that failed for good; they are few, so this index stays
-- small where counting them from the events table would read every event ever made.
CREATE INDEX events_dead ON events (seq) WHERE status = 'dead';
