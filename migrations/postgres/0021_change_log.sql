-- A keyed change log for in-process indexes (generic: `src/change_feed.rs`), replacing the
-- transaction-only log of migration 0020: statement triggers record WHICH units changed (topic
-- `name`, `key` = the id of the unit an index reloads: a team for 'forces') with the writing
-- transaction's id, in that transaction, whatever code path writes. An index remembers the snapshot
-- it was built in and reloads only the keys of transactions committed since
-- (`pg_visible_in_snapshot`). One row per transaction and key (ON CONFLICT DO NOTHING), and no
-- shared row, so writers never wait on each other here. Key -1 means "every key of the topic"
-- (TRUNCATE). `at` lets old rows be pruned.
CREATE TABLE change_log (
    name TEXT NOT NULL,
    xid  xid8 NOT NULL,
    key  BIGINT NOT NULL,
    at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (name, xid, key)
);
CREATE INDEX change_log_at ON change_log (at);

-- The log of 0020 is replaced.

DROP TRIGGER forces_change ON teams;
DROP TRIGGER forces_change ON team_specialties;
DROP TRIGGER forces_change ON members;
DROP TRIGGER forces_change ON member_skills;
DROP TRIGGER forces_change ON member_insurance;
DROP FUNCTION record_forces_change();
DROP TABLE cache_changes;

-- 'forces' (src/forces/team_index.rs): key = team id; members' skills and insurance count for
-- their member's team (a skill row whose member is already deleted adds nothing: the member's own
-- delete logged the team). Transition tables: one trigger per operation (PostgreSQL allows them on
-- single-event triggers only); a branch for a transition table a trigger does not declare is never
-- run, so never planned.
CREATE FUNCTION forces_log_all() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO change_log (name, xid, key) VALUES ('forces', pg_current_xact_id(), -1) ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE FUNCTION forces_log_teams() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO change_log (name, xid, key) SELECT DISTINCT 'forces', pg_current_xact_id(), r.id FROM new_rows r ON CONFLICT DO NOTHING;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO change_log (name, xid, key) SELECT DISTINCT 'forces', pg_current_xact_id(), r.id FROM old_rows r ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER forces_log_insert AFTER INSERT ON teams REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION forces_log_teams();
CREATE TRIGGER forces_log_update AFTER UPDATE ON teams REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION forces_log_teams();
CREATE TRIGGER forces_log_delete AFTER DELETE ON teams REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION forces_log_teams();
CREATE TRIGGER forces_log_truncate AFTER TRUNCATE ON teams FOR EACH STATEMENT EXECUTE FUNCTION forces_log_all();

CREATE FUNCTION forces_log_team_specialties() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO change_log (name, xid, key) SELECT DISTINCT 'forces', pg_current_xact_id(), r.team_id FROM new_rows r ON CONFLICT DO NOTHING;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO change_log (name, xid, key) SELECT DISTINCT 'forces', pg_current_xact_id(), r.team_id FROM old_rows r ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER forces_log_insert AFTER INSERT ON team_specialties REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION forces_log_team_specialties();
CREATE TRIGGER forces_log_update AFTER UPDATE ON team_specialties REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION forces_log_team_specialties();
CREATE TRIGGER forces_log_delete AFTER DELETE ON team_specialties REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION forces_log_team_specialties();
CREATE TRIGGER forces_log_truncate AFTER TRUNCATE ON team_specialties FOR EACH STATEMENT EXECUTE FUNCTION forces_log_all();

CREATE FUNCTION forces_log_members() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO change_log (name, xid, key) SELECT DISTINCT 'forces', pg_current_xact_id(), r.team_id FROM new_rows r ON CONFLICT DO NOTHING;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO change_log (name, xid, key) SELECT DISTINCT 'forces', pg_current_xact_id(), r.team_id FROM old_rows r ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER forces_log_insert AFTER INSERT ON members REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION forces_log_members();
CREATE TRIGGER forces_log_update AFTER UPDATE ON members REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION forces_log_members();
CREATE TRIGGER forces_log_delete AFTER DELETE ON members REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION forces_log_members();
CREATE TRIGGER forces_log_truncate AFTER TRUNCATE ON members FOR EACH STATEMENT EXECUTE FUNCTION forces_log_all();

CREATE FUNCTION forces_log_member_skills() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO change_log (name, xid, key) SELECT DISTINCT 'forces', pg_current_xact_id(), m.team_id FROM new_rows r JOIN members m ON m.id = r.member_id ON CONFLICT DO NOTHING;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO change_log (name, xid, key) SELECT DISTINCT 'forces', pg_current_xact_id(), m.team_id FROM old_rows r JOIN members m ON m.id = r.member_id ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER forces_log_insert AFTER INSERT ON member_skills REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION forces_log_member_skills();
CREATE TRIGGER forces_log_update AFTER UPDATE ON member_skills REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION forces_log_member_skills();
CREATE TRIGGER forces_log_delete AFTER DELETE ON member_skills REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION forces_log_member_skills();
CREATE TRIGGER forces_log_truncate AFTER TRUNCATE ON member_skills FOR EACH STATEMENT EXECUTE FUNCTION forces_log_all();

CREATE FUNCTION forces_log_member_insurance() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO change_log (name, xid, key) SELECT DISTINCT 'forces', pg_current_xact_id(), m.team_id FROM new_rows r JOIN members m ON m.id = r.member_id ON CONFLICT DO NOTHING;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO change_log (name, xid, key) SELECT DISTINCT 'forces', pg_current_xact_id(), m.team_id FROM old_rows r JOIN members m ON m.id = r.member_id ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER forces_log_insert AFTER INSERT ON member_insurance REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION forces_log_member_insurance();
CREATE TRIGGER forces_log_update AFTER UPDATE ON member_insurance REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION forces_log_member_insurance();
CREATE TRIGGER forces_log_delete AFTER DELETE ON member_insurance REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION forces_log_member_insurance();
CREATE TRIGGER forces_log_truncate AFTER TRUNCATE ON member_insurance FOR EACH STATEMENT EXECUTE FUNCTION forces_log_all();
