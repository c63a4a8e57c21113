-- Readiness: runs, findings with identity and history, per-region scores, configuration.

CREATE TABLE readiness_runs (
    id          BIGSERIAL PRIMARY KEY,
    triggered_by TEXT NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    status      TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    summary     JSONB,
    error       TEXT
);
CREATE INDEX readiness_runs_started ON readiness_runs (started_at);

CREATE TABLE readiness_findings (
    id           BIGSERIAL PRIMARY KEY,
    identity     TEXT NOT NULL,
    rule         TEXT NOT NULL,
    severity     TEXT NOT NULL CHECK (severity IN ('critical', 'warning', 'info')),
    region_code  TEXT NOT NULL,
    subject_type TEXT NOT NULL,
    subject_id   TEXT NOT NULL,
    requirement  TEXT NOT NULL,
    facts        JSONB NOT NULL,
    message      TEXT NOT NULL,
    basis        TEXT NOT NULL,
    action       TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('open', 'resolved')),
    first_seen   TIMESTAMPTZ NOT NULL,
    last_seen    TIMESTAMPTZ NOT NULL,
    resolved_at  TIMESTAMPTZ,
    first_run_id BIGINT NOT NULL REFERENCES readiness_runs (id),
    last_run_id  BIGINT NOT NULL REFERENCES readiness_runs (id)
);
-- A finding is open at most once at a time; once resolved, a recurrence is a new finding.
CREATE UNIQUE INDEX readiness_findings_open ON readiness_findings (identity) WHERE status = 'open';
CREATE INDEX readiness_findings_region ON readiness_findings (region_code, status, severity);
CREATE INDEX readiness_findings_rule ON readiness_findings (rule, status);

CREATE TABLE readiness_scores (
    run_id      BIGINT NOT NULL REFERENCES readiness_runs (id),
    region_code TEXT NOT NULL,
    score       BIGINT NOT NULL,
    critical    BIGINT NOT NULL,
    warning     BIGINT NOT NULL,
    info        BIGINT NOT NULL,
    PRIMARY KEY (region_code, run_id)
);

CREATE TABLE readiness_config (
    id         BIGINT PRIMARY KEY CHECK (id = 1),
    config     JSONB NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
