-- Background work, isolated and fenced: every claim carries a lease token and an expiry; each
-- item records its own attempts, error and next try; an item that keeps failing is parked
-- `failed`.

ALTER TABLE outbox ADD COLUMN lease TEXT;
ALTER TABLE outbox ADD COLUMN lease_until TEXT;
-- Per-channel claiming and the takeover of expired leases.
CREATE INDEX outbox_channel_due ON outbox (channel_id, status, next_attempt_at);
CREATE INDEX outbox_lease ON outbox (status, lease_until);

ALTER TABLE job_runs ADD COLUMN lease TEXT;
ALTER TABLE job_runs ADD COLUMN lease_until TEXT;
ALTER TABLE job_runs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE job_runs ADD COLUMN next_attempt_at TEXT;
CREATE INDEX job_runs_lease ON job_runs (status, lease_until);

-- Reminders gain the `failed` state (a CHECK constraint cannot be altered in SQLite: rebuild).
CREATE TABLE drill_reminders_new (
    id              INTEGER PRIMARY KEY,
    drill_id        INTEGER NOT NULL REFERENCES drills (id),
    starts_at       TEXT NOT NULL,
    offset_minutes  INTEGER NOT NULL,
    due_at          TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'skipped', 'cancelled', 'failed')),
    late            INTEGER NOT NULL,
    processed_at    TEXT,
    note            TEXT,
    lease           TEXT,
    lease_until     TEXT,
    claimed_by      TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    last_error      TEXT,
    UNIQUE (drill_id, starts_at, offset_minutes)
);
INSERT INTO drill_reminders_new (id, drill_id, starts_at, offset_minutes, due_at, status, late, processed_at, note)
    SELECT id, drill_id, starts_at, offset_minutes, due_at, status, late, processed_at, note FROM drill_reminders;
DROP TABLE drill_reminders;
ALTER TABLE drill_reminders_new RENAME TO drill_reminders;
CREATE INDEX drill_reminders_due ON drill_reminders (status, due_at);
CREATE INDEX drill_reminders_lease ON drill_reminders (status, lease_until);
CREATE INDEX drill_reminders_retry ON drill_reminders (status, next_attempt_at);
