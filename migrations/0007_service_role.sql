-- Least privilege: the service connects as `paygate_service`, a role that owns nothing. The
-- role running the migrations owns every table, function and trigger; the service may only
-- read and write rows, and the ledger's tables only grow.
--
-- Roles belong to the whole PostgreSQL cluster. A deployment usually creates this one itself
-- with LOGIN and a password (the Kubernetes manifests let CloudNativePG manage it; the embedded
-- database makes it on start); when it is missing it is made here, unable to log in until an
-- operator allows it. Two databases of one cluster migrating at once may both try to create it:
-- the loser finds it made. An owner without CREATEROLE cannot make it, and is told what to do.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'paygate_service') THEN
        CREATE ROLE paygate_service NOLOGIN;
    END IF;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN
        NULL;
    WHEN insufficient_privilege THEN
        RAISE EXCEPTION 'the role paygate_service does not exist and % may not create it', current_user
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'create it first as a superuser: CREATE ROLE paygate_service LOGIN PASSWORD ''...'' (docs/database.md)';
END $$;

-- Nobody but the owner creates objects in the schema (PostgreSQL 15 and later already revoke
-- this from PUBLIC; older servers do not). A role that may not revoke it gets a warning, not
-- an error.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO paygate_service;

-- Ordinary row access to every table and sequence that exists now...
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO paygate_service;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO paygate_service;

-- ...and to those later migrations create. Default privileges apply to objects created by the
-- role that runs this statement, so migrations must always run as the same owner role.
--
-- THE RULE FOR LATER MIGRATIONS: a new table gets SELECT, INSERT, UPDATE and DELETE for the
-- service by default. A table that is append-only (ledger, audit trail, seals) must say so in
-- its own migration, beside its CREATE TABLE:
--     REVOKE UPDATE, DELETE, TRUNCATE ON <table> FROM paygate_service;
-- and a test in integration-tests/tests/api/migrations.rs must list it.
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO paygate_service;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO paygate_service;

-- The ledger and the record of every bank transaction that reached it are append-only for the
-- service: a mistake is corrected by a new transaction, never by an edit. The triggers of
-- migration 0003 refuse changes to the ledger even for the owner; without ownership the
-- service can neither drop nor disable them (ALTER TABLE needs ownership), nor bypass them with
-- session_replication_role (a superuser setting).
REVOKE UPDATE, DELETE, TRUNCATE
    ON ledger_transactions, ledger_entries, bank_callbacks, callback_exceptions
    FROM paygate_service;

-- The service reads which migrations are applied (so that a command run with its URL can tell
-- an up-to-date schema from an outdated one) but never records one.
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON schema_migrations FROM paygate_service;
