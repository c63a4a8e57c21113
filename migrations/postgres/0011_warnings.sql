-- Warnings (预警): CAP 1.2 / GB/T 35965.1 messages issued here or imported, the regions they are
-- passed down to (one row per region, with its acknowledgement), and the targeted readiness
-- findings each warning's check produced.

CREATE TABLE warnings (
    id                 BIGSERIAL PRIMARY KEY,
    identifier         TEXT NOT NULL UNIQUE,
    sender             TEXT NOT NULL,
    origin             TEXT NOT NULL CHECK (origin IN ('local', 'import')),
    msg_type           TEXT NOT NULL CHECK (msg_type IN ('alert', 'update', 'cancel')),
    cap_status         TEXT NOT NULL CHECK (cap_status IN ('actual', 'exercise')),
    status             TEXT NOT NULL CHECK (status IN ('draft', 'issued', 'updated', 'cancelled', 'expired')),
    hazard             TEXT NOT NULL,
    level              BIGINT NOT NULL CHECK (level BETWEEN 1 AND 4),
    event              TEXT NOT NULL,
    event_code         TEXT,
    headline           TEXT NOT NULL,
    description        TEXT NOT NULL,
    instruction        TEXT NOT NULL,
    issuer             TEXT NOT NULL,
    issuing_region     TEXT NOT NULL,
    sent_at            TIMESTAMPTZ NOT NULL,
    effective_at       TIMESTAMPTZ NOT NULL,
    expires_at         TIMESTAMPTZ NOT NULL,
    area_desc          TEXT NOT NULL,
    polygon            JSONB,
    refs               JSONB NOT NULL,
    ack_within_minutes BIGINT NOT NULL,
    original_xml       TEXT,
    readiness          JSONB,
    issued_at          TIMESTAMPTZ,
    ended_at           TIMESTAMPTZ,
    ended_by           BIGINT REFERENCES warnings (id),
    created_by         TEXT NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL
);
CREATE INDEX warnings_active ON warnings (status, expires_at);
CREATE INDEX warnings_region ON warnings (issuing_region, sent_at);

CREATE TABLE warning_regions (
    id           BIGSERIAL PRIMARY KEY,
    warning_id   BIGINT NOT NULL REFERENCES warnings (id),
    region_code  TEXT NOT NULL,
    declared     BOOLEAN NOT NULL,
    ack_status   TEXT NOT NULL CHECK (ack_status IN ('pending', 'reminded', 'acknowledged')),
    notified_at  TIMESTAMPTZ,
    remind_at    TIMESTAMPTZ,
    reminded_at  TIMESTAMPTZ,
    acked_at     TIMESTAMPTZ,
    acked_by     TEXT,
    UNIQUE (warning_id, region_code)
);
CREATE INDEX warning_regions_region ON warning_regions (region_code, warning_id);
CREATE INDEX warning_regions_remind ON warning_regions (ack_status, remind_at);

CREATE TABLE warning_findings (
    id          BIGSERIAL PRIMARY KEY,
    warning_id  BIGINT NOT NULL REFERENCES warnings (id),
    region_code TEXT NOT NULL,
    rule        TEXT NOT NULL,
    severity    TEXT NOT NULL,
    message     TEXT NOT NULL,
    action      TEXT NOT NULL,
    link        TEXT,
    facts       JSONB NOT NULL
);
CREATE INDEX warning_findings_warning ON warning_findings (warning_id, region_code);
