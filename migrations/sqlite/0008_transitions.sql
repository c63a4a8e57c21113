-- Issue 10: one transition rule for every status change.
-- Transfers gain a `returned` state (a shipped transfer sent back to its source); requisitions get
-- a `status` column the transition helper decides on and store compensation in fen (integers);
-- idempotency keys remember the route they were used on.

CREATE TABLE transfers_new (
    id             INTEGER PRIMARY KEY,
    from_depot_id  INTEGER NOT NULL REFERENCES depots (id),
    to_depot_id    INTEGER NOT NULL REFERENCES depots (id),
    item_code      TEXT NOT NULL REFERENCES supply_items (code),
    batch          TEXT,
    quantity       INTEGER NOT NULL CHECK (quantity > 0),
    status         TEXT NOT NULL CHECK (status IN ('requested', 'approved', 'shipped', 'received', 'cancelled', 'returned')),
    lines          TEXT NOT NULL DEFAULT '[]',
    shipped_qty    INTEGER,
    received_qty   INTEGER,
    difference     INTEGER,
    note           TEXT,
    requested_by   TEXT NOT NULL,
    requested_at   TEXT NOT NULL,
    approved_at    TEXT,
    shipped_at     TEXT,
    received_at    TEXT,
    cancelled_at   TEXT,
    returned_qty   INTEGER,
    returned_at    TEXT
);
INSERT INTO transfers_new (id, from_depot_id, to_depot_id, item_code, batch, quantity, status, lines, shipped_qty,
    received_qty, difference, note, requested_by, requested_at, approved_at, shipped_at, received_at, cancelled_at)
SELECT id, from_depot_id, to_depot_id, item_code, batch, quantity, status, lines, shipped_qty,
    received_qty, difference, note, requested_by, requested_at, approved_at, shipped_at, received_at, cancelled_at
FROM transfers;
DROP TABLE transfers;
ALTER TABLE transfers_new RENAME TO transfers;
CREATE INDEX transfers_from ON transfers (from_depot_id, id);
CREATE INDEX transfers_to ON transfers (to_depot_id, id);

ALTER TABLE requisitions ADD COLUMN status TEXT NOT NULL DEFAULT 'held' CHECK (status IN ('held', 'returned'));
UPDATE requisitions SET status = 'returned' WHERE returned_on IS NOT NULL;
ALTER TABLE requisitions ADD COLUMN compensation_fen INTEGER CHECK (compensation_fen >= 0);
UPDATE requisitions SET compensation_fen = CAST(ROUND(compensation_amount * 100) AS INTEGER)
WHERE compensation_amount IS NOT NULL;
ALTER TABLE requisitions DROP COLUMN compensation_amount;

ALTER TABLE idempotency_keys ADD COLUMN scope TEXT NOT NULL DEFAULT '';
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
