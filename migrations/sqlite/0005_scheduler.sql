-- Scheduler: schedules and their runs; notifications: channels, outbox, delivery attempts, inbox.

CREATE TABLE schedules (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    job           TEXT NOT NULL,
    cron          TEXT NOT NULL,
    timezone      TEXT NOT NULL,
    enabled       INTEGER NOT NULL,
    missed_policy TEXT NOT NULL CHECK (missed_policy IN ('skip', 'run_once', 'run_all')),
    max_catchup   INTEGER NOT NULL,
    next_due_at   TEXT NOT NULL,
    last_due_at   TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX schedules_due ON schedules (enabled, next_due_at);

-- One row per occurrence: UNIQUE (schedule_id, due_at) is what makes an occurrence run once.
CREATE TABLE job_runs (
    id          INTEGER PRIMARY KEY,
    schedule_id INTEGER NOT NULL REFERENCES schedules (id),
    due_at      TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'skipped')),
    late        INTEGER NOT NULL,
    enqueued_at TEXT NOT NULL,
    started_at  TEXT,
    finished_at TEXT,
    claimed_by  TEXT,
    counts      TEXT,
    error       TEXT,
    UNIQUE (schedule_id, due_at)
);
CREATE INDEX job_runs_status ON job_runs (status, due_at);
CREATE INDEX job_runs_schedule ON job_runs (schedule_id, due_at);

CREATE TABLE channels (
    id          INTEGER PRIMARY KEY,
    region_code TEXT NOT NULL REFERENCES regions (code),
    kind        TEXT NOT NULL CHECK (kind IN ('webhook', 'dingtalk', 'wecom')),
    name        TEXT NOT NULL,
    url_enc     TEXT NOT NULL,
    url_hint    TEXT NOT NULL,
    secret_enc  TEXT,
    enabled     INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX channels_region ON channels (region_code, enabled);

-- Each delivery of a message to one channel. UNIQUE idempotency_key: enqueued once.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    channel_id      INTEGER REFERENCES channels (id),
    region_code     TEXT NOT NULL,
    kind            TEXT NOT NULL,
    title           TEXT NOT NULL,
    body            TEXT NOT NULL,
    data            TEXT NOT NULL,
    late            INTEGER NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'sending', 'delivered', 'failed', 'cancelled')),
    attempts        INTEGER NOT NULL,
    next_attempt_at TEXT NOT NULL,
    claimed_at      TEXT,
    claimed_by      TEXT,
    last_error      TEXT,
    source_type     TEXT,
    source_id       TEXT,
    created_at      TEXT NOT NULL,
    delivered_at    TEXT
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_region ON outbox (region_code, id);
CREATE INDEX outbox_source ON outbox (source_type, source_id, status);

CREATE TABLE delivery_attempts (
    id          INTEGER PRIMARY KEY,
    outbox_id   INTEGER NOT NULL REFERENCES outbox (id),
    attempt     INTEGER NOT NULL,
    at          TEXT NOT NULL,
    ok          INTEGER NOT NULL,
    http_status INTEGER,
    error       TEXT,
    UNIQUE (outbox_id, attempt)
);

-- The in-app inbox: one row per in-app delivery (UNIQUE outbox_id: delivered once).
CREATE TABLE notifications (
    id          INTEGER PRIMARY KEY,
    outbox_id   INTEGER NOT NULL UNIQUE REFERENCES outbox (id),
    region_code TEXT NOT NULL,
    kind        TEXT NOT NULL,
    title       TEXT NOT NULL,
    body        TEXT NOT NULL,
    data        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX notifications_region ON notifications (region_code, id);

CREATE TABLE notification_reads (
    notification_id INTEGER NOT NULL REFERENCES notifications (id),
    user_id         INTEGER NOT NULL REFERENCES users (id),
    read_at         TEXT NOT NULL,
    PRIMARY KEY (notification_id, user_id)
);
