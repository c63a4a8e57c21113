-- Covering index for the nearest-supplies searches (supplies::nearest, events::nearby): for each
-- depot in the search box, its batches of the asked items are read from the index alone (mode,
-- expiry and quantity included), without visiting the table row of every batch.
CREATE INDEX stock_batches_depot_cover ON stock_batches (depot_id, item_code, reserve_mode, expiry_date, quantity);
