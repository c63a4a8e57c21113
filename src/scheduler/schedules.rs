//! Schedules: what runs when. Stored in the database; the built-in ones are created on first
//! start and editable by admins.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::cron_expr::CronExpr;
use crate::db::{Backend, Db, Tx};
use crate::time::Timestamp;
use crate::{with_db, with_tx};

/// What a schedule runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Job {
    /// 演练提醒: enqueue drill reminders that are due (a catch-up sweep; reminders also fire at
    /// their exact moment).
    DrillReminders,
    /// 准备情况检查: evaluate every region's readiness.
    ReadinessCheck,
    /// 到期巡检: supply batches, certificates and insurance expiring within 30 days.
    ExpirySweep,
    /// 幂等键清理: forget `Idempotency-Key`s older than their lifetime.
    IdempotencyPurge,
    /// 事件督办: overdue first reports and unanswered event call-ups.
    EventWatch,
    /// 预警巡检: expire warnings at their expiry time, remind regions that have not acknowledged.
    WarningSweep,
}

impl Job {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Job::DrillReminders => "drill_reminders",
            Job::ReadinessCheck => "readiness_check",
            Job::ExpirySweep => "expiry_sweep",
            Job::IdempotencyPurge => "idempotency_purge",
            Job::EventWatch => "event_watch",
            Job::WarningSweep => "warning_sweep",
        }
    }

    /// Chinese name.
    pub fn label(self) -> &'static str {
        match self {
            Job::DrillReminders => "演练提醒",
            Job::ReadinessCheck => "准备情况检查",
            Job::ExpirySweep => "到期巡检",
            Job::IdempotencyPurge => "幂等键清理",
            Job::EventWatch => "事件督办",
            Job::WarningSweep => "预警巡检",
        }
    }
}

impl TryFrom<String> for Job {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "drill_reminders" => Ok(Job::DrillReminders),
            "readiness_check" => Ok(Job::ReadinessCheck),
            "expiry_sweep" => Ok(Job::ExpirySweep),
            "idempotency_purge" => Ok(Job::IdempotencyPurge),
            "event_watch" => Ok(Job::EventWatch),
            "warning_sweep" => Ok(Job::WarningSweep),
            _ => Err(format!("unknown job {s:?}")),
        }
    }
}

/// What to do with occurrences that fell due while the service was down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MissedPolicy {
    /// Record them as skipped.
    Skip,
    /// Run the latest one once (late); skip the rest.
    RunOnce,
    /// Run each (late), up to `max_catchup`; skip the rest.
    RunAll,
}

impl MissedPolicy {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            MissedPolicy::Skip => "skip",
            MissedPolicy::RunOnce => "run_once",
            MissedPolicy::RunAll => "run_all",
        }
    }
}

impl TryFrom<String> for MissedPolicy {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "skip" => Ok(MissedPolicy::Skip),
            "run_once" => Ok(MissedPolicy::RunOnce),
            "run_all" => Ok(MissedPolicy::RunAll),
            _ => Err(format!("unknown missed policy {s:?}")),
        }
    }
}

/// A stored schedule.
#[derive(Debug, Clone, Serialize, JsonSchema, sqlx::FromRow)]
pub struct Schedule {
    /// Id.
    pub id: i64,
    /// Unique name (the built-ins are named after their job).
    pub name: String,
    /// What it runs.
    #[sqlx(try_from = "String")]
    pub job: Job,
    /// Standard 5-field cron expression.
    pub cron: String,
    /// IANA time zone the expression is read in.
    pub timezone: String,
    /// Whether it runs.
    pub enabled: bool,
    /// Policy for occurrences missed during downtime.
    #[sqlx(try_from = "String")]
    pub missed_policy: MissedPolicy,
    /// Most missed occurrences `run_all` catches up.
    pub max_catchup: i64,
    /// The next occurrence not yet enqueued.
    pub next_due_at: Timestamp,
    /// The last occurrence enqueued.
    pub last_due_at: Option<Timestamp>,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

/// The built-in schedules: (job, default cron, missed policy).
pub const BUILT_IN: &[(Job, &str, MissedPolicy)] = &[
    (Job::DrillReminders, "*/10 * * * *", MissedPolicy::RunOnce),
    (Job::ReadinessCheck, "0 8 * * *", MissedPolicy::RunOnce),
    (Job::ExpirySweep, "30 7 * * *", MissedPolicy::RunOnce),
    (Job::IdempotencyPurge, "17 * * * *", MissedPolicy::RunOnce),
    (Job::EventWatch, "* * * * *", MissedPolicy::RunOnce),
    (Job::WarningSweep, "*/5 * * * *", MissedPolicy::RunOnce),
];

/// Default cap for `run_all` catch-up.
pub const DEFAULT_MAX_CATCHUP: i64 = 24;

/// The first occurrence of `cron` (read in `tz`) strictly after `after`.
pub fn next_occurrence(cron: &CronExpr, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.next_after(&after.with_timezone(&tz)).map(|t| t.with_timezone(&Utc))
}

/// Creates the built-in schedules that do not exist yet (another instance may race: the unique
/// name makes that harmless).
pub async fn ensure_built_in(db: &Db, now: Timestamp) -> Result<(), sqlx::Error> {
    for (job, cron, policy) in BUILT_IN {
        let expr = CronExpr::parse(cron).map_err(sqlx::Error::Protocol)?;
        let next = next_occurrence(&expr, crate::time::LOCAL_TZ, now.0).unwrap_or(now.0 + Duration::days(1));
        with_db!(db, |p| {
            sqlx::query(
            "INSERT INTO schedules (name, job, cron, timezone, enabled, missed_policy, max_catchup, next_due_at, last_due_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9, $9) ON CONFLICT (name) DO NOTHING",
        )
        .bind(job.as_str())
        .bind(job.as_str())
        .bind(*cron)
        .bind("Asia/Shanghai")
        .bind(true)
        .bind(policy.as_str())
        .bind(DEFAULT_MAX_CATCHUP)
        .bind(Timestamp(next))
        .bind(now)
        .execute(p)
        .await
        .map(|_| ())
        })?;
    }
    Ok(())
}

const SELECT: &str = "SELECT id, name, job, cron, timezone, enabled, missed_policy, max_catchup, next_due_at, last_due_at, created_at, updated_at FROM schedules";

/// All schedules, by name.
pub async fn list(db: &Db) -> Result<Vec<Schedule>, sqlx::Error> {
    let sql = format!("{SELECT} ORDER BY name");
    with_db!(db, |p| sqlx::query_as::<_, Schedule>(&sql).fetch_all(p).await)
}

/// The job a schedule runs; Err names why it cannot run (the schedule is gone, or its job is
/// unknown to this version, say written by a newer instance).
pub async fn job_of(db: &Db, id: i64) -> Result<Result<Job, String>, sqlx::Error> {
    let job: Option<String> = with_db!(db, |p| sqlx::query_scalar("SELECT job FROM schedules WHERE id = $1")
        .bind(id)
        .fetch_optional(p)
        .await)?;
    Ok(match job {
        None => Err(format!("调度 {id} 已不存在")),
        Some(j) => {
            Job::try_from(j.clone()).map_err(|_| format!("未知任务「{j}」（本版本不认识，可能由更新版本的实例创建）"))
        }
    })
}

/// Records that schedule `id` could not be materialised: a `failed` run for its due occurrence
/// (with the error, visible in the history) and the next look an hour later, so a broken
/// schedule neither stops the others nor keeps the loop busy.
pub async fn record_broken(db: &Db, id: i64, now: Timestamp, error: &str) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    with_tx!(&mut tx, |c| sqlx::query(
        "INSERT INTO job_runs (schedule_id, due_at, status, late, enqueued_at, finished_at, error, attempts)
         SELECT id, next_due_at, 'failed', $2, $3, $3, $4, 1 FROM schedules WHERE id = $1
         ON CONFLICT (schedule_id, due_at) DO NOTHING",
    )
    .bind(id)
    .bind(false)
    .bind(now)
    .bind(error)
    .execute(c)
    .await
    .map(|_| ()))?;
    with_tx!(&mut tx, |c| sqlx::query("UPDATE schedules SET next_due_at = $2 WHERE id = $1")
        .bind(id)
        .bind(Timestamp(now.0 + Duration::hours(1)))
        .execute(c)
        .await
        .map(|_| ()))?;
    tx.commit().await
}

/// One schedule by name.
pub async fn get(db: &Db, name: &str) -> Result<Option<Schedule>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE name = $1");
    with_db!(db, |p| sqlx::query_as::<_, Schedule>(&sql).bind(name).fetch_optional(p).await)
}

/// Ids of enabled schedules with an occurrence due at `now`.
pub async fn due_ids(db: &Db, now: Timestamp) -> Result<Vec<i64>, sqlx::Error> {
    with_db!(db, |p| sqlx::query_scalar(
        "SELECT id FROM schedules WHERE enabled = $1 AND next_due_at <= $2 ORDER BY next_due_at"
    )
    .bind(true)
    .bind(now)
    .fetch_all(p)
    .await)
}

/// The earliest next occurrence of any enabled schedule.
pub async fn earliest_due(db: &Db) -> Result<Option<Timestamp>, sqlx::Error> {
    with_db!(db, |p| sqlx::query_scalar("SELECT MIN(next_due_at) FROM schedules WHERE enabled = $1")
        .bind(true)
        .fetch_one(p)
        .await)
}

/// Locks and reads one schedule inside a transaction (PostgreSQL: `FOR UPDATE`, so two instances
/// materialise its occurrences one after the other; SQLite transactions are already exclusive).
pub async fn lock(tx: &mut Tx, id: i64) -> Result<Option<Schedule>, sqlx::Error> {
    let sql = match tx.backend() {
        Backend::Postgres => format!("{SELECT} WHERE id = $1 FOR UPDATE"),
        Backend::Sqlite => format!("{SELECT} WHERE id = $1"),
    };
    with_tx!(tx, |c| sqlx::query_as::<_, Schedule>(&sql).bind(id).fetch_optional(c).await)
}

/// Writes the editable fields and the next due time.
pub async fn save(tx: &mut Tx, s: &Schedule) -> Result<(), sqlx::Error> {
    with_tx!(tx, |c| sqlx::query(
        "UPDATE schedules SET cron = $2, timezone = $3, enabled = $4, missed_policy = $5, max_catchup = $6,
                next_due_at = $7, last_due_at = $8, updated_at = $9 WHERE id = $1",
    )
    .bind(s.id)
    .bind(&s.cron)
    .bind(&s.timezone)
    .bind(s.enabled)
    .bind(s.missed_policy.as_str())
    .bind(s.max_catchup)
    .bind(s.next_due_at)
    .bind(s.last_due_at)
    .bind(s.updated_at)
    .execute(c)
    .await
    .map(|_| ()))
}
