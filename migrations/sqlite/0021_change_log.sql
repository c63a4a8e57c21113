-- A keyed change log for in-process indexes (generic: `src/change_feed.rs`), replacing the bare
-- counter of migration 0020: triggers record WHICH unit changed (topic `name`, `key` = the id of the
-- unit an index reloads: a team for 'forces'), in the writing transaction itself, whatever code path
-- writes. An index remembers the `seq` it was built at and reloads only the keys logged after it.
-- SQLite runs one writing transaction at a time, so `seq` (AUTOINCREMENT: never reused, also after
-- pruning) is in commit order. A key is logged once: a newer change of the same key deletes the
-- older row first (no conflict clause, which an outer `INSERT OR …` would override), so the log
-- holds at most one row per key. `at` (unix seconds) lets old rows be pruned.
CREATE TABLE change_log (
    seq  INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    key  INTEGER NOT NULL,
    at   INTEGER NOT NULL DEFAULT (CAST(strftime('%s', 'now') AS INTEGER))
);
CREATE INDEX change_log_key ON change_log (name, key);
CREATE INDEX change_log_at ON change_log (at);

-- The counter of 0020 is replaced by the log.

DROP TRIGGER forces_epoch_teams_insert;
DROP TRIGGER forces_epoch_teams_update;
DROP TRIGGER forces_epoch_teams_delete;
DROP TRIGGER forces_epoch_team_specialties_insert;
DROP TRIGGER forces_epoch_team_specialties_update;
DROP TRIGGER forces_epoch_team_specialties_delete;
DROP TRIGGER forces_epoch_members_insert;
DROP TRIGGER forces_epoch_members_update;
DROP TRIGGER forces_epoch_members_delete;
DROP TRIGGER forces_epoch_member_skills_insert;
DROP TRIGGER forces_epoch_member_skills_update;
DROP TRIGGER forces_epoch_member_skills_delete;
DROP TRIGGER forces_epoch_member_insurance_insert;
DROP TRIGGER forces_epoch_member_insurance_update;
DROP TRIGGER forces_epoch_member_insurance_delete;
DROP TABLE cache_epochs;

-- 'forces' (src/forces/team_index.rs): key = team id; members' skills and insurance count for
-- their member's team (a skill row whose member is already deleted adds nothing: the member's own
-- delete logged the team).
CREATE TRIGGER forces_change_teams_insert AFTER INSERT ON teams BEGIN
    DELETE FROM change_log WHERE name = 'forces' AND key = NEW.id; INSERT INTO change_log (name, key) VALUES ('forces', NEW.id);
END;
CREATE TRIGGER forces_change_teams_update AFTER UPDATE ON teams BEGIN
    DELETE FROM change_log WHERE name = 'forces' AND key = OLD.id; INSERT INTO change_log (name, key) VALUES ('forces', OLD.id);
    DELETE FROM change_log WHERE name = 'forces' AND key = NEW.id; INSERT INTO change_log (name, key) VALUES ('forces', NEW.id);
END;
CREATE TRIGGER forces_change_teams_delete AFTER DELETE ON teams BEGIN
    DELETE FROM change_log WHERE name = 'forces' AND key = OLD.id; INSERT INTO change_log (name, key) VALUES ('forces', OLD.id);
END;
CREATE TRIGGER forces_change_team_specialties_insert AFTER INSERT ON team_specialties BEGIN
    DELETE FROM change_log WHERE name = 'forces' AND key = NEW.team_id; INSERT INTO change_log (name, key) VALUES ('forces', NEW.team_id);
END;
CREATE TRIGGER forces_change_team_specialties_update AFTER UPDATE ON team_specialties BEGIN
    DELETE FROM change_log WHERE name = 'forces' AND key = OLD.team_id; INSERT INTO change_log (name, key) VALUES ('forces', OLD.team_id);
    DELETE FROM change_log WHERE name = 'forces' AND key = NEW.team_id; INSERT INTO change_log (name, key) VALUES ('forces', NEW.team_id);
END;
CREATE TRIGGER forces_change_team_specialties_delete AFTER DELETE ON team_specialties BEGIN
    DELETE FROM change_log WHERE name = 'forces' AND key = OLD.team_id; INSERT INTO change_log (name, key) VALUES ('forces', OLD.team_id);
END;
CREATE TRIGGER forces_change_members_insert AFTER INSERT ON members BEGIN
    DELETE FROM change_log WHERE name = 'forces' AND key = NEW.team_id; INSERT INTO change_log (name, key) VALUES ('forces', NEW.team_id);
END;
CREATE TRIGGER forces_change_members_update AFTER UPDATE ON members BEGIN
    DELETE FROM change_log WHERE name = 'forces' AND key = OLD.team_id; INSERT INTO change_log (name, key) VALUES ('forces', OLD.team_id);
    DELETE FROM change_log WHERE name = 'forces' AND key = NEW.team_id; INSERT INTO change_log (name, key) VALUES ('forces', NEW.team_id);
END;
CREATE TRIGGER forces_change_members_delete AFTER DELETE ON members BEGIN
    DELETE FROM change_log WHERE name = 'forces' AND key = OLD.team_id; INSERT INTO change_log (name, key) VALUES ('forces', OLD.team_id);
END;
CREATE TRIGGER forces_change_member_skills_insert AFTER INSERT ON member_skills BEGIN
    DELETE FROM change_log WHERE name = 'forces' AND key IN (SELECT team_id FROM members WHERE id = NEW.member_id); INSERT INTO change_log (name, key) SELECT 'forces', team_id FROM members WHERE id = NEW.member_id;
END;
CREATE TRIGGER forces_change_member_skills_update AFTER UPDATE ON member_skills BEGIN
    DELETE FROM change_log WHERE name = 'forces' AND key IN (SELECT team_id FROM members WHERE id = OLD.member_id); INSERT INTO change_log (name, key) SELECT 'forces', team_id FROM members WHERE id = OLD.member_id;
    DELETE FROM change_log WHERE name = 'forces' AND key IN (SELECT team_id FROM members WHERE id = NEW.member_id); INSERT INTO change_log (name, key) SELECT 'forces', team_id FROM members WHERE id = NEW.member_id;
END;
CREATE TRIGGER forces_change_member_skills_delete AFTER DELETE ON member_skills BEGIN
    DELETE FROM change_log WHERE name = 'forces' AND key IN (SELECT team_id FROM members WHERE id = OLD.member_id); INSERT INTO change_log (name, key) SELECT 'forces', team_id FROM members WHERE id = OLD.member_id;
END;
CREATE TRIGGER forces_change_member_insurance_insert AFTER INSERT ON member_insurance BEGIN
    DELETE FROM change_log WHERE name = 'forces' AND key IN (SELECT team_id FROM members WHERE id = NEW.member_id); INSERT INTO change_log (name, key) SELECT 'forces', team_id FROM members WHERE id = NEW.member_id;
END;
CREATE TRIGGER forces_change_member_insurance_update AFTER UPDATE ON member_insurance BEGIN
    DELETE FROM change_log WHERE name = 'forces' AND key IN (SELECT team_id FROM members WHERE id = OLD.member_id); INSERT INTO change_log (name, key) SELECT 'forces', team_id FROM members WHERE id = OLD.member_id;
    DELETE FROM change_log WHERE name = 'forces' AND key IN (SELECT team_id FROM members WHERE id = NEW.member_id); INSERT INTO change_log (name, key) SELECT 'forces', team_id FROM members WHERE id = NEW.member_id;
END;
CREATE TRIGGER forces_change_member_insurance_delete AFTER DELETE ON member_insurance BEGIN
    DELETE FROM change_log WHERE name = 'forces' AND key IN (SELECT team_id FROM members WHERE id = OLD.member_id); INSERT INTO change_log (name, key) SELECT 'forces', team_id FROM members WHERE id = OLD.member_id;
END;
