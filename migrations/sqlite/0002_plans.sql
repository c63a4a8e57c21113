-- Emergency plans: a plan (stable id) has numbered versions; evaluations are recorded per plan.
-- Dates are 'YYYY-MM-DD' text, instants RFC 3339 UTC text, JSON text.

CREATE TABLE plans (
    id              INTEGER PRIMARY KEY,
    plan_key        TEXT UNIQUE,
    region_code     TEXT NOT NULL REFERENCES regions (code),
    kind            TEXT NOT NULL,
    latest_version  INTEGER NOT NULL,
    current_version INTEGER,
    last_drilled_on TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX plans_region ON plans (region_code, id);
CREATE INDEX plans_kind ON plans (kind, region_code);

CREATE TABLE plan_versions (
    id                 INTEGER PRIMARY KEY,
    plan_id            INTEGER NOT NULL REFERENCES plans (id),
    version            INTEGER NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('draft', 'review', 'approved', 'filed', 'superseded', 'retired')),
    title              TEXT NOT NULL,
    hazards            TEXT NOT NULL,
    content            TEXT NOT NULL,
    content_hash       TEXT NOT NULL,
    drill_months       INTEGER NOT NULL,
    evaluation_months  INTEGER NOT NULL,
    revision_reason    TEXT,
    revision_note      TEXT,
    issued_on          TEXT,
    issuing_body       TEXT,
    approved_by        TEXT,
    filed_with         TEXT,
    filed_on           TEXT,
    filing_receipt     TEXT,
    created_by         TEXT NOT NULL,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    UNIQUE (plan_id, version)
);
CREATE INDEX plan_versions_status ON plan_versions (status, plan_id);

CREATE TABLE plan_evaluations (
    id              INTEGER PRIMARY KEY,
    plan_id         INTEGER NOT NULL REFERENCES plans (id),
    version         INTEGER NOT NULL,
    evaluated_on    TEXT NOT NULL,
    evaluator       TEXT NOT NULL,
    conclusion      TEXT NOT NULL,
    revision_needed INTEGER NOT NULL,
    revision_reason TEXT,
    revision_note   TEXT,
    created_by      TEXT NOT NULL,
    created_at      TEXT NOT NULL
);
CREATE INDEX plan_evaluations_plan ON plan_evaluations (plan_id, evaluated_on);
