-- Change counter for in-process indexes (the nearest-teams index of src/forces/team_index.rs).
-- A trigger on every table an index is built from bumps the counter in the writing transaction
-- itself, so no code path (API, CSV import, call-up, erasure, a future one) can change those rows
-- without the counter moving; an instance uses its index only while the counter it was built at is
-- still the committed one, and otherwise answers from the database.
-- (SQLite runs one writing transaction at a time, so a shared counter row costs no waiting.)
CREATE TABLE cache_epochs (
    name  TEXT PRIMARY KEY,
    epoch INTEGER NOT NULL
);
INSERT INTO cache_epochs (name, epoch) VALUES ('forces', 0);

CREATE TRIGGER forces_epoch_teams_insert AFTER INSERT ON teams BEGIN UPDATE cache_epochs SET epoch = epoch + 1 WHERE name = 'forces'; END;
CREATE TRIGGER forces_epoch_teams_update AFTER UPDATE ON teams BEGIN UPDATE cache_epochs SET epoch = epoch + 1 WHERE name = 'forces'; END;
CREATE TRIGGER forces_epoch_teams_delete AFTER DELETE ON teams BEGIN UPDATE cache_epochs SET epoch = epoch + 1 WHERE name = 'forces'; END;
CREATE TRIGGER forces_epoch_team_specialties_insert AFTER INSERT ON team_specialties BEGIN UPDATE cache_epochs SET epoch = epoch + 1 WHERE name = 'forces'; END;
CREATE TRIGGER forces_epoch_team_specialties_update AFTER UPDATE ON team_specialties BEGIN UPDATE cache_epochs SET epoch = epoch + 1 WHERE name = 'forces'; END;
CREATE TRIGGER forces_epoch_team_specialties_delete AFTER DELETE ON team_specialties BEGIN UPDATE cache_epochs SET epoch = epoch + 1 WHERE name = 'forces'; END;
CREATE TRIGGER forces_epoch_members_insert AFTER INSERT ON members BEGIN UPDATE cache_epochs SET epoch = epoch + 1 WHERE name = 'forces'; END;
CREATE TRIGGER forces_epoch_members_update AFTER UPDATE ON members BEGIN UPDATE cache_epochs SET epoch = epoch + 1 WHERE name = 'forces'; END;
CREATE TRIGGER forces_epoch_members_delete AFTER DELETE ON members BEGIN UPDATE cache_epochs SET epoch = epoch + 1 WHERE name = 'forces'; END;
CREATE TRIGGER forces_epoch_member_skills_insert AFTER INSERT ON member_skills BEGIN UPDATE cache_epochs SET epoch = epoch + 1 WHERE name = 'forces'; END;
CREATE TRIGGER forces_epoch_member_skills_update AFTER UPDATE ON member_skills BEGIN UPDATE cache_epochs SET epoch = epoch + 1 WHERE name = 'forces'; END;
CREATE TRIGGER forces_epoch_member_skills_delete AFTER DELETE ON member_skills BEGIN UPDATE cache_epochs SET epoch = epoch + 1 WHERE name = 'forces'; END;
CREATE TRIGGER forces_epoch_member_insurance_insert AFTER INSERT ON member_insurance BEGIN UPDATE cache_epochs SET epoch = epoch + 1 WHERE name = 'forces'; END;
CREATE TRIGGER forces_epoch_member_insurance_update AFTER UPDATE ON member_insurance BEGIN UPDATE cache_epochs SET epoch = epoch + 1 WHERE name = 'forces'; END;
CREATE TRIGGER forces_epoch_member_insurance_delete AFTER DELETE ON member_insurance BEGIN UPDATE cache_epochs SET epoch = epoch + 1 WHERE name = 'forces'; END;
