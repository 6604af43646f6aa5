-- Namespaces, pipelines and their published version history.

CREATE TABLE namespaces (
    id          UUID         NOT NULL DEFAULT gen_random_uuid(),
    name        VARCHAR(63)  NOT NULL,
    description TEXT         NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ  NOT NULL DEFAULT now(),
    created_by  VARCHAR(255),
    CONSTRAINT pk_namespaces PRIMARY KEY (id),
    CONSTRAINT uq_namespaces_name UNIQUE (name)
);

-- The Community Edition always has a `default` namespace.
INSERT INTO namespaces (name) VALUES ('default') ON CONFLICT DO NOTHING;

CREATE TABLE pipelines (
    id                 UUID          NOT NULL DEFAULT gen_random_uuid(),
    namespace          VARCHAR(63)   NOT NULL,
    layer              VARCHAR(10)   NOT NULL,
    name               VARCHAR(255)  NOT NULL,
    type               VARCHAR(10)   NOT NULL DEFAULT 'sql',
    s3_path            VARCHAR(1024) NOT NULL,
    description        TEXT                   DEFAULT '',
    owner              VARCHAR(255),
    published_at       TIMESTAMPTZ,
    published_versions JSONB         NOT NULL DEFAULT '{}',
    draft_dirty        BOOLEAN       NOT NULL DEFAULT false,
    max_versions       INTEGER       NOT NULL DEFAULT 50,
    retention_config   JSONB,
    created_at         TIMESTAMPTZ   NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ   NOT NULL DEFAULT now(),
    deleted_at         TIMESTAMPTZ,
    CONSTRAINT pk_pipelines PRIMARY KEY (id),
    CONSTRAINT fk_pipelines_namespace FOREIGN KEY (namespace)
        REFERENCES namespaces (name) ON DELETE CASCADE,
    CONSTRAINT ck_pipelines_layer CHECK (layer IN ('bronze', 'silver', 'gold')),
    CONSTRAINT ck_pipelines_type CHECK (type IN ('sql', 'python')),
    -- Deviation: the seed accepts any max_versions; zero or less would prune
    -- every version on the next publish, including the one just created.
    CONSTRAINT ck_pipelines_max_versions CHECK (max_versions >= 1),
    -- Deviation: the pinned map must be a JSON object {s3 key: version id}.
    CONSTRAINT ck_pipelines_published_versions_object
        CHECK (jsonb_typeof(published_versions) = 'object'),
    CONSTRAINT ck_pipelines_retention_config_object
        CHECK (retention_config IS NULL OR jsonb_typeof(retention_config) = 'object')
);

-- Deviation: the seed declares UNIQUE (namespace, layer, name) over all rows, so
-- a soft-deleted pipeline would keep its name taken until the reaper purges it.
-- Uniqueness holds among live rows only; a deleted name can be used again at once.
CREATE UNIQUE INDEX uq_pipelines_namespace_layer_name
    ON pipelines (namespace, layer, name) WHERE deleted_at IS NULL;

CREATE INDEX idx_pipelines_namespace ON pipelines (namespace);
CREATE INDEX idx_pipelines_layer ON pipelines (namespace, layer);
CREATE INDEX idx_pipelines_owner ON pipelines (owner) WHERE owner IS NOT NULL;
-- Addition: `GET /runs?pipeline=<name>` finds live pipelines by name alone.
CREATE INDEX idx_pipelines_name ON pipelines (name) WHERE deleted_at IS NULL;
-- Addition: lets the reaper find soft-deleted pipelines without a full scan.
CREATE INDEX idx_pipelines_deleted_at ON pipelines (deleted_at) WHERE deleted_at IS NOT NULL;

CREATE TRIGGER trg_pipelines_updated_at BEFORE UPDATE ON pipelines
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE pipeline_versions (
    id                 UUID        NOT NULL DEFAULT gen_random_uuid(),
    pipeline_id        UUID        NOT NULL,
    version_number     INTEGER     NOT NULL,
    message            TEXT        NOT NULL DEFAULT '',
    published_versions JSONB       NOT NULL DEFAULT '{}',
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pk_pipeline_versions PRIMARY KEY (id),
    -- Deviation: the seed's foreign key has no ON DELETE action, so purging a
    -- pipeline that was ever published fails (it does in ratd). History goes
    -- with its pipeline.
    CONSTRAINT fk_pipeline_versions_pipeline FOREIGN KEY (pipeline_id)
        REFERENCES pipelines (id) ON DELETE CASCADE,
    CONSTRAINT uq_pipeline_versions_pipeline_version UNIQUE (pipeline_id, version_number),
    -- Deviation: version numbers start at 1 (the API answers 400 for < 1).
    CONSTRAINT ck_pipeline_versions_version_number CHECK (version_number >= 1),
    CONSTRAINT ck_pipeline_versions_published_versions_object
        CHECK (jsonb_typeof(published_versions) = 'object')
);

CREATE INDEX idx_pipeline_versions_pipeline
    ON pipeline_versions (pipeline_id, version_number DESC);
