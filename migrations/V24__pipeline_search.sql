-- `GET /pipelines?search=` (name or description ILIKE '%term%') from
-- trigram indexes (issue 19). Without them the page's total counts every
-- live pipeline through ILIKE: 114 ms at 10⁵ pipelines in the scale
-- benchmark. With them a search reads the trigrams' posting lists and
-- rechecks only the candidates.
--
-- The operator classes come from `pg_trgm`, an extension that ships with
-- PostgreSQL (contrib; in Debian's `postgresql-15` package). It lives in a
-- schema of its own, `rat_extensions`, shared by every tenant of the
-- database and holding nothing but the extension's objects; no tenant
-- schema holds its functions. Who installs it:
-- - a superuser migrating (development, tests, a single-role deployment):
--   this migration, once per database;
-- - least-privilege deployments: `cargo xtask db roles` (the administrator),
--   before the first migration to this version.
-- When the extension is absent and the migrating role may not install it,
-- this migration creates no index and search stays a scan, correct but
-- linear; docs/operations.md gives the two statements to run later.
--
-- Identifiers in the dynamic statements come from the catalog and are
-- quoted by format('%I'). Concurrent migrations of two tenants of one
-- database take turns on a database-wide advisory lock, so only one
-- creates the extension.
--
-- `fastupdate = off`: pipelines are written rarely, and a GIN pending list
-- (new entries kept unsorted until a vacuum merges them) would make every
-- search read it and the planner price the index out: each new pipeline
-- goes straight into the index instead.
--
-- Plan: building the indexes holds a SHARE lock on `pipelines` (reads go
-- on, writes wait) while it reads the live pipelines; 10⁵ pipelines take
-- well under a second.
DO $$
DECLARE
    ext_schema name;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('rat_extensions.pg_trgm', 0));
    SELECT n.nspname INTO ext_schema
    FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
    WHERE e.extname = 'pg_trgm';
    IF ext_schema IS NULL
       AND EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm')
       AND (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        CREATE SCHEMA IF NOT EXISTS rat_extensions;
        CREATE EXTENSION pg_trgm SCHEMA rat_extensions;
        GRANT USAGE ON SCHEMA rat_extensions TO PUBLIC;
        ext_schema := 'rat_extensions';
    END IF;
    IF ext_schema IS NOT NULL AND has_schema_privilege(ext_schema, 'USAGE') THEN
        EXECUTE format(
            'CREATE INDEX idx_pipelines_name_trgm ON pipelines USING gin (name %I.gin_trgm_ops) '
            'WITH (fastupdate = off) WHERE deleted_at IS NULL', ext_schema);
        EXECUTE format(
            'CREATE INDEX idx_pipelines_description_trgm ON pipelines USING gin (description %I.gin_trgm_ops) '
            'WITH (fastupdate = off) WHERE deleted_at IS NULL', ext_schema);
    ELSE
        RAISE NOTICE 'pg_trgm is not installed (or not usable by %): pipeline search is not indexed', current_user;
    END IF;
END $$;
