-- Foundation: regions, users and tokens, audit log.

CREATE TABLE regions (
    code        TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    level       TEXT NOT NULL CHECK (level IN ('banner', 'township', 'village')),
    parent_code TEXT,
    lon         DOUBLE PRECISION,
    lat         DOUBLE PRECISION,
    boundary    JSONB,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX regions_parent ON regions (parent_code);
CREATE INDEX regions_level ON regions (level, code);

CREATE TABLE users (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'planner', 'operator', 'viewer')),
    region_code TEXT NOT NULL REFERENCES regions (code),
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX users_region ON users (region_code);

CREATE TABLE api_tokens (
    id          BIGSERIAL PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id),
    token_hash  TEXT NOT NULL UNIQUE,
    label       TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE audit_log (
    id           BIGSERIAL PRIMARY KEY,
    at           TIMESTAMPTZ NOT NULL,
    actor        TEXT NOT NULL,
    actor_role   TEXT,
    action       TEXT NOT NULL,
    entity_type  TEXT NOT NULL,
    entity_id    TEXT NOT NULL,
    region_code  TEXT,
    before_state JSONB,
    after_state  JSONB,
    request_id   TEXT
);
CREATE INDEX audit_region ON audit_log (region_code, id);
CREATE INDEX audit_entity ON audit_log (entity_type, entity_id, id);
CREATE INDEX audit_actor ON audit_log (actor, id);
CREATE INDEX audit_at ON audit_log (at);

-- The audit log is append-only.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END $$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
