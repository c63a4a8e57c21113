-- Issue 10: one transition rule for every status change.
-- Transfers gain a `returned` state (a shipped transfer sent back to its source); requisitions get
-- a `status` column the transition helper decides on and store compensation in fen (integers);
-- idempotency keys remember the route they were used on.

ALTER TABLE transfers DROP CONSTRAINT transfers_status_check;
ALTER TABLE transfers ADD CONSTRAINT transfers_status_check
    CHECK (status IN ('requested', 'approved', 'shipped', 'received', 'cancelled', 'returned'));
ALTER TABLE transfers ADD COLUMN returned_qty BIGINT, ADD COLUMN returned_at TIMESTAMPTZ;

ALTER TABLE requisitions ADD COLUMN status TEXT NOT NULL DEFAULT 'held' CHECK (status IN ('held', 'returned'));
UPDATE requisitions SET status = 'returned' WHERE returned_on IS NOT NULL;
ALTER TABLE requisitions ADD COLUMN compensation_fen BIGINT CHECK (compensation_fen >= 0);
UPDATE requisitions SET compensation_fen = CAST(ROUND(CAST(compensation_amount * 100 AS NUMERIC)) AS BIGINT)
WHERE compensation_amount IS NOT NULL;
ALTER TABLE requisitions DROP COLUMN compensation_amount;

ALTER TABLE idempotency_keys ADD COLUMN scope TEXT NOT NULL DEFAULT '';
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
