-- Ownership, shares and projects (populated by Pro plugins and the sharing API).
--
-- `object_id` points at a pipeline, a table_metadata row or a namespace
-- depending on `object_type`, so it cannot be a foreign key. Deviation from
-- the seed: triggers on the owning tables remove the ownership, share and
-- project-membership rows of an object when the object is deleted, so no
-- grant outlives its object (or silently applies to a later object).

CREATE TABLE ownership (
    id           UUID         NOT NULL DEFAULT gen_random_uuid(),
    object_type  VARCHAR(20)  NOT NULL,
    object_id    UUID         NOT NULL,
    owner        VARCHAR(255) NOT NULL,
    created_at   TIMESTAMPTZ  NOT NULL DEFAULT now(),
    CONSTRAINT pk_ownership PRIMARY KEY (id),
    CONSTRAINT uq_ownership_object UNIQUE (object_type, object_id),
    CONSTRAINT ck_ownership_object_type CHECK (object_type IN ('pipeline', 'table', 'namespace'))
);

CREATE TABLE shares (
    id            UUID         NOT NULL DEFAULT gen_random_uuid(),
    object_type   VARCHAR(20)  NOT NULL,
    object_id     UUID         NOT NULL,
    shared_with   VARCHAR(255) NOT NULL,
    access_level  VARCHAR(10)  NOT NULL,
    granted_by    VARCHAR(255) NOT NULL,
    granted_at    TIMESTAMPTZ  NOT NULL DEFAULT now(),
    CONSTRAINT pk_shares PRIMARY KEY (id),
    CONSTRAINT uq_shares_object_shared_with UNIQUE (object_type, object_id, shared_with),
    CONSTRAINT ck_shares_object_type CHECK (object_type IN ('pipeline', 'table', 'namespace')),
    CONSTRAINT ck_shares_access_level CHECK (access_level IN ('read', 'write'))
);

CREATE TABLE projects (
    id           UUID         NOT NULL DEFAULT gen_random_uuid(),
    name         VARCHAR(255) NOT NULL,
    description  TEXT                  DEFAULT '',
    created_by   VARCHAR(255),
    created_at   TIMESTAMPTZ  NOT NULL DEFAULT now(),
    CONSTRAINT pk_projects PRIMARY KEY (id),
    CONSTRAINT uq_projects_name UNIQUE (name)
);

CREATE TABLE project_members (
    project_id   UUID        NOT NULL,
    object_type  VARCHAR(20) NOT NULL,
    object_id    UUID        NOT NULL,
    added_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pk_project_members PRIMARY KEY (project_id, object_type, object_id),
    CONSTRAINT fk_project_members_project FOREIGN KEY (project_id)
        REFERENCES projects (id) ON DELETE CASCADE,
    CONSTRAINT ck_project_members_object_type CHECK (object_type IN ('pipeline', 'table'))
);

-- Addition: finds the memberships of one object (used by the cleanup trigger).
CREATE INDEX idx_project_members_object ON project_members (object_type, object_id);

CREATE FUNCTION forget_object_grants() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- TG_ARGV[0] is the object type of the table the trigger is attached to.
    DELETE FROM ownership WHERE object_type = TG_ARGV[0] AND object_id = OLD.id;
    DELETE FROM shares WHERE object_type = TG_ARGV[0] AND object_id = OLD.id;
    DELETE FROM project_members WHERE object_type = TG_ARGV[0] AND object_id = OLD.id;
    RETURN OLD;
END
$$;

CREATE TRIGGER trg_pipelines_forget_grants AFTER DELETE ON pipelines
    FOR EACH ROW EXECUTE FUNCTION forget_object_grants('pipeline');
CREATE TRIGGER trg_table_metadata_forget_grants AFTER DELETE ON table_metadata
    FOR EACH ROW EXECUTE FUNCTION forget_object_grants('table');
CREATE TRIGGER trg_namespaces_forget_grants AFTER DELETE ON namespaces
    FOR EACH ROW EXECUTE FUNCTION forget_object_grants('namespace');
