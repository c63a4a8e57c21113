-- Drills: the calendar, reminders, evaluations, findings and corrective actions; calendar feed tokens.

CREATE TABLE drills (
    id                  BIGSERIAL PRIMARY KEY,
    series_id           BIGINT REFERENCES drills (id),
    recurrence          TEXT,
    title               TEXT NOT NULL,
    form                TEXT NOT NULL CHECK (form IN ('tabletop', 'field')),
    scope               TEXT NOT NULL CHECK (scope IN ('single', 'comprehensive')),
    purpose             TEXT NOT NULL CHECK (purpose IN ('test', 'demonstration', 'research')),
    objective           TEXT NOT NULL,
    region_code         TEXT NOT NULL REFERENCES regions (code),
    organiser_unit      TEXT NOT NULL,
    participating_units JSONB NOT NULL,
    place_name          TEXT NOT NULL,
    lon                 DOUBLE PRECISION,
    lat                 DOUBLE PRECISION,
    starts_at           TIMESTAMPTZ NOT NULL,
    ends_at             TIMESTAMPTZ NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('planned', 'in_progress', 'completed', 'evaluated', 'cancelled', 'postponed')),
    reminder_offsets    JSONB NOT NULL,
    postponed_from      TIMESTAMPTZ,
    cancel_reason       TEXT,
    actual              JSONB,
    evaluation          JSONB,
    sequence            BIGINT NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX drills_region_start ON drills (region_code, starts_at);
CREATE INDEX drills_start ON drills (starts_at);
CREATE INDEX drills_series ON drills (series_id, starts_at);

CREATE TABLE drill_plans (
    drill_id BIGINT NOT NULL REFERENCES drills (id),
    plan_id  BIGINT NOT NULL,
    PRIMARY KEY (drill_id, plan_id)
);
CREATE INDEX drill_plans_plan ON drill_plans (plan_id);

CREATE TABLE drill_teams (
    drill_id  BIGINT NOT NULL REFERENCES drills (id),
    team_code TEXT NOT NULL,
    PRIMARY KEY (drill_id, team_code)
);

-- One row per (drill, start, offset): re-planning after a postponement makes new rows.
CREATE TABLE drill_reminders (
    id             BIGSERIAL PRIMARY KEY,
    drill_id       BIGINT NOT NULL REFERENCES drills (id),
    starts_at      TIMESTAMPTZ NOT NULL,
    offset_minutes BIGINT NOT NULL,
    due_at         TIMESTAMPTZ NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'skipped', 'cancelled')),
    late           BOOLEAN NOT NULL,
    processed_at   TIMESTAMPTZ,
    note           TEXT,
    UNIQUE (drill_id, starts_at, offset_minutes)
);
CREATE INDEX drill_reminders_due ON drill_reminders (status, due_at);

CREATE TABLE drill_findings (
    id         BIGSERIAL PRIMARY KEY,
    drill_id   BIGINT NOT NULL REFERENCES drills (id),
    problem    TEXT NOT NULL,
    cause      TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX drill_findings_drill ON drill_findings (drill_id);

CREATE TABLE corrective_actions (
    id          BIGSERIAL PRIMARY KEY,
    drill_id    BIGINT NOT NULL REFERENCES drills (id),
    finding_id  BIGINT REFERENCES drill_findings (id),
    region_code TEXT NOT NULL,
    action      TEXT NOT NULL,
    owner_unit  TEXT NOT NULL,
    due_on      DATE NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('open', 'done', 'verified')),
    done_at     TIMESTAMPTZ,
    verified_at TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX corrective_actions_drill ON corrective_actions (drill_id);
CREATE INDEX corrective_actions_due ON corrective_actions (status, due_on);
CREATE INDEX corrective_actions_region ON corrective_actions (region_code, status);

CREATE TABLE feed_tokens (
    id         BIGSERIAL PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id),
    token_hash TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);
CREATE INDEX feed_tokens_user ON feed_tokens (user_id);
