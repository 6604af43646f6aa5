-- Indexes the reaper's batched passes walk.
--
-- Addition: run logs kept in the seed's shape (`runs.logs`) are found by age
-- without scanning every run; the partial predicate keeps the index to the
-- few runs that still have such logs.
CREATE INDEX idx_runs_legacy_logs ON runs (created_at) WHERE logs IS NOT NULL;
