-- 'supplies' (src/supplies/supply_index.rs, the nearest-supplies index): key = depot id. A depot's
-- own row and its stock batches decide what it offers (place, region, name; per item and mode the
-- units by expiry date), so every write to either logs the depot, in the writing transaction,
-- whatever code path writes (ledger, transfers, requisitions, CSV import, a future one). Uses the
-- keyed change log of migration 0021 (src/change_feed.rs). An update logs the old depot too only
-- when the row changed depot (a stock movement updates a batch of the same depot).
CREATE TRIGGER supplies_change_depots_insert AFTER INSERT ON depots BEGIN
    DELETE FROM change_log WHERE name = 'supplies' AND key = NEW.id; INSERT INTO change_log (name, key) VALUES ('supplies', NEW.id);
END;
CREATE TRIGGER supplies_change_depots_update AFTER UPDATE ON depots BEGIN
    DELETE FROM change_log WHERE name = 'supplies' AND key = NEW.id; INSERT INTO change_log (name, key) VALUES ('supplies', NEW.id);
END;
CREATE TRIGGER supplies_change_depots_update_old AFTER UPDATE ON depots WHEN OLD.id <> NEW.id BEGIN
    DELETE FROM change_log WHERE name = 'supplies' AND key = OLD.id; INSERT INTO change_log (name, key) VALUES ('supplies', OLD.id);
END;
CREATE TRIGGER supplies_change_depots_delete AFTER DELETE ON depots BEGIN
    DELETE FROM change_log WHERE name = 'supplies' AND key = OLD.id; INSERT INTO change_log (name, key) VALUES ('supplies', OLD.id);
END;
CREATE TRIGGER supplies_change_stock_batches_insert AFTER INSERT ON stock_batches BEGIN
    DELETE FROM change_log WHERE name = 'supplies' AND key = NEW.depot_id; INSERT INTO change_log (name, key) VALUES ('supplies', NEW.depot_id);
END;
CREATE TRIGGER supplies_change_stock_batches_update AFTER UPDATE ON stock_batches BEGIN
    DELETE FROM change_log WHERE name = 'supplies' AND key = NEW.depot_id; INSERT INTO change_log (name, key) VALUES ('supplies', NEW.depot_id);
END;
CREATE TRIGGER supplies_change_stock_batches_update_old AFTER UPDATE ON stock_batches WHEN OLD.depot_id <> NEW.depot_id BEGIN
    DELETE FROM change_log WHERE name = 'supplies' AND key = OLD.depot_id; INSERT INTO change_log (name, key) VALUES ('supplies', OLD.depot_id);
END;
CREATE TRIGGER supplies_change_stock_batches_delete AFTER DELETE ON stock_batches BEGIN
    DELETE FROM change_log WHERE name = 'supplies' AND key = OLD.depot_id; INSERT INTO change_log (name, key) VALUES ('supplies', OLD.depot_id);
END;
