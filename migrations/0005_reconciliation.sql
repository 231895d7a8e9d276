-- Reconciliation runs against banks' daily statements.

CREATE TABLE reconciliation_runs (
    id              text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
    seq             bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    bank_code       text NOT NULL REFERENCES banks (code),
    date            date NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    statement_lines integer NOT NULL CHECK (statement_lines >= 0),
    -- json, not jsonb: the outcomes keep their documented order.
    summary         json NOT NULL,
    by_obligation   json NOT NULL
);
CREATE INDEX reconciliation_runs_bank_date ON reconciliation_runs (bank_code, date, seq DESC);

CREATE TABLE reconciliation_items (
    id               bigint GENERATED ALWAYS AS IDENTITY,
    run_id           text NOT NULL REFERENCES reconciliation_runs (id),
    outcome          text NOT NULL CHECK (outcome IN ('matched', 'recovered', 'missing_in_gateway',
                         'missing_in_bank', 'mismatch', 'duplicate_in_statement', 'invalid_line')),
    line             integer,
    bank_txn_id      text,
    payment_id       text,
    statement_amount numeric(15, 0),
    gateway_amount   numeric(15, 0),
    -- The obligation whose agency account the money was credited to (matched and recovered
    -- items that did not go to suspense), for the run's by_obligation totals.
    obligation       text,
    detail           text,
    -- A run has up to millions of items: one index for paging them all in order, and a
    -- small one for the differences (everything but `matched`), which auditors page by outcome.
    PRIMARY KEY (run_id, id)
);
CREATE INDEX reconciliation_items_differences ON reconciliation_items (run_id, id)
    WHERE outcome <> 'matched';

-- Bank transactions that some run matched or recovered: a later run of another day does not
-- report them missing (a timing difference, not a gap).
CREATE TABLE reconciled_transactions (
    bank_code   text NOT NULL REFERENCES banks (code),
    bank_txn_id text NOT NULL,
    run_id      text NOT NULL REFERENCES reconciliation_runs (id),
    PRIMARY KEY (bank_code, bank_txn_id)
);
