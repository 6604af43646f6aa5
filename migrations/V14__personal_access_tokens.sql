-- Personal access tokens (issue 15): scripts and the SDK authenticate as a
-- signed-in user without an interactive sign-in. Not in the seed, which
-- leaves identity to plugins; one table beside its 19 (docs/schema.md).
--
-- Only the SHA-256 of a token is stored (the token itself is shown once, at
-- creation); lookups go through the unique index on the hash. A token carries
-- the user and the roles they had when it was made. Revoked tokens stay for
-- the owner's list (and the audit trail) with `revoked_at` set.
CREATE TABLE personal_access_tokens (
    id            UUID          NOT NULL DEFAULT gen_random_uuid(),
    user_name     VARCHAR(255)  NOT NULL,
    name          VARCHAR(100)  NOT NULL,
    token_hash    BYTEA         NOT NULL,
    roles         TEXT[]        NOT NULL DEFAULT '{}',
    created_at    TIMESTAMPTZ   NOT NULL DEFAULT now(),
    expires_at    TIMESTAMPTZ,
    last_used_at  TIMESTAMPTZ,
    revoked_at    TIMESTAMPTZ,
    CONSTRAINT pk_personal_access_tokens PRIMARY KEY (id),
    CONSTRAINT uq_personal_access_tokens_hash UNIQUE (token_hash),
    CONSTRAINT ck_personal_access_tokens_hash CHECK (octet_length(token_hash) = 32),
    CONSTRAINT ck_personal_access_tokens_name CHECK (length(btrim(name)) > 0),
    CONSTRAINT ck_personal_access_tokens_expiry CHECK (expires_at IS NULL OR expires_at > created_at)
);

-- A user's own tokens, newest first.
CREATE INDEX idx_personal_access_tokens_user ON personal_access_tokens (user_name, created_at DESC, id);
