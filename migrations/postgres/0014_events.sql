-- Events (突发事件): information reports, response activations with their resource plan lines,
-- the timeline, linked requisitions, recovery tasks, the assessment; and the events settings.

CREATE TABLE events (
    id                  BIGSERIAL PRIMARY KEY,
    region_code         TEXT NOT NULL REFERENCES regions (code),
    hazard              TEXT NOT NULL,
    title               TEXT NOT NULL,
    occurred_at         TIMESTAMPTZ NOT NULL,
    known_at            TIMESTAMPTZ NOT NULL,
    place               TEXT NOT NULL,
    lon                 DOUBLE PRECISION NOT NULL,
    lat                 DOUBLE PRECISION NOT NULL,
    description         TEXT NOT NULL,
    dead                BIGINT NOT NULL DEFAULT 0,
    injured             BIGINT NOT NULL DEFAULT 0,
    missing             BIGINT NOT NULL DEFAULT 0,
    trapped             BIGINT NOT NULL DEFAULT 0,
    affected_people     BIGINT NOT NULL DEFAULT 0,
    affected_households BIGINT NOT NULL DEFAULT 0,
    affected_livestock  BIGINT NOT NULL DEFAULT 0,
    source              TEXT NOT NULL,
    reporter            TEXT NOT NULL,
    severity            TEXT NOT NULL CHECK (severity IN ('especially_serious', 'serious', 'relatively_serious', 'general')),
    status              TEXT NOT NULL CHECK (status IN ('reported', 'responding', 'terminated')),
    exercise            BOOLEAN NOT NULL,
    drill_id            BIGINT REFERENCES drills (id),
    plan_id             BIGINT,
    plan_version        BIGINT,
    level               BIGINT,
    activated_at        TIMESTAMPTZ,
    terminated_at       TIMESTAMPTZ,
    terminated_by       TEXT,
    termination_note    TEXT,
    first_report_due    TIMESTAMPTZ NOT NULL,
    first_report_at     TIMESTAMPTZ,
    first_report_state  TEXT NOT NULL CHECK (first_report_state IN ('pending', 'overdue', 'done')),
    created_by          TEXT NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    CHECK (NOT exercise OR drill_id IS NOT NULL)
);
CREATE INDEX events_region ON events (region_code, id);
CREATE INDEX events_first_report ON events (first_report_state, first_report_due);

CREATE TABLE event_reports (
    id          BIGSERIAL PRIMARY KEY,
    event_id    BIGINT NOT NULL REFERENCES events (id),
    kind        TEXT NOT NULL CHECK (kind IN ('initial', 'follow_up', 'verified', 'final')),
    reported_at TIMESTAMPTZ NOT NULL,
    content     TEXT NOT NULL,
    severity    TEXT,
    reporter    TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX event_reports_event ON event_reports (event_id, id);

CREATE TABLE event_activations (
    id           BIGSERIAL PRIMARY KEY,
    event_id     BIGINT NOT NULL REFERENCES events (id),
    plan_id      BIGINT NOT NULL,
    plan_version BIGINT NOT NULL,
    level        BIGINT NOT NULL CHECK (level BETWEEN 1 AND 4),
    change       TEXT NOT NULL CHECK (change IN ('activate', 'raise', 'lower')),
    reason       TEXT,
    decided_by   TEXT NOT NULL,
    decided_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX event_activations_event ON event_activations (event_id, id);

CREATE TABLE event_lines (
    id            BIGSERIAL PRIMARY KEY,
    event_id      BIGINT NOT NULL REFERENCES events (id),
    activation_id BIGINT NOT NULL REFERENCES event_activations (id),
    kind          TEXT NOT NULL CHECK (kind IN ('supply', 'force')),
    need          TEXT NOT NULL,
    source        TEXT NOT NULL CHECK (source IN ('nearest', 'agreement', 'beyond')),
    depot_id      BIGINT REFERENCES depots (id),
    team_id       BIGINT REFERENCES teams (id),
    region_code   TEXT NOT NULL,
    quantity      BIGINT NOT NULL CHECK (quantity > 0),
    distance_km   DOUBLE PRECISION NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('proposed', 'superseded', 'requested', 'dispatched', 'arrived', 'on_site', 'returned')),
    exercise      BOOLEAN NOT NULL,
    callup_id     BIGINT REFERENCES callups (id),
    escalation    TEXT NOT NULL CHECK (escalation IN ('none', 'region', 'banner')),
    acted_by      TEXT,
    acted_at      TIMESTAMPTZ,
    arrived_at    TIMESTAMPTZ,
    updated_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX event_lines_event ON event_lines (event_id, id);
CREATE INDEX event_lines_waiting ON event_lines (kind, status, escalation);

CREATE TABLE event_entries (
    id          BIGSERIAL PRIMARY KEY,
    event_id    BIGINT NOT NULL REFERENCES events (id),
    at          TIMESTAMPTZ NOT NULL,
    actor       TEXT NOT NULL,
    region_code TEXT NOT NULL,
    kind        TEXT NOT NULL,
    text        TEXT NOT NULL
);
CREATE INDEX event_entries_event ON event_entries (event_id, at, id);

CREATE TABLE event_requisitions (
    event_id       BIGINT NOT NULL REFERENCES events (id),
    requisition_id BIGINT NOT NULL REFERENCES requisitions (id),
    PRIMARY KEY (event_id, requisition_id)
);

CREATE TABLE event_tasks (
    id          BIGSERIAL PRIMARY KEY,
    event_id    BIGINT NOT NULL REFERENCES events (id),
    kind        TEXT NOT NULL CHECK (kind IN ('recovery', 'corrective')),
    title       TEXT NOT NULL,
    owner_unit  TEXT NOT NULL,
    due_on      DATE NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('open', 'done')),
    created_by  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX event_tasks_event ON event_tasks (event_id, id);

CREATE TABLE event_assessments (
    event_id    BIGINT PRIMARY KEY REFERENCES events (id),
    causes      TEXT NOT NULL,
    summary     TEXT NOT NULL,
    lessons     JSONB NOT NULL,
    assessed_by TEXT NOT NULL,
    assessed_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE event_settings (
    id         BIGINT PRIMARY KEY CHECK (id = 1),
    settings   JSONB NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- Dispatch movements are found by their reference (the event).
CREATE INDEX stock_movements_reference ON stock_movements (reference);
