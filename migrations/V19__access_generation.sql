-- The generation of the access rule's inputs (issue 15): a counter that
-- every committed change to `ownership`, `shares` or `namespaces` (what
-- `rat_dao::access::grants_of_many` reads) moves forward. A reader that sees
-- the same generation in its own snapshot as the one a cached answer was read
-- at knows that answer is still what a query would return, so rat-service
-- keeps the grants it read in memory and checks them with one value read in
-- the same statement as the pipeline (`pipelines_at`), instead of reading the
-- grants again on every request. Not in the seed; docs/schema.md lists it.
--
-- One row, so the counter is one value. It is bumped at commit (a deferred
-- constraint trigger), once per transaction (`bumped_by`), so a writer holds
-- the row's lock only while it commits: concurrent creates of pipelines
-- (each writes an `ownership` row) queue there for a moment, never for the
-- length of their transactions.
CREATE TABLE access_generation (
    id boolean PRIMARY KEY DEFAULT true,
    generation bigint NOT NULL DEFAULT 0,
    bumped_by xid8,
    CONSTRAINT ck_access_generation_one_row CHECK (id)
);
INSERT INTO access_generation DEFAULT VALUES;

CREATE FUNCTION bump_access_generation() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    UPDATE access_generation
       SET generation = generation + 1, bumped_by = pg_current_xact_id()
     WHERE bumped_by IS DISTINCT FROM pg_current_xact_id();
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER trg_ownership_access_generation
    AFTER INSERT OR UPDATE OR DELETE ON ownership
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION bump_access_generation();
CREATE CONSTRAINT TRIGGER trg_shares_access_generation
    AFTER INSERT OR UPDATE OR DELETE ON shares
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION bump_access_generation();
CREATE CONSTRAINT TRIGGER trg_namespaces_access_generation
    AFTER INSERT OR UPDATE OR DELETE ON namespaces
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION bump_access_generation();

-- TRUNCATE fires no row trigger; only the schema's owner may truncate, but a
-- truncated table must not leave answers cached from before it.
CREATE TRIGGER trg_ownership_truncate_access_generation AFTER TRUNCATE ON ownership
    FOR EACH STATEMENT EXECUTE FUNCTION bump_access_generation();
CREATE TRIGGER trg_shares_truncate_access_generation AFTER TRUNCATE ON shares
    FOR EACH STATEMENT EXECUTE FUNCTION bump_access_generation();
CREATE TRIGGER trg_namespaces_truncate_access_generation AFTER TRUNCATE ON namespaces
    FOR EACH STATEMENT EXECUTE FUNCTION bump_access_generation();
