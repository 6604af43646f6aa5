-- Merge failures RAT's runner reports (issue 17):
-- `POST /api/v1/internal/failed-merges {run_id, branch_name, source_hash?,
-- target_hash?, error_kind, error_message}`. ratd keeps them so a person can
-- inspect a Nessie branch that did not merge; rat-api lists them to admins
-- (`GET /api/v1/admin/failed-merges`) and the reaper prunes them with the
-- audit log's retention age. Not in the seed; docs/schema.md lists it.
--
-- `run_id` is deliberately not a foreign key: the runner reports about its
-- own run, which retention may prune before the merge failure is looked at
-- (and ratd's runners may name runs this database never had), and the
-- report must be kept either way.
CREATE TABLE failed_merges (
    id             UUID           NOT NULL DEFAULT gen_random_uuid(),
    run_id         VARCHAR(255)   NOT NULL,
    branch_name    VARCHAR(255)   NOT NULL,
    source_hash    VARCHAR(255),
    target_hash    VARCHAR(255),
    error_kind     VARCHAR(255)   NOT NULL,
    error_message  TEXT           NOT NULL,
    created_at     TIMESTAMPTZ    NOT NULL DEFAULT now(),
    CONSTRAINT pk_failed_merges PRIMARY KEY (id),
    CONSTRAINT ck_failed_merges_error_message_len CHECK (length(error_message) <= 65536)
);

-- The admin list (newest first) and the reaper's walk by age.
CREATE INDEX idx_failed_merges_created_at ON failed_merges (created_at, id);
