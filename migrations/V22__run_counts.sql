-- Run counts that do not scan `runs` (issue 19).
--
-- `GET /runs` answers the full count of its filtered set with every page
-- (the contract's `total`). Over ten million runs `count(*)` takes half a
-- second however the page is read. The counts by pipeline and status are
-- kept here instead, exact at every snapshot:
--
-- * `run_count_deltas`: every statement that inserts, deletes or changes the
--   status (or pipeline) of runs appends, from its statement trigger, one
--   row per (pipeline, status) it changed, with the signed change. Appends
--   take no lock that another writer waits for, so concurrent writers
--   (schedulers firing thousands of runs in one transaction, the api, the
--   reaper) never queue or deadlock on a counter row.
-- * `run_counts` (by pipeline and status) and `run_totals` (by status):
--   the deltas folded in. Only the fold writes them: it moves a bounded
--   batch of deltas in one transaction (delete + add), under an advisory
--   lock, so one folder runs at a time. The scheduler folds after every
--   tick (at least every 30 s by default) and the reaper on every pass.
--
-- A count is then `folded + pending deltas` in one statement, so one
-- snapshot: a fold committing between the two reads cannot count a delta
-- twice or not at all. Counts of time windows (`started_after`/`before`)
-- still count rows.
--
-- Plan: creating the triggers takes a SHARE ROW EXCLUSIVE lock on `runs`
-- until the migration commits, so no run changes between the triggers'
-- creation and the initial fill below (one `GROUP BY` pass over `runs`,
-- about a second per million rows on a small machine). No row changes.
CREATE TABLE run_count_deltas (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pipeline_id UUID NOT NULL,
    status      TEXT NOT NULL,
    delta       BIGINT NOT NULL
);
CREATE INDEX idx_run_count_deltas_pipeline ON run_count_deltas (pipeline_id);

CREATE TABLE run_counts (
    pipeline_id UUID NOT NULL,
    status      TEXT NOT NULL,
    n           BIGINT NOT NULL,
    PRIMARY KEY (pipeline_id, status)
);

CREATE TABLE run_totals (
    status TEXT PRIMARY KEY,
    n      BIGINT NOT NULL
);

CREATE FUNCTION runs_count_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO run_count_deltas (pipeline_id, status, delta)
    SELECT pipeline_id, status, count(*) FROM inserted_runs GROUP BY pipeline_id, status;
    RETURN NULL;
END
$$;

CREATE FUNCTION runs_count_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO run_count_deltas (pipeline_id, status, delta)
    SELECT pipeline_id, status, -count(*) FROM deleted_runs GROUP BY pipeline_id, status;
    RETURN NULL;
END
$$;

-- Most updates of runs leave the status alone (progress, heartbeats'
-- bookkeeping): they find no changed row and append nothing.
CREATE FUNCTION runs_count_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO run_count_deltas (pipeline_id, status, delta)
    SELECT pipeline_id, status, sum(delta)
    FROM (
        SELECT o.pipeline_id, o.status, -1 AS delta
        FROM old_runs o JOIN new_runs n ON n.id = o.id
        WHERE (o.pipeline_id, o.status) IS DISTINCT FROM (n.pipeline_id, n.status)
        UNION ALL
        SELECT n.pipeline_id, n.status, 1
        FROM old_runs o JOIN new_runs n ON n.id = o.id
        WHERE (o.pipeline_id, o.status) IS DISTINCT FROM (n.pipeline_id, n.status)
    ) changes
    GROUP BY pipeline_id, status
    HAVING sum(delta) <> 0;
    RETURN NULL;
END
$$;

CREATE TRIGGER runs_count_inserted AFTER INSERT ON runs
    REFERENCING NEW TABLE AS inserted_runs
    FOR EACH STATEMENT EXECUTE FUNCTION runs_count_inserted();
CREATE TRIGGER runs_count_deleted AFTER DELETE ON runs
    REFERENCING OLD TABLE AS deleted_runs
    FOR EACH STATEMENT EXECUTE FUNCTION runs_count_deleted();
CREATE TRIGGER runs_count_updated AFTER UPDATE ON runs
    REFERENCING OLD TABLE AS old_runs NEW TABLE AS new_runs
    FOR EACH STATEMENT EXECUTE FUNCTION runs_count_updated();

INSERT INTO run_counts (pipeline_id, status, n)
SELECT pipeline_id, status, count(*) FROM runs GROUP BY pipeline_id, status;
INSERT INTO run_totals (status, n)
SELECT status, sum(n) FROM run_counts GROUP BY status;
