-- Ledger seals: signed blocks that chain the ledger's committed transactions in gap-free ranges,
-- so that a transaction changed behind paygate's back (even by a superuser with the triggers
-- disabled) is found by recomputing the chain and checking the signatures.

CREATE TABLE ledger_seals (
    seq               bigint PRIMARY KEY CHECK (seq >= 1),
    -- The range of ledger transaction ids sealed: each seal starts right after the previous one
    -- ended (the sealer guarantees first = previous last + 1; the unique constraint turns two
    -- sealers racing for the same range into an error instead of a fork).
    first_transaction bigint NOT NULL CHECK (first_transaction >= 1),
    last_transaction  bigint NOT NULL,
    -- How many transactions exist in the range: ids of rolled-back postings leave holes.
    transactions      bigint NOT NULL CHECK (transactions >= 0),
    prev_hash         text NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
    hash              text NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
    sealed_at         timestamptz NOT NULL,
    -- The Ed25519 signature of `hash` and the public key that made it (hex). The private key is
    -- never stored in the database.
    signature         text NOT NULL CHECK (signature ~ '^[0-9a-f]{128}$'),
    public_key        text NOT NULL CHECK (public_key ~ '^[0-9a-f]{64}$'),
    CONSTRAINT ledger_seals_first_transaction UNIQUE (first_transaction),
    CONSTRAINT ledger_seals_range CHECK (last_transaction >= first_transaction)
);

-- Seals are append-only like the ledger they seal.
CREATE TRIGGER ledger_seals_append_only BEFORE UPDATE OR DELETE ON ledger_seals
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_seals_no_truncate BEFORE TRUNCATE ON ledger_seals
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

REVOKE UPDATE, DELETE, TRUNCATE ON ledger_seals FROM paygate_service;
