//! `cargo bench --bench events`: the resource plan of an activation — a level with 10 supply
//! items and 5 specialties — computed from random event points over a generated province, first
//! with no writes, then with a committed write to a random member (status or insurance) before
//! each plan, as call-ups and filing write during a real event (the nearest-teams index then
//! catches up by re-reading the changed team inside the timed plan).

use std::sync::Arc;
use std::time::Instant;

use super::data::{self, Size};
use super::rows::Rng;
use crate::app::{self, Config};
use crate::clock::{SharedClock, SystemClock};
use crate::events::{Event, EventStatus, Severity, resource};
use crate::plans::{ForceNeed, ResponseLevel, SupplyNeed};
use crate::time::Timestamp;
use crate::vocab::{Hazard, ItemCode, Specialty};
use crate::with_db;

/// Times of the resource plans of one pass.
#[derive(Debug, serde::Serialize)]
pub struct Timing {
    /// Median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Slowest, ms.
    pub max_ms: f64,
    /// Plans answered with the teams from the index (the others from the database).
    pub from_index: usize,
}

impl Timing {
    fn of(mut times: Vec<f64>, from_index: usize) -> Timing {
        times.sort_by(|a, b| a.total_cmp(b));
        let pick = |p: f64| times.get((((times.len().max(1) - 1) as f64) * p).round() as usize).copied().unwrap_or(0.0);
        Timing { p50_ms: pick(0.5), p99_ms: pick(0.99), max_ms: times.last().copied().unwrap_or(0.0), from_index }
    }
}

/// The figures of one run.
#[derive(Debug, serde::Serialize)]
pub struct Figures {
    /// What was generated.
    pub counts: data::Counts,
    /// Generation time, s.
    pub generate_s: f64,
    /// Resource plans computed in each pass.
    pub plans: usize,
    /// Plans with no write in between.
    pub quiet: Timing,
    /// Plans each preceded by a committed write to a member (status or insurance), as during an
    /// event: the write is not timed, the plan (which first brings the index up to date) is.
    pub with_writes: Timing,
    /// Lines proposed on average (first pass).
    pub mean_lines: f64,
}

/// A level needing 10 items (500 units each within 50 km) and 5 specialties (20 people each
/// within 50 km).
pub fn level(items: &[String]) -> anyhow::Result<ResponseLevel> {
    let mut supplies = Vec::new();
    for code in items.iter().take(10) {
        supplies.push(SupplyNeed {
            item_code: ItemCode::parse(code).map_err(|e| anyhow::anyhow!(e))?,
            name: String::new(),
            quantity: 500.0,
            unit: String::new(),
            within_km: 50.0,
        });
    }
    let forces = ["grassland_fire", "snow_rescue", "medical", "transport", "communications"]
        .iter()
        .filter_map(|s| Specialty::parse(s))
        .map(|specialty| ForceNeed { specialty, headcount: 20, within_km: 50.0 })
        .collect();
    Ok(ResponseLevel { level: 2, criteria: "基准".into(), measures: String::new(), supplies, forces })
}

/// A responding event at level 2 at this point (what activation would have stored).
pub fn event_at(region: &str, lon: f64, lat: f64, now: Timestamp) -> Event {
    Event {
        id: 0,
        region_code: region.to_string(),
        hazard: Hazard::SnowDisaster,
        title: "基准事件".into(),
        occurred_at: now,
        known_at: now,
        place: String::new(),
        lon,
        lat,
        description: String::new(),
        dead: 0,
        injured: 0,
        missing: 0,
        trapped: 0,
        affected_people: 0,
        affected_households: 0,
        affected_livestock: 0,
        source: String::new(),
        reporter: String::new(),
        severity: Severity::General,
        status: EventStatus::Responding,
        exercise: false,
        drill_id: None,
        plan_id: None,
        plan_version: None,
        level: Some(2),
        activated_at: Some(now),
        terminated_at: None,
        terminated_by: None,
        termination_note: None,
        first_report_due: now,
        first_report_at: None,
        first_report_state: "pending".into(),
        created_by: String::new(),
        created_at: now,
        updated_at: now,
    }
}

/// Generates the province at `scale` into `url` (a fresh database) and computes `plans`
/// resource plans from random township points; with `reuse`, a database that already holds a
/// generated province is measured as it is.
pub async fn run(url: &str, scale: f64, plans: usize, reuse: bool) -> anyhow::Result<Figures> {
    let mut config = Config::new(url.to_string());
    config.listen = "127.0.0.1:0".parse()?;
    config.scheduler = false;
    // A reused database needs the key its people were written under (`YINGJI_PII_KEY`).
    config.pii_key = Some(std::env::var("YINGJI_PII_KEY").unwrap_or_else(|_| crate::personal::Cipher::generate_hex()));
    let clock: SharedClock = Arc::new(SystemClock);
    let server = app::start(config, clock.clone()).await?;
    let db = server.state.db.clone();
    let now = Timestamp(clock.now());
    let started = Instant::now();
    // `YINGJI_BENCH_REUSE=1` with a database a previous run generated (and kept): measure again
    // without generating (after a change to the queries or indexes).
    let existing: i64 = with_db!(&db, |p| sqlx::query_scalar("SELECT COUNT(*) FROM depots").fetch_one(p).await)?;
    let counts = if reuse && existing > 0 {
        let count = |table: &'static str| {
            let db = db.clone();
            async move {
                let sql = format!("SELECT COUNT(*) FROM {table}");
                let n: i64 = with_db!(&db, |p| sqlx::query_scalar(&sql).fetch_one(p).await)?;
                Ok::<usize, sqlx::Error>(n as usize)
            }
        };
        data::Counts {
            regions: count("regions").await?,
            plans: count("plans").await?,
            depots: count("depots").await?,
            batches: count("stock_batches").await?,
            teams: count("teams").await?,
            members: count("members").await?,
        }
    } else {
        data::generate(&db, Size::province(scale), now, 42).await?
    };
    with_db!(&db, |p| sqlx::query("ANALYZE").execute(p).await.map(|_| ()))?;
    let generate_s = started.elapsed().as_secs_f64();
    eprintln!("generated {counts:?} in {generate_s:.1} s");
    // The nearest-teams index, as a running service has it after its first nearest-teams
    // question (after a change it re-reads the changed teams: see `forces::team_index`).
    let index = server.state.team_index.clone();
    let t = Instant::now();
    index.refresh(&db).await?;
    eprintln!("nearest-teams index built in {:.1} s", t.elapsed().as_secs_f64());
    let items: Vec<String> =
        with_db!(&db, |p| sqlx::query_scalar("SELECT code FROM supply_items ORDER BY code").fetch_all(p).await)?;
    let level = level(&items)?;
    let towns: Vec<(String, f64, f64)> = with_db!(&db, |p| sqlx::query_as(
        "SELECT code, lon, lat FROM regions WHERE level = 'township' AND lon IS NOT NULL ORDER BY code"
    )
    .fetch_all(p)
    .await)?;
    anyhow::ensure!(!towns.is_empty(), "no township with a location");
    let members: i64 =
        with_db!(&db, |p| sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM members").fetch_one(p).await)?;
    let mut rng = Rng::new(7);
    let mut lines = 0usize;
    let mut passes = Vec::new();
    for writes in [false, true] {
        let mut times = Vec::with_capacity(plans);
        let mut from_index = 0;
        for k in 0..plans {
            let (code, lon, lat) = &towns[rng.below(towns.len() as u64) as usize];
            // A point up to ~20 km from the township centre.
            let ev = event_at(code, lon + (rng.unit() - 0.5) * 0.5, lat + (rng.unit() - 0.5) * 0.36, now);
            if writes {
                write_a_member(&db, 1 + rng.below(members.max(1) as u64) as i64, k, now).await?;
            }
            let t = Instant::now();
            let proposed = resource::propose(&db, &index, &ev, &level, &[], now).await?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            // The plan's team searches used the index if it is current now (no write since).
            from_index += usize::from(index.current(&db).await?.is_some());
            if !writes {
                lines += proposed.len();
            }
        }
        passes.push(Timing::of(times, from_index));
    }
    let with_writes = passes.pop().unwrap_or_else(|| Timing::of(Vec::new(), 0));
    let quiet = passes.pop().unwrap_or_else(|| Timing::of(Vec::new(), 0));
    let f = Figures { counts, generate_s, plans, quiet, with_writes, mean_lines: lines as f64 / plans.max(1) as f64 };
    server.shutdown().await;
    Ok(f)
}

/// One committed write to member `id`, as call-ups and filing make during an event: even `k`
/// toggles its status (available ↔ unavailable), odd `k` moves the end of its policies.
async fn write_a_member(db: &crate::db::Db, id: i64, k: usize, now: Timestamp) -> anyhow::Result<()> {
    if k.is_multiple_of(2) {
        let sql = "UPDATE members SET status = CASE status WHEN 'available' THEN 'unavailable' ELSE 'available' END,
            updated_at = $2 WHERE id = $1 AND status IN ('available', 'unavailable')";
        with_db!(db, |p| sqlx::query(sql).bind(id).bind(now.0).execute(p).await.map(|_| ()))?;
    } else {
        let end = crate::forces::members::local_day(now) + chrono::Days::new(200 + (k % 30) as u64);
        let sql = "UPDATE member_insurance SET end_date = $2 WHERE member_id = $1";
        with_db!(db, |p| sqlx::query(sql).bind(id).bind(end).execute(p).await.map(|_| ()))?;
    }
    Ok(())
}
