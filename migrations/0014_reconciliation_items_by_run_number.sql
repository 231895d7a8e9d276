-- A run's items are keyed by the run's number (`reconciliation_runs.seq`: 8 bytes, always
-- increasing) instead of its text id (27 bytes, random). A million-line run writes a million
-- items and as many primary-key entries: with the number, they are narrower and always go to
-- the right-hand end of the key, where the text id put a rerun's items in the middle of the
-- earlier runs' (about a second more per million items). Items keep every other column, their
-- ids (line numbers) and their order; the API still names a run by its text id.
--
-- This rewrites the items table once (a few seconds per million items).

ALTER TABLE reconciliation_items ADD COLUMN run_seq bigint;
UPDATE reconciliation_items i SET run_seq = r.seq FROM reconciliation_runs r WHERE r.id = i.run_id;
ALTER TABLE reconciliation_items ALTER COLUMN run_seq SET NOT NULL;

DROP TRIGGER reconciliation_items_run_exists_on_insert ON reconciliation_items;
DROP TRIGGER reconciliation_items_run_exists_on_update ON reconciliation_items;
DROP TRIGGER reconciliation_runs_keep_their_items ON reconciliation_runs;
DROP INDEX reconciliation_items_differences;
ALTER TABLE reconciliation_items DROP CONSTRAINT reconciliation_items_pkey;
ALTER TABLE reconciliation_items DROP COLUMN run_id;
ALTER TABLE reconciliation_items ADD PRIMARY KEY (run_seq, id);
CREATE INDEX reconciliation_items_differences ON reconciliation_items (run_seq, id)
    WHERE outcome <> 'matched';

-- The rules of migration 0013, by the run's number: an item names a recorded run (checked once
-- per statement), and a run that has items can be neither removed nor renumbered nor renamed.
CREATE OR REPLACE FUNCTION reconciliation_items_need_their_run() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM reconciliation_runs r
    WHERE r.seq IN (SELECT DISTINCT run_seq FROM written)
    FOR KEY SHARE OF r;
    IF EXISTS (SELECT 1 FROM (SELECT DISTINCT run_seq FROM written) w
               WHERE NOT EXISTS (SELECT 1 FROM reconciliation_runs r WHERE r.seq = w.run_seq)) THEN
        RAISE EXCEPTION 'an item of reconciliation_items names a run that does not exist'
            USING ERRCODE = 'foreign_key_violation',
                  CONSTRAINT = 'reconciliation_items_run_seq_fkey';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER reconciliation_items_run_exists_on_insert
    AFTER INSERT ON reconciliation_items
    REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION reconciliation_items_need_their_run();
CREATE TRIGGER reconciliation_items_run_exists_on_update
    AFTER UPDATE ON reconciliation_items
    REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION reconciliation_items_need_their_run();

CREATE OR REPLACE FUNCTION reconciliation_runs_keep_their_items() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF (TG_OP = 'DELETE' OR NEW.id IS DISTINCT FROM OLD.id OR NEW.seq IS DISTINCT FROM OLD.seq)
       AND EXISTS (SELECT 1 FROM reconciliation_items i WHERE i.run_seq = OLD.seq) THEN
        RAISE EXCEPTION 'the reconciliation run % has items', OLD.id
            USING ERRCODE = 'foreign_key_violation',
                  CONSTRAINT = 'reconciliation_items_run_seq_fkey';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;

CREATE TRIGGER reconciliation_runs_keep_their_items
    BEFORE DELETE OR UPDATE OF id, seq ON reconciliation_runs
    FOR EACH ROW EXECUTE FUNCTION reconciliation_runs_keep_their_items();
