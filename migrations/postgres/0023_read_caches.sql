-- Change log for the read caches of src/freshness.rs: 'auth' (who a bearer token stands for:
-- tokens, users, the level of a user's region) and 'regions' (pages of GET /api/v1/regions).
-- As in 0020, a statement trigger records the writing transaction's id in that transaction, so no
-- code path can change those rows unrecorded, and a cache built in a snapshot is used only while no
-- committed change is missing from that snapshot. One row per transaction and topic, no shared
-- counter row: writers never wait on each other here.
-- New tokens and new users need no record: the token cache holds only tokens it has seen valid.
-- Its own table (not 0020's `cache_changes`), so it stands whatever becomes of that one.
CREATE TABLE read_cache_changes (
    name TEXT NOT NULL,
    xid  xid8 NOT NULL,
    at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (name, xid)
);
CREATE INDEX read_cache_changes_at ON read_cache_changes (at);

CREATE FUNCTION record_read_cache_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO read_cache_changes (name, xid) VALUES (TG_ARGV[0], pg_current_xact_id()) ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER auth_change AFTER UPDATE OR DELETE OR TRUNCATE ON api_tokens FOR EACH STATEMENT EXECUTE FUNCTION record_read_cache_change('auth');
CREATE TRIGGER auth_change AFTER UPDATE OR DELETE OR TRUNCATE ON users FOR EACH STATEMENT EXECUTE FUNCTION record_read_cache_change('auth');
CREATE TRIGGER auth_change AFTER UPDATE OF code, level OR DELETE OR TRUNCATE ON regions FOR EACH STATEMENT EXECUTE FUNCTION record_read_cache_change('auth');
CREATE TRIGGER regions_change AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON regions FOR EACH STATEMENT EXECUTE FUNCTION record_read_cache_change('regions');
