-- The four references to a run (run_logs.run_id, quality_results.run_id,
-- schedules.last_run_id, pipeline_triggers.last_run_id) are kept by
-- triggers instead of foreign-key constraints, with the same guarantees:
--
--   * a row may only name a run that exists (checked on insert, and on an
--     update that changes the reference), and that run is locked FOR KEY
--     SHARE until the writer commits, exactly as Postgres' own check does
--     (but once per statement, over all its rows, not once per row);
--   * deleting runs takes their log lines with them and sets the other three
--     references to NULL (the ON DELETE CASCADE / SET NULL of V3, V4, V9).
--
-- Why: a foreign key's delete action runs once per deleted run, one index
-- probe per referencing table. The reaper deletes runs by the million, and
-- the four probes were ~85% of its cost (docs/benchmarks.md, "reaper"). Here
-- a statement-level trigger does each clean-up once per DELETE statement,
-- over the whole batch, through the same indexes.
--
-- Errors keep the constraint names (SQLSTATE 23503, foreign_key_violation,
-- with CONSTRAINT set), so callers see exactly what a foreign key raised.
-- pg_dump restores triggers after the data, as it does foreign keys.

ALTER TABLE run_logs DROP CONSTRAINT fk_run_logs_run;
ALTER TABLE quality_results DROP CONSTRAINT fk_quality_results_run;
ALTER TABLE schedules DROP CONSTRAINT fk_schedules_last_run;
ALTER TABLE pipeline_triggers DROP CONSTRAINT fk_pipeline_triggers_last_run;

-- Locks the runs named by `wanted` (distinct, non-NULL ids of `child`'s
-- column `column_name`) FOR KEY SHARE, in id order, and raises a foreign-key
-- violation naming `constraint_name` when one of them does not exist (or was
-- deleted by a transaction that committed while this one waited for its lock).
CREATE FUNCTION lock_referenced_runs(wanted uuid[], constraint_name text, child text, column_name text)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    locked bigint;
    missing uuid;
BEGIN
    IF coalesce(cardinality(wanted), 0) = 0 THEN
        RETURN;
    END IF;
    SELECT count(*) INTO locked
    FROM (SELECT id FROM runs WHERE id = ANY(wanted) ORDER BY id FOR KEY SHARE) found;
    IF locked < cardinality(wanted) THEN
        SELECT w INTO missing FROM unnest(wanted) w
        WHERE NOT EXISTS (SELECT 1 FROM runs WHERE id = w) LIMIT 1;
        RAISE EXCEPTION 'insert or update on table "%" violates foreign key constraint "%"',
                child, constraint_name
            USING ERRCODE = 'foreign_key_violation',
                  CONSTRAINT = constraint_name,
                  TABLE = child,
                  DETAIL = format('Key (%s)=(%s) is not present in table "runs".',
                                  column_name, missing);
    END IF;
END
$$;

-- Inserts and updates: one check per statement, over its rows (run_logs
-- and quality_results arrive in batches; the scheduler records the runs of
-- hundreds of schedules in one UPDATE). An update checks only the rows whose
-- reference it changes to a run, as a foreign key skips its check when the
-- key is unchanged: an update that leaves the reference alone locks nothing.
-- Rows are matched to their old version by id, which never changes.
-- TG_ARGV[0] is the constraint's name.
CREATE FUNCTION rows_name_existing_runs_by_run_id() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM lock_referenced_runs(
            ARRAY(SELECT DISTINCT run_id FROM new_rows WHERE run_id IS NOT NULL),
            TG_ARGV[0], TG_TABLE_NAME, 'run_id');
    ELSE
        PERFORM lock_referenced_runs(
            ARRAY(SELECT DISTINCT n.run_id FROM new_rows n JOIN old_rows o ON o.id = n.id
                  WHERE n.run_id IS NOT NULL AND n.run_id IS DISTINCT FROM o.run_id),
            TG_ARGV[0], TG_TABLE_NAME, 'run_id');
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION rows_name_existing_runs_by_last_run_id() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM lock_referenced_runs(
            ARRAY(SELECT DISTINCT last_run_id FROM new_rows WHERE last_run_id IS NOT NULL),
            TG_ARGV[0], TG_TABLE_NAME, 'last_run_id');
    ELSE
        PERFORM lock_referenced_runs(
            ARRAY(SELECT DISTINCT n.last_run_id FROM new_rows n JOIN old_rows o ON o.id = n.id
                  WHERE n.last_run_id IS NOT NULL AND n.last_run_id IS DISTINCT FROM o.last_run_id),
            TG_ARGV[0], TG_TABLE_NAME, 'last_run_id');
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER run_logs_run_exists AFTER INSERT ON run_logs
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rows_name_existing_runs_by_run_id('fk_run_logs_run');
CREATE TRIGGER run_logs_run_exists_on_update AFTER UPDATE ON run_logs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rows_name_existing_runs_by_run_id('fk_run_logs_run');

CREATE TRIGGER quality_results_run_exists AFTER INSERT ON quality_results
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rows_name_existing_runs_by_run_id('fk_quality_results_run');
CREATE TRIGGER quality_results_run_exists_on_update AFTER UPDATE ON quality_results
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rows_name_existing_runs_by_run_id('fk_quality_results_run');

CREATE TRIGGER schedules_last_run_exists AFTER INSERT ON schedules
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rows_name_existing_runs_by_last_run_id('fk_schedules_last_run');
CREATE TRIGGER schedules_last_run_exists_on_update AFTER UPDATE ON schedules
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rows_name_existing_runs_by_last_run_id('fk_schedules_last_run');

CREATE TRIGGER pipeline_triggers_last_run_exists AFTER INSERT ON pipeline_triggers
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rows_name_existing_runs_by_last_run_id('fk_pipeline_triggers_last_run');
CREATE TRIGGER pipeline_triggers_last_run_exists_on_update AFTER UPDATE ON pipeline_triggers
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rows_name_existing_runs_by_last_run_id('fk_pipeline_triggers_last_run');

-- Deletes: once per statement, over all the runs it deleted. The clean-up
-- reads each referencing table through its index on the reference
-- (idx_run_logs_run, idx_quality_results_run, idx_schedules_last_run,
-- idx_pipeline_triggers_last_run) with the batch's ids as one array.
--
-- A row referencing a deleted run can only be written by a transaction that
-- locked the run FOR KEY SHARE first, so the delete waited for it; at READ
-- COMMITTED each statement below takes a fresh snapshot and sees that row.
-- At REPEATABLE READ or SERIALIZABLE it would not, so deleting runs there is
-- refused rather than risking a dangling reference (every caller of this
-- project deletes at READ COMMITTED, Postgres' default).
CREATE FUNCTION runs_release_references() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    gone uuid[];
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'runs can only be deleted at READ COMMITTED isolation'
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'The references to a run are released by a trigger that needs each statement''s fresh snapshot.';
    END IF;
    gone := ARRAY(SELECT id FROM deleted_runs);
    IF cardinality(gone) = 0 THEN
        RETURN NULL;
    END IF;
    DELETE FROM run_logs WHERE run_id = ANY(gone);
    UPDATE quality_results SET run_id = NULL WHERE run_id = ANY(gone);
    UPDATE schedules SET last_run_id = NULL WHERE last_run_id = ANY(gone);
    UPDATE pipeline_triggers SET last_run_id = NULL WHERE last_run_id = ANY(gone);
    RETURN NULL;
END
$$;

CREATE TRIGGER runs_release_references AFTER DELETE ON runs
    REFERENCING OLD TABLE AS deleted_runs
    FOR EACH STATEMENT EXECUTE FUNCTION runs_release_references();

-- A foreign key refuses to change a referenced key and to TRUNCATE the
-- referenced table alone; a run's id never changes, and runs are emptied by
-- DELETE (which releases their references), never by TRUNCATE.
CREATE FUNCTION runs_keep_their_identity() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        RAISE EXCEPTION 'runs cannot be truncated: delete them, so their logs and references go with them'
            USING ERRCODE = 'feature_not_supported';
    END IF;
    RAISE EXCEPTION 'a run''s id cannot change' USING ERRCODE = 'restrict_violation';
END
$$;

CREATE TRIGGER runs_id_is_fixed BEFORE UPDATE OF id ON runs
    FOR EACH ROW WHEN (NEW.id IS DISTINCT FROM OLD.id)
    EXECUTE FUNCTION runs_keep_their_identity();
CREATE TRIGGER runs_no_truncate BEFORE TRUNCATE ON runs
    FOR EACH STATEMENT EXECUTE FUNCTION runs_keep_their_identity();
