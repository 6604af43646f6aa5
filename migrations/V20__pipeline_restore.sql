-- Undo a delete within the grace period (issue 18; seed 000, "Soft Deletes":
-- "undo within a grace period", "deleted pipelines are still queryable").
--
-- `deleted_by`: who deleted the pipeline (shown by `GET /pipelines?deleted=true`).
-- `deleted_state`: what the delete changed, so that a restore puts back
-- exactly that and nothing more: `{"schedules": [ids it disabled],
-- "triggers": [ids it disabled], "files": {S3 key: version id} | null}`,
-- the files being the draft as it was at the delete (the bucket keeps every
-- version). NULL for pipelines deleted before this migration: their restore
-- re-enables nothing and leaves the files at the prefix as they are.
-- Both columns are cleared by a restore. Added columns without defaults
-- rewrite nothing.
ALTER TABLE pipelines
    ADD COLUMN deleted_by    VARCHAR(255),
    ADD COLUMN deleted_state JSONB,
    ADD CONSTRAINT ck_pipelines_deleted_state_object
        CHECK (deleted_state IS NULL OR jsonb_typeof(deleted_state) = 'object');
