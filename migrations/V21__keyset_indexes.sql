-- Keyset pagination (issue 19): `GET /audit` and a landing zone's files page
-- by cursor, `WHERE (timestamp, id) < ($1, $2) ORDER BY timestamp DESC, id
-- DESC`. For that row comparison to be an index condition, and the order
-- to be read straight off the index (no sort of the filtered set), the id
-- must follow the time in the index. The indexes are rebuilt under their
-- own names with the id added; `runs` already has (created_at DESC, id DESC)
-- in idx_runs_created_at and idx_runs_pipeline.
--
-- Plan: building an index holds a SHARE lock on its table (reads go on,
-- writes wait) for about a second per million rows on a small machine;
-- each old index is dropped only once its replacement exists, in the
-- migration's one transaction. No row changes.
CREATE INDEX idx_audit_log_time_v21 ON audit_log (timestamp DESC, id DESC);
DROP INDEX idx_audit_log_time;
ALTER INDEX idx_audit_log_time_v21 RENAME TO idx_audit_log_time;

CREATE INDEX idx_audit_log_actor_v21 ON audit_log (actor, timestamp DESC, id DESC);
DROP INDEX idx_audit_log_actor;
ALTER INDEX idx_audit_log_actor_v21 RENAME TO idx_audit_log_actor;

CREATE INDEX idx_audit_log_action_v21 ON audit_log (action, timestamp DESC, id DESC);
DROP INDEX idx_audit_log_action;
ALTER INDEX idx_audit_log_action_v21 RENAME TO idx_audit_log_action;

CREATE INDEX idx_landing_files_zone_v21 ON landing_files (zone_id, uploaded_at DESC, id DESC);
DROP INDEX idx_landing_files_zone;
ALTER INDEX idx_landing_files_zone_v21 RENAME TO idx_landing_files_zone;
