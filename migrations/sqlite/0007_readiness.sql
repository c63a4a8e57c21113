-- Readiness: runs, findings with identity and history, per-region scores, configuration.

CREATE TABLE readiness_runs (
    id          INTEGER PRIMARY KEY,
    triggered_by TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    status      TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    summary     TEXT,
    error       TEXT
);
CREATE INDEX readiness_runs_started ON readiness_runs (started_at);

CREATE TABLE readiness_findings (
    id           INTEGER PRIMARY KEY,
    identity     TEXT NOT NULL,
    rule         TEXT NOT NULL,
    severity     TEXT NOT NULL CHECK (severity IN ('critical', 'warning', 'info')),
    region_code  TEXT NOT NULL,
    subject_type TEXT NOT NULL,
    subject_id   TEXT NOT NULL,
    requirement  TEXT NOT NULL,
    facts        TEXT NOT NULL,
    message      TEXT NOT NULL,
    basis        TEXT NOT NULL,
    action       TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('open', 'resolved')),
    first_seen   TEXT NOT NULL,
    last_seen    TEXT NOT NULL,
    resolved_at  TEXT,
    first_run_id INTEGER NOT NULL REFERENCES readiness_runs (id),
    last_run_id  INTEGER NOT NULL REFERENCES readiness_runs (id)
);
-- A finding is open at most once at a time; once resolved, a recurrence is a new finding.
CREATE UNIQUE INDEX readiness_findings_open ON readiness_findings (identity) WHERE status = 'open';
CREATE INDEX readiness_findings_region ON readiness_findings (region_code, status, severity);
CREATE INDEX readiness_findings_rule ON readiness_findings (rule, status);

CREATE TABLE readiness_scores (
    run_id      INTEGER NOT NULL REFERENCES readiness_runs (id),
    region_code TEXT NOT NULL,
    score       INTEGER NOT NULL,
    critical    INTEGER NOT NULL,
    warning     INTEGER NOT NULL,
    info        INTEGER NOT NULL,
    PRIMARY KEY (region_code, run_id)
);

CREATE TABLE readiness_config (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    config     TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
