-- Issue 16 (session 7): fewer index entries written per imported row on PostgreSQL, with every
-- query path still served (README "Issue 16 (session 7): PostgreSQL write phase").

-- Only `member_store::temporaries_tx` reads it (`temp_callup_id = $1`, which implies NOT NULL); the
-- members an import writes, like almost every member, have none.
DROP INDEX members_temp_callup;
CREATE INDEX members_temp_callup ON members (temp_callup_id) WHERE temp_callup_id IS NOT NULL;

-- Redundant: the unique index member_certificates_number (member_id, number) of migration 0010
-- serves every lookup by member (and the foreign-key checks of deleted members).
DROP INDEX member_certificates_member;

-- No query reads movements by reference; the lookup it was made for (an event's dispatch
-- movements) is served by a partial index that receipts (every imported row) never touch.
DROP INDEX stock_movements_reference;
CREATE INDEX stock_movements_dispatch ON stock_movements (reference) WHERE kind = 'dispatch';
