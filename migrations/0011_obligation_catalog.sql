-- The obligation catalog: the kinds of obligation an order may pay, each with the JSON Schema
-- (draft 2020-12) its `details` must satisfy. The six obligations paygate started with become
-- built-in entries whose schemas say exactly what the code checked before; admins add more.

CREATE TABLE obligations (
    code           text PRIMARY KEY CONSTRAINT obligations_code_syntax
                       CHECK (code ~ '^[a-z][a-z0-9_]{1,31}$'),
    -- Listing walks this, oldest first, so the built-ins come first in the order they were named.
    seq            bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    name           text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 128),
    builtin        boolean NOT NULL DEFAULT false,
    -- An inactive entry refuses new orders; its existing orders are unchanged.
    active         boolean NOT NULL DEFAULT true,
    -- The service checks a schema fully before it inserts one; the database holds it to the two
    -- rules everything else relies on: the root is an object schema that admits no other member.
    details_schema jsonb NOT NULL CONSTRAINT obligations_schema_root CHECK (
                       jsonb_typeof(details_schema) = 'object'
                       AND details_schema -> 'type' = '"object"'::jsonb
                       AND details_schema -> 'additionalProperties' = 'false'::jsonb),
    -- The SHA-256 of the schema's text, set by the trigger below. Replicas key the validators they
    -- compile by it, so a cached validator always belongs to exactly this schema.
    schema_digest  text NOT NULL DEFAULT '' CHECK (schema_digest ~ '^([0-9a-f]{64})?$'),
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- A schema never changes once created: orders keep the rules they were validated with, and the
-- validators replicas have compiled never go stale. To change the rules, an admin deactivates the
-- entry and creates another.
CREATE FUNCTION obligations_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.schema_digest := encode(sha256(convert_to(NEW.details_schema::text, 'UTF8')), 'hex');
        RETURN NEW;
    END IF;
    IF NEW.code IS DISTINCT FROM OLD.code
        OR NEW.details_schema IS DISTINCT FROM OLD.details_schema
        OR NEW.schema_digest IS DISTINCT FROM OLD.schema_digest
        OR NEW.builtin IS DISTINCT FROM OLD.builtin
        OR NEW.created_at IS DISTINCT FROM OLD.created_at THEN
        RAISE EXCEPTION 'the code, schema and origin of obligation % never change', OLD.code
            USING ERRCODE = 'integrity_constraint_violation',
                  CONSTRAINT = 'obligations_immutable';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER obligations_guard BEFORE INSERT OR UPDATE ON obligations
    FOR EACH ROW EXECUTE FUNCTION obligations_guard();

-- The built-ins. Lengths count characters (JSON Schema's maxLength counts code points, as the
-- code did); an optional field may also be null, which means "not given".
INSERT INTO obligations (code, name, builtin, details_schema) VALUES
('fee', 'Phí, lệ phí (fees and charges of an administrative procedure)', true, '{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {
    "procedure_code": {"type": "string", "minLength": 1, "maxLength": 32},
    "dossier_code": {"type": "string", "minLength": 1, "maxLength": 64}
  },
  "required": ["procedure_code", "dossier_code"],
  "additionalProperties": false
}'),
('tax', 'Thuế (personal or business tax)', true, '{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {
    "tax_code": {"type": "string", "pattern": "^[0-9]{10}(-[0-9]{3})?$"},
    "tax_period": {"type": ["string", "null"], "minLength": 1, "maxLength": 32}
  },
  "required": ["tax_code"],
  "additionalProperties": false
}'),
('social_insurance', 'Bảo hiểm xã hội, bảo hiểm y tế (social and health insurance contributions)', true, '{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {
    "insurance_code": {"type": "string", "pattern": "^[0-9]{10}$"},
    "period": {"type": "string", "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])$"}
  },
  "required": ["insurance_code", "period"],
  "additionalProperties": false
}'),
('fine', 'Xử phạt vi phạm hành chính (administrative-violation fine)', true, '{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {
    "decision_number": {"type": "string", "minLength": 1, "maxLength": 64},
    "violation_date": {"type": ["string", "null"], "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$", "format": "date"}
  },
  "required": ["decision_number"],
  "additionalProperties": false
}'),
('electricity', 'Tiền điện (electricity bill)', true, '{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {
    "customer_code": {"type": "string", "pattern": "^[A-Z]{2}[A-Z0-9]{11}$"},
    "billing_period": {"type": "string", "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])$"}
  },
  "required": ["customer_code", "billing_period"],
  "additionalProperties": false
}'),
('court_advance', 'Tạm ứng án phí (court-fee advance)', true, '{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {
    "case_number": {"type": "string", "minLength": 1, "maxLength": 64},
    "court_code": {"type": "string", "minLength": 1, "maxLength": 32}
  },
  "required": ["case_number", "court_code"],
  "additionalProperties": false
}');

-- Orders name a catalog entry instead of one of a fixed six.
ALTER TABLE payments DROP CONSTRAINT payments_obligation_check;
ALTER TABLE payments ADD CONSTRAINT payments_obligation_fkey
    FOREIGN KEY (obligation) REFERENCES obligations (code);

-- The obligations an agency may use; NULL: every active one.
ALTER TABLE agencies ADD COLUMN obligations text[];

-- Agencies' ledger accounts end in any catalog code.
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_account_check;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_account_check CHECK (
    account ~ '^(bank|suspense):[A-Z0-9][A-Z0-9._-]{1,31}$'
    OR account ~ '^agency:[A-Z0-9][A-Z0-9._-]{1,31}:[a-z][a-z0-9_]{1,31}$');
