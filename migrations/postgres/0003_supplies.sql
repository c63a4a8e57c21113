-- Supplies: catalogue, depots, stock batches (the materialised ledger balance), movements,
-- idempotency keys, transfers and requisitions.

CREATE TABLE supply_items (
    code              TEXT PRIMARY KEY,
    name              TEXT NOT NULL,
    unit              TEXT NOT NULL,
    shelf_life_months BIGINT CHECK (shelf_life_months IS NULL OR shelf_life_months > 0),
    provisional       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL
);

CREATE TABLE depots (
    id          BIGSERIAL PRIMARY KEY,
    code        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    region_code TEXT NOT NULL REFERENCES regions (code),
    kind        TEXT NOT NULL CHECK (kind IN ('banner_depot', 'township_point', 'village_point', 'agreement_enterprise')),
    lon         DOUBLE PRECISION NOT NULL,
    lat         DOUBLE PRECISION NOT NULL,
    address     TEXT,
    manager     TEXT,
    phone_enc   TEXT,
    notes       TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX depots_region ON depots (region_code);
-- Bounding-box prefilter of the nearest-supplies search.
CREATE INDEX depots_lat_lon ON depots (lat, lon);

-- One row per depot, item and batch. `quantity` is the sum of the batch's movements, updated in
-- the same transaction as each movement insert; the CHECK is the last line of defence.
CREATE TABLE stock_batches (
    id              BIGSERIAL PRIMARY KEY,
    depot_id        BIGINT NOT NULL REFERENCES depots (id),
    item_code       TEXT NOT NULL REFERENCES supply_items (code),
    batch           TEXT NOT NULL,
    quantity        BIGINT NOT NULL DEFAULT 0 CHECK (quantity >= 0),
    production_date DATE,
    expiry_date     DATE,
    reserve_mode    TEXT NOT NULL CHECK (reserve_mode IN ('physical', 'agreement', 'capacity')),
    contract_no     TEXT,
    contract_end    DATE,
    owner           TEXT,
    funding         TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (depot_id, item_code, batch)
);
CREATE INDEX stock_batches_item ON stock_batches (item_code, depot_id);
CREATE INDEX stock_batches_expiry ON stock_batches (expiry_date);

CREATE TABLE stock_minimums (
    depot_id   BIGINT NOT NULL REFERENCES depots (id),
    item_code  TEXT NOT NULL REFERENCES supply_items (code),
    minimum    BIGINT NOT NULL CHECK (minimum >= 0),
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (depot_id, item_code)
);

CREATE TABLE stock_movements (
    id             BIGSERIAL PRIMARY KEY,
    batch_id       BIGINT NOT NULL REFERENCES stock_batches (id),
    depot_id       BIGINT NOT NULL REFERENCES depots (id),
    item_code      TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('receive', 'issue', 'transfer_out', 'transfer_in', 'dispatch', 'requisition_in', 'return', 'adjust')),
    quantity       BIGINT NOT NULL CHECK (quantity <> 0),
    reason         TEXT,
    destination    TEXT,
    reference      TEXT,
    transfer_id    BIGINT,
    requisition_id BIGINT,
    note           TEXT,
    at             TIMESTAMPTZ NOT NULL,
    actor          TEXT NOT NULL
);
CREATE INDEX stock_movements_batch ON stock_movements (batch_id, id);
CREATE INDEX stock_movements_depot ON stock_movements (depot_id, id);

CREATE TABLE idempotency_keys (
    key          TEXT PRIMARY KEY,
    request_hash TEXT NOT NULL,
    status       BIGINT NOT NULL,
    response     TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);

CREATE TABLE transfers (
    id             BIGSERIAL PRIMARY KEY,
    from_depot_id  BIGINT NOT NULL REFERENCES depots (id),
    to_depot_id    BIGINT NOT NULL REFERENCES depots (id),
    item_code      TEXT NOT NULL REFERENCES supply_items (code),
    batch          TEXT,
    quantity       BIGINT NOT NULL CHECK (quantity > 0),
    status         TEXT NOT NULL CHECK (status IN ('requested', 'approved', 'shipped', 'received', 'cancelled')),
    lines          JSONB NOT NULL DEFAULT '[]',
    shipped_qty    BIGINT,
    received_qty   BIGINT,
    difference     BIGINT,
    note           TEXT,
    requested_by   TEXT NOT NULL,
    requested_at   TIMESTAMPTZ NOT NULL,
    approved_at    TIMESTAMPTZ,
    shipped_at     TIMESTAMPTZ,
    received_at    TIMESTAMPTZ,
    cancelled_at   TIMESTAMPTZ
);
CREATE INDEX transfers_from ON transfers (from_depot_id, id);
CREATE INDEX transfers_to ON transfers (to_depot_id, id);

CREATE TABLE requisitions (
    id                  BIGSERIAL PRIMARY KEY,
    depot_id            BIGINT NOT NULL REFERENCES depots (id),
    region_code         TEXT NOT NULL,
    owner               TEXT NOT NULL,
    item_code           TEXT NOT NULL REFERENCES supply_items (code),
    quantity            BIGINT NOT NULL CHECK (quantity > 0),
    batch_id            BIGINT NOT NULL REFERENCES stock_batches (id),
    condition           TEXT NOT NULL,
    received_on         DATE NOT NULL,
    due_return          DATE,
    returned_on         DATE,
    returned_quantity   BIGINT,
    return_condition    TEXT,
    compensation_amount DOUBLE PRECISION,
    compensation_status TEXT NOT NULL CHECK (compensation_status IN ('pending', 'paid', 'waived')),
    note                TEXT,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX requisitions_region ON requisitions (region_code, id);
