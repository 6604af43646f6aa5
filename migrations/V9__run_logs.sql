-- Run log entries, one row each, appended by runners while a run executes,
-- and the index runners claim pending runs with.
--
-- Addition (a 20th table): the seed keeps logs in `runs.logs` (JSONB), where
-- every append rewrites the whole array (quadratic for a chatty run) and a
-- live stream has no cursor to resume from. Entries here are numbered by an
-- identity column, so a stream sends "everything after id N". `runs.logs`
-- stays for logs in the seed's shape (imported or older rows); readers show
-- those first. Entries go with their run (ON DELETE CASCADE).
CREATE TABLE run_logs (
    id         BIGINT GENERATED ALWAYS AS IDENTITY,
    run_id     UUID        NOT NULL,
    timestamp  TIMESTAMPTZ NOT NULL,
    level      VARCHAR(10) NOT NULL,
    message    TEXT        NOT NULL,
    CONSTRAINT pk_run_logs PRIMARY KEY (id),
    CONSTRAINT fk_run_logs_run FOREIGN KEY (run_id) REFERENCES runs (id) ON DELETE CASCADE,
    CONSTRAINT ck_run_logs_level CHECK (level IN ('trace', 'debug', 'info', 'warn', 'error')),
    -- One entry is a line or a stack trace, not a file.
    CONSTRAINT ck_run_logs_message_length CHECK (length(message) <= 65536)
);

CREATE INDEX idx_run_logs_run ON run_logs (run_id, id);

-- Addition: runners claim the oldest pending runs first (FOR UPDATE SKIP
-- LOCKED); this index hands them out in order without sorting the backlog.
CREATE INDEX idx_runs_pending ON runs (created_at, id) WHERE status = 'pending';
