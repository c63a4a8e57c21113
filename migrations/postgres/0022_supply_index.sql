-- 'supplies' (src/supplies/supply_index.rs, the nearest-supplies index): key = depot id. A depot's
-- own row and its stock batches decide what it offers (place, region, name; per item and mode the
-- units by expiry date), so every write to either logs the depot with the writing transaction's
-- id, in that transaction, whatever code path writes (ledger, transfers, requisitions, CSV import,
-- a future one). Uses the keyed change log of migration 0021 (src/change_feed.rs): statement
-- triggers with transition tables, one row per transaction and depot, TRUNCATE logs every key.
CREATE FUNCTION supplies_log_all() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO change_log (name, xid, key) VALUES ('supplies', pg_current_xact_id(), -1) ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE FUNCTION supplies_log_depots() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO change_log (name, xid, key) SELECT DISTINCT 'supplies', pg_current_xact_id(), r.id FROM new_rows r ON CONFLICT DO NOTHING;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO change_log (name, xid, key) SELECT DISTINCT 'supplies', pg_current_xact_id(), r.id FROM old_rows r ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER supplies_log_insert AFTER INSERT ON depots REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION supplies_log_depots();
CREATE TRIGGER supplies_log_update AFTER UPDATE ON depots REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION supplies_log_depots();
CREATE TRIGGER supplies_log_delete AFTER DELETE ON depots REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION supplies_log_depots();
CREATE TRIGGER supplies_log_truncate AFTER TRUNCATE ON depots FOR EACH STATEMENT EXECUTE FUNCTION supplies_log_all();

CREATE FUNCTION supplies_log_stock_batches() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO change_log (name, xid, key) SELECT DISTINCT 'supplies', pg_current_xact_id(), r.depot_id FROM new_rows r ON CONFLICT DO NOTHING;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO change_log (name, xid, key) SELECT DISTINCT 'supplies', pg_current_xact_id(), r.depot_id FROM old_rows r ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER supplies_log_insert AFTER INSERT ON stock_batches REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION supplies_log_stock_batches();
CREATE TRIGGER supplies_log_update AFTER UPDATE ON stock_batches REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION supplies_log_stock_batches();
CREATE TRIGGER supplies_log_delete AFTER DELETE ON stock_batches REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION supplies_log_stock_batches();
CREATE TRIGGER supplies_log_truncate AFTER TRUNCATE ON stock_batches FOR EACH STATEMENT EXECUTE FUNCTION supplies_log_all();
