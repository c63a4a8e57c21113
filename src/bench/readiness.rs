//! `yingji bench readiness`: the readiness check over a generated province, at one or more
//! scales, with the API probed during the run to show it keeps answering.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::data::{self, Size};
use crate::app::{self, Config};
use crate::clock::{SharedClock, SystemClock};
use crate::time::Timestamp;

/// One scale's figures.
#[derive(Debug, serde::Serialize)]
pub struct Figures {
    /// Scale (1.0 = province).
    pub scale: f64,
    /// What was generated.
    pub counts: data::Counts,
    /// Generation time, s.
    pub generate_s: f64,
    /// First run (every finding new), s.
    pub first_run_s: f64,
    /// Second run (no change), s.
    pub second_run_s: f64,
    /// Findings open after the run.
    pub findings: i64,
    /// API probes answered during the first run.
    pub probes: usize,
    /// Slowest probe during the first run, ms.
    pub probe_max_ms: f64,
    /// 99th percentile probe during the first run, ms.
    pub probe_p99_ms: f64,
}

/// Runs the benchmark at each scale on fresh SQLite files in `dir`.
pub async fn run(dir: &std::path::Path, scales: &[f64]) -> anyhow::Result<Vec<Figures>> {
    let mut out = Vec::new();
    for &scale in scales {
        let path = dir.join(format!("yingji-bench-readiness-{scale}.db"));
        for suffix in ["", "-wal", "-shm", ".migrate-lock"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        let mut config = Config::new(format!("sqlite://{}", path.display()));
        config.listen = "127.0.0.1:0".parse()?;
        config.scheduler = false;
        config.pii_key = Some(crate::personal::Cipher::generate_hex());
        let clock: SharedClock = Arc::new(SystemClock);
        let server = app::start(config, clock.clone()).await?;
        let state = server.state.clone();
        let started = Instant::now();
        let counts = data::generate(&state.db, Size::province(scale), Timestamp(clock.now()), 42).await?;
        let generate_s = started.elapsed().as_secs_f64();
        eprintln!("scale {scale}: generated {counts:?} in {generate_s:.1} s");

        let token = crate::auth::tokens::issue(
            &state.db,
            &crate::audit::Actor::cli(),
            Timestamp(clock.now()),
            "bench",
            crate::auth::Role::Viewer,
            &crate::regions::RegionCode::parse("150101000000").map_err(|e| anyhow::anyhow!(e))?,
            None,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .token;
        let url = format!("http://{}/api/v1/regions?limit=10", server.addr);
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let prober = tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut lat = Vec::new();
            while !*stop_rx.borrow() {
                let t = Instant::now();
                if client.get(&url).bearer_auth(&token).send().await.map(|r| r.status().is_success()).unwrap_or(false) {
                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                    _ = stop_rx.changed() => {}
                }
            }
            lat
        });
        let t = Instant::now();
        let summary = crate::readiness::engine::run(&state, "bench").await?;
        let first_run_s = t.elapsed().as_secs_f64();
        let _ = stop_tx.send(true);
        let mut lat = prober.await?;
        lat.sort_by(|a, b| a.total_cmp(b));
        let t = Instant::now();
        let again = crate::readiness::engine::run(&state, "bench").await?;
        let second_run_s = t.elapsed().as_secs_f64();
        anyhow::ensure!(again["opened"] == 0, "a second run with no change opened findings: {again}");
        let p99 = lat.get(((lat.len() as f64) * 0.99) as usize).or(lat.last()).copied().unwrap_or(0.0);
        let f = Figures {
            scale,
            counts,
            generate_s,
            first_run_s,
            second_run_s,
            findings: summary["open"].as_i64().unwrap_or(0),
            probes: lat.len(),
            probe_max_ms: lat.last().copied().unwrap_or(0.0),
            probe_p99_ms: p99,
        };
        eprintln!("scale {scale}: {f:?}");
        out.push(f);
        server.shutdown().await;
        for suffix in ["", "-wal", "-shm", ".migrate-lock"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
    Ok(out)
}
