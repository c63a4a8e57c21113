-- Events (突发事件): information reports, response activations with their resource plan lines,
-- the timeline, linked requisitions, recovery tasks, the assessment; and the events settings.

CREATE TABLE events (
    id                  INTEGER PRIMARY KEY,
    region_code         TEXT NOT NULL REFERENCES regions (code),
    hazard              TEXT NOT NULL,
    title               TEXT NOT NULL,
    occurred_at         TEXT NOT NULL,
    known_at            TEXT NOT NULL,
    place               TEXT NOT NULL,
    lon                 REAL NOT NULL,
    lat                 REAL NOT NULL,
    description         TEXT NOT NULL,
    dead                INTEGER NOT NULL DEFAULT 0,
    injured             INTEGER NOT NULL DEFAULT 0,
    missing             INTEGER NOT NULL DEFAULT 0,
    trapped             INTEGER NOT NULL DEFAULT 0,
    affected_people     INTEGER NOT NULL DEFAULT 0,
    affected_households INTEGER NOT NULL DEFAULT 0,
    affected_livestock  INTEGER NOT NULL DEFAULT 0,
    source              TEXT NOT NULL,
    reporter            TEXT NOT NULL,
    severity            TEXT NOT NULL CHECK (severity IN ('especially_serious', 'serious', 'relatively_serious', 'general')),
    status              TEXT NOT NULL CHECK (status IN ('reported', 'responding', 'terminated')),
    exercise            INTEGER NOT NULL,
    drill_id            INTEGER REFERENCES drills (id),
    plan_id             INTEGER,
    plan_version        INTEGER,
    level               INTEGER,
    activated_at        TEXT,
    terminated_at       TEXT,
    terminated_by       TEXT,
    termination_note    TEXT,
    first_report_due    TEXT NOT NULL,
    first_report_at     TEXT,
    first_report_state  TEXT NOT NULL CHECK (first_report_state IN ('pending', 'overdue', 'done')),
    created_by          TEXT NOT NULL,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    CHECK (exercise = 0 OR drill_id IS NOT NULL)
);
CREATE INDEX events_region ON events (region_code, id);
CREATE INDEX events_first_report ON events (first_report_state, first_report_due);

CREATE TABLE event_reports (
    id          INTEGER PRIMARY KEY,
    event_id    INTEGER NOT NULL REFERENCES events (id),
    kind        TEXT NOT NULL CHECK (kind IN ('initial', 'follow_up', 'verified', 'final')),
    reported_at TEXT NOT NULL,
    content     TEXT NOT NULL,
    severity    TEXT,
    reporter    TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX event_reports_event ON event_reports (event_id, id);

CREATE TABLE event_activations (
    id           INTEGER PRIMARY KEY,
    event_id     INTEGER NOT NULL REFERENCES events (id),
    plan_id      INTEGER NOT NULL,
    plan_version INTEGER NOT NULL,
    level        INTEGER NOT NULL CHECK (level BETWEEN 1 AND 4),
    change       TEXT NOT NULL CHECK (change IN ('activate', 'raise', 'lower')),
    reason       TEXT,
    decided_by   TEXT NOT NULL,
    decided_at   TEXT NOT NULL
);
CREATE INDEX event_activations_event ON event_activations (event_id, id);

CREATE TABLE event_lines (
    id            INTEGER PRIMARY KEY,
    event_id      INTEGER NOT NULL REFERENCES events (id),
    activation_id INTEGER NOT NULL REFERENCES event_activations (id),
    kind          TEXT NOT NULL CHECK (kind IN ('supply', 'force')),
    need          TEXT NOT NULL,
    source        TEXT NOT NULL CHECK (source IN ('nearest', 'agreement', 'beyond')),
    depot_id      INTEGER REFERENCES depots (id),
    team_id       INTEGER REFERENCES teams (id),
    region_code   TEXT NOT NULL,
    quantity      INTEGER NOT NULL CHECK (quantity > 0),
    distance_km   REAL NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('proposed', 'superseded', 'requested', 'dispatched', 'arrived', 'on_site', 'returned')),
    exercise      INTEGER NOT NULL,
    callup_id     INTEGER REFERENCES callups (id),
    escalation    TEXT NOT NULL CHECK (escalation IN ('none', 'region', 'banner')),
    acted_by      TEXT,
    acted_at      TEXT,
    arrived_at    TEXT,
    updated_at    TEXT NOT NULL
);
CREATE INDEX event_lines_event ON event_lines (event_id, id);
CREATE INDEX event_lines_waiting ON event_lines (kind, status, escalation);

CREATE TABLE event_entries (
    id          INTEGER PRIMARY KEY,
    event_id    INTEGER NOT NULL REFERENCES events (id),
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    region_code TEXT NOT NULL,
    kind        TEXT NOT NULL,
    text        TEXT NOT NULL
);
CREATE INDEX event_entries_event ON event_entries (event_id, at, id);

CREATE TABLE event_requisitions (
    event_id       INTEGER NOT NULL REFERENCES events (id),
    requisition_id INTEGER NOT NULL REFERENCES requisitions (id),
    PRIMARY KEY (event_id, requisition_id)
);

CREATE TABLE event_tasks (
    id          INTEGER PRIMARY KEY,
    event_id    INTEGER NOT NULL REFERENCES events (id),
    kind        TEXT NOT NULL CHECK (kind IN ('recovery', 'corrective')),
    title       TEXT NOT NULL,
    owner_unit  TEXT NOT NULL,
    due_on      TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('open', 'done')),
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX event_tasks_event ON event_tasks (event_id, id);

CREATE TABLE event_assessments (
    event_id    INTEGER PRIMARY KEY REFERENCES events (id),
    causes      TEXT NOT NULL,
    summary     TEXT NOT NULL,
    lessons     TEXT NOT NULL,
    assessed_by TEXT NOT NULL,
    assessed_at TEXT NOT NULL
);

CREATE TABLE event_settings (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    settings   TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Dispatch movements are found by their reference (the event).
CREATE INDEX stock_movements_reference ON stock_movements (reference);
