-- Bulk writes of forces (the teams and members imports, issue 16) log "every team" once instead
-- of each row, as migration 0029 does for supplies: while the writing transaction holds the mark
-- `change_log_bulk` ('forces') the row triggers below log nothing (a 1,000,000-member import ran
-- about 3,000,000 of them). The writer (`crate::imports::staged::BulkLog`) logs key -1 itself
-- first and removes the mark before it commits, so no other transaction ever sees it. Without the
-- mark the triggers behave exactly as those of migration 0021.

DROP TRIGGER forces_change_teams_insert;
CREATE TRIGGER forces_change_teams_insert AFTER INSERT ON teams
WHEN NOT EXISTS (SELECT 1 FROM change_log_bulk WHERE name = 'forces')
BEGIN
    DELETE FROM change_log WHERE name = 'forces' AND key = NEW.id; INSERT INTO change_log (name, key) VALUES ('forces', NEW.id);
END;

DROP TRIGGER forces_change_teams_update;
CREATE TRIGGER forces_change_teams_update AFTER UPDATE ON teams
WHEN NOT EXISTS (SELECT 1 FROM change_log_bulk WHERE name = 'forces')
BEGIN
    DELETE FROM change_log WHERE name = 'forces' AND key = OLD.id; INSERT INTO change_log (name, key) VALUES ('forces', OLD.id);
    DELETE FROM change_log WHERE name = 'forces' AND key = NEW.id; INSERT INTO change_log (name, key) VALUES ('forces', NEW.id);
END;

DROP TRIGGER forces_change_teams_delete;
CREATE TRIGGER forces_change_teams_delete AFTER DELETE ON teams
WHEN NOT EXISTS (SELECT 1 FROM change_log_bulk WHERE name = 'forces')
BEGIN
    DELETE FROM change_log WHERE name = 'forces' AND key = OLD.id; INSERT INTO change_log (name, key) VALUES ('forces', OLD.id);
END;

DROP TRIGGER forces_change_team_specialties_insert;
CREATE TRIGGER forces_change_team_specialties_insert AFTER INSERT ON team_specialties
WHEN NOT EXISTS (SELECT 1 FROM change_log_bulk WHERE name = 'forces')
BEGIN
    DELETE FROM change_log WHERE name = 'forces' AND key = NEW.team_id; INSERT INTO change_log (name, key) VALUES ('forces', NEW.team_id);
END;

DROP TRIGGER forces_change_team_specialties_update;
CREATE TRIGGER forces_change_team_specialties_update AFTER UPDATE ON team_specialties
WHEN NOT EXISTS (SELECT 1 FROM change_log_bulk WHERE name = 'forces')
BEGIN
    DELETE FROM change_log WHERE name = 'forces' AND key = OLD.team_id; INSERT INTO change_log (name, key) VALUES ('forces', OLD.team_id);
    DELETE FROM change_log WHERE name = 'forces' AND key = NEW.team_id; INSERT INTO change_log (name, key) VALUES ('forces', NEW.team_id);
END;

DROP TRIGGER forces_change_team_specialties_delete;
CREATE TRIGGER forces_change_team_specialties_delete AFTER DELETE ON team_specialties
WHEN NOT EXISTS (SELECT 1 FROM change_log_bulk WHERE name = 'forces')
BEGIN
    DELETE FROM change_log WHERE name = 'forces' AND key = OLD.team_id; INSERT INTO change_log (name, key) VALUES ('forces', OLD.team_id);
END;

DROP TRIGGER forces_change_members_insert;
CREATE TRIGGER forces_change_members_insert AFTER INSERT ON members
WHEN NOT EXISTS (SELECT 1 FROM change_log_bulk WHERE name = 'forces')
BEGIN
    DELETE FROM change_log WHERE name = 'forces' AND key = NEW.team_id; INSERT INTO change_log (name, key) VALUES ('forces', NEW.team_id);
END;

DROP TRIGGER forces_change_members_update;
CREATE TRIGGER forces_change_members_update AFTER UPDATE ON members
WHEN NOT EXISTS (SELECT 1 FROM change_log_bulk WHERE name = 'forces')
BEGIN
    DELETE FROM change_log WHERE name = 'forces' AND key = OLD.team_id; INSERT INTO change_log (name, key) VALUES ('forces', OLD.team_id);
    DELETE FROM change_log WHERE name = 'forces' AND key = NEW.team_id; INSERT INTO change_log (name, key) VALUES ('forces', NEW.team_id);
END;

DROP TRIGGER forces_change_members_delete;
CREATE TRIGGER forces_change_members_delete AFTER DELETE ON members
WHEN NOT EXISTS (SELECT 1 FROM change_log_bulk WHERE name = 'forces')
BEGIN
    DELETE FROM change_log WHERE name = 'forces' AND key = OLD.team_id; INSERT INTO change_log (name, key) VALUES ('forces', OLD.team_id);
END;

DROP TRIGGER forces_change_member_skills_insert;
CREATE TRIGGER forces_change_member_skills_insert AFTER INSERT ON member_skills
WHEN NOT EXISTS (SELECT 1 FROM change_log_bulk WHERE name = 'forces')
BEGIN
    DELETE FROM change_log WHERE name = 'forces' AND key IN (SELECT team_id FROM members WHERE id = NEW.member_id); INSERT INTO change_log (name, key) SELECT 'forces', team_id FROM members WHERE id = NEW.member_id;
END;

DROP TRIGGER forces_change_member_skills_update;
CREATE TRIGGER forces_change_member_skills_update AFTER UPDATE ON member_skills
WHEN NOT EXISTS (SELECT 1 FROM change_log_bulk WHERE name = 'forces')
BEGIN
    DELETE FROM change_log WHERE name = 'forces' AND key IN (SELECT team_id FROM members WHERE id = OLD.member_id); INSERT INTO change_log (name, key) SELECT 'forces', team_id FROM members WHERE id = OLD.member_id;
    DELETE FROM change_log WHERE name = 'forces' AND key IN (SELECT team_id FROM members WHERE id = NEW.member_id); INSERT INTO change_log (name, key) SELECT 'forces', team_id FROM members WHERE id = NEW.member_id;
END;

DROP TRIGGER forces_change_member_skills_delete;
CREATE TRIGGER forces_change_member_skills_delete AFTER DELETE ON member_skills
WHEN NOT EXISTS (SELECT 1 FROM change_log_bulk WHERE name = 'forces')
BEGIN
    DELETE FROM change_log WHERE name = 'forces' AND key IN (SELECT team_id FROM members WHERE id = OLD.member_id); INSERT INTO change_log (name, key) SELECT 'forces', team_id FROM members WHERE id = OLD.member_id;
END;

DROP TRIGGER forces_change_member_insurance_insert;
CREATE TRIGGER forces_change_member_insurance_insert AFTER INSERT ON member_insurance
WHEN NOT EXISTS (SELECT 1 FROM change_log_bulk WHERE name = 'forces')
BEGIN
    DELETE FROM change_log WHERE name = 'forces' AND key IN (SELECT team_id FROM members WHERE id = NEW.member_id); INSERT INTO change_log (name, key) SELECT 'forces', team_id FROM members WHERE id = NEW.member_id;
END;

DROP TRIGGER forces_change_member_insurance_update;
CREATE TRIGGER forces_change_member_insurance_update AFTER UPDATE ON member_insurance
WHEN NOT EXISTS (SELECT 1 FROM change_log_bulk WHERE name = 'forces')
BEGIN
    DELETE FROM change_log WHERE name = 'forces' AND key IN (SELECT team_id FROM members WHERE id = OLD.member_id); INSERT INTO change_log (name, key) SELECT 'forces', team_id FROM members WHERE id = OLD.member_id;
    DELETE FROM change_log WHERE name = 'forces' AND key IN (SELECT team_id FROM members WHERE id = NEW.member_id); INSERT INTO change_log (name, key) SELECT 'forces', team_id FROM members WHERE id = NEW.member_id;
END;

DROP TRIGGER forces_change_member_insurance_delete;
CREATE TRIGGER forces_change_member_insurance_delete AFTER DELETE ON member_insurance
WHEN NOT EXISTS (SELECT 1 FROM change_log_bulk WHERE name = 'forces')
BEGIN
    DELETE FROM change_log WHERE name = 'forces' AND key IN (SELECT team_id FROM members WHERE id = OLD.member_id); INSERT INTO change_log (name, key) SELECT 'forces', team_id FROM members WHERE id = OLD.member_id;
END;
