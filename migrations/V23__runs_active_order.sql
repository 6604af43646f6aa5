-- `GET /runs?status=running` (or `pending`) in the list's order, without a
-- sort (issue 19). The seed's `idx_runs_status` finds the active runs but
-- not in order, so the page sorted every active run first: 6 ms at 10⁷
-- runs with 10⁴ of them active in the scale benchmark. This partial index
-- holds only active runs, newest first with the id (the keyset order of
-- `idx_runs_pipeline`), so a page is read in order off it, whatever the
-- number of active runs. A status filter (`status = 'running'`) implies
-- the index's predicate, so the planner uses it for either status.
--
-- Plan: building it holds a SHARE lock on `runs` (reads go on, writes
-- wait) while it reads the active runs' index entries; active runs are
-- few (a run stays active only while a runner works on it).
CREATE INDEX idx_runs_active_created ON runs (created_at DESC, id DESC)
    WHERE status IN ('pending', 'running');
