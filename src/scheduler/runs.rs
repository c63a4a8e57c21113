//! Job runs: one row per occurrence of a schedule, unique on `(schedule_id, due_at)`, claimed by
//! one instance at a time under a lease (see [`super::lease`]). A failed run is retried with
//! backoff and parked `failed` after the configured number of attempts.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::lease::Lease;
use crate::db::{Backend, Db, Tx};
use crate::time::Timestamp;
use crate::transition::{Lifecycle, TransitionError};
use crate::{with_db, with_tx};

/// The job-run lifecycle: `pending` → `running` (claimed) → `succeeded`, back to `pending` (a
/// retry after a failure) or `failed` (parked); `skipped` rows record missed occurrences.
pub const JOB_RUN: Lifecycle = Lifecycle::new("job_runs", "任务运行");

/// A run as the history shows it.
#[derive(Debug, Clone, Serialize, JsonSchema, sqlx::FromRow)]
pub struct JobRun {
    /// Id.
    pub id: i64,
    /// Schedule name.
    pub schedule: String,
    /// Job.
    pub job: String,
    /// The occurrence this run is for.
    pub due_at: Timestamp,
    /// `pending`, `running`, `succeeded`, `failed` or `skipped`.
    pub status: String,
    /// Whether it ran after the service was down at its due time.
    pub late: bool,
    /// When it was enqueued.
    pub enqueued_at: Timestamp,
    /// When it started.
    pub started_at: Option<Timestamp>,
    /// When it finished.
    pub finished_at: Option<Timestamp>,
    /// Instance that ran it.
    pub claimed_by: Option<String>,
    /// What it did (counts), or for a skip, what was skipped.
    #[schemars(with = "Option<Value>")]
    pub counts: Option<sqlx::types::Json<Value>>,
    /// Error, when it failed (the last error while it is retried).
    pub error: Option<String>,
    /// Attempts made.
    pub attempts: i64,
    /// When a failed run is tried again.
    pub next_attempt_at: Option<Timestamp>,
}

/// Enqueues an occurrence; returns false when it already existed (the unique key at work).
pub async fn enqueue(
    tx: &mut Tx,
    schedule_id: i64,
    due_at: Timestamp,
    status: &str,
    late: bool,
    now: Timestamp,
    counts: Option<Value>,
) -> Result<bool, sqlx::Error> {
    let finished = (status == "skipped").then_some(now);
    let counts = counts.map(sqlx::types::Json);
    let n = with_tx!(tx, |c| sqlx::query(
        "INSERT INTO job_runs (schedule_id, due_at, status, late, enqueued_at, finished_at, counts)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (schedule_id, due_at) DO NOTHING",
    )
    .bind(schedule_id)
    .bind(due_at)
    .bind(status)
    .bind(late)
    .bind(now)
    .bind(finished)
    .bind(&counts)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// A claimed run.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    /// Run id.
    pub id: i64,
    /// Schedule id.
    pub schedule_id: i64,
    /// Occurrence.
    pub due_at: Timestamp,
    /// Late?
    pub late: bool,
    /// Attempts made before this one.
    pub attempts: i64,
}

/// Claims the oldest due run (pending and past its retry time, or running under a lapsed
/// lease) for `instance` under `lease`. On PostgreSQL `FOR UPDATE SKIP LOCKED` lets several
/// instances claim different runs concurrently; on SQLite the single statement is atomic.
pub async fn claim(db: &Db, instance: &str, now: Timestamp, lease: &Lease) -> Result<Option<Claimed>, sqlx::Error> {
    let lock = match db.backend() {
        Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let sql = format!(
        "UPDATE job_runs SET status = 'running', started_at = $1, claimed_by = $2, lease = $3, lease_until = $4
         WHERE id = (SELECT id FROM job_runs
                     WHERE (status = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= $1))
                        OR (status = 'running' AND (lease_until IS NULL OR lease_until < $1))
                     ORDER BY due_at, id LIMIT 1 {lock})
         RETURNING id, schedule_id, due_at, late, attempts"
    );
    with_db!(db, |p| sqlx::query_as::<_, Claimed>(&sql)
        .bind(now)
        .bind(instance)
        .bind(&lease.token)
        .bind(lease.until)
        .fetch_optional(p)
        .await)
}

/// Records a run's outcome, fenced by its lease: success is `succeeded`; a failure goes back to
/// `pending` with its error and a next try (`retry_at`), or is parked `failed` when `retry_at`
/// is None. A claimant that lost its lease gets [`TransitionError::Conflict`] and writes nothing.
pub async fn finish(
    tx: &mut Tx,
    run: &Claimed,
    token: &str,
    now: Timestamp,
    result: Result<Value, String>,
    retry_at: Option<Timestamp>,
) -> Result<(), TransitionError> {
    let attempts = run.attempts + 1;
    let none: Option<String> = None;
    let no_time: Option<Timestamp> = None;
    match result {
        Ok(v) => crate::transition!(tx, JOB_RUN, run.id, from ["running"] => "succeeded",
            set { "finished_at" = Some(now), "counts" = Some(sqlx::types::Json(v)), "error" = &none,
                  "attempts" = attempts, "next_attempt_at" = no_time, "lease_until" = no_time },
            guard { "lease" = token }),
        Err(e) => {
            let to = if retry_at.is_some() { "pending" } else { "failed" };
            let finished = if retry_at.is_some() { None } else { Some(now) };
            crate::transition!(tx, JOB_RUN, run.id, from ["running"] => to,
                set { "finished_at" = finished, "error" = Some(e), "attempts" = attempts,
                      "next_attempt_at" = retry_at, "lease_until" = no_time },
                guard { "lease" = token })
        }
    }
}

/// The earliest moment a run becomes claimable: a retry coming due, or a lease lapsing.
pub async fn earliest_due(db: &Db) -> Result<Option<Timestamp>, sqlx::Error> {
    with_db!(db, |p| sqlx::query_scalar(
        "SELECT MIN(CASE WHEN status = 'running' THEN lease_until ELSE COALESCE(next_attempt_at, enqueued_at) END)
         FROM job_runs WHERE status IN ('pending', 'running')"
    )
    .fetch_one(p)
    .await)
}

/// Filters of the run history.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunQuery {
    /// Only this schedule (by name).
    pub schedule: Option<String>,
    /// Only this status.
    pub status: Option<String>,
    /// Page size (default 100, max 1000).
    pub limit: Option<crate::http::ctx::Limit>,
    /// Items to skip.
    pub offset: Option<crate::http::ctx::Offset>,
}

/// The run history, newest occurrence first.
pub async fn list(db: &Db, q: &RunQuery, limit: i64, offset: i64) -> Result<(Vec<JobRun>, i64), sqlx::Error> {
    const FROM: &str = "FROM job_runs r JOIN schedules s ON s.id = r.schedule_id
         WHERE ($1 IS NULL OR s.name = $1) AND ($2 IS NULL OR r.status = $2)";
    let sql = format!(
        "SELECT r.id, s.name AS schedule, s.job, r.due_at, r.status, r.late, r.enqueued_at, r.started_at, r.finished_at,
                r.claimed_by, r.counts, r.error, r.attempts, r.next_attempt_at {FROM} ORDER BY r.due_at DESC, r.id DESC LIMIT $3 OFFSET $4"
    );
    let count = format!("SELECT COUNT(*) {FROM}");
    with_db!(db, |p| {
        let items = sqlx::query_as::<_, JobRun>(&sql)
            .bind(&q.schedule)
            .bind(&q.status)
            .bind(limit)
            .bind(offset)
            .fetch_all(p)
            .await?;
        let total: i64 = sqlx::query_scalar(&count).bind(&q.schedule).bind(&q.status).fetch_one(p).await?;
        Ok((items, total))
    })
}

/// The latest run of every schedule, in one query (for the jobs overview).
pub async fn latest_per_schedule(db: &Db) -> Result<Vec<JobRun>, sqlx::Error> {
    with_db!(db, |p| {
        sqlx::query_as::<_, JobRun>(
        "SELECT r.id, s.name AS schedule, s.job, r.due_at, r.status, r.late, r.enqueued_at, r.started_at, r.finished_at,
                r.claimed_by, r.counts, r.error, r.attempts, r.next_attempt_at
         FROM job_runs r JOIN schedules s ON s.id = r.schedule_id
         WHERE r.id IN (SELECT MAX(id) FROM job_runs GROUP BY schedule_id)",
    )
    .fetch_all(p)
    .await
    })
}
