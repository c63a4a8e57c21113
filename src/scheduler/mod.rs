//! The scheduler inside `yingji serve`: cron schedules stored in the database, each occurrence
//! enqueued exactly once (a unique key, not process memory), claimed by one instance, and run;
//! plus the notification dispatcher. It sleeps until the next due moment (at most
//! [`MAX_SLEEP`]) or until woken, never polling in a tight loop.

pub mod cron_expr;
pub mod expiry;
pub mod routes;
pub mod runs;
pub mod schedules;

use std::sync::Arc;

use chrono::Duration;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::app::AppState;
use crate::time::Timestamp;
use cron_expr::CronExpr;
use schedules::{Job, MissedPolicy};

/// Longest the scheduler sleeps between looks at the database (a bound, so that changes made by
/// other instances are noticed).
pub const MAX_SLEEP: std::time::Duration = std::time::Duration::from_secs(30);

/// An occurrence more than this late counts as missed (the service was down at its moment).
pub const GRACE: Duration = Duration::minutes(5);

/// Most occurrences materialised for one schedule in one pass; a longer backlog is collapsed into
/// one skipped record.
const MAX_BACKLOG: usize = 10_000;

/// Starts the scheduler loop; it stops when shutdown begins.
pub fn spawn(state: Arc<AppState>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut shutdown = state.shutdown.clone();
        loop {
            if *shutdown.borrow() {
                break;
            }
            let now = Timestamp(state.clock.now());
            if let Err(e) = tick(&state, now).await {
                tracing::warn!(error = %e, "scheduler tick failed");
            }
            let wait = match next_wake(&state).await {
                Ok(Some(t)) => (t.0 - state.clock.now()).to_std().unwrap_or_default().min(MAX_SLEEP),
                _ => MAX_SLEEP,
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = state.wake.notified() => {}
                _ = shutdown.changed() => {}
            }
        }
        tracing::info!("scheduler stopped");
    })
}

/// The next moment anything is due: a schedule occurrence or a delivery attempt.
async fn next_wake(state: &AppState) -> Result<Option<Timestamp>, sqlx::Error> {
    let candidates = [
        schedules::earliest_due(&state.db).await?,
        crate::drills::reminders::earliest_due(&state.db).await?,
        crate::notify::outbox::earliest_due(&state.db).await?,
    ];
    Ok(candidates.into_iter().flatten().min())
}

/// One pass: enqueue due occurrences, run claimed jobs, deliver due notifications. Safe to call
/// from several instances at once, and from tests with a moved clock.
pub async fn tick(state: &AppState, now: Timestamp) -> anyhow::Result<()> {
    for id in schedules::due_ids(&state.db, now).await? {
        materialise(state, id, now).await?;
    }
    while let Some(run) = runs::claim(&state.db, &state.instance_id, now).await? {
        let result = run_job(state, run.schedule_id, run.due_at, now).await;
        if let Err(e) = &result {
            tracing::warn!(run = run.id, error = %e, "job failed");
        }
        runs::finish(&state.db, run.id, Timestamp(state.clock.now()), result).await?;
    }
    // Reminders fire at their own moment, not only when the drill_reminders sweep runs.
    crate::drills::reminders::enqueue_due(&state.db, now).await?;
    crate::notify::dispatch::deliver_due(state, now).await?;
    Ok(())
}

/// Enqueues every occurrence of schedule `id` due by `now`, applying its missed-run policy. The
/// next occurrence is computed from the previous due time, never from "now".
async fn materialise(state: &AppState, id: i64, now: Timestamp) -> anyhow::Result<()> {
    let mut tx = state.db.begin().await?;
    let Some(mut s) = schedules::lock(&mut tx, id).await? else { return Ok(()) };
    if !s.enabled || s.next_due_at > now {
        return Ok(());
    }
    let tz: chrono_tz::Tz = s.timezone.parse().unwrap_or(crate::time::LOCAL_TZ);
    let cron = CronExpr::parse(&s.cron).map_err(|e| anyhow::anyhow!(e))?;
    let mut due = Vec::new();
    let mut next = Some(s.next_due_at.0);
    while let Some(t) = next {
        if t > now.0 || due.len() >= MAX_BACKLOG {
            break;
        }
        due.push(t);
        next = schedules::next_occurrence(&cron, tz, t);
    }
    let (missed, on_time): (Vec<_>, Vec<_>) = due.iter().copied().partition(|t| now.0 - *t > GRACE);
    let run_missed: Vec<_> = match s.missed_policy {
        MissedPolicy::Skip => vec![],
        MissedPolicy::RunOnce if on_time.is_empty() => missed.last().copied().into_iter().collect(),
        MissedPolicy::RunOnce => vec![],
        MissedPolicy::RunAll => {
            let cap = s.max_catchup.max(0) as usize;
            missed[missed.len().saturating_sub(cap)..].to_vec()
        }
    };
    let skipped: Vec<_> = missed.iter().copied().filter(|t| !run_missed.contains(t)).collect();
    if let Some(last) = skipped.last() {
        // One record for the whole skipped stretch, so a long outage does not flood the history.
        let facts = json!({
            "skipped": skipped.len(),
            "from": Timestamp(skipped[0]),
            "to": Timestamp(*last),
            "reason": "服务停机期间错过，按策略跳过",
        });
        tracing::warn!(schedule = %s.name, count = skipped.len(), "skipping occurrences missed while down");
        runs::enqueue(&mut tx, s.id, Timestamp(*last), "skipped", true, now, Some(facts)).await?;
    }
    for t in &run_missed {
        runs::enqueue(&mut tx, s.id, Timestamp(*t), "pending", true, now, None).await?;
    }
    for t in &on_time {
        runs::enqueue(&mut tx, s.id, Timestamp(*t), "pending", false, now, None).await?;
    }
    s.last_due_at = due.last().map(|t| Timestamp(*t));
    if let Some(n) = next {
        s.next_due_at = Timestamp(n);
    }
    schedules::save(&mut tx, &s).await?;
    tx.commit().await?;
    Ok(())
}

/// Runs one job occurrence; returns its counts.
async fn run_job(state: &AppState, schedule_id: i64, due_at: Timestamp, now: Timestamp) -> Result<Value, String> {
    let job = schedules::job_of(&state.db, schedule_id).await.map_err(|e| e.to_string())?.ok_or("schedule vanished")?;
    tracing::info!(job = job.as_str(), due = %due_at, "running job");
    match job {
        Job::DrillReminders => {
            let (sent, skipped) =
                crate::drills::reminders::enqueue_due(&state.db, now).await.map_err(|e| e.to_string())?;
            Ok(json!({"reminders_sent": sent, "reminders_skipped": skipped}))
        }
        Job::ReadinessCheck => crate::readiness::engine::run(state, "schedule").await.map_err(|e| format!("{e:#}")),
        Job::ExpirySweep => expiry::run(state, now).await.map_err(|e| format!("{e:#}")),
        Job::WarningSweep => crate::warnings::jobs::run(state, now).await.map_err(|e| format!("{e:#}")),
    }
}
