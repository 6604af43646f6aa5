-- The plugins each runner can load (issue 17): RAT's portal lists them at
-- `GET /api/v1/runner/plugins` (merge strategies, hooks). Runners report
-- them with a claim or a heartbeat; one row per runner holds its latest
-- report, replaced whole, with the time it came. Not in the seed (ratd asks
-- its runner over gRPC instead); docs/schema.md lists the table.
--
-- `plugins` is a JSON array of `{name, group, version, package_name}`
-- objects, checked in rat-service (at most 200, bounded strings). Rows of
-- runners that stopped reporting stay until the runner's id reports again;
-- the list reads only recent ones (`reported_at`), so a dead runner's
-- plugins drop out on their own. The reaper does not prune them: there is
-- one row per runner name, a handful.
CREATE TABLE runner_plugins (
    runner_id    VARCHAR(255)  NOT NULL,
    plugins      JSONB         NOT NULL DEFAULT '[]'::jsonb,
    reported_at  TIMESTAMPTZ   NOT NULL DEFAULT now(),
    CONSTRAINT pk_runner_plugins PRIMARY KEY (runner_id),
    CONSTRAINT ck_runner_plugins_array CHECK (jsonb_typeof(plugins) = 'array')
);

-- The live runners' reports: `reported_at >= now - window`.
CREATE INDEX idx_runner_plugins_reported_at ON runner_plugins (reported_at);
