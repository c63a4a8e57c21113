-- Change log topics for the read caches of src/freshness.rs: 'auth' (who a bearer token stands
-- for: tokens, users, the level of a user's region) and 'regions' (pages of GET /api/v1/regions).
-- They use the keyed change log of migration 0021 (src/change_feed.rs) with the single key 0: a
-- cache holds whole pages and principals, so "something in the topic changed" is all it needs. As
-- there, a trigger writes the log row inside the writing transaction itself, so no code path (API,
-- CLI, console, CSV import, a future one) can change those rows unrecorded; the older row of the
-- key is deleted first, so each topic keeps one row, whose `seq` moves with every change.
-- New tokens and new users need no record: the token cache holds only tokens it has seen valid.
CREATE TRIGGER auth_change_api_tokens_update AFTER UPDATE ON api_tokens BEGIN
    DELETE FROM change_log WHERE name = 'auth' AND key = 0; INSERT INTO change_log (name, key) VALUES ('auth', 0);
END;
CREATE TRIGGER auth_change_api_tokens_delete AFTER DELETE ON api_tokens BEGIN
    DELETE FROM change_log WHERE name = 'auth' AND key = 0; INSERT INTO change_log (name, key) VALUES ('auth', 0);
END;
CREATE TRIGGER auth_change_users_update AFTER UPDATE ON users BEGIN
    DELETE FROM change_log WHERE name = 'auth' AND key = 0; INSERT INTO change_log (name, key) VALUES ('auth', 0);
END;
CREATE TRIGGER auth_change_users_delete AFTER DELETE ON users BEGIN
    DELETE FROM change_log WHERE name = 'auth' AND key = 0; INSERT INTO change_log (name, key) VALUES ('auth', 0);
END;
CREATE TRIGGER auth_change_regions_update AFTER UPDATE OF code, level ON regions BEGIN
    DELETE FROM change_log WHERE name = 'auth' AND key = 0; INSERT INTO change_log (name, key) VALUES ('auth', 0);
END;
CREATE TRIGGER auth_change_regions_delete AFTER DELETE ON regions BEGIN
    DELETE FROM change_log WHERE name = 'auth' AND key = 0; INSERT INTO change_log (name, key) VALUES ('auth', 0);
END;

CREATE TRIGGER regions_change_insert AFTER INSERT ON regions BEGIN
    DELETE FROM change_log WHERE name = 'regions' AND key = 0; INSERT INTO change_log (name, key) VALUES ('regions', 0);
END;
CREATE TRIGGER regions_change_update AFTER UPDATE ON regions BEGIN
    DELETE FROM change_log WHERE name = 'regions' AND key = 0; INSERT INTO change_log (name, key) VALUES ('regions', 0);
END;
CREATE TRIGGER regions_change_delete AFTER DELETE ON regions BEGIN
    DELETE FROM change_log WHERE name = 'regions' AND key = 0; INSERT INTO change_log (name, key) VALUES ('regions', 0);
END;
