-- A statement that changes depots or stock batches of more than 5,000 depots logs the key -1
-- ("every depot") instead of each depot (issue 16: a 100,000-depot import inserted 100,000
-- change_log rows). Readers see the same thing as before: the change feed turns more distinct
-- keys than its largest limit (5,000, `BUILD_CATCH_UP_LIMIT` in src/change_feed/mod.rs; 256 while
-- a request waits) into `Changes::Many`, exactly as it does for -1, and the read caches of
-- src/freshness.rs only ask whether the topic changed at all. Below the threshold each depot is
-- logged as in migration 0022.
CREATE OR REPLACE FUNCTION supplies_log_depots() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        IF (SELECT count(*) FROM (SELECT DISTINCT r.id FROM new_rows r LIMIT 5001) AS k) > 5000 THEN
            INSERT INTO change_log (name, xid, key) VALUES ('supplies', pg_current_xact_id(), -1) ON CONFLICT DO NOTHING;
        ELSE
            INSERT INTO change_log (name, xid, key) SELECT DISTINCT 'supplies', pg_current_xact_id(), r.id FROM new_rows r ON CONFLICT DO NOTHING;
        END IF;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        IF (SELECT count(*) FROM (SELECT DISTINCT r.id FROM old_rows r LIMIT 5001) AS k) > 5000 THEN
            INSERT INTO change_log (name, xid, key) VALUES ('supplies', pg_current_xact_id(), -1) ON CONFLICT DO NOTHING;
        ELSE
            INSERT INTO change_log (name, xid, key) SELECT DISTINCT 'supplies', pg_current_xact_id(), r.id FROM old_rows r ON CONFLICT DO NOTHING;
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION supplies_log_stock_batches() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        IF (SELECT count(*) FROM (SELECT DISTINCT r.depot_id FROM new_rows r LIMIT 5001) AS k) > 5000 THEN
            INSERT INTO change_log (name, xid, key) VALUES ('supplies', pg_current_xact_id(), -1) ON CONFLICT DO NOTHING;
        ELSE
            INSERT INTO change_log (name, xid, key) SELECT DISTINCT 'supplies', pg_current_xact_id(), r.depot_id FROM new_rows r ON CONFLICT DO NOTHING;
        END IF;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        IF (SELECT count(*) FROM (SELECT DISTINCT r.depot_id FROM old_rows r LIMIT 5001) AS k) > 5000 THEN
            INSERT INTO change_log (name, xid, key) VALUES ('supplies', pg_current_xact_id(), -1) ON CONFLICT DO NOTHING;
        ELSE
            INSERT INTO change_log (name, xid, key) SELECT DISTINCT 'supplies', pg_current_xact_id(), r.depot_id FROM old_rows r ON CONFLICT DO NOTHING;
        END IF;
    END IF;
    RETURN NULL;
END
$$;
