//! `cargo bench --bench readiness`: the readiness check over a generated province, at one or
//! more scales, on SQLite or PostgreSQL, with the API read and written during the run to show it
//! keeps answering.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::data::{self, Size};
use super::scratch::Scratch;
use crate::app::{self, Config};
use crate::clock::{SharedClock, SystemClock};
use crate::time::Timestamp;

/// One scale's figures.
#[derive(Debug, serde::Serialize)]
pub struct Figures {
    /// `SQLite` or `PostgreSQL`.
    pub backend: &'static str,
    /// Scale (1.0 = province).
    pub scale: f64,
    /// What was generated.
    pub counts: data::Counts,
    /// Generation time, s.
    pub generate_s: f64,
    /// First run (every finding new), s.
    pub first_run_s: f64,
    /// The first run's time gathering findings (the rules' queries and work), s.
    pub first_gather_s: f64,
    /// Second run (no change), s.
    pub second_run_s: f64,
    /// Findings open after the run.
    pub findings: i64,
    /// Reads with no run under way (the machine's own latency, for comparison).
    pub idle_reads: Probes,
    /// Writes with no run under way.
    pub idle_writes: Probes,
    /// Reads during the first run.
    pub reads: Probes,
    /// Writes during the first run.
    pub writes: Probes,
    /// Reads during the second run.
    pub reads_again: Probes,
    /// Writes during the second run.
    pub writes_again: Probes,
    /// Where the time of the first run went (`phases_ms` of its summary).
    pub first_phases: serde_json::Value,
    /// Where the time of the second run went.
    pub second_phases: serde_json::Value,
}

/// Latencies of probe requests sent during a run.
#[derive(Debug, Default, serde::Serialize)]
pub struct Probes {
    /// Requests answered with success.
    pub count: usize,
    /// Requests that failed.
    pub failed: usize,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Slowest, ms.
    pub max_ms: f64,
    /// Per phase of the run (rules, reading the open findings, writing, resolving, notifying,
    /// scoring): (phase, requests sent during it, slowest ms), so a slow probe can be traced to
    /// what the run was doing.
    pub by_phase: Vec<(&'static str, usize, f64)>,
}

/// The phases of a run in `phases_ms` order: (name, key of the ms at its end).
const PHASES: [(&str, &str); 6] = [
    ("rules", "gathered"),
    ("read", "loaded"),
    ("write", "written"),
    ("resolve", "resolved"),
    ("notify", "notified"),
    ("scores", "total"),
];

impl Probes {
    /// From (ms after the run started when sent, latency ms) and the run's `phases_ms`.
    fn from(mut lat: Vec<(f64, f64)>, failed: usize, phases: &serde_json::Value) -> Probes {
        let mut by_phase = Vec::new();
        let mut from = f64::NEG_INFINITY;
        for (name, key) in PHASES {
            let end = phases[key].as_f64().unwrap_or(f64::INFINITY);
            let during: Vec<f64> = lat.iter().filter(|(at, _)| *at >= from && *at < end).map(|l| l.1).collect();
            by_phase.push((name, during.len(), during.iter().copied().fold(0.0, f64::max)));
            from = end;
        }
        lat.sort_by(|a, b| a.1.total_cmp(&b.1));
        let p99 = lat.get(((lat.len() as f64) * 0.99) as usize).or(lat.last()).map(|l| l.1).unwrap_or(0.0);
        Probes { count: lat.len(), failed, p99_ms: p99, max_ms: lat.last().map(|l| l.1).unwrap_or(0.0), by_phase }
    }
}

/// How long the probes run with no run under way, for comparison.
const IDLE_PROBING: Duration = Duration::from_secs(10);

/// The banner whose users probe the API (the first generated one), and a village in it.
const BANNER: &str = "150101000000";
const VILLAGE: &str = "150101100200";

/// Sends one request every 50 ms until told to stop; returns (ms after `base` when sent,
/// latency ms) of each answered request, and the failures.
fn probe(
    base: Instant,
    make: impl Fn() -> reqwest::RequestBuilder + Send + 'static,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<(Vec<(f64, f64)>, usize)> {
    tokio::spawn(async move {
        let (mut lat, mut failed) = (Vec::new(), 0);
        while !*stop.borrow() {
            let t = Instant::now();
            // Tagged with when it was sent, so the service's request log can be matched to it.
            let tag = format!("probe-{:.0}", t.duration_since(base).as_secs_f64() * 1000.0);
            match make().header("x-request-id", tag.clone()).send().await {
                Ok(r) if r.status().is_success() => {
                    let _ = r.bytes().await;
                    let ms = t.elapsed().as_secs_f64() * 1000.0;
                    if ms >= 20.0 {
                        tracing::warn!(tag, ms, "probe answered in over 20 ms");
                    }
                    lat.push((t.duration_since(base).as_secs_f64() * 1000.0, ms));
                }
                _ => failed += 1,
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = stop.changed() => {}
            }
        }
        (lat, failed)
    })
}

async fn token(state: &crate::app::AppState, role: crate::auth::Role) -> anyhow::Result<String> {
    Ok(crate::auth::tokens::issue(
        &state.db,
        &crate::audit::Actor::cli(),
        Timestamp(state.clock.now()),
        &format!("bench-{role:?}"),
        role,
        &crate::regions::RegionCode::parse(BANNER).map_err(|e| anyhow::anyhow!(e))?,
        None,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?
    .token)
}

/// A run's phases with its rule groups' own times.
fn json_phases(summary: &serde_json::Value) -> serde_json::Value {
    let mut phases = summary["phases_ms"].clone();
    phases["rules"] = summary["rules_ms"].clone();
    phases
}

/// Runs the benchmark at each scale on a fresh database: a SQLite file in `dir`, or a database
/// created on the PostgreSQL server of `postgres` (and dropped afterwards).
pub async fn run(dir: &std::path::Path, postgres: Option<&str>, scales: &[f64]) -> anyhow::Result<Vec<Figures>> {
    let mut out = Vec::new();
    for &scale in scales {
        let scratch = Scratch::create(dir, postgres, &format!("yingji_bench_readiness_{scale}")).await?;
        let mut config = Config::new(scratch.url.clone());
        config.listen = "127.0.0.1:0".parse()?;
        config.scheduler = false;
        config.pii_key = Some(crate::personal::Cipher::generate_hex());
        let clock: SharedClock = Arc::new(SystemClock);
        let server = app::start(config, clock.clone()).await?;
        let state = server.state.clone();
        let started = Instant::now();
        let counts = data::generate(&state.db, Size::province(scale), Timestamp(clock.now()), 42).await?;
        let generate_s = started.elapsed().as_secs_f64();
        eprintln!("{} scale {scale}: generated {counts:?} in {generate_s:.1} s", scratch.backend());

        // A service's database has planner statistics (autovacuum on PostgreSQL, `ANALYZE` or
        // `PRAGMA optimize` on SQLite); freshly bulk-loaded tables have none, and the planners
        // would plan as if they were empty.
        crate::with_db!(&state.db, |p| sqlx::query("ANALYZE").execute(p).await.map(|_| ()))?;

        let viewer = token(&state, crate::auth::Role::Viewer).await?;
        let operator = token(&state, crate::auth::Role::Operator).await?;
        let client = reqwest::Client::new();
        let addr = server.addr;
        // Reads and writes from a second client every 50 ms each while a run goes on.
        let probed = |base: Instant, stop: tokio::sync::watch::Receiver<bool>| {
            let (c, url, viewer) = (client.clone(), format!("http://{addr}/api/v1/regions?limit=10"), viewer.clone());
            let reads = probe(base, move || c.get(&url).bearer_auth(&viewer), stop.clone());
            // A write that takes the write lock and audits, without changing what the check
            // reads: the village's location set to what it is (none: it inherits its township's).
            let (c, url, operator) =
                (client.clone(), format!("http://{addr}/api/v1/regions/{VILLAGE}"), operator.clone());
            let writes = probe(
                base,
                move || c.patch(&url).bearer_auth(&operator).json(&serde_json::json!({"lon": null, "lat": null})),
                stop,
            );
            (reads, writes)
        };
        // The same probes with no run under way first: what the API answers in on this machine
        // at this moment (the load of other work included).
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let (reads, writes) = probed(Instant::now(), stop_rx);
        tokio::time::sleep(IDLE_PROBING).await;
        let _ = stop_tx.send(true);
        let (idle_reads, idle_read_failed) = reads.await?;
        let (idle_writes, idle_write_failed) = writes.await?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let t = Instant::now();
        let (reads, writes) = probed(t, stop_rx);
        let summary = crate::readiness::engine::run(&state, "bench").await?;
        let first_run_s = t.elapsed().as_secs_f64();
        let _ = stop_tx.send(true);
        let (read_lat, read_failed) = reads.await?;
        let (write_lat, write_failed) = writes.await?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let t = Instant::now();
        let (reads, writes) = probed(t, stop_rx);
        let again = crate::readiness::engine::run(&state, "bench").await?;
        let second_run_s = t.elapsed().as_secs_f64();
        let _ = stop_tx.send(true);
        let (read_lat2, read_failed2) = reads.await?;
        let (write_lat2, write_failed2) = writes.await?;
        anyhow::ensure!(again["opened"] == 0, "a second run with no change opened findings: {again}");
        let f = Figures {
            backend: scratch.backend(),
            scale,
            counts,
            generate_s,
            first_run_s,
            first_gather_s: summary["gather_ms"].as_f64().unwrap_or(0.0) / 1000.0,
            second_run_s,
            findings: summary["open"].as_i64().unwrap_or(0),
            idle_reads: Probes::from(idle_reads, idle_read_failed, &serde_json::Value::Null),
            idle_writes: Probes::from(idle_writes, idle_write_failed, &serde_json::Value::Null),
            reads: Probes::from(read_lat, read_failed, &summary["phases_ms"]),
            writes: Probes::from(write_lat, write_failed, &summary["phases_ms"]),
            reads_again: Probes::from(read_lat2, read_failed2, &again["phases_ms"]),
            writes_again: Probes::from(write_lat2, write_failed2, &again["phases_ms"]),
            first_phases: json_phases(&summary),
            second_phases: json_phases(&again),
        };
        eprintln!("{f:?}");
        out.push(f);
        server.shutdown().await;
        if std::env::var_os("YINGJI_BENCH_KEEP").is_some() {
            // For looking at query plans afterwards (EXPLAIN on the generated data).
            eprintln!("kept the generated database: {}", scratch.url);
        } else {
            scratch.remove().await?;
        }
    }
    Ok(out)
}
