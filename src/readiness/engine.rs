//! A readiness run: gather the findings of every rule, match them against the open ones (new,
//! still there, gone), notify new critical findings once, and keep every region's score.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::context::Context;
use super::{Found, digest, rules, score, store};
use crate::app::AppState;
use crate::time::Timestamp;

/// Writes per transaction, so a run never holds the (SQLite) write lock for long and the API
/// keeps answering during it.
const BATCH: usize = 500;

/// What a run needs from the application state (owned, so the run can leave the async workers).
struct Env {
    db: crate::db::Db,
    calendar: crate::plans::calendar::Calendar,
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
}

impl Progress {
    fn new(db: crate::db::Db, run_id: i64) -> Self {
        Progress { db, run_id, done: std::sync::atomic::AtomicI64::new(0) }
    }

    /// Records the start of the run (nothing done yet, `phase` first).
    async fn begin(&self, phase: &str) {
        self.write(0, phase).await;
    }

    /// One more step done; `phase` is the one now under way.
    pub async fn step(&self, phase: &str) {
        let done = self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        self.write(done.min(STEPS), phase).await;
    }

    async fn write(&self, done: i64, phase: &str) {
        if let Err(e) = store::set_progress(&self.db, self.run_id, done, STEPS, phase).await {
            tracing::warn!(run = self.run_id, "recording readiness progress failed: {e}");
        }
    }
}

/// Runs the readiness check now and waits for it. `trigger` is `schedule` or `api`. The rules'
/// CPU work runs on a blocking-pool thread ([`crate::blocking::off_runtime`]), not on the request
/// workers.
pub async fn run(state: &AppState, trigger: &str) -> anyhow::Result<Value> {
    let (run_id, now) = start(state, trigger).await?;
    execute(state, run_id, now).await
}

/// Records a new run as `running` (so its id can be handed out before it does anything).
pub async fn start(state: &AppState, trigger: &str) -> anyhow::Result<(i64, Timestamp)> {
    let now = Timestamp(state.clock.now());
    let run_id = store::start_run(&state.db, trigger, now).await?;
    Ok((run_id, now))
}

/// Carries out a run recorded by [`start`] and finishes it with its summary or error.
pub async fn execute(state: &AppState, run_id: i64, now: Timestamp) -> anyhow::Result<Value> {
    let env = Env { db: state.db.clone(), calendar: state.calendar.clone() };
    let result = crate::blocking::off_runtime(async move { run_inner(&env, run_id, now).await }).await;
    if result.as_ref().is_ok_and(|v| v["notified"].as_u64().unwrap_or(0) > 0) {
        state.wake.notify_one();
    }
    let finished = Timestamp(state.clock.now());
    match &result {
        Ok(v) => store::finish_run(&state.db, run_id, finished, Ok(v)).await?,
        Err(e) => store::finish_run(&state.db, run_id, finished, Err(&format!("{e:#}"))).await?,
    }
    result
}

async fn run_inner(state: &Env, run_id: i64, now: Timestamp) -> anyhow::Result<Value> {
    let started = std::time::Instant::now();
    let config = store::config(&state.db).await?;
    let regions = crate::regions::store::all(&state.db).await?;
    let ctx = Context::new(now, config, regions);
    let progress = Progress::new(state.db.clone(), run_id);
    progress.begin("检查预案").await;
    let found = rules::gather(&state.db, &ctx, &state.calendar, &progress).await?;
    let gathered_ms = started.elapsed().as_millis();

    // Deduplicate by identity (a rule may reach the same gap twice).
    let mut by_identity: HashMap<String, Found> = HashMap::with_capacity(found.len());
    for f in found {
        by_identity.entry(f.identity()).or_insert(f);
    }
    let open = store::open_findings(&state.db).await?;
    let loaded_ms = started.elapsed().as_millis();
    let mut open_by_identity: HashMap<String, store::OpenRow> =
        open.into_iter().map(|r| (r.identity.clone(), r)).collect();

    let mut per_rule: HashMap<&'static str, i64> = HashMap::new();
    let (mut opened, mut seen_again, mut resolved) = (0u64, 0u64, 0u64);
    let mut new_findings: Vec<digest::Opened> = Vec::new();
    let mut entries: Vec<(String, Found)> = by_identity.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for chunk in entries.chunks(BATCH) {
        let mut tx = state.db.begin().await?;
        let (mut fresh, mut unchanged) = (Vec::new(), Vec::new());
        for (identity, f) in chunk {
            *per_rule.entry(f.rule.id()).or_default() += 1;
            let severity = ctx.config.severity(f.rule);
            match open_by_identity.remove(identity) {
                Some(row) => {
                    if row.facts.0 == f.facts && row.severity == severity.as_str() {
                        unchanged.push(row.id);
                    } else {
                        store::touch(&mut tx, row.id, f, severity, run_id, now).await?;
                    }
                    seen_again += 1;
                }
                None => fresh.push((f, severity)),
            }
        }
        store::touch_unchanged_many(&mut tx, &unchanged, run_id, now).await?;
        // Inserted ids by identity (one another run opened first is not returned, and not ours
        // to notify).
        let ids: HashMap<String, i64> = store::insert_many(&mut tx, &fresh, run_id, now).await?.into_iter().collect();
        for (f, severity) in fresh {
            let Some(&id) = ids.get(&f.identity()) else { continue };
            opened += 1;
            new_findings.push(digest::Opened { id, found: f, severity });
        }
        tx.commit().await?;
    }
    let written_ms = started.elapsed().as_millis();
    progress.step("核销已解决的问题").await;
    let gone: Vec<i64> = open_by_identity.into_values().map(|r| r.id).collect();
    for chunk in gone.chunks(BATCH) {
        let mut tx = state.db.begin().await?;
        for id in chunk {
            if store::resolve(&mut tx, *id, now).await? {
                resolved += 1;
            }
        }
        tx.commit().await?;
    }
    // Notified once, when findings open (not every day they stay open): one digest per region
    // and a few individual messages for the most urgent critical findings.
    let resolved_ms = started.elapsed().as_millis();
    progress.step("发送通知").await;
    let sent = digest::notify(&state.db, &ctx, run_id, now, new_findings).await?;
    let notified_ms = started.elapsed().as_millis();
    progress.step("计算得分").await;
    write_scores(state, &ctx, run_id).await?;
    progress.step("完成").await;
    let mut rules: Vec<(&str, i64)> = per_rule.into_iter().collect();
    rules.sort();
    Ok(json!({
        "run_id": run_id,
        "run_at": now,
        "open": opened + seen_again,
        "opened": opened,
        "still_open": seen_again,
        "resolved": resolved,
        "notified": sent.findings,
        "messages": {"individual": sent.individual, "digests": sent.digests},
        "by_rule": rules.into_iter().map(|(r, n)| (r.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "regions": ctx.regions.len(),
        "gather_ms": gathered_ms,
        // Where the time went, ms from the start: rules, open findings read, findings written,
        // resolutions, notifications, scores (the end).
        "phases_ms": {"gathered": gathered_ms, "loaded": loaded_ms, "written": written_ms, "resolved": resolved_ms, "notified": notified_ms},
        "total_ms": started.elapsed().as_millis(),
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
    for chunk in rows.chunks(BATCH / 5) {
        let mut tx = state.db.begin().await?;
        store::insert_scores(&mut tx, run_id, chunk).await?;
        tx.commit().await?;
    }
    Ok(())
}
