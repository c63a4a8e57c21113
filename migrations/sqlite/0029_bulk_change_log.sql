-- Bulk writes of more than 5,000 depots log "every depot" once instead of each row (issue 16: a
-- 1,000,000-row stock import deleted and re-inserted a change_log row for each of its 1,000,000
-- batches, about half of the batch insert's cost). Such a writer (`crate::imports::staged::
-- BulkLog`, the depots and stock imports) first logs the key -1 for the topic in its own
-- transaction (the change feed reads -1 as `Changes::Many`, as it reads any set of more distinct
-- keys than its largest limit, 5,000), then inserts a row into `change_log_bulk`; while that row
-- exists the row triggers below log nothing more, and the writer deletes it again before it
-- commits (`crate::imports::staged::run` refuses to commit while one is left), so no other
-- transaction ever sees it. Readers therefore see the same as before. Without the mark (every
-- other writer) the triggers behave exactly as those of migration 0022.
CREATE TABLE change_log_bulk (
    name TEXT PRIMARY KEY
);

DROP TRIGGER supplies_change_depots_insert;
CREATE TRIGGER supplies_change_depots_insert AFTER INSERT ON depots
WHEN NOT EXISTS (SELECT 1 FROM change_log_bulk WHERE name = 'supplies')
BEGIN
    DELETE FROM change_log WHERE name = 'supplies' AND key = NEW.id; INSERT INTO change_log (name, key) VALUES ('supplies', NEW.id);
END;

DROP TRIGGER supplies_change_depots_update;
CREATE TRIGGER supplies_change_depots_update AFTER UPDATE ON depots
WHEN NOT EXISTS (SELECT 1 FROM change_log_bulk WHERE name = 'supplies')
BEGIN
    DELETE FROM change_log WHERE name = 'supplies' AND key = NEW.id; INSERT INTO change_log (name, key) VALUES ('supplies', NEW.id);
END;

DROP TRIGGER supplies_change_stock_batches_insert;
CREATE TRIGGER supplies_change_stock_batches_insert AFTER INSERT ON stock_batches
WHEN NOT EXISTS (SELECT 1 FROM change_log_bulk WHERE name = 'supplies')
BEGIN
    DELETE FROM change_log WHERE name = 'supplies' AND key = NEW.depot_id; INSERT INTO change_log (name, key) VALUES ('supplies', NEW.depot_id);
END;
