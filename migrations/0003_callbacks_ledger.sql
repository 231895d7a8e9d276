-- Bank callbacks and the double-entry ledger.

-- Every callback that moved money or recorded a failed attempt. Its (bank, bank_txn_id) is
-- reserved for ever: a redelivery finds it here.
CREATE TABLE bank_callbacks (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bank_code      text NOT NULL REFERENCES banks (code),
    bank_txn_id    text NOT NULL CHECK (char_length(bank_txn_id) BETWEEN 1 AND 64),
    payment_id     text NOT NULL REFERENCES payments (id),
    amount         numeric(15, 0) NOT NULL CHECK (amount BETWEEN 1 AND 999999999999999),
    currency       text NOT NULL,
    status         text NOT NULL CHECK (status IN ('succeeded', 'failed')),
    paid_at        timestamptz,
    failure_reason text,
    -- paid: the order became paid; exception: the money went to suspense; failed: recorded only.
    outcome        text NOT NULL CHECK (outcome IN ('paid', 'exception', 'failed')),
    exception      text CHECK (exception IN ('double_payment', 'order_closed')),
    -- callback: sent by the bank; reconciliation: applied from a statement line.
    source         text NOT NULL DEFAULT 'callback' CHECK (source IN ('callback', 'reconciliation')),
    received_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT bank_callbacks_bank_txn UNIQUE (bank_code, bank_txn_id),
    CONSTRAINT bank_callbacks_exception_named CHECK ((outcome = 'exception') = (exception IS NOT NULL)),
    CONSTRAINT bank_callbacks_money_has_time CHECK (status = 'failed' OR paid_at IS NOT NULL),
    CONSTRAINT bank_callbacks_outcome_matches_status CHECK ((outcome = 'failed') = (status = 'failed'))
);
-- At most one callback pays an order: the rest of the money is an exception.
CREATE UNIQUE INDEX bank_callbacks_one_paid_per_payment ON bank_callbacks (payment_id)
    WHERE outcome = 'paid';
CREATE INDEX bank_callbacks_bank_paid_at ON bank_callbacks (bank_code, paid_at)
    WHERE outcome IN ('paid', 'exception');

-- What auditors investigate: callbacks whose money went to suspense, and callbacks rejected
-- (unknown order, amount or currency mismatch) that are kept although they changed nothing.
CREATE TABLE callback_exceptions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bank_code   text NOT NULL REFERENCES banks (code),
    bank_txn_id text NOT NULL,
    payment_id  text NOT NULL,
    amount      numeric(15, 0) NOT NULL,
    currency    text NOT NULL,
    paid_at     timestamptz,
    reason      text NOT NULL CHECK (reason IN
                    ('double_payment', 'order_closed', 'payment_not_found', 'amount_mismatch')),
    -- Set when the money was taken into suspense.
    callback_id bigint UNIQUE REFERENCES bank_callbacks (id),
    detail      text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX callback_exceptions_bank ON callback_exceptions (bank_code, id DESC);

CREATE TABLE ledger_transactions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('payment', 'suspense')),
    -- Each bank transaction is posted at most once, ever.
    callback_id bigint NOT NULL UNIQUE REFERENCES bank_callbacks (id),
    payment_id  text NOT NULL REFERENCES payments (id),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ledger_entries (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id bigint NOT NULL REFERENCES ledger_transactions (id),
    account        text NOT NULL CHECK (account ~ '^(bank|suspense):[A-Z0-9][A-Z0-9._-]{1,31}$'
                       OR account ~ '^agency:[A-Z0-9][A-Z0-9._-]{1,31}:[a-z_]+$'),
    debit          numeric(17, 0) NOT NULL CHECK (debit >= 0),
    credit         numeric(17, 0) NOT NULL CHECK (credit >= 0),
    CONSTRAINT ledger_entries_one_side CHECK ((debit = 0) <> (credit = 0))
);
CREATE INDEX ledger_entries_transaction ON ledger_entries (transaction_id);
CREATE INDEX ledger_entries_account ON ledger_entries (account);

-- The ledger is append-only: history is corrected by new transactions, never by edits.
CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER ledger_transactions_append_only BEFORE UPDATE OR DELETE ON ledger_transactions
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_transactions_no_truncate BEFORE TRUNCATE ON ledger_transactions
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

-- Every transaction balances and has at least two entries, checked when the database
-- transaction that wrote it commits (entries are inserted after their transaction row).
CREATE FUNCTION ledger_check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    tx bigint;
    debits numeric;
    credits numeric;
    entries bigint;
BEGIN
    IF TG_TABLE_NAME = 'ledger_transactions' THEN
        tx := NEW.id;
    ELSE
        tx := NEW.transaction_id;
    END IF;
    SELECT coalesce(sum(debit), 0), coalesce(sum(credit), 0), count(*)
      INTO debits, credits, entries
      FROM ledger_entries WHERE transaction_id = tx;
    IF entries < 2 OR debits <> credits THEN
        RAISE EXCEPTION 'ledger transaction % does not balance (debits %, credits %, % entries)',
            tx, debits, credits, entries USING ERRCODE = 'check_violation',
            CONSTRAINT = 'ledger_balanced';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER ledger_transactions_balanced AFTER INSERT ON ledger_transactions
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_balanced();
CREATE CONSTRAINT TRIGGER ledger_entries_balanced AFTER INSERT ON ledger_entries
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_balanced();
