-- Plugins, the audit log, platform settings and the reaper's status row.

CREATE TABLE plugins (
    name         VARCHAR(63)  NOT NULL,
    slot         VARCHAR(20)  NOT NULL,
    image        VARCHAR(500) NOT NULL,
    status       VARCHAR(20)  NOT NULL DEFAULT 'unknown',
    config       JSONB                 DEFAULT '{}',
    last_health  TIMESTAMPTZ,
    created_at   TIMESTAMPTZ  NOT NULL DEFAULT now(),
    CONSTRAINT pk_plugins PRIMARY KEY (name),
    CONSTRAINT ck_plugins_status CHECK (status IN ('healthy', 'degraded', 'down', 'unknown'))
);

CREATE TABLE audit_log (
    id           UUID         NOT NULL DEFAULT gen_random_uuid(),
    actor        VARCHAR(255) NOT NULL,
    action       VARCHAR(100) NOT NULL,
    object_type  VARCHAR(20),
    object_id    UUID,
    details      JSONB,
    timestamp    TIMESTAMPTZ  NOT NULL DEFAULT now(),
    CONSTRAINT pk_audit_log PRIMARY KEY (id)
);

CREATE INDEX idx_audit_log_actor ON audit_log (actor, timestamp DESC);
CREATE INDEX idx_audit_log_action ON audit_log (action, timestamp DESC);
CREATE INDEX idx_audit_log_time ON audit_log (timestamp DESC);

CREATE TABLE platform_settings (
    key         VARCHAR(63) NOT NULL,
    value       JSONB       NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pk_platform_settings PRIMARY KEY (key)
);

CREATE TRIGGER trg_platform_settings_updated_at BEFORE UPDATE ON platform_settings
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

INSERT INTO platform_settings (key, value) VALUES
    ('retention', '{
        "runs_max_per_pipeline": 100,
        "runs_max_age_days": 90,
        "logs_max_age_days": 30,
        "quality_results_max_per_test": 100,
        "soft_delete_purge_days": 30,
        "stuck_run_timeout_minutes": 120,
        "audit_log_max_age_days": 365,
        "nessie_orphan_branch_max_age_hours": 6,
        "reaper_interval_minutes": 60,
        "iceberg_snapshot_max_age_days": 7,
        "iceberg_orphan_file_max_age_days": 3
    }'),
    ('feature_flags', '{
        "quality_tests": true,
        "landing_zones": true,
        "audit_log": true,
        "pipeline_triggers": true,
        "pipeline_versions": true
    }')
ON CONFLICT (key) DO NOTHING;

CREATE TABLE reaper_status (
    id               INT         NOT NULL DEFAULT 1,
    last_run_at      TIMESTAMPTZ,
    runs_pruned      INT         NOT NULL DEFAULT 0,
    logs_pruned      INT         NOT NULL DEFAULT 0,
    quality_pruned   INT         NOT NULL DEFAULT 0,
    pipelines_purged INT         NOT NULL DEFAULT 0,
    runs_failed      INT         NOT NULL DEFAULT 0,
    branches_cleaned INT         NOT NULL DEFAULT 0,
    lz_files_cleaned INT         NOT NULL DEFAULT 0,
    audit_pruned     INT         NOT NULL DEFAULT 0,
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pk_reaper_status PRIMARY KEY (id),
    CONSTRAINT ck_reaper_status_singleton CHECK (id = 1)
);

INSERT INTO reaper_status (id) VALUES (1) ON CONFLICT (id) DO NOTHING;

CREATE TRIGGER trg_reaper_status_updated_at BEFORE UPDATE ON reaper_status
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
