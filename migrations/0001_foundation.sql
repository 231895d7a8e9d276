-- Foundation: agencies, banks and their signing keys, API keys.
-- Codes of agencies and banks: ^[A-Z0-9][A-Z0-9._-]{1,31}$.

CREATE TABLE agencies (
    code          text PRIMARY KEY CHECK (code ~ '^[A-Z0-9][A-Z0-9._-]{1,31}$'),
    name          text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 255),
    notify_url    text CHECK (notify_url IS NULL OR notify_url ~ '^https?://'),
    -- The HMAC key for notifications; it must stay readable to sign them.
    notify_secret text NOT NULL CHECK (char_length(notify_secret) >= 32),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE banks (
    code       text PRIMARY KEY CHECK (code ~ '^[A-Z0-9][A-Z0-9._-]{1,31}$'),
    name       text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 255),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- A bank may hold several keys at once (rotation); a revoked key never signs again.
CREATE TABLE bank_keys (
    key_id     text PRIMARY KEY CHECK (key_id ~ '^[A-Za-z0-9._-]{1,64}$'),
    bank_code  text NOT NULL REFERENCES banks (code),
    -- The HMAC key itself: verification needs it in the clear.
    secret     text NOT NULL CHECK (char_length(secret) >= 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
CREATE INDEX bank_keys_bank_code ON bank_keys (bank_code);

-- API keys are stored only as the SHA-256 of the key. Keys carry 256 random bits, so a fast
-- hash is enough: there is nothing to brute-force.
CREATE TABLE api_keys (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key_hash    bytea NOT NULL UNIQUE CHECK (octet_length(key_hash) = 32),
    role        text NOT NULL CHECK (role IN ('admin', 'auditor', 'agency')),
    agency_code text REFERENCES agencies (code),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    CONSTRAINT api_keys_agency_role CHECK ((role = 'agency') = (agency_code IS NOT NULL))
);
