-- Payment orders, idempotency keys and the event outbox.

CREATE TABLE payments (
    id              text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
    -- Keyset pagination walks this, newest first.
    seq             bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    agency_code     text NOT NULL REFERENCES agencies (code),
    obligation      text NOT NULL CHECK (obligation IN
                        ('fee', 'tax', 'social_insurance', 'fine', 'electricity', 'court_advance')),
    reference       text NOT NULL CHECK (char_length(reference) BETWEEN 1 AND 64),
    amount          numeric(15, 0) NOT NULL CHECK (amount BETWEEN 1 AND 999999999999999),
    currency        text NOT NULL CHECK (currency = 'VND'),
    description     text NOT NULL CHECK (char_length(description) BETWEEN 1 AND 255),
    payer_name      text NOT NULL CHECK (char_length(payer_name) BETWEEN 1 AND 128),
    payer_id_number text CHECK (char_length(payer_id_number) BETWEEN 1 AND 64),
    -- json, not jsonb: answers keep the fields in the order they were written.
    details         json NOT NULL CHECK (json_typeof(details) = 'object'),
    status          text NOT NULL CHECK (status IN ('pending', 'paid', 'expired', 'cancelled')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    paid_at         timestamptz,
    bank_code       text REFERENCES banks (code),
    bank_txn_id     text,
    -- When the order left `pending` (paid, expired or cancelled).
    closed_at       timestamptz,
    CONSTRAINT payments_expiry_after_creation CHECK (expires_at > created_at),
    CONSTRAINT payments_paid_has_payment CHECK (
        (status = 'paid') = (paid_at IS NOT NULL AND bank_code IS NOT NULL AND bank_txn_id IS NOT NULL)),
    CONSTRAINT payments_closed_when_not_pending CHECK ((status = 'pending') = (closed_at IS NULL))
);

-- A reference belongs to at most one active (pending or paid) order of an agency.
CREATE UNIQUE INDEX payments_active_reference ON payments (agency_code, reference)
    WHERE status IN ('pending', 'paid');
CREATE INDEX payments_agency_seq ON payments (agency_code, seq DESC);
-- The expiry sweep's work queue.
CREATE INDEX payments_pending_expiry ON payments (expires_at) WHERE status = 'pending';

-- Create requests remembered per agency and key. The row is inserted first in the creating
-- transaction, so a concurrent request with the same key waits on it (the primary key) and
-- then replays the stored answer: exactly one order, by construction.
CREATE TABLE idempotency_keys (
    agency_code     text NOT NULL REFERENCES agencies (code),
    key             text NOT NULL CHECK (octet_length(key) BETWEEN 1 AND 255),
    request_sha256  bytea NOT NULL CHECK (octet_length(request_sha256) = 32),
    payment_id      text REFERENCES payments (id),
    response_status smallint,
    -- The exact bytes of the first answer, replayed byte for byte.
    response_body   text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agency_code, key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);

-- The outbox: written in the same transaction as the change it reports; delivered later.
CREATE TABLE events (
    id              text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
    seq             bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    agency_code     text NOT NULL REFERENCES agencies (code),
    payment_id      text NOT NULL REFERENCES payments (id),
    type            text NOT NULL CHECK (type IN ('payment.paid', 'payment.expired', 'payment.cancelled')),
    -- The payment object as it was when the event happened.
    payment         json NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- A delivering replica's claim; others skip the event until it passes.
    locked_until    timestamptz,
    last_error      text,
    delivered_at    timestamptz,
    -- An order is paid, expired or cancelled at most once.
    CONSTRAINT events_once_per_payment_and_type UNIQUE (payment_id, type)
);
CREATE INDEX events_due ON events (next_attempt_at) WHERE status = 'pending';
CREATE INDEX events_agency_seq ON events (agency_code, seq DESC);
