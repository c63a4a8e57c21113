-- Background work, isolated and fenced: every claim carries a lease token and an expiry; each
-- item records its own attempts, error and next try; an item that keeps failing is parked
-- `failed`.

ALTER TABLE outbox ADD COLUMN lease TEXT;
ALTER TABLE outbox ADD COLUMN lease_until TIMESTAMPTZ;
-- Per-channel claiming and the takeover of expired leases.
CREATE INDEX outbox_channel_due ON outbox (channel_id, status, next_attempt_at);
CREATE INDEX outbox_lease ON outbox (status, lease_until);

ALTER TABLE job_runs ADD COLUMN lease TEXT;
ALTER TABLE job_runs ADD COLUMN lease_until TIMESTAMPTZ;
ALTER TABLE job_runs ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE job_runs ADD COLUMN next_attempt_at TIMESTAMPTZ;
CREATE INDEX job_runs_lease ON job_runs (status, lease_until);

-- Reminders gain the `failed` state.
ALTER TABLE drill_reminders DROP CONSTRAINT drill_reminders_status_check;
ALTER TABLE drill_reminders ADD CONSTRAINT drill_reminders_status_check
    CHECK (status IN ('pending', 'sent', 'skipped', 'cancelled', 'failed'));
ALTER TABLE drill_reminders ADD COLUMN lease TEXT;
ALTER TABLE drill_reminders ADD COLUMN lease_until TIMESTAMPTZ;
ALTER TABLE drill_reminders ADD COLUMN claimed_by TEXT;
ALTER TABLE drill_reminders ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE drill_reminders ADD COLUMN next_attempt_at TIMESTAMPTZ;
ALTER TABLE drill_reminders ADD COLUMN last_error TEXT;
CREATE INDEX drill_reminders_lease ON drill_reminders (status, lease_until);
CREATE INDEX drill_reminders_retry ON drill_reminders (status, next_attempt_at);
