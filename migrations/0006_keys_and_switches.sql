-- Keys and switches: labelled, listable and revocable API keys; notification secret rotation;
-- agencies and banks that can be disabled; a bank's refund address; lists of agencies and banks.

-- Whose key it is, and when it last authenticated a request. `last_used_at` is written at most
-- about once a minute per key (see src/auth/mod.rs), so it is accurate to about a minute and no
-- request pays for a write to a hot row.
ALTER TABLE api_keys
    ADD COLUMN label text
        CONSTRAINT api_keys_label_length CHECK (char_length(label) BETWEEN 1 AND 64),
    ADD COLUMN last_used_at timestamptz;
-- The key list is filtered by role or by agency and walked newest first.
CREATE INDEX api_keys_role_id ON api_keys (role, id DESC);
CREATE INDEX api_keys_agency_id ON api_keys (agency_code, id DESC) WHERE agency_code IS NOT NULL;
-- Revoking an admin key locks the live admin keys; this finds them without a scan.
CREATE INDEX api_keys_live_admins ON api_keys (id) WHERE role = 'admin' AND revoked_at IS NULL;

-- Rotation keeps the secret it replaced for a while, so that notifications carry a second
-- signature made with it and an agency can switch over without losing one.
ALTER TABLE agencies
    ADD COLUMN disabled boolean NOT NULL DEFAULT false,
    ADD COLUMN previous_notify_secret text
        CONSTRAINT agencies_previous_notify_secret_length
        CHECK (char_length(previous_notify_secret) >= 32),
    ADD COLUMN notify_secret_rotated_at timestamptz,
    ADD CONSTRAINT agencies_rotation_complete
        CHECK ((previous_notify_secret IS NULL) = (notify_secret_rotated_at IS NULL)),
    -- Keyset pagination of the agency list walks this, newest first.
    ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY
        CONSTRAINT agencies_seq_key UNIQUE;

ALTER TABLE banks
    ADD COLUMN disabled boolean NOT NULL DEFAULT false,
    ADD COLUMN refund_url text
        CONSTRAINT banks_refund_url_scheme CHECK (refund_url ~ '^https?://'),
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now(),
    -- Keyset pagination of the bank list walks this, newest first.
    ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY
        CONSTRAINT banks_seq_key UNIQUE;

-- A bank's last activity is its last callback, found per listed bank from these indexes at
-- read time (an agency's is its last order, which payments_agency_seq finds), so that no
-- callback or order writes to a shared row. Callbacks that moved money or recorded a failure:
CREATE INDEX bank_callbacks_bank_received ON bank_callbacks (bank_code, id DESC)
    WHERE source = 'callback';
-- and callbacks that were rejected but kept for investigation:
CREATE INDEX callback_exceptions_bank_rejected ON callback_exceptions (bank_code, id DESC)
    WHERE callback_id IS NULL;
