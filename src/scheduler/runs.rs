//! Job runs: one row per occurrence of a schedule, unique on `(schedule_id, due_at)`, claimed by
//! one instance at a time.

use chrono::Duration;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::db::{Backend, Db, Tx};
use crate::time::Timestamp;
use crate::{with_db, with_tx};

/// A claimed run that has not been finished within this long is taken to belong to a dead
/// instance and may be claimed again (jobs are idempotent).
pub const LEASE: Duration = Duration::minutes(10);

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
    /// Error, when it failed.
    pub error: Option<String>,
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
}

/// Claims the oldest pending run (or one whose claimant died), for `instance`. On PostgreSQL
/// `FOR UPDATE SKIP LOCKED` lets several instances claim different runs concurrently; on SQLite
/// the single statement is atomic.
pub async fn claim(db: &Db, instance: &str, now: Timestamp) -> Result<Option<Claimed>, sqlx::Error> {
    let lock = match db.backend() {
        Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let sql = format!(
        "UPDATE job_runs SET status = 'running', started_at = $1, claimed_by = $2
         WHERE id = (SELECT id FROM job_runs
                     WHERE status = 'pending' OR (status = 'running' AND started_at < $3)
                     ORDER BY due_at, id LIMIT 1 {lock})
         RETURNING id, schedule_id, due_at, late"
    );
    let stale = Timestamp(now.0 - LEASE);
    with_db!(db, |p| sqlx::query_as::<_, Claimed>(&sql).bind(now).bind(instance).bind(stale).fetch_optional(p).await)
}

/// Records a run's outcome.
pub async fn finish(db: &Db, id: i64, now: Timestamp, result: Result<Value, String>) -> Result<(), sqlx::Error> {
    let (status, counts, error) = match result {
        Ok(v) => ("succeeded", Some(sqlx::types::Json(v)), None),
        Err(e) => ("failed", None, Some(e)),
    };
    with_db!(db, |p| sqlx::query(
        "UPDATE job_runs SET status = $2, finished_at = $3, counts = $4, error = $5 WHERE id = $1"
    )
    .bind(id)
    .bind(status)
    .bind(now)
    .bind(&counts)
    .bind(&error)
    .execute(p)
    .await
    .map(|_| ()))
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
    pub limit: Option<u32>,
    /// Items to skip.
    pub offset: Option<u32>,
}

/// The run history, newest occurrence first.
pub async fn list(db: &Db, q: &RunQuery, limit: i64, offset: i64) -> Result<(Vec<JobRun>, i64), sqlx::Error> {
    const FROM: &str = "FROM job_runs r JOIN schedules s ON s.id = r.schedule_id
         WHERE ($1 IS NULL OR s.name = $1) AND ($2 IS NULL OR r.status = $2)";
    let sql = format!(
        "SELECT r.id, s.name AS schedule, s.job, r.due_at, r.status, r.late, r.enqueued_at, r.started_at, r.finished_at,
                r.claimed_by, r.counts, r.error {FROM} ORDER BY r.due_at DESC, r.id DESC LIMIT $3 OFFSET $4"
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
                r.claimed_by, r.counts, r.error
         FROM job_runs r JOIN schedules s ON s.id = r.schedule_id
         WHERE r.id IN (SELECT MAX(id) FROM job_runs GROUP BY schedule_id)",
    )
    .fetch_all(p)
    .await
    })
}
