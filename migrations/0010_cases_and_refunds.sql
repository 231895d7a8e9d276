-- Investigation cases ("tra soát") and refunds with four-eyes approval; the ledger postings that
-- move money back to a payer or from suspense to an order; refund events to agencies.

-- Something a person must look at. paygate opens one by itself per (kind, bank, bank_txn_id)
-- for exceptions and reconciliation differences; agencies, admins and auditors open inquiries.
CREATE TABLE cases (
    id              text PRIMARY KEY CHECK (id ~ '^cas_[A-Za-z0-9_-]{1,60}$'),
    -- Keyset pagination walks this, newest first.
    seq             bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    kind            text NOT NULL CHECK (kind IN ('double_payment', 'order_closed',
                        'payment_not_found', 'amount_mismatch', 'missing_in_gateway',
                        'missing_in_bank', 'mismatch', 'inquiry')),
    status          text NOT NULL DEFAULT 'open'
                        CHECK (status IN ('open', 'pending_approval', 'resolving', 'resolved')),
    agency_code     text REFERENCES agencies (code),
    bank_code       text REFERENCES banks (code),
    bank_txn_id     text CHECK (char_length(bank_txn_id) BETWEEN 1 AND 64),
    -- Not a foreign key: a `payment_not_found` case names an order that does not exist.
    payment_id      text CHECK (char_length(payment_id) BETWEEN 1 AND 64),
    amount          numeric(15, 0) CHECK (amount >= 0),
    -- The money of `double_payment` and `order_closed` cases sits in suspense:<BANK> until the
    -- case is resolved by a refund or an apply.
    in_suspense     boolean NOT NULL GENERATED ALWAYS AS
                        (kind IN ('double_payment', 'order_closed')) STORED,
    -- What opened it: the callback exception, or the reconciliation run.
    exception_id    bigint REFERENCES callback_exceptions (id),
    run_id          text REFERENCES reconciliation_runs (id),
    -- An inquiry's first message.
    message         text CHECK (char_length(message) BETWEEN 1 AND 2000),
    opened_at       timestamptz NOT NULL DEFAULT now(),
    -- The actor as the API shows it: {"key_id","role","agency","label","via"}.
    opened_by       jsonb NOT NULL CHECK (jsonb_typeof(opened_by) = 'object'),
    -- The resolution, once one is chosen (an `apply` waiting for approval has one with no
    -- approver; a rejected apply or a refund that failed or was rejected clears it).
    resolution      text CHECK (resolution IN
                        ('refund', 'apply', 'no_action', 'matched_later', 'paid')),
    resolved_at     timestamptz,
    resolved_by     jsonb,
    resolution_note text CHECK (char_length(resolution_note) BETWEEN 1 AND 2000),
    -- `apply`: the pending order that receives the money.
    applied_payment_id text REFERENCES payments (id),
    -- `refund`: the suspense refund (a foreign key is added below, once refunds exist).
    refund_id       text,
    approved_by     jsonb,
    CONSTRAINT cases_money_needs_bank CHECK (NOT in_suspense
        OR (bank_code IS NOT NULL AND bank_txn_id IS NOT NULL AND amount IS NOT NULL
            AND payment_id IS NOT NULL)),
    CONSTRAINT cases_resolution_complete CHECK ((resolution IS NULL)
        = (resolved_at IS NULL AND resolved_by IS NULL)),
    CONSTRAINT cases_status_matches_resolution CHECK (CASE status
        WHEN 'open' THEN resolution IS NULL
        WHEN 'pending_approval' THEN resolution = 'apply' AND approved_by IS NULL
        WHEN 'resolving' THEN resolution = 'refund' AND refund_id IS NOT NULL
        ELSE resolution IS NOT NULL END),
    -- Money in suspense leaves only by a refund or an apply, never by a note.
    CONSTRAINT cases_suspense_needs_money_resolution CHECK (NOT in_suspense
        OR resolution IS NULL OR resolution IN ('refund', 'apply')),
    CONSTRAINT cases_apply_names_order
        CHECK (coalesce(resolution = 'apply', false) = (applied_payment_id IS NOT NULL)),
    CONSTRAINT cases_refund_names_refund
        CHECK (coalesce(resolution = 'refund', false) = (refund_id IS NOT NULL)),
    CONSTRAINT cases_apply_resolved_when_approved
        CHECK (status <> 'resolved' OR resolution <> 'apply' OR approved_by IS NOT NULL)
);
-- At most one case per difference: a redelivered callback or a rerun opens nothing new.
CREATE UNIQUE INDEX cases_one_per_bank_txn ON cases (kind, bank_code, bank_txn_id)
    WHERE kind <> 'inquiry';
CREATE INDEX cases_status_seq ON cases (status, seq DESC);
CREATE INDEX cases_agency_seq ON cases (agency_code, seq DESC) WHERE agency_code IS NOT NULL;
CREATE INDEX cases_payment ON cases (payment_id) WHERE payment_id IS NOT NULL;
-- An open `missing_in_bank` case resolves itself when a later run matches its bank_txn_id, and
-- an open inquiry when its order is paid: both are found by these.
CREATE INDEX cases_open_by_bank_txn ON cases (bank_code, bank_txn_id) WHERE status = 'open';
-- An order is applied from at most one case.
CREATE UNIQUE INDEX cases_one_apply_per_order ON cases (applied_payment_id)
    WHERE applied_payment_id IS NOT NULL;

CREATE TABLE case_notes (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    case_id text NOT NULL REFERENCES cases (id),
    at      timestamptz NOT NULL DEFAULT now(),
    by      jsonb NOT NULL CHECK (jsonb_typeof(by) = 'object'),
    message text NOT NULL CHECK (char_length(message) BETWEEN 1 AND 2000)
);
CREATE INDEX case_notes_case ON case_notes (case_id, id);

-- Money going back to a payer: `payment` (an agency refunds a paid order, in full or in part)
-- or `suspense` (a case's money in suspense). Nothing is posted before the bank reports it
-- completed.
CREATE TABLE refunds (
    id             text PRIMARY KEY CHECK (id ~ '^rfd_[A-Za-z0-9_-]{1,60}$'),
    seq            bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    kind           text NOT NULL CHECK (kind IN ('payment', 'suspense')),
    payment_id     text NOT NULL REFERENCES payments (id),
    case_id        text REFERENCES cases (id),
    agency_code    text NOT NULL REFERENCES agencies (code),
    bank_code      text NOT NULL REFERENCES banks (code),
    bank_txn_id    text NOT NULL CHECK (char_length(bank_txn_id) BETWEEN 1 AND 64),
    amount         numeric(15, 0) NOT NULL CHECK (amount BETWEEN 1 AND 999999999999999),
    currency       text NOT NULL DEFAULT 'VND' CHECK (currency = 'VND'),
    reason         text NOT NULL CHECK (char_length(reason) BETWEEN 1 AND 255),
    status         text NOT NULL DEFAULT 'pending_approval' CHECK (status IN
                       ('pending_approval', 'rejected', 'approved', 'completed', 'failed')),
    requested_by   jsonb NOT NULL CHECK (jsonb_typeof(requested_by) = 'object'),
    created_at     timestamptz NOT NULL DEFAULT now(),
    approved_by    jsonb,
    approved_at    timestamptz,
    rejected_by    jsonb,
    rejected_at    timestamptz,
    rejection_reason text CHECK (char_length(rejection_reason) BETWEEN 1 AND 255),
    completed_at   timestamptz,
    bank_refund_id text CHECK (char_length(bank_refund_id) BETWEEN 1 AND 64),
    failure_reason text CHECK (char_length(failure_reason) BETWEEN 1 AND 255),
    -- The bank's result as it first reported it (a different later result is a conflict).
    result_at      timestamptz,
    -- The instruction to the bank (`refund.requested`), delivered like an agency notification:
    -- leased, retried on the notification schedule, at least once.
    instruction_id     text UNIQUE CHECK (instruction_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    delivery_status    text CHECK (delivery_status IN ('pending', 'delivered', 'dead')),
    attempts           integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    schedule_attempts  integer NOT NULL DEFAULT 0 CHECK (schedule_attempts >= 0),
    next_attempt_at    timestamptz,
    locked_until       timestamptz,
    last_error         text,
    delivered_at       timestamptz,
    CONSTRAINT refunds_case_iff_suspense CHECK ((kind = 'suspense') = (case_id IS NOT NULL)),
    CONSTRAINT refunds_approval_complete CHECK ((approved_at IS NULL) = (approved_by IS NULL)),
    CONSTRAINT refunds_rejection_complete CHECK ((rejected_at IS NULL) = (rejected_by IS NULL)),
    CONSTRAINT refunds_status_matches CHECK (CASE status
        WHEN 'pending_approval' THEN approved_at IS NULL AND rejected_at IS NULL
        WHEN 'rejected' THEN rejected_at IS NOT NULL AND approved_at IS NULL
        WHEN 'approved' THEN approved_at IS NOT NULL AND result_at IS NULL
        WHEN 'completed' THEN approved_at IS NOT NULL AND result_at IS NOT NULL
                              AND completed_at IS NOT NULL AND bank_refund_id IS NOT NULL
        ELSE approved_at IS NOT NULL AND result_at IS NOT NULL END),
    -- An approved refund has an instruction to deliver.
    CONSTRAINT refunds_instruction_when_approved CHECK ((approved_at IS NULL)
        = (instruction_id IS NULL AND delivery_status IS NULL))
);
-- A case's money goes back at most once at a time: one live refund per case.
CREATE UNIQUE INDEX refunds_one_live_per_case ON refunds (case_id)
    WHERE case_id IS NOT NULL AND status NOT IN ('rejected', 'failed');
CREATE INDEX refunds_payment ON refunds (payment_id);
CREATE INDEX refunds_agency_seq ON refunds (agency_code, seq DESC);
CREATE INDEX refunds_status_seq ON refunds (status, seq DESC);
-- The delivery worker's queue.
CREATE INDEX refunds_instructions_due ON refunds (next_attempt_at) WHERE delivery_status = 'pending';

ALTER TABLE cases ADD CONSTRAINT cases_refund_fkey FOREIGN KEY (refund_id) REFERENCES refunds (id);

-- What each paid order has given back. `refund_reserved` counts every refund that is not
-- rejected or failed, so that concurrent requests can never together exceed the order's amount
-- (each request adds to it under the order's row lock, and the check refuses the excess);
-- `refunded_amount` counts the completed ones.
ALTER TABLE payments
    ADD COLUMN refund_reserved numeric(15, 0) NOT NULL DEFAULT 0,
    ADD COLUMN refunded_amount numeric(15, 0) NOT NULL DEFAULT 0,
    ADD CONSTRAINT payments_refunds_within_amount
        CHECK (refund_reserved >= 0 AND refund_reserved <= amount),
    ADD CONSTRAINT payments_refunded_within_reserved
        CHECK (refunded_amount >= 0 AND refunded_amount <= refund_reserved);

-- The ledger learns three postings that no callback makes: a completed payment refund
-- (`refund`), a completed suspense refund (`suspense_refund`) and an approved apply (`apply`).
-- Each is posted exactly once: the unique refund and case columns.
ALTER TABLE ledger_transactions
    DROP CONSTRAINT ledger_transactions_kind_check,
    ADD CONSTRAINT ledger_transactions_kind_check
        CHECK (kind IN ('payment', 'suspense', 'refund', 'suspense_refund', 'apply')),
    ALTER COLUMN callback_id DROP NOT NULL,
    ADD COLUMN refund_id text CONSTRAINT ledger_transactions_refund_id_key UNIQUE
        REFERENCES refunds (id),
    ADD COLUMN case_id text CONSTRAINT ledger_transactions_case_id_key UNIQUE
        REFERENCES cases (id),
    ADD CONSTRAINT ledger_transactions_one_source CHECK (CASE kind
        WHEN 'apply' THEN case_id IS NOT NULL AND callback_id IS NULL AND refund_id IS NULL
        WHEN 'refund' THEN refund_id IS NOT NULL AND callback_id IS NULL AND case_id IS NULL
        WHEN 'suspense_refund' THEN refund_id IS NOT NULL AND callback_id IS NULL AND case_id IS NULL
        ELSE callback_id IS NOT NULL AND refund_id IS NULL AND case_id IS NULL END);

-- Agencies hear of their payment refunds: `refund.completed` and `refund.failed`, carrying the
-- refund (in the `payment` column, which holds the event's object) instead of the order.
ALTER TABLE events
    DROP CONSTRAINT events_type_check,
    ADD CONSTRAINT events_type_check CHECK (type IN
        ('payment.paid', 'payment.expired', 'payment.cancelled', 'refund.completed', 'refund.failed')),
    DROP CONSTRAINT events_once_per_payment_and_type,
    ADD COLUMN refund_id text REFERENCES refunds (id),
    ADD CONSTRAINT events_refund_iff_refund_type
        CHECK ((refund_id IS NOT NULL) = (type LIKE 'refund.%'));
-- An order is paid, expired or cancelled at most once; a refund completes or fails once.
CREATE UNIQUE INDEX events_once_per_payment_and_type ON events (payment_id, type)
    WHERE refund_id IS NULL;
CREATE UNIQUE INDEX events_once_per_refund ON events (refund_id) WHERE refund_id IS NOT NULL;
