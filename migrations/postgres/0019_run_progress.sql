-- Progress of a readiness run, written a few times per run (after each group of rules and each
-- writing phase), so a page can show a bar while the run goes on: `progress_done` of
-- `progress_total` steps, the step now under way in `progress_phase`.
ALTER TABLE readiness_runs ADD COLUMN progress_done BIGINT NOT NULL DEFAULT 0;
ALTER TABLE readiness_runs ADD COLUMN progress_total BIGINT NOT NULL DEFAULT 0;
ALTER TABLE readiness_runs ADD COLUMN progress_phase TEXT;
