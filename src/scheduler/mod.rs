//! The scheduler inside `yingji serve`: cron schedules stored in the database, each occurrence
//! enqueued exactly once (a unique key, not process memory), claimed by one instance under a
//! lease, and run; plus the drill reminders and the notification dispatcher.
//!
//! Every piece of background work is its own item: a job occurrence, a reminder, a delivery.
//! An item that fails records its error, attempt count and next try (exponential backoff) and is
//! parked `failed` after `max_delivery_attempts`; it never stops the other items or the loop.
//! Work is claimed under a [`lease`]: the claimant's later writes are fenced by the lease token,
//! long work renews it, and a dead instance's claims are taken over when it lapses.
//!
//! The loop sleeps until the next due moment (at most [`MAX_SLEEP`]) or until woken, never
//! polling in a tight loop. Jobs, reminders and each notification channel run as separate
//! workers, so a long job or a slow receiver delays only itself.

pub mod cron_expr;
pub mod expiry;
pub mod lease;
pub mod routes;
pub mod runs;
pub mod schedules;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::Duration;
use serde_json::{Value, json};
use tokio::task::{JoinHandle, JoinSet};

use crate::app::AppState;
use crate::time::Timestamp;
use cron_expr::CronExpr;
use lease::Lease;
use schedules::{Job, MissedPolicy};

/// Longest the scheduler sleeps between looks at the database (a bound, so that changes made by
/// other instances are noticed).
pub const MAX_SLEEP: std::time::Duration = std::time::Duration::from_secs(30);

/// Shortest sleep after a pass that started nothing (a guard against spinning on an item that is
/// due but cannot be taken).
const MIN_IDLE_SLEEP: std::time::Duration = std::time::Duration::from_secs(1);

/// An occurrence more than this late counts as missed (the service was down at its moment).
pub const GRACE: Duration = Duration::minutes(5);

/// Most missed occurrences counted exactly for the history row of a skipped stretch; a longer
/// outage is recorded as "at least" this many (the policy itself holds for any length).
const MAX_COUNTED: usize = 1_000_000;

/// What the background loop has done, for tests and metrics.
#[derive(Debug, Default)]
pub struct Activity {
    /// Passes of the loop (each looks at the database once and starts due workers).
    pub passes: AtomicU64,
    /// Workers started (jobs, reminders, one per channel with due deliveries).
    pub workers_started: AtomicU64,
    /// Turns of the background writers on SQLite (see [`Activity::write_turn`]).
    sqlite_writes: tokio::sync::Mutex<()>,
}

impl Activity {
    /// On SQLite (one writer at a time), the background workers of this instance take turns
    /// here, handing over at once, rather than in SQLite's busy handler, which sleeps between
    /// tries; on PostgreSQL, None (rows are claimed with `SKIP LOCKED` and written concurrently).
    pub async fn write_turn(&self, db: &crate::db::Db) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match db.backend() {
            crate::db::Backend::Sqlite => Some(self.sqlite_writes.lock().await),
            crate::db::Backend::Postgres => None,
        }
    }

    /// Passes so far.
    pub fn passes(&self) -> u64 {
        self.passes.load(Ordering::Relaxed)
    }
}

/// A kind of background worker; at most one of each runs per instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Worker {
    Jobs,
    Reminders,
    /// Deliveries of one channel (None: the in-app inbox).
    Channel(Option<i64>),
}

/// When an item that failed `attempts` times is tried again (exponential backoff), or None when
/// the attempts are used up and it is parked `failed`.
pub fn backoff_at(state: &AppState, attempts: i64, now: Timestamp) -> Option<Timestamp> {
    (attempts < state.config.max_delivery_attempts)
        .then(|| Timestamp(now.0 + crate::notify::dispatch::backoff(attempts)))
}

/// Starts the scheduler loop; it stops when shutdown begins (waiting for running workers to
/// finish their current batch).
pub fn spawn(state: Arc<AppState>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut shutdown = state.shutdown.clone();
        let mut workers: JoinSet<Worker> = JoinSet::new();
        let mut running: HashMap<Worker, ()> = HashMap::new();
        loop {
            if *shutdown.borrow() {
                break;
            }
            while let Some(done) = workers.try_join_next() {
                if let Ok(w) = done {
                    running.remove(&w);
                }
            }
            state.background.passes.fetch_add(1, Ordering::Relaxed);
            let now = Timestamp(state.clock.now());
            materialise_due(&state, now).await;
            let mut wanted = vec![Worker::Jobs, Worker::Reminders];
            match crate::notify::outbox::channels_due(&state.db, now).await {
                Ok(chs) => wanted.extend(chs.into_iter().map(Worker::Channel)),
                Err(e) => tracing::warn!(error = %e, "cannot list channels with due deliveries"),
            }
            let mut started = 0;
            for w in wanted {
                if running.contains_key(&w) || !worker_has_work(&state, w, now).await {
                    continue;
                }
                running.insert(w, ());
                started += 1;
                state.background.workers_started.fetch_add(1, Ordering::Relaxed);
                let st = state.clone();
                workers.spawn(async move {
                    run_worker(&st, w).await;
                    w
                });
            }
            let wait = match next_wake(&state, &running).await {
                Ok(Some(t)) => (t.0 - state.clock.now()).to_std().unwrap_or_default().min(MAX_SLEEP),
                Ok(None) => MAX_SLEEP,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot compute the next due moment");
                    MAX_SLEEP
                }
            };
            let wait = if started == 0 { wait.max(MIN_IDLE_SLEEP) } else { wait };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = state.wake.notified() => {}
                _ = shutdown.changed() => {}
                Some(done) = workers.join_next(), if !workers.is_empty() => {
                    if let Ok(w) = done {
                        running.remove(&w);
                    }
                }
            }
        }
        while workers.join_next().await.is_some() {}
        tracing::info!("scheduler stopped");
    })
}

/// Whether a worker kind has anything claimable now (cheap checks, so idle passes start none).
async fn worker_has_work(state: &AppState, w: Worker, now: Timestamp) -> bool {
    let due = match w {
        Worker::Jobs => runs::earliest_due(&state.db).await,
        Worker::Reminders => crate::drills::reminders::earliest_due(&state.db).await,
        Worker::Channel(_) => return true,
    };
    match due {
        Ok(Some(t)) => t <= now,
        Ok(None) => false,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read due work");
            false
        }
    }
}

async fn run_worker(state: &Arc<AppState>, w: Worker) {
    let result = match w {
        Worker::Jobs => run_jobs(state).await.map(|_| ()),
        Worker::Reminders => crate::drills::reminders::process_due(state).await.map(|_| ()),
        Worker::Channel(ch) => crate::notify::dispatch::deliver_channel(state, ch).await.map(|_| ()),
    };
    if let Err(e) = result {
        tracing::warn!(worker = ?w, error = %format!("{e:#}"), "background worker stopped early; its items will be taken up again");
    }
    state.wake.notify_one();
}

/// The next moment anything is due that no running worker is already handling.
async fn next_wake(state: &AppState, running: &HashMap<Worker, ()>) -> Result<Option<Timestamp>, sqlx::Error> {
    let mut candidates = vec![schedules::earliest_due(&state.db).await?];
    if !running.contains_key(&Worker::Jobs) {
        candidates.push(runs::earliest_due(&state.db).await?);
    }
    if !running.contains_key(&Worker::Reminders) {
        candidates.push(crate::drills::reminders::earliest_due(&state.db).await?);
    }
    for (ch, t) in crate::notify::outbox::earliest_due_per_channel(&state.db).await? {
        if !running.contains_key(&Worker::Channel(ch)) {
            candidates.push(t);
        }
    }
    Ok(candidates.into_iter().flatten().min())
}

/// One pass, finishing all due work before it returns: enqueue due occurrences, run claimed
/// jobs, process due reminders, deliver due notifications (channels concurrently). Safe to call
/// from several instances at once, and from tests with a moved clock. Failures of single items
/// are recorded on the items; only a failure to reach the database is returned.
pub async fn tick(state: &Arc<AppState>, now: Timestamp) -> anyhow::Result<()> {
    materialise_due(state, now).await;
    run_jobs(state).await?;
    crate::drills::reminders::process_due(state).await?;
    crate::notify::dispatch::deliver_due(state).await?;
    Ok(())
}

/// Materialises every schedule that is due, each on its own: a schedule that cannot be
/// materialised (say, an expression broken in the database) is logged, recorded as a failed run
/// of its occurrence, and retried an hour later, without holding up the others.
async fn materialise_due(state: &AppState, now: Timestamp) {
    let ids = match schedules::due_ids(&state.db, now).await {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read due schedules");
            return;
        }
    };
    for id in ids {
        if let Err(e) = materialise(state, id, now).await {
            let e = format!("{e:#}");
            tracing::warn!(schedule = id, error = %e, "cannot enqueue the schedule's occurrences; retrying in an hour");
            if let Err(e2) = schedules::record_broken(&state.db, id, now, &e).await {
                tracing::warn!(schedule = id, error = %e2, "cannot record the schedule's failure");
            }
        }
    }
}

/// The occurrences of one schedule between its next due time and `now`, as the missed-run
/// policy needs them, found without walking an outage occurrence by occurrence beyond
/// [`MAX_COUNTED`].
#[derive(Debug, Default, PartialEq)]
pub struct Backlog {
    /// Missed occurrences to run late (oldest first).
    pub run_late: Vec<chrono::DateTime<chrono::Utc>>,
    /// Missed occurrences recorded as skipped: count (exact unless `count_capped`), first, last.
    pub skipped: Option<(usize, chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)>,
    /// Whether the skipped count reached [`MAX_COUNTED`] (then it is a lower bound).
    pub count_capped: bool,
    /// Occurrences on time (within [`GRACE`]).
    pub on_time: Vec<chrono::DateTime<chrono::Utc>>,
    /// The first occurrence after `now`.
    pub next: Option<chrono::DateTime<chrono::Utc>>,
}

/// Splits the occurrences from `first` (the schedule's next due time) to `now` by policy, in one
/// pass whatever the outage's length: `skip` runs none late, `run_once` at most one (none when an
/// on-time run covers them), `run_all` at most `max_catchup`; the rest form one skipped stretch.
pub fn backlog(
    cron: &CronExpr,
    tz: chrono_tz::Tz,
    first: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
    policy: MissedPolicy,
    max_catchup: i64,
) -> Backlog {
    use chrono::Utc;
    let mut b = Backlog::default();
    let cutoff = now - GRACE;
    // On time: occurrences in (cutoff, now], starting at the first not missed.
    let mut t = if first > cutoff { Some(first) } else { schedules::next_occurrence(cron, tz, cutoff) };
    while let Some(x) = t {
        if x > now {
            break;
        }
        b.on_time.push(x);
        t = schedules::next_occurrence(cron, tz, x);
    }
    b.next = t;
    if first > cutoff {
        return b;
    }
    // Missed: [first, cutoff]. The newest ones come from walking back from the cutoff.
    let keep = match policy {
        MissedPolicy::Skip => 0,
        MissedPolicy::RunOnce if b.on_time.is_empty() => 1,
        MissedPolicy::RunOnce => 0,
        MissedPolicy::RunAll => max_catchup.clamp(0, 100_000) as usize,
    };
    let mut newest = Vec::new(); // newest first; keep + 1 (the last skipped)
    let mut cursor = (cutoff + Duration::microseconds(1)).with_timezone(&tz);
    while newest.len() < keep + 1 {
        match cron.prev_before(&cursor) {
            Some(p) if p.with_timezone(&Utc) >= first => {
                newest.push(p.with_timezone(&Utc));
                cursor = p;
            }
            _ => break,
        }
    }
    let kept = newest.len().min(keep);
    b.run_late = newest[..kept].iter().rev().copied().collect();
    if newest.len() > keep {
        let last_skipped = newest[keep];
        // Count the skipped stretch [first, last_skipped].
        let mut count = 0usize;
        let mut t = Some(first);
        while let Some(x) = t {
            if x > last_skipped {
                break;
            }
            count += 1;
            if count >= MAX_COUNTED {
                b.count_capped = true;
                break;
            }
            t = schedules::next_occurrence(cron, tz, x);
        }
        b.skipped = Some((count, first, last_skipped));
    }
    b
}

/// Enqueues every occurrence of schedule `id` due by `now`, applying its missed-run policy once
/// for the whole backlog. The next occurrence is computed from the previous due time, never from
/// "now".
async fn materialise(state: &AppState, id: i64, now: Timestamp) -> anyhow::Result<()> {
    let mut tx = state.db.begin().await?;
    let Some(mut s) = schedules::lock(&mut tx, id).await? else { return Ok(()) };
    if !s.enabled || s.next_due_at > now {
        return Ok(());
    }
    let tz: chrono_tz::Tz = s.timezone.parse().map_err(|_| anyhow::anyhow!("时区 {:?} 无效", s.timezone))?;
    let cron = CronExpr::parse(&s.cron).map_err(|e| anyhow::anyhow!(e))?;
    let b = backlog(&cron, tz, s.next_due_at.0, now.0, s.missed_policy, s.max_catchup);
    if let Some((count, from, to)) = b.skipped {
        // One record for the whole skipped stretch, so a long outage does not flood the history.
        let facts = json!({
            "skipped": count,
            "count_capped": b.count_capped,
            "from": Timestamp(from),
            "to": Timestamp(to),
            "reason": "服务停机期间错过，按策略跳过",
        });
        tracing::warn!(schedule = %s.name, count, "skipping occurrences missed while down");
        runs::enqueue(&mut tx, s.id, Timestamp(to), "skipped", true, now, Some(facts)).await?;
    }
    for t in &b.run_late {
        runs::enqueue(&mut tx, s.id, Timestamp(*t), "pending", true, now, None).await?;
    }
    for t in &b.on_time {
        runs::enqueue(&mut tx, s.id, Timestamp(*t), "pending", false, now, None).await?;
    }
    let last = [b.on_time.last(), b.run_late.last(), b.skipped.as_ref().map(|x| &x.2)].into_iter().flatten().max();
    if let Some(l) = last {
        s.last_due_at = Some(Timestamp(*l));
    }
    s.next_due_at = match b.next {
        Some(n) => Timestamp(n),
        // An expression that never fires again (e.g. 31 February): look again in a day.
        None => Timestamp(now.0 + Duration::days(1)),
    };
    schedules::save(&mut tx, &s).await?;
    tx.commit().await?;
    Ok(())
}

/// Claims and runs due job occurrences one after another until none is due. Each run is fenced
/// by its lease (renewed while it runs); a failure is recorded on the run with a next try, or
/// parks it `failed` after the configured attempts.
pub async fn run_jobs(state: &Arc<AppState>) -> anyhow::Result<usize> {
    let mut done = 0;
    loop {
        if *state.shutdown.borrow() {
            return Ok(done);
        }
        let now = Timestamp(state.clock.now());
        let lease = Lease::take(state, now);
        let Some(run) = runs::claim(&state.db, &state.instance_id, now, &lease).await? else { return Ok(done) };
        done += 1;
        let renewal = lease::renew(state, "job_runs", "running", &lease.token);
        let result = run_job(state, run.schedule_id, run.due_at, now).await;
        drop(renewal);
        let finished = Timestamp(state.clock.now());
        let retry_at = match &result {
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(run = run.id, attempt = run.attempts + 1, error = %e, "job failed");
                backoff_at(state, run.attempts + 1, finished)
            }
        };
        let mut tx = state.db.begin().await?;
        match runs::finish(&mut tx, &run, &lease.token, finished, result, retry_at).await {
            Ok(()) => tx.commit().await?,
            Err(e) if e.is_conflict() => lease::refused("job_run", run.id, &lease.token, &e),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Runs one job occurrence; returns its counts.
async fn run_job(state: &Arc<AppState>, schedule_id: i64, due_at: Timestamp, now: Timestamp) -> Result<Value, String> {
    let job = schedules::job_of(&state.db, schedule_id).await.map_err(|e| e.to_string())??;
    tracing::info!(job = job.as_str(), due = %due_at, "running job");
    match job {
        Job::DrillReminders => {
            let _ = now;
            let c = crate::drills::reminders::process_due(state).await.map_err(|e| format!("{e:#}"))?;
            Ok(json!({"reminders_sent": c.sent, "reminders_skipped": c.skipped, "reminders_failed": c.failed}))
        }
        Job::ReadinessCheck => crate::readiness::engine::run_scheduled(state).await.map_err(|e| format!("{e:#}")),
        Job::ExpirySweep => expiry::run(state, now).await.map_err(|e| format!("{e:#}")),
        Job::IdempotencyPurge => {
            crate::supplies::idempotency::purge_expired(state, now).await.map_err(|e| e.to_string())
        }
        Job::EventWatch => crate::events::watch::run(state, now).await.map_err(|e| format!("{e:#}")),
        Job::WarningSweep => crate::warnings::jobs::run(state, now).await.map_err(|e| format!("{e:#}")),
    }
}
