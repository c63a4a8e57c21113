-- Foundation: regions, users and tokens, audit log.
-- Timestamps are RFC 3339 text in UTC; JSON is text.

CREATE TABLE regions (
    code        TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    level       TEXT NOT NULL CHECK (level IN ('banner', 'township', 'village')),
    parent_code TEXT,
    lon         REAL,
    lat         REAL,
    boundary    TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX regions_parent ON regions (parent_code);
CREATE INDEX regions_level ON regions (level, code);

CREATE TABLE users (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'planner', 'operator', 'viewer')),
    region_code TEXT NOT NULL REFERENCES regions (code),
    created_at  TEXT NOT NULL
);
CREATE INDEX users_region ON users (region_code);

CREATE TABLE api_tokens (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users (id),
    token_hash  TEXT NOT NULL UNIQUE,
    label       TEXT,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE audit_log (
    id           INTEGER PRIMARY KEY,
    at           TEXT NOT NULL,
    actor        TEXT NOT NULL,
    actor_role   TEXT,
    action       TEXT NOT NULL,
    entity_type  TEXT NOT NULL,
    entity_id    TEXT NOT NULL,
    region_code  TEXT,
    before_state TEXT,
    after_state  TEXT,
    request_id   TEXT
);
CREATE INDEX audit_region ON audit_log (region_code, id);
CREATE INDEX audit_entity ON audit_log (entity_type, entity_id, id);
CREATE INDEX audit_actor ON audit_log (actor, id);
CREATE INDEX audit_at ON audit_log (at);

-- The audit log is append-only.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
