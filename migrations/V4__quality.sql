-- Quality test definitions (SQL in S3) and their results.

CREATE TABLE quality_tests (
    id           UUID          NOT NULL DEFAULT gen_random_uuid(),
    pipeline_id  UUID          NOT NULL,
    name         VARCHAR(255)  NOT NULL,
    description  TEXT                   DEFAULT '',
    severity     VARCHAR(10)   NOT NULL DEFAULT 'error',
    s3_path      VARCHAR(1024) NOT NULL,
    created_at   TIMESTAMPTZ   NOT NULL DEFAULT now(),
    CONSTRAINT pk_quality_tests PRIMARY KEY (id),
    CONSTRAINT fk_quality_tests_pipeline FOREIGN KEY (pipeline_id)
        REFERENCES pipelines (id) ON DELETE CASCADE,
    CONSTRAINT uq_quality_tests_pipeline_name UNIQUE (pipeline_id, name),
    CONSTRAINT ck_quality_tests_severity CHECK (severity IN ('error', 'warn'))
);

CREATE TABLE quality_results (
    id           UUID        NOT NULL DEFAULT gen_random_uuid(),
    test_id      UUID        NOT NULL,
    run_id       UUID,
    status       VARCHAR(10) NOT NULL,
    value        NUMERIC,
    expected     NUMERIC,
    duration_ms  INT,
    ran_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pk_quality_results PRIMARY KEY (id),
    CONSTRAINT fk_quality_results_test FOREIGN KEY (test_id)
        REFERENCES quality_tests (id) ON DELETE CASCADE,
    -- Deviation: the seed's foreign key has no ON DELETE action, so pruning a
    -- run with results fails. Results outlive the run, unattributed.
    CONSTRAINT fk_quality_results_run FOREIGN KEY (run_id)
        REFERENCES runs (id) ON DELETE SET NULL,
    CONSTRAINT ck_quality_results_status
        CHECK (status IN ('passed', 'failed', 'warned', 'error')),
    CONSTRAINT ck_quality_results_duration_ms CHECK (duration_ms IS NULL OR duration_ms >= 0)
);

CREATE INDEX idx_quality_results_test ON quality_results (test_id, ran_at DESC);
-- Addition: indexed foreign key, so pruning runs does not scan results.
CREATE INDEX idx_quality_results_run ON quality_results (run_id) WHERE run_id IS NOT NULL;
