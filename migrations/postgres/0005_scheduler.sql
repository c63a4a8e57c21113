-- Scheduler: schedules and their runs; notifications: channels, outbox, delivery attempts, inbox.

CREATE TABLE schedules (
    id            BIGSERIAL PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    job           TEXT NOT NULL,
    cron          TEXT NOT NULL,
    timezone      TEXT NOT NULL,
    enabled       BOOLEAN NOT NULL,
    missed_policy TEXT NOT NULL CHECK (missed_policy IN ('skip', 'run_once', 'run_all')),
    max_catchup   BIGINT NOT NULL,
    next_due_at   TIMESTAMPTZ NOT NULL,
    last_due_at   TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX schedules_due ON schedules (enabled, next_due_at);

-- One row per occurrence: UNIQUE (schedule_id, due_at) is what makes an occurrence run once.
CREATE TABLE job_runs (
    id          BIGSERIAL PRIMARY KEY,
    schedule_id BIGINT NOT NULL REFERENCES schedules (id),
    due_at      TIMESTAMPTZ NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'skipped')),
    late        BOOLEAN NOT NULL,
    enqueued_at TIMESTAMPTZ NOT NULL,
    started_at  TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    claimed_by  TEXT,
    counts      JSONB,
    error       TEXT,
    UNIQUE (schedule_id, due_at)
);
CREATE INDEX job_runs_status ON job_runs (status, due_at);
CREATE INDEX job_runs_schedule ON job_runs (schedule_id, due_at);

CREATE TABLE channels (
    id          BIGSERIAL PRIMARY KEY,
    region_code TEXT NOT NULL REFERENCES regions (code),
    kind        TEXT NOT NULL CHECK (kind IN ('webhook', 'dingtalk', 'wecom')),
    name        TEXT NOT NULL,
    url_enc     TEXT NOT NULL,
    url_hint    TEXT NOT NULL,
    secret_enc  TEXT,
    enabled     BOOLEAN NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX channels_region ON channels (region_code, enabled);

-- Each delivery of a message to one channel. UNIQUE idempotency_key: enqueued once.
CREATE TABLE outbox (
    id              BIGSERIAL PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    channel_id      BIGINT REFERENCES channels (id),
    region_code     TEXT NOT NULL,
    kind            TEXT NOT NULL,
    title           TEXT NOT NULL,
    body            TEXT NOT NULL,
    data            JSONB NOT NULL,
    late            BOOLEAN NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'sending', 'delivered', 'failed', 'cancelled')),
    attempts        BIGINT NOT NULL,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    claimed_at      TIMESTAMPTZ,
    claimed_by      TEXT,
    last_error      TEXT,
    source_type     TEXT,
    source_id       TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    delivered_at    TIMESTAMPTZ
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_region ON outbox (region_code, id);
CREATE INDEX outbox_source ON outbox (source_type, source_id, status);

CREATE TABLE delivery_attempts (
    id          BIGSERIAL PRIMARY KEY,
    outbox_id   BIGINT NOT NULL REFERENCES outbox (id),
    attempt     BIGINT NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    ok          BOOLEAN NOT NULL,
    http_status BIGINT,
    error       TEXT,
    UNIQUE (outbox_id, attempt)
);

-- The in-app inbox: one row per in-app delivery (UNIQUE outbox_id: delivered once).
CREATE TABLE notifications (
    id          BIGSERIAL PRIMARY KEY,
    outbox_id   BIGINT NOT NULL UNIQUE REFERENCES outbox (id),
    region_code TEXT NOT NULL,
    kind        TEXT NOT NULL,
    title       TEXT NOT NULL,
    body        TEXT NOT NULL,
    data        JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX notifications_region ON notifications (region_code, id);

CREATE TABLE notification_reads (
    notification_id BIGINT NOT NULL REFERENCES notifications (id),
    user_id         BIGINT NOT NULL REFERENCES users (id),
    read_at         TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (notification_id, user_id)
);
