-- Reconciliation of a large statement writes one item per line, a million and more per run, in
-- the run's one transaction. A row-level foreign key checks each item on its own (a query and a
-- row lock per item: more than a third of a million-line run's time), so the rule "every item
-- belongs to a recorded run" is now checked once per statement instead, by the triggers below.
-- The rule itself is unchanged, and so is every item already recorded: items keep their table,
-- their columns and their order, and the runs made before this migration read as they did.

ALTER TABLE reconciliation_items DROP CONSTRAINT reconciliation_items_run_id_fkey;

-- Items may only name a run that exists. Checked after each statement that writes items, over
-- the distinct runs it wrote (one, for a reconciliation run), whose rows are locked as a foreign
-- key would lock them (FOR KEY SHARE), so that no run can be removed under its new items.
CREATE FUNCTION reconciliation_items_need_their_run() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM reconciliation_runs r
    WHERE r.id IN (SELECT DISTINCT run_id FROM written)
    FOR KEY SHARE OF r;
    IF EXISTS (SELECT 1 FROM (SELECT DISTINCT run_id FROM written) w
               WHERE NOT EXISTS (SELECT 1 FROM reconciliation_runs r WHERE r.id = w.run_id)) THEN
        RAISE EXCEPTION 'an item of reconciliation_items names a run that does not exist'
            USING ERRCODE = 'foreign_key_violation',
                  CONSTRAINT = 'reconciliation_items_run_id_fkey';
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

-- ... and a run that has items can neither be removed nor renamed (what the foreign key's
-- NO ACTION did). Its items are found through their primary key, whose first column is the run.
CREATE FUNCTION reconciliation_runs_keep_their_items() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF (TG_OP = 'DELETE' OR NEW.id IS DISTINCT FROM OLD.id)
       AND EXISTS (SELECT 1 FROM reconciliation_items i WHERE i.run_id = OLD.id) THEN
        RAISE EXCEPTION 'the reconciliation run % has items', OLD.id
            USING ERRCODE = 'foreign_key_violation',
                  CONSTRAINT = 'reconciliation_items_run_id_fkey';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;

CREATE TRIGGER reconciliation_runs_keep_their_items
    BEFORE DELETE OR UPDATE OF id ON reconciliation_runs
    FOR EACH ROW EXECUTE FUNCTION reconciliation_runs_keep_their_items();
