//! Benchmark of the nearest-supplies query through HTTP on a province-sized data set.
//!
//! ```sh
//! cargo bench --bench nearest                      # SQLite (temporary file)
//! YINGJI_BENCH_DATABASE_URL=postgres://… cargo bench --bench nearest
//! ```
//!
//! Generates 20,000 depots spread uniformly over a 1,000 km × 1,000 km square centred on the
//! banner seat and 1,000,000 stock batches (50 per depot, random items of the starter catalogue,
//! 90 % physical, 10 % agreement, expiry dates from 2025 to 2029, so some have expired), writing
//! them straight into the database in large transactions. It then starts the service and times
//! `GET /api/v1/supplies/nearest` from one keep-alive client: half the queries with `max_km=100`,
//! half open (the search widens until the request is met). Sizes can be changed with
//! `YINGJI_BENCH_DEPOTS`, `YINGJI_BENCH_BATCHES` and `YINGJI_BENCH_REQUESTS`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use yingji::app::{self, Config};
use yingji::audit::Actor;
use yingji::auth::Role;
use yingji::bench::rows::Rng;
use yingji::clock::{SharedClock, SystemClock};
use yingji::regions::{BANNER_SEAT, RegionCode};
use yingji::time::Timestamp;
use yingji::with_db;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Degrees of latitude and longitude spanning 1,000 km around the seat.
fn extent() -> (f64, f64) {
    let km_per_deg = 6371.0088 * std::f64::consts::PI / 180.0;
    (1000.0 / km_per_deg, 1000.0 / (km_per_deg * BANNER_SEAT.1.to_radians().cos()))
}

fn point(rng: &mut Rng) -> (f64, f64) {
    let (dlat, dlon) = extent();
    (BANNER_SEAT.0 + (rng.unit() - 0.5) * dlon, BANNER_SEAT.1 + (rng.unit() - 0.5) * dlat)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `cargo test --all-targets` runs bench binaries too (without `--bench`): measure only when
    // asked to, under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(());
    }
    let depots = env("YINGJI_BENCH_DEPOTS", 20_000);
    let batches = env("YINGJI_BENCH_BATCHES", 1_000_000);
    let requests = env("YINGJI_BENCH_REQUESTS", 2_000);
    let tmp = std::env::temp_dir().join(format!("yingji-bench-{}.db", std::process::id()));
    let url = std::env::var("YINGJI_BENCH_DATABASE_URL").unwrap_or_else(|_| format!("sqlite://{}", tmp.display()));
    let mut config = Config::new(url.clone());
    config.listen = "127.0.0.1:0".parse()?;
    config.pii_key = Some("00".repeat(32));
    let clock: SharedClock = Arc::new(SystemClock);
    let server = app::start(config, clock).await?;
    let db = server.state.db.clone();
    println!("database: {}  backend: {:?}", if url.starts_with("postgres") { "postgres" } else { &url }, db.backend());

    let items: Vec<String> =
        with_db!(&db, |p| sqlx::query_scalar("SELECT code FROM supply_items ORDER BY code").fetch_all(p).await)?;
    let regions: Vec<String> =
        with_db!(&db, |p| sqlx::query_scalar("SELECT code FROM regions ORDER BY code").fetch_all(p).await)?;
    let existing: i64 = with_db!(&db, |p| sqlx::query_scalar("SELECT COUNT(*) FROM depots").fetch_one(p).await)?;
    let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15);
    if existing == 0 {
        let started = Instant::now();
        let now = Timestamp(chrono::Utc::now()).0.to_rfc3339();
        let mut first_id = 0i64;
        for chunk in 0..depots.div_ceil(1000) {
            let mut sql = String::from(
                "INSERT INTO depots (code, name, region_code, kind, lon, lat, created_at, updated_at) VALUES ",
            );
            for i in chunk * 1000..((chunk + 1) * 1000).min(depots) {
                let (lon, lat) = point(&mut rng);
                let region = &regions[rng.below(regions.len() as u64) as usize];
                if i > chunk * 1000 {
                    sql.push(',');
                }
                sql.push_str(&format!(
                    "('BENCH-{i:05}', '测试储备点{i}', '{region}', 'township_point', {lon}, {lat}, '{now}', '{now}')"
                ));
            }
            with_db!(&db, |p| sqlx::query(&sql).execute(p).await.map(|_| ()))?;
        }
        first_id = with_db!(&db, |p| sqlx::query_scalar::<_, i64>("SELECT MIN(id) FROM depots").fetch_one(p).await)
            .unwrap_or(first_id);
        println!("{depots} depots in {:.1} s", started.elapsed().as_secs_f64());
        let started = Instant::now();
        let per_tx = 50_000;
        let mut written = 0;
        while written < batches {
            let mut tx = db.begin().await?;
            let end = (written + per_tx).min(batches);
            let mut i = written;
            while i < end {
                let mut sql = String::from(
                    "INSERT INTO stock_batches (depot_id, item_code, batch, quantity, expiry_date, reserve_mode, created_at, updated_at) VALUES ",
                );
                for j in i..(i + 2000).min(end) {
                    let depot = first_id + (j % depots) as i64;
                    let item = &items[rng.below(items.len() as u64) as usize];
                    let qty = 1 + rng.below(200);
                    let day = chrono::NaiveDate::from_ymd_opt(2025, 6, 1).unwrap_or_default()
                        + chrono::Days::new(rng.below(4 * 365));
                    let mode = if rng.below(10) == 0 { "agreement" } else { "physical" };
                    if j > i {
                        sql.push(',');
                    }
                    sql.push_str(&format!("({depot}, '{item}', 'B{j}', {qty}, '{day}', '{mode}', '{now}', '{now}')"));
                }
                i = (i + 2000).min(end);
                yingji::with_tx!(&mut tx, |c| sqlx::query(&sql).execute(c).await.map(|_| ()))?;
            }
            tx.commit().await?;
            written = end;
        }
        with_db!(&db, |p| sqlx::query("ANALYZE").execute(p).await.map(|_| ()))?;
        println!("{batches} batches in {:.1} s", started.elapsed().as_secs_f64());
    } else {
        println!("reusing {existing} depots already in the database");
    }

    let token = yingji::auth::tokens::issue(
        &db,
        &Actor::cli(),
        Timestamp(chrono::Utc::now()),
        &format!("bench-{}", rng.bits() % 1_000_000),
        Role::Admin,
        &RegionCode::parse("152523000000").map_err(|e| anyhow::anyhow!(e))?,
        None,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:?}"))?
    .token;
    let client = reqwest::Client::new();
    let base = format!("http://{}", server.addr);
    let mut run = |n: usize, max_km: Option<f64>| {
        (0..n)
            .map(|_| {
                let (lon, lat) = point(&mut rng);
                let item = &items[rng.below(items.len() as u64) as usize];
                let qty = 1 + rng.below(2000);
                let mut url =
                    format!("{base}/api/v1/supplies/nearest?item={item}&quantity={qty}&lon={lon:.5}&lat={lat:.5}");
                if let Some(km) = max_km {
                    url.push_str(&format!("&max_km={km}"));
                }
                url
            })
            .collect::<Vec<_>>()
    };
    let warm = run(100, None);
    let bounded = run(requests / 2, Some(100.0));
    let open = run(requests / 2, None);
    for url in &warm {
        client.get(url).bearer_auth(&token).send().await?.error_for_status()?;
    }
    for (label, urls) in [("max_km=100", bounded), ("open search", open)] {
        let mut times = Vec::with_capacity(urls.len());
        let mut depots_used = 0usize;
        for url in &urls {
            let t = Instant::now();
            let v: serde_json::Value =
                client.get(url).bearer_auth(&token).send().await?.error_for_status()?.json().await?;
            times.push(t.elapsed());
            depots_used += v["allocations"].as_array().map_or(0, Vec::len);
        }
        times.sort();
        println!(
            "{label:12} n={:5}  p50 {:6.2} ms  p99 {:6.2} ms  max {:6.2} ms  (avg {:.1} depots per allocation)",
            times.len(),
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            percentile(&times, 1.0),
            depots_used as f64 / times.len() as f64
        );
    }
    server.shutdown().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", tmp.display()));
    }
    Ok(())
}
