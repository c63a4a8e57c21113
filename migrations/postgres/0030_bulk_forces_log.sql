-- Bulk writes of forces (the teams and members imports, issue 16): a statement that changes more
-- than 5,000 teams (teams, or members of more than 5,000 teams) logs the key -1 ("every team")
-- instead of each team, as migration 0029 does for supplies, and once a transaction has logged -1
-- the statement triggers log nothing more in it (-1 already says every team changed). Readers see
-- what they saw before: the change feed turns more distinct keys than its largest limit (5,000)
-- into `Changes::Many`, exactly as it does for -1, and the read caches only ask whether the topic
-- changed at all. Below the threshold each team is logged as in migration 0021.

CREATE OR REPLACE FUNCTION forces_log_teams() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM change_log WHERE name = 'forces' AND xid = pg_current_xact_id() AND key = -1) THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        IF (SELECT count(*) FROM (SELECT DISTINCT r.id FROM new_rows r LIMIT 5001) AS k) > 5000 THEN
            INSERT INTO change_log (name, xid, key) VALUES ('forces', pg_current_xact_id(), -1) ON CONFLICT DO NOTHING;
            RETURN NULL;
        END IF;
        INSERT INTO change_log (name, xid, key) SELECT DISTINCT 'forces', pg_current_xact_id(), r.id FROM new_rows r ON CONFLICT DO NOTHING;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        IF (SELECT count(*) FROM (SELECT DISTINCT r.id FROM old_rows r LIMIT 5001) AS k) > 5000 THEN
            INSERT INTO change_log (name, xid, key) VALUES ('forces', pg_current_xact_id(), -1) ON CONFLICT DO NOTHING;
            RETURN NULL;
        END IF;
        INSERT INTO change_log (name, xid, key) SELECT DISTINCT 'forces', pg_current_xact_id(), r.id FROM old_rows r ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION forces_log_team_specialties() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM change_log WHERE name = 'forces' AND xid = pg_current_xact_id() AND key = -1) THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        IF (SELECT count(*) FROM (SELECT DISTINCT r.team_id FROM new_rows r LIMIT 5001) AS k) > 5000 THEN
            INSERT INTO change_log (name, xid, key) VALUES ('forces', pg_current_xact_id(), -1) ON CONFLICT DO NOTHING;
            RETURN NULL;
        END IF;
        INSERT INTO change_log (name, xid, key) SELECT DISTINCT 'forces', pg_current_xact_id(), r.team_id FROM new_rows r ON CONFLICT DO NOTHING;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        IF (SELECT count(*) FROM (SELECT DISTINCT r.team_id FROM old_rows r LIMIT 5001) AS k) > 5000 THEN
            INSERT INTO change_log (name, xid, key) VALUES ('forces', pg_current_xact_id(), -1) ON CONFLICT DO NOTHING;
            RETURN NULL;
        END IF;
        INSERT INTO change_log (name, xid, key) SELECT DISTINCT 'forces', pg_current_xact_id(), r.team_id FROM old_rows r ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION forces_log_members() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM change_log WHERE name = 'forces' AND xid = pg_current_xact_id() AND key = -1) THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        IF (SELECT count(*) FROM (SELECT DISTINCT r.team_id FROM new_rows r LIMIT 5001) AS k) > 5000 THEN
            INSERT INTO change_log (name, xid, key) VALUES ('forces', pg_current_xact_id(), -1) ON CONFLICT DO NOTHING;
            RETURN NULL;
        END IF;
        INSERT INTO change_log (name, xid, key) SELECT DISTINCT 'forces', pg_current_xact_id(), r.team_id FROM new_rows r ON CONFLICT DO NOTHING;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        IF (SELECT count(*) FROM (SELECT DISTINCT r.team_id FROM old_rows r LIMIT 5001) AS k) > 5000 THEN
            INSERT INTO change_log (name, xid, key) VALUES ('forces', pg_current_xact_id(), -1) ON CONFLICT DO NOTHING;
            RETURN NULL;
        END IF;
        INSERT INTO change_log (name, xid, key) SELECT DISTINCT 'forces', pg_current_xact_id(), r.team_id FROM old_rows r ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION forces_log_member_skills() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM change_log WHERE name = 'forces' AND xid = pg_current_xact_id() AND key = -1) THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO change_log (name, xid, key) SELECT DISTINCT 'forces', pg_current_xact_id(), m.team_id FROM new_rows r JOIN members m ON m.id = r.member_id ON CONFLICT DO NOTHING;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO change_log (name, xid, key) SELECT DISTINCT 'forces', pg_current_xact_id(), m.team_id FROM old_rows r JOIN members m ON m.id = r.member_id ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION forces_log_member_insurance() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM change_log WHERE name = 'forces' AND xid = pg_current_xact_id() AND key = -1) THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO change_log (name, xid, key) SELECT DISTINCT 'forces', pg_current_xact_id(), m.team_id FROM new_rows r JOIN members m ON m.id = r.member_id ON CONFLICT DO NOTHING;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO change_log (name, xid, key) SELECT DISTINCT 'forces', pg_current_xact_id(), m.team_id FROM old_rows r JOIN members m ON m.id = r.member_id ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;
