-- Change log topic 'catalogue' for the read cache of supply items (src/freshness.rs): as for
-- 'auth' and 'regions' (migration 0023), key 0, one row whose `seq` moves with every write to
-- `supply_items`, written by a trigger inside the writing transaction.
CREATE TRIGGER catalogue_change_insert AFTER INSERT ON supply_items BEGIN
    DELETE FROM change_log WHERE name = 'catalogue' AND key = 0; INSERT INTO change_log (name, key) VALUES ('catalogue', 0);
END;
CREATE TRIGGER catalogue_change_update AFTER UPDATE ON supply_items BEGIN
    DELETE FROM change_log WHERE name = 'catalogue' AND key = 0; INSERT INTO change_log (name, key) VALUES ('catalogue', 0);
END;
CREATE TRIGGER catalogue_change_delete AFTER DELETE ON supply_items BEGIN
    DELETE FROM change_log WHERE name = 'catalogue' AND key = 0; INSERT INTO change_log (name, key) VALUES ('catalogue', 0);
END;
