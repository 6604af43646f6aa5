-- The last pass's own counts beside the cumulative ones (issue 17). The seed
-- calls `reaper_status`'s counters cumulative and rat-api keeps them so;
-- ratd overwrites them on every pass and RAT's portal labels them "last
-- pass". Both readings are served: these columns hold what the last
-- finished pass (the one that began at `last_run_at`) did, replaced by each
-- finished pass; an interrupted pass adds to the cumulative counters only,
-- as it leaves `last_run_at`. BIGINT, as a pass's count is never added up.
-- A single-row table: the added columns with defaults rewrite nothing large.
ALTER TABLE reaper_status
    ADD COLUMN last_pass_runs_pruned      BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN last_pass_logs_pruned      BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN last_pass_quality_pruned   BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN last_pass_pipelines_purged BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN last_pass_runs_failed      BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN last_pass_branches_cleaned BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN last_pass_lz_files_cleaned BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN last_pass_audit_pruned     BIGINT NOT NULL DEFAULT 0;
