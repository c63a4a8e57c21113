//! A readiness run: gather the findings of every rule, match them against the open ones (new,
//! still there, gone), notify new critical findings once, and keep every region's score.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::context::Context;
use super::{Found, digest, rules, score, store};
use crate::app::AppState;
use crate::scheduler::lease::Lease;
use crate::time::Timestamp;

/// Findings written per transaction. On SQLite every writer waits for the one write lock, so a
/// run writes in short transactions and an API write waits behind one of them at most. On
/// PostgreSQL writers of different rows do not wait for each other (the run's transaction locks
/// only its own run row), so a transaction takes a whole chunk in one statement.
fn batch(db: &crate::db::Db) -> usize {
    match db.backend() {
        crate::db::Backend::Sqlite => 500,
        crate::db::Backend::Postgres => 10_000,
    }
}

/// Scores written per transaction (SQLite: short, like findings).
const SCORES_PER_TX: usize = 100;

/// What a run needs from the application state (owned, so the run can leave the async workers).
struct Env {
    db: crate::db::Db,
    calendar: crate::plans::calendar::Calendar,
    clock: crate::clock::SharedClock,
    /// The run's lease token and length.
    lease: (String, chrono::Duration),
    shutdown: tokio::sync::watch::Receiver<bool>,
}

/// Steps a run records as its progress: four rule groups (plans, drills, forces, supplies),
/// writing findings, resolving, notifying, scoring.
pub const STEPS: i64 = 8;

/// A run's progress on `readiness_runs`: a few cheap updates per run (one per step, never per
/// finding or region). A failed update is logged and ignored: progress is a courtesy, the run
/// is what matters.
pub struct Progress {
    db: crate::db::Db,
    run_id: i64,
    done: std::sync::atomic::AtomicI64,
    /// When the step under way began, and how long each finished step took (ms).
    steps: std::sync::Mutex<(std::time::Instant, Vec<u128>)>,
}

impl Progress {
    fn new(db: crate::db::Db, run_id: i64) -> Self {
        let steps = std::sync::Mutex::new((std::time::Instant::now(), Vec::new()));
        Progress { db, run_id, done: std::sync::atomic::AtomicI64::new(0), steps }
    }

    /// How long each finished step took, ms, in order.
    fn durations(&self) -> Vec<u128> {
        self.steps.lock().map(|s| s.1.clone()).unwrap_or_default()
    }

    /// Records the start of the run (nothing done yet, `phase` first).
    async fn begin(&self, phase: &str) {
        self.write(0, phase).await;
    }

    /// One more step done; `phase` is the one now under way.
    pub async fn step(&self, phase: &str) {
        if let Ok(mut s) = self.steps.lock() {
            let took = s.0.elapsed().as_millis();
            s.1.push(took);
            s.0 = std::time::Instant::now();
        }
        let done = self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        self.write(done.min(STEPS), phase).await;
    }

    async fn write(&self, done: i64, phase: &str) {
        if let Err(e) = store::set_progress(&self.db, self.run_id, done, STEPS, phase).await {
            tracing::warn!(run = self.run_id, "recording readiness progress failed: {e}");
        }
    }
}

/// Runs the readiness check now and waits for it. `trigger` is `schedule` or `api`. The run
/// works on a lower-priority thread of its own ([`crate::blocking::background`]), not on the
/// request workers. Refused with [`store::StartError::Running`] while another run is under way.
pub async fn run(state: &Arc<AppState>, trigger: &str) -> anyhow::Result<Value> {
    let (run_id, now) = start(state, trigger).await?;
    execute(state, run_id, now).await
}

/// The scheduled check: like [`run`], but when a run is already under way (started through the
/// API, or by another instance) this occurrence is covered by it and succeeds without a second
/// run, saying which run covered it.
pub async fn run_scheduled(state: &Arc<AppState>) -> anyhow::Result<Value> {
    match start(state, "schedule").await {
        Ok((run_id, now)) => execute(state, run_id, now).await,
        Err(store::StartError::Running(id)) => {
            tracing::info!(run = id, "a readiness run is under way; this scheduled occurrence is covered by it");
            Ok(json!({"skipped": true, "covered_by_run": id, "reason": "已有检查正在运行，本次由其覆盖"}))
        }
        Err(e) => Err(e.into()),
    }
}

/// Records a new run as `running` under a fresh lease (so its id can be handed out before it
/// does anything), unless another run is under way: at most one runs at a time across every
/// instance, and a run abandoned by a dead instance is marked failed once its lease has lapsed.
pub async fn start(state: &AppState, trigger: &str) -> Result<(i64, Timestamp), store::StartError> {
    let now = Timestamp(state.clock.now());
    let lease = Lease::take(state, now);
    let run_id = store::start_run(&state.db, trigger, now, (&lease.token, lease.until)).await?;
    Ok((run_id, now))
}

/// Carries out a run recorded by [`start`] and finishes it with its summary or error. The run's
/// lease is renewed while it works (and confirmed in every write transaction); when the service
/// begins to stop, the run stops at its next step and is recorded as failed.
pub async fn execute(state: &Arc<AppState>, run_id: i64, now: Timestamp) -> anyhow::Result<Value> {
    let token = store::run_lease(&state.db, run_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("检查 {run_id} 不在运行中（已结束或已被判定中断）"))?;
    let renewal = crate::scheduler::lease::renew(state, "readiness_runs", "running", &token);
    let env = Env {
        db: state.db.clone(),
        calendar: state.calendar.clone(),
        clock: state.clock.clone(),
        lease: (token.clone(), crate::scheduler::lease::length(state)),
        shutdown: state.shutdown.clone(),
    };
    let work = crate::blocking::background("readiness", async move { run_inner(&env, run_id, now).await });
    let mut shutdown = state.shutdown.clone();
    let result = tokio::select! {
        r = work => r,
        // The work notices at its next step and stops writing; the run is recorded now, while
        // the database is still open.
        // (A dropped sender is not a stop: the service is gone without asking.)
        Ok(_) = shutdown.wait_for(|stop| *stop) => Err(anyhow::anyhow!(STOPPED)),
    };
    drop(renewal);
    if result.as_ref().is_ok_and(|v| v["notified"].as_u64().unwrap_or(0) > 0) {
        state.wake.notify_one();
    }
    let finished = Timestamp(state.clock.now());
    let recorded = match &result {
        Ok(v) => store::finish_run(&state.db, run_id, &token, finished, Ok(v)).await,
        Err(e) => store::finish_run(&state.db, run_id, &token, finished, Err(&format!("{e:#}"))).await,
    };
    match recorded {
        Ok(()) => {}
        Err(e) if e.is_conflict() => crate::scheduler::lease::refused("readiness_run", run_id, &token, &e),
        Err(e) => return Err(e.into()),
    }
    result
}

/// What a run at `now` would find (deduplicated by identity, with each finding's severity),
/// without writing any finding: tests compare it with what runs store.
pub async fn dry_run(state: &AppState, now: Timestamp) -> anyhow::Result<Vec<(Found, super::Severity)>> {
    let config = store::config(&state.db).await?;
    let regions = crate::regions::store::all(&state.db).await?;
    let ctx = Context::new(now, config, regions);
    // Run 0 does not exist: its progress updates match no row.
    let progress = Progress::new(state.db.clone(), 0);
    let found = rules::gather(&state.db, &ctx, &state.calendar, &progress).await?;
    let mut by_identity: HashMap<String, Found> = HashMap::with_capacity(found.len());
    for f in found {
        by_identity.entry(f.identity()).or_insert(f);
    }
    Ok(by_identity.into_values().map(|f| (ctx.config.severity(f.rule), f)).map(|(severity, f)| (f, severity)).collect())
}

/// The error of a run cut short by the service stopping.
const STOPPED: &str = "检查中断：服务正在停止";

impl Env {
    /// Fails when the service has begun to stop (checked between steps and write chunks).
    fn go_on(&self) -> anyhow::Result<()> {
        anyhow::ensure!(!*self.shutdown.borrow(), STOPPED);
        Ok(())
    }

    /// A write transaction of the run: confirms (and extends) the run's lease first, so a run
    /// that was declared abandoned writes nothing more.
    async fn begin(&self, run_id: i64) -> anyhow::Result<crate::db::Tx> {
        self.go_on()?;
        let mut tx = self.db.begin().await?;
        let until = Timestamp(self.clock.now() + self.lease.1);
        anyhow::ensure!(
            store::hold_lease(&mut tx, run_id, &self.lease.0, until).await?,
            "检查中断：本实例已不再持有该检查的租约（检查已被判定中断）"
        );
        Ok(tx)
    }
}

async fn run_inner(state: &Env, run_id: i64, now: Timestamp) -> anyhow::Result<Value> {
    let started = std::time::Instant::now();
    let config = store::config(&state.db).await?;
    let regions = crate::regions::store::all(&state.db).await?;
    let ctx = Context::new(now, config, regions);
    let progress = Progress::new(state.db.clone(), run_id);
    progress.begin("检查预案").await;
    let found = rules::gather(&state.db, &ctx, &state.calendar, &progress).await?;
    state.go_on()?;
    let gathered_ms = started.elapsed().as_millis();

    // Deduplicate by identity (a rule may reach the same gap twice).
    let mut by_identity: HashMap<String, Found> = HashMap::with_capacity(found.len());
    for f in found {
        by_identity.entry(f.identity()).or_insert(f);
    }
    let open = store::open_findings(&state.db).await?;
    // Until now, every open finding was last seen by the latest run that succeeded (or when it
    // was last written, if later): what a finding resolved now was last seen at.
    let previous = store::latest_succeeded(&state.db).await?;
    let loaded_ms = started.elapsed().as_millis();
    let mut open_by_identity: HashMap<String, store::OpenRow> =
        open.into_iter().map(|r| (r.identity.clone(), r)).collect();

    let mut per_rule: HashMap<&'static str, i64> = HashMap::new();
    let (mut opened, mut seen_again, mut resolved) = (0u64, 0u64, 0u64);
    let mut new_findings: Vec<digest::Opened> = Vec::new();
    let mut entries: Vec<(String, Found)> = by_identity.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    // Matched against the open findings first: only new findings and findings whose numbers
    // changed are written. An unchanged finding is not rewritten just to say it was seen again:
    // its `last_seen` is this run's time once the run has succeeded (see `store::list`).
    let (mut fresh, mut changed) = (Vec::new(), Vec::new());
    for (identity, f) in &entries {
        *per_rule.entry(f.rule.id()).or_default() += 1;
        let severity = ctx.config.severity(f.rule);
        match open_by_identity.remove(identity) {
            Some(row) => {
                // The message counts too: some name today («2026-11-27 至 … 无保障») where
                // the numbers do not change. The digest covers severity, facts, message and action.
                let digest = f.digest(severity);
                if row.digest.as_deref() != Some(digest.as_str()) {
                    changed.push((row.id, f, severity, digest));
                }
                seen_again += 1;
            }
            None => fresh.push((f, severity)),
        }
    }
    let batch = batch(&state.db);
    for chunk in changed.chunks(batch) {
        let mut tx = state.begin(run_id).await?;
        store::touch_many(&mut tx, chunk, run_id, now).await?;
        tx.commit().await?;
    }
    for chunk in fresh.chunks(batch) {
        let mut tx = state.begin(run_id).await?;
        // Inserted ids by identity (one another run opened first is not returned, and not ours
        // to notify).
        let ids: HashMap<String, i64> = store::insert_many(&mut tx, chunk, run_id, now).await?.into_iter().collect();
        tx.commit().await?;
        for (f, severity) in chunk {
            let Some(&id) = ids.get(&f.identity()) else { continue };
            opened += 1;
            new_findings.push(digest::Opened { id, found: f, severity: *severity });
        }
    }
    let written_ms = started.elapsed().as_millis();
    progress.step("核销已解决的问题").await;
    let gone: Vec<store::OpenRow> = open_by_identity.into_values().collect();
    for chunk in gone.chunks(batch) {
        let mut tx = state.begin(run_id).await?;
        for row in chunk {
            let last_seen = match previous {
                Some((id, at)) if at.0 > row.last_seen.0 => (at, id),
                _ => (row.last_seen, row.last_run_id),
            };
            if store::resolve(&mut tx, row.id, now, last_seen).await? {
                resolved += 1;
            }
        }
        tx.commit().await?;
    }
    // Notified once, when findings open (not every day they stay open): one digest per region
    // and a few individual messages for the most urgent critical findings.
    let resolved_ms = started.elapsed().as_millis();
    state.go_on()?;
    progress.step("发送通知").await;
    let sent = digest::notify(&state.db, &ctx, run_id, now, new_findings).await?;
    let notified_ms = started.elapsed().as_millis();
    state.go_on()?;
    progress.step("计算得分").await;
    write_scores(state, &ctx, run_id).await?;
    progress.step("完成").await;
    let total_ms = started.elapsed().as_millis();
    let mut rules: Vec<(&str, i64)> = per_rule.into_iter().collect();
    rules.sort();
    Ok(json!({
        "run_id": run_id,
        "run_at": now,
        "open": opened + seen_again,
        "opened": opened,
        "still_open": seen_again,
        "changed": changed.len(),
        "resolved": resolved,
        "notified": sent.findings,
        "messages": {"individual": sent.individual, "digests": sent.digests},
        "by_rule": rules.into_iter().map(|(r, n)| (r.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "regions": ctx.regions.len(),
        "gather_ms": gathered_ms,
        // Where the time went, ms from the start: rules, open findings read, findings written,
        // resolutions, notifications, scores (the end).
        // The rule groups' own times, ms.
        "rules_ms": match progress.durations().as_slice() {
            [plans, drills, forces, supplies, ..] => json!({"plans": plans, "drills": drills, "forces": forces, "supplies": supplies}),
            _ => Value::Null,
        },
        "phases_ms": {"gathered": gathered_ms, "loaded": loaded_ms, "written": written_ms, "resolved": resolved_ms, "notified": notified_ms, "total": total_ms},
        "total_ms": total_ms,
    }))
}

/// Scores every region from the open findings of its subtree (codes nest, so a finding counts for
/// its region, its township and its banner).
async fn write_scores(state: &Env, ctx: &Context, run_id: i64) -> anyhow::Result<()> {
    let mut counts: HashMap<String, [i64; 3]> = HashMap::with_capacity(ctx.regions.len());
    for (region, severity, n) in store::open_counts(&state.db).await? {
        let idx = match severity.as_str() {
            "critical" => 0,
            "warning" => 1,
            _ => 2,
        };
        if region.len() != 12 {
            continue;
        }
        let ancestors = [format!("{}000000", &region[..6]), format!("{}000", &region[..9]), region.clone()];
        let mut done: Vec<&String> = Vec::with_capacity(3);
        for a in &ancestors {
            if done.contains(&a) || !ctx.regions.contains_key(a) {
                continue;
            }
            done.push(a);
            counts.entry(a.clone()).or_default()[idx] += n;
        }
    }
    let mut rows: Vec<(String, i64, i64, i64, i64)> = ctx
        .regions
        .values()
        .map(|r| {
            let c = counts.get(&r.code).copied().unwrap_or_default();
            (r.code.clone(), score(c[0], c[1], c[2]), c[0], c[1], c[2])
        })
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    for chunk in rows.chunks(SCORES_PER_TX) {
        let mut tx = state.begin(run_id).await?;
        store::insert_scores(&mut tx, run_id, chunk).await?;
        tx.commit().await?;
    }
    Ok(())
}
