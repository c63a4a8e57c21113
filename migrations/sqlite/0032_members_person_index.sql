-- Issue 16 (session 7): one index on a member's person instead of two. `members_team_person`
-- (team_id, id_index) kept a person unique within a team, and `members_id_index` (id_index)
-- served the search for a person across teams (`member_store::rows_by_index`). One unique index
-- with the blind index first does both: the uniqueness is the same, `id_index = $1` is its prefix,
-- and `team_id = $1 AND id_index = $2` (the import's match, `member_store`'s lookups) is its
-- whole key. Every query on a team's members (`m.team_id = …`) uses `members_team_status`, as
-- before. Each new member now writes one index keyed by its random blind index, not two, and an
-- import that inserts its new members in blind-index order writes it in key order
-- (`forces::csv_members::prepare`).
DROP INDEX members_team_person;
DROP INDEX members_id_index;
CREATE UNIQUE INDEX members_person_team ON members (id_index, team_id);
