-- Emergency plans: a plan (stable id) has numbered versions; evaluations are recorded per plan.

CREATE TABLE plans (
    id              BIGSERIAL PRIMARY KEY,
    plan_key        TEXT UNIQUE,
    region_code     TEXT NOT NULL REFERENCES regions (code),
    kind            TEXT NOT NULL,
    latest_version  BIGINT NOT NULL,
    current_version BIGINT,
    last_drilled_on DATE,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX plans_region ON plans (region_code, id);
CREATE INDEX plans_kind ON plans (kind, region_code);

CREATE TABLE plan_versions (
    id                 BIGSERIAL PRIMARY KEY,
    plan_id            BIGINT NOT NULL REFERENCES plans (id),
    version            BIGINT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('draft', 'review', 'approved', 'filed', 'superseded', 'retired')),
    title              TEXT NOT NULL,
    hazards            TEXT NOT NULL,
    content            JSONB NOT NULL,
    content_hash       TEXT NOT NULL,
    drill_months       BIGINT NOT NULL,
    evaluation_months  BIGINT NOT NULL,
    revision_reason    TEXT,
    revision_note      TEXT,
    issued_on          DATE,
    issuing_body       TEXT,
    approved_by        TEXT,
    filed_with         TEXT,
    filed_on           DATE,
    filing_receipt     TEXT,
    created_by         TEXT NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL,
    UNIQUE (plan_id, version)
);
CREATE INDEX plan_versions_status ON plan_versions (status, plan_id);

CREATE TABLE plan_evaluations (
    id              BIGSERIAL PRIMARY KEY,
    plan_id         BIGINT NOT NULL REFERENCES plans (id),
    version         BIGINT NOT NULL,
    evaluated_on    DATE NOT NULL,
    evaluator       TEXT NOT NULL,
    conclusion      TEXT NOT NULL,
    revision_needed BOOLEAN NOT NULL,
    revision_reason TEXT,
    revision_note   TEXT,
    created_by      TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX plan_evaluations_plan ON plan_evaluations (plan_id, evaluated_on);
