//! Runs: one at a time across instances, each under a lease, with progress and a status.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;
use sqlx::types::Json;

use crate::db::{Db, Tx};
use crate::time::Timestamp;
use crate::{with_db, with_tx};

/// Why a run did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Another run is under way (at most one runs at a time, on every instance).
    #[error("已有一次准备情况检查（编号 {0}）正在运行，请等待其完成")]
    Running(i64),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Starts a run under `lease` (token, expiry), unless another is running: a unique index lets
/// one row be `running`, so of two instances starting together one wins and the other learns
/// the winner's id. A run whose lease has lapsed (its instance died) is marked failed first.
pub async fn start_run(db: &Db, trigger: &str, now: Timestamp, lease: (&str, Timestamp)) -> Result<i64, StartError> {
    let mut tx = db.begin().await?;
    abandon_lapsed_tx(&mut tx, now).await?;
    let id: Option<i64> = with_tx!(&mut tx, |c| {
        sqlx::query_scalar(
        "INSERT INTO readiness_runs (triggered_by, started_at, status, lease, lease_until) VALUES ($1, $2, 'running', $3, $4)
         ON CONFLICT (status) WHERE status = 'running' DO NOTHING RETURNING id"
    )
    .bind(trigger)
    .bind(now)
    .bind(lease.0)
    .bind(lease.1)
    .fetch_optional(c)
    .await
    })?;
    match id {
        Some(id) => {
            tx.commit().await?;
            Ok(id)
        }
        None => {
            let running: Option<i64> =
                with_tx!(&mut tx, |c| sqlx::query_scalar("SELECT id FROM readiness_runs WHERE status = 'running'")
                    .fetch_optional(c)
                    .await)?;
            // The running run may have finished between the insert and the look-up: still a
            // refusal (the caller may simply try again).
            Err(StartError::Running(running.unwrap_or(0)))
        }
    }
}

/// The error of a run abandoned by its instance.
pub const ABANDONED: &str = "检查中断：执行检查的服务实例在完成前停止（崩溃、被强制结束或关闭），租约已过期";

/// Marks failed every running run whose lease has lapsed (its instance stopped renewing it:
/// crash, SIGKILL, power cut); returns how many. Each is a fenced transition, so a run whose
/// instance renewed its lease in the meantime is left alone.
pub async fn abandon_lapsed(db: &Db, now: Timestamp) -> Result<u64, sqlx::Error> {
    let mut tx = db.begin().await?;
    let n = abandon_lapsed_tx(&mut tx, now).await?;
    tx.commit().await?;
    Ok(n)
}

async fn abandon_lapsed_tx(tx: &mut Tx, now: Timestamp) -> Result<u64, sqlx::Error> {
    let lapsed: Vec<(i64, Option<String>)> = with_tx!(tx, |c| sqlx::query_as(
        "SELECT id, lease FROM readiness_runs WHERE status = 'running' AND lease_until < $1"
    )
    .bind(now)
    .fetch_all(c)
    .await)?;
    let mut n = 0;
    for (id, lease) in lapsed {
        let done = crate::transition!(tx, RUN, id, from ["running"] => "failed",
            set { "finished_at" = now, "error" = ABANDONED, "progress_phase" = None::<String> },
            guard { "lease" = lease });
        match done {
            Ok(()) => {
                tracing::warn!(run = id, "readiness run abandoned by its instance (lease lapsed): marked failed");
                n += 1;
            }
            Err(crate::transition::TransitionError::Db(e)) => return Err(e),
            Err(_) => {}
        }
    }
    Ok(n)
}

/// The lease token of a running run (None when it is not running).
pub async fn run_lease(db: &Db, id: i64) -> Result<Option<String>, sqlx::Error> {
    with_db!(db, |p| sqlx::query_scalar("SELECT lease FROM readiness_runs WHERE id = $1 AND status = 'running'")
        .bind(id)
        .fetch_optional(p)
        .await)
    .map(Option::flatten)
}

/// Inside a run's write transaction: confirms the run still holds its lease and pushes the
/// expiry to `until`. False when it does not (the run was taken for abandoned after its lease
/// lapsed): the run must stop writing. On PostgreSQL the run's row stays locked until the
/// transaction ends, so it cannot be declared abandoned while a chunk is being written.
pub async fn hold_lease(tx: &mut Tx, id: i64, token: &str, until: Timestamp) -> Result<bool, sqlx::Error> {
    with_tx!(tx, |c| sqlx::query(
        "UPDATE readiness_runs SET lease_until = $3 WHERE id = $1 AND lease = $2 AND status = 'running'"
    )
    .bind(id)
    .bind(token)
    .bind(until)
    .execute(c)
    .await
    .map(|r| r.rows_affected() == 1))
}

/// Readiness runs: `running` → `succeeded` or `failed`.
pub const RUN: crate::transition::Lifecycle = crate::transition::Lifecycle::new("readiness_runs", "准备情况检查");

/// Finishes a running run with its summary or error, fenced by its lease `token`: a run
/// declared abandoned (its lease lapsed) is not finished by its late instance.
pub async fn finish_run(
    db: &Db,
    id: i64,
    token: &str,
    now: Timestamp,
    result: Result<&Value, &str>,
) -> Result<(), crate::transition::TransitionError> {
    let (status, summary, error) = match result {
        Ok(v) => ("succeeded", Some(Json(v.clone())), None),
        Err(e) => ("failed", None, Some(e.to_string())),
    };
    let mut tx = db.begin().await?;
    crate::transition!(&mut tx, RUN, id, from ["running"] => status,
        set { "finished_at" = now, "summary" = summary, "error" = error, "progress_phase" = None::<String> },
        guard { "lease" = token })?;
    tx.commit().await?;
    Ok(())
}

/// Records how far a running run is: `done` of `total` steps, `phase` now under way. A few
/// cheap updates per run (one per rule group and writing phase), never per finding.
pub async fn set_progress(db: &Db, id: i64, done: i64, total: i64, phase: &str) -> Result<(), sqlx::Error> {
    with_db!(db, |p| sqlx::query(
        "UPDATE readiness_runs SET progress_done = $2, progress_total = $3, progress_phase = $4
         WHERE id = $1 AND status = 'running'"
    )
    .bind(id)
    .bind(done)
    .bind(total)
    .bind(phase)
    .execute(p)
    .await
    .map(|_| ()))
}

/// A run as its status route shows it.
#[derive(Debug, Serialize, JsonSchema, sqlx::FromRow)]
pub struct RunStatus {
    /// Run id.
    pub id: i64,
    /// `schedule` or `api`.
    pub triggered_by: String,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    /// Started.
    pub started_at: Timestamp,
    /// Finished (None while running).
    pub finished_at: Option<Timestamp>,
    /// Steps done.
    pub progress_done: i64,
    /// Steps in all (0 until the run has counted them).
    pub progress_total: i64,
    /// The step under way (Chinese), None when finished or not yet started.
    pub progress_phase: Option<String>,
    /// The summary once succeeded.
    #[schemars(with = "Option<Value>")]
    pub summary: Option<Json<Value>>,
    /// The error once failed.
    pub error: Option<String>,
}

/// One run's status.
pub async fn run_status(db: &Db, id: i64) -> Result<Option<RunStatus>, sqlx::Error> {
    with_db!(db, |p| sqlx::query_as::<_, RunStatus>(
        "SELECT id, triggered_by, status, started_at, finished_at, progress_done, progress_total, progress_phase,
                summary, error
         FROM readiness_runs WHERE id = $1"
    )
    .bind(id)
    .fetch_optional(p)
    .await)
}
