-- Every change to the banks' signing keys is announced on the channel `paygate_bank_keys`, with
-- the bank's code as the payload (`*` for every bank), when its transaction commits. Each
-- paygate process keeps the live keys in memory and forgets a bank's keys when it hears of a
-- change, whichever process or tool made it (src/banks/keys.rs).

CREATE FUNCTION bank_keys_announce_change() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('paygate_bank_keys', '*');
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('paygate_bank_keys', OLD.bank_code);
    ELSE
        PERFORM pg_notify('paygate_bank_keys', NEW.bank_code);
        IF TG_OP = 'UPDATE' AND NEW.bank_code IS DISTINCT FROM OLD.bank_code THEN
            PERFORM pg_notify('paygate_bank_keys', OLD.bank_code);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER bank_keys_announce_change AFTER INSERT OR UPDATE OR DELETE ON bank_keys
    FOR EACH ROW EXECUTE FUNCTION bank_keys_announce_change();
CREATE TRIGGER bank_keys_announce_truncate AFTER TRUNCATE ON bank_keys
    FOR EACH STATEMENT EXECUTE FUNCTION bank_keys_announce_change();
