-- Landing zones with their uploaded files, and user-authored table metadata.

CREATE TABLE landing_zones (
    id                     UUID         NOT NULL DEFAULT gen_random_uuid(),
    namespace              VARCHAR(63)  NOT NULL,
    name                   VARCHAR(255) NOT NULL,
    description            TEXT         NOT NULL DEFAULT '',
    owner                  VARCHAR(255),
    expected_schema        TEXT         NOT NULL DEFAULT '',
    processed_max_age_days INT,
    auto_purge             BOOLEAN      NOT NULL DEFAULT false,
    created_at             TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at             TIMESTAMPTZ  NOT NULL DEFAULT now(),
    CONSTRAINT pk_landing_zones PRIMARY KEY (id),
    CONSTRAINT fk_landing_zones_namespace FOREIGN KEY (namespace)
        REFERENCES namespaces (name) ON DELETE CASCADE,
    CONSTRAINT uq_landing_zones_namespace_name UNIQUE (namespace, name),
    -- Deviation: a maximum age of zero days or less would purge every
    -- processed file on the next reaper pass.
    CONSTRAINT ck_landing_zones_processed_max_age_days
        CHECK (processed_max_age_days IS NULL OR processed_max_age_days >= 1)
);

CREATE TRIGGER trg_landing_zones_updated_at BEFORE UPDATE ON landing_zones
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE landing_files (
    id            UUID          NOT NULL DEFAULT gen_random_uuid(),
    zone_id       UUID          NOT NULL,
    filename      VARCHAR(1024) NOT NULL,
    s3_path       VARCHAR(1024) NOT NULL,
    size_bytes    BIGINT        NOT NULL DEFAULT 0,
    content_type  VARCHAR(128)  NOT NULL DEFAULT '',
    uploaded_by   VARCHAR(255),
    uploaded_at   TIMESTAMPTZ   NOT NULL DEFAULT now(),
    CONSTRAINT pk_landing_files PRIMARY KEY (id),
    CONSTRAINT fk_landing_files_zone FOREIGN KEY (zone_id)
        REFERENCES landing_zones (id) ON DELETE CASCADE,
    CONSTRAINT ck_landing_files_size_bytes CHECK (size_bytes >= 0)
);

CREATE INDEX idx_landing_files_zone ON landing_files (zone_id, uploaded_at DESC);

-- Metadata may describe tables created outside RAT, so there is deliberately
-- no foreign key to namespaces or pipelines (as in the seed).
CREATE TABLE table_metadata (
    id                  UUID         NOT NULL DEFAULT gen_random_uuid(),
    namespace           VARCHAR(63)  NOT NULL,
    layer               VARCHAR(10)  NOT NULL,
    name                VARCHAR(255) NOT NULL,
    description         TEXT         NOT NULL DEFAULT '',
    owner               VARCHAR(255),
    column_descriptions JSONB        NOT NULL DEFAULT '{}',
    created_at          TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ  NOT NULL DEFAULT now(),
    CONSTRAINT pk_table_metadata PRIMARY KEY (id),
    CONSTRAINT uq_table_metadata_namespace_layer_name UNIQUE (namespace, layer, name),
    -- Deviation: the same layers as pipelines, and a {column: description} object.
    CONSTRAINT ck_table_metadata_layer CHECK (layer IN ('bronze', 'silver', 'gold')),
    CONSTRAINT ck_table_metadata_column_descriptions_object
        CHECK (jsonb_typeof(column_descriptions) = 'object')
);

CREATE TRIGGER trg_table_metadata_updated_at BEFORE UPDATE ON table_metadata
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
