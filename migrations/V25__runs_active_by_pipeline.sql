-- The scheduler's fire reads the active runs (`pending`, `running`) of the
-- batch's pipelines only (issue 19). It read every active run once per
-- batch off `idx_runs_status`, to avoid walking a pipeline's whole run
-- history through `idx_runs_pipeline`; but a burst of due schedules leaves
-- its runs pending until runners take them, so each batch of 500 read all
-- the runs the earlier batches had just created: 10⁵ schedules due at one
-- instant took 42 s against 1.8 s for 10⁴. This partial index holds the
-- active runs alone, by pipeline in the order the fire picks one (oldest
-- first), so the fire's cost follows its batch, whatever the number of
-- active runs and the length of any history.
--
-- Plan: building it holds a SHARE lock on `runs` (reads go on, writes
-- wait) while it scans the table for the active runs: seconds at 10⁷ runs.
CREATE INDEX idx_runs_active_pipeline ON runs (pipeline_id, created_at, id)
    WHERE status IN ('pending', 'running');
