-- Integration support: sandbox agencies and banks, kept apart from live money, and each
-- party's conformance checklist (src/sandbox, src/checklist).

-- A sandbox party is one from its creation: the flag never changes.
ALTER TABLE agencies ADD COLUMN sandbox boolean NOT NULL DEFAULT false;
ALTER TABLE banks ADD COLUMN sandbox boolean NOT NULL DEFAULT false;

CREATE FUNCTION parties_sandbox_is_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.sandbox IS DISTINCT FROM OLD.sandbox THEN
        RAISE EXCEPTION 'whether % is a sandbox party is fixed at its creation', OLD.code
            USING ERRCODE = 'check_violation', CONSTRAINT = 'sandbox_fixed';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER agencies_sandbox_fixed BEFORE UPDATE OF sandbox ON agencies
    FOR EACH ROW EXECUTE FUNCTION parties_sandbox_is_fixed();
CREATE TRIGGER banks_sandbox_fixed BEFORE UPDATE OF sandbox ON banks
    FOR EACH ROW EXECUTE FUNCTION parties_sandbox_is_fixed();

-- An order is a sandbox order exactly when its agency is a sandbox agency: the pair is a foreign
-- key (which replaces the one on the agency's code alone), so that nothing can mix them. Every
-- insert takes the flag from the agency's row.
ALTER TABLE agencies ADD CONSTRAINT agencies_code_sandbox_key UNIQUE (code, sandbox);
ALTER TABLE payments ADD COLUMN sandbox boolean NOT NULL DEFAULT false;
ALTER TABLE payments ADD CONSTRAINT payments_agency_sandbox_fkey
    FOREIGN KEY (agency_code, sandbox) REFERENCES agencies (code, sandbox);
ALTER TABLE payments DROP CONSTRAINT payments_agency_code_fkey;

-- The built-in sandbox bank: in every installation, and without a key, so that nobody can sign
-- as it (paygate acts as it with a key held only in each process's memory). Its list position
-- comes after every bank's, even one restored with its own positions.
SELECT setval(pg_get_serial_sequence('banks', 'seq'),
              (SELECT coalesce(max(seq), 0) + 1 FROM banks), false);
INSERT INTO banks (code, name, sandbox)
VALUES ('SANDBOX', 'Ngân hàng thử nghiệm (sandbox)', true)
ON CONFLICT (code) DO NOTHING;
ALTER TABLE bank_keys ADD CONSTRAINT bank_keys_not_sandbox CHECK (bank_code <> 'SANDBOX');

-- Sandbox money has accounts of its own, prefixed `sandbox:`.
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_account_check;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_account_check CHECK (
    account ~ '^(sandbox:)?(bank|suspense):[A-Z0-9][A-Z0-9._-]{1,31}$'
    OR account ~ '^(sandbox:)?agency:[A-Z0-9][A-Z0-9._-]{1,31}:[a-z][a-z0-9_]{1,31}$');

-- Every transaction balances, has at least two entries, and keeps to one book: all of its
-- accounts are live, or all are sandbox accounts.
CREATE OR REPLACE FUNCTION ledger_check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    tx bigint;
    debits numeric;
    credits numeric;
    entries bigint;
    books bigint;
BEGIN
    IF TG_TABLE_NAME = 'ledger_transactions' THEN
        tx := NEW.id;
    ELSE
        tx := NEW.transaction_id;
    END IF;
    SELECT coalesce(sum(debit), 0), coalesce(sum(credit), 0), count(*),
           count(DISTINCT starts_with(account, 'sandbox:'))
      INTO debits, credits, entries, books
      FROM ledger_entries WHERE transaction_id = tx;
    IF entries < 2 OR debits <> credits THEN
        RAISE EXCEPTION 'ledger transaction % does not balance (debits %, credits %, % entries)',
            tx, debits, credits, entries USING ERRCODE = 'check_violation',
            CONSTRAINT = 'ledger_balanced';
    END IF;
    IF books <> 1 THEN
        RAISE EXCEPTION 'ledger transaction % mixes live and sandbox accounts', tx
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_one_book';
    END IF;
    RETURN NULL;
END $$;

-- The conformance checklists: each step a party has been seen doing, when first and last.
-- A row is written by the transaction in which the step happens (or, for a request that
-- changes nothing else, by a statement of its own); reading a checklist reads these rows only.
CREATE TABLE agency_checklist (
    agency_code text NOT NULL REFERENCES agencies (code),
    step        text NOT NULL CHECK (step IN ('order_created', 'idempotent_replay',
                    'validation_error_seen', 'order_cancelled', 'notification_acknowledged',
                    'redelivery_requested', 'refund_requested', 'inquiry_case_opened')),
    first_at    timestamptz NOT NULL,
    last_at     timestamptz NOT NULL CHECK (last_at >= first_at),
    PRIMARY KEY (agency_code, step)
);

CREATE TABLE bank_checklist (
    bank_code text NOT NULL REFERENCES banks (code),
    step      text NOT NULL CHECK (step IN ('inquiry', 'callback_accepted',
                  'callback_failed_status', 'redelivery_duplicate', 'bad_signature_rejected',
                  'expired_signature_rejected', 'key_rotated', 'refund_result')),
    first_at  timestamptz NOT NULL,
    last_at   timestamptz NOT NULL CHECK (last_at >= first_at),
    PRIMARY KEY (bank_code, step)
);

-- Statements and the console count sandbox orders apart.
CREATE INDEX payments_sandbox_paid ON payments (paid_at) WHERE sandbox AND status = 'paid';
