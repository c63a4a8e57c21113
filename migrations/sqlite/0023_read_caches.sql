-- Change counters for the read caches of src/freshness.rs: 'auth' (who a bearer token stands
-- for: tokens, users, the level of a user's region) and 'regions' (pages of GET /api/v1/regions).
-- As in 0020, a trigger bumps the counter inside the writing transaction itself, so no code path
-- (API, CLI, console, CSV import, a future one) can change those rows without the counter moving,
-- and every instance on this database file sees the move with its next check.
-- New tokens and new users need no bump: the token cache holds only tokens it has seen valid.
-- Its own table (not 0020's `cache_epochs`), so it stands whatever becomes of that one.
CREATE TABLE read_cache_epochs (
    name  TEXT PRIMARY KEY,
    epoch INTEGER NOT NULL
);
INSERT INTO read_cache_epochs (name, epoch) VALUES ('auth', 0), ('regions', 0);

CREATE TRIGGER auth_epoch_api_tokens_update AFTER UPDATE ON api_tokens BEGIN UPDATE read_cache_epochs SET epoch = epoch + 1 WHERE name = 'auth'; END;
CREATE TRIGGER auth_epoch_api_tokens_delete AFTER DELETE ON api_tokens BEGIN UPDATE read_cache_epochs SET epoch = epoch + 1 WHERE name = 'auth'; END;
CREATE TRIGGER auth_epoch_users_update AFTER UPDATE ON users BEGIN UPDATE read_cache_epochs SET epoch = epoch + 1 WHERE name = 'auth'; END;
CREATE TRIGGER auth_epoch_users_delete AFTER DELETE ON users BEGIN UPDATE read_cache_epochs SET epoch = epoch + 1 WHERE name = 'auth'; END;
CREATE TRIGGER auth_epoch_regions_update AFTER UPDATE OF code, level ON regions BEGIN UPDATE read_cache_epochs SET epoch = epoch + 1 WHERE name = 'auth'; END;
CREATE TRIGGER auth_epoch_regions_delete AFTER DELETE ON regions BEGIN UPDATE read_cache_epochs SET epoch = epoch + 1 WHERE name = 'auth'; END;

CREATE TRIGGER regions_epoch_insert AFTER INSERT ON regions BEGIN UPDATE read_cache_epochs SET epoch = epoch + 1 WHERE name = 'regions'; END;
CREATE TRIGGER regions_epoch_update AFTER UPDATE ON regions BEGIN UPDATE read_cache_epochs SET epoch = epoch + 1 WHERE name = 'regions'; END;
CREATE TRIGGER regions_epoch_delete AFTER DELETE ON regions BEGIN UPDATE read_cache_epochs SET epoch = epoch + 1 WHERE name = 'regions'; END;
