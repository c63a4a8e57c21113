-- Change log topic 'catalogue' for the read cache of supply items (src/freshness.rs): as for
-- 'auth' and 'regions' (migration 0023), key 0, one row per writing transaction, written by a
-- statement trigger inside that transaction.
CREATE TRIGGER catalogue_change AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON supply_items FOR EACH STATEMENT EXECUTE FUNCTION record_read_cache_change('catalogue');
