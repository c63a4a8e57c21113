-- Change log for in-process indexes (the nearest-teams index of src/forces/team_index.rs).
-- A statement trigger on every table an index is built from records the writing transaction's id,
-- in that transaction, so no code path (API, CSV import, call-up, erasure, a future one) can change
-- those rows unrecorded. An index remembers the snapshot it was built in and is used only while no
-- committed change is missing from that snapshot (pg_visible_in_snapshot); otherwise the database
-- answers. One row per transaction (ON CONFLICT DO NOTHING) and no shared counter row, so writers
-- never wait on each other here (a counter row locked until commit could deadlock two writers that
-- touch the same members in different orders).
CREATE TABLE cache_changes (
    name TEXT NOT NULL,
    xid  xid8 NOT NULL,
    at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (name, xid)
);
CREATE INDEX cache_changes_at ON cache_changes (at);

CREATE FUNCTION record_forces_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO cache_changes (name, xid) VALUES ('forces', pg_current_xact_id()) ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER forces_change AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON teams FOR EACH STATEMENT EXECUTE FUNCTION record_forces_change();
CREATE TRIGGER forces_change AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON team_specialties FOR EACH STATEMENT EXECUTE FUNCTION record_forces_change();
CREATE TRIGGER forces_change AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON members FOR EACH STATEMENT EXECUTE FUNCTION record_forces_change();
CREATE TRIGGER forces_change AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON member_skills FOR EACH STATEMENT EXECUTE FUNCTION record_forces_change();
CREATE TRIGGER forces_change AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON member_insurance FOR EACH STATEMENT EXECUTE FUNCTION record_forces_change();
