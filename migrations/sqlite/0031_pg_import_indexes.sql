-- Issue 16 (session 7): PostgreSQL-only (its import indexes, see migrations/postgres/0031); this
-- file keeps the two folders' numbering in step.
SELECT 1;
