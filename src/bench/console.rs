//! Benchmark of the console's heaviest pages on a generated province: 今日 and the map of the
//! banner (the page, its region layer, and the depot and team layers the map
//! script loads), as a logged-in administrator of one generated banner, after one readiness run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::data::{self, Size};
use crate::app::{self, Config};
use crate::clock::{SharedClock, SystemClock};
use crate::time::Timestamp;

/// Latencies of one path.
#[derive(Debug)]
pub struct PathFigures {
    /// The path requested.
    pub path: &'static str,
    /// Median, ms.
    pub p50_ms: f64,
    /// 95th percentile, ms.
    pub p95_ms: f64,
    /// Response size, bytes.
    pub bytes: usize,
}

/// Figures of one scale.
#[derive(Debug)]
pub struct Figures {
    /// Scale (1.0 = the province).
    pub scale: f64,
    /// Depots generated.
    pub depots: usize,
    /// Regions generated.
    pub regions: usize,
    /// Per path.
    pub paths: Vec<PathFigures>,
}

const PATHS: &[&str] = &["/today", "/map", "/map/regions.json", "/api/v1/depots.geojson", "/api/v1/teams.geojson"];

/// Generates the province at each scale and requests every page `rounds` times, one at a time.
pub async fn run(dir: &std::path::Path, scales: &[f64], rounds: usize) -> anyhow::Result<Vec<Figures>> {
    let mut out = Vec::new();
    for &scale in scales {
        let path = dir.join(format!("yingji-bench-console-{scale}.db"));
        let clean = || {
            for suffix in ["", "-wal", "-shm", ".migrate-lock"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        };
        clean();
        let mut config = Config::new(format!("sqlite://{}", path.display()));
        config.listen = "127.0.0.1:0".parse()?;
        config.scheduler = false;
        config.pii_key = Some(crate::personal::Cipher::generate_hex());
        let clock: SharedClock = Arc::new(SystemClock);
        let server = app::start(config, clock.clone()).await?;
        let state = server.state.clone();
        let counts = data::generate(&state.db, Size::province(scale), Timestamp(clock.now()), 42).await?;
        eprintln!("scale {scale}: generated {counts:?}");
        crate::readiness::engine::run(&state, "bench").await?;
        let now = Timestamp(clock.now());
        // The largest jurisdiction is a banner: the first generated one.
        let region = crate::regions::RegionCode::parse("150101000000").map_err(|e| anyhow::anyhow!(e))?;
        let password = "bench-password-2026";
        crate::auth::users::create(
            &state.db,
            &crate::audit::Actor::cli(),
            now,
            "bench",
            crate::auth::Role::Admin,
            &region,
            password,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let (session, _) =
            crate::auth::login::login(&state.db, &crate::auth::login::PasswordLogin, now, "bench", password, "bench")
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .map_err(|r| anyhow::anyhow!("login refused: {r:?}"))?;
        let cookie = format!("yj_session={}", session.cookie);
        let client = reqwest::Client::builder().timeout(Duration::from_secs(120)).build()?;
        let mut paths = Vec::new();
        for p in PATHS {
            let url = format!("http://{}{p}", server.addr);
            let mut lat = Vec::with_capacity(rounds);
            let mut bytes = 0;
            for _ in 0..rounds {
                let t = Instant::now();
                let r = client.get(&url).header("cookie", &cookie).send().await?;
                anyhow::ensure!(r.status().is_success(), "{p}: {}", r.status());
                bytes = r.bytes().await?.len();
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            lat.sort_by(|a, b| a.total_cmp(b));
            let at = |q: f64| lat[((lat.len() as f64 - 1.0) * q).round() as usize];
            let f = PathFigures { path: p, p50_ms: at(0.5), p95_ms: at(0.95), bytes };
            eprintln!("scale {scale}: {f:?}");
            paths.push(f);
        }
        out.push(Figures { scale, depots: counts.depots, regions: counts.regions, paths });
        server.shutdown().await;
        clean();
    }
    Ok(out)
}
