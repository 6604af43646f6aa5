-- The next slot of cron and cron_dependency triggers.
--
-- Addition: like `schedules.next_run_at`, a pre-computed next slot lets every
-- scheduler replica claim due cron triggers with one indexed query
-- (`FOR UPDATE SKIP LOCKED`) and sleep exactly until the earliest one. It is
-- NULL for the other trigger types and for disabled triggers. The run of a
-- slot carries `trigger_id` and `scheduled_for`, unique together
-- (`uq_runs_trigger_slot`), so a slot can never fire twice.
ALTER TABLE pipeline_triggers ADD COLUMN next_fire_at TIMESTAMPTZ;

CREATE INDEX idx_pipeline_triggers_next_fire
    ON pipeline_triggers (next_fire_at) WHERE enabled = true AND next_fire_at IS NOT NULL;
