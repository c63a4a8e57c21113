-- A digest of what a run writes of each finding (severity, facts, message, action): a run matches
-- the open findings by identity and digest alone instead of reading every finding's facts back.
-- NULL for findings written before: the next run sees them as changed once and writes it.
ALTER TABLE readiness_findings ADD COLUMN digest TEXT;
