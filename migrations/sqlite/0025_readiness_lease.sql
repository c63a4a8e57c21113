-- A readiness run holds a lease (token and expiry, renewed while it works, like job runs): a run
-- whose instance died (SIGKILL, crash, power cut) stops renewing, and once the lease has passed
-- the run is marked failed instead of staying `running` forever. At most one run is `running`
-- at a time: a second one is refused (409) rather than writing the same findings concurrently.
ALTER TABLE readiness_runs ADD COLUMN lease TEXT;
ALTER TABLE readiness_runs ADD COLUMN lease_until TEXT;
-- Runs left `running` by earlier versions have no lease and no instance to finish them.
UPDATE readiness_runs SET status = 'failed', finished_at = started_at, progress_phase = NULL,
    error = '检查中断：服务在检查完成前停止（升级前遗留）'
WHERE status = 'running';
CREATE UNIQUE INDEX readiness_runs_one_running ON readiness_runs (status) WHERE status = 'running';
