//! Read throughput at many connections: `GET /api/v1/regions` and nearest supplies from 64
//! keep-alive connections on the province of `src/bench/data.rs`, driven by `wrk` (a separate
//! process, Debian package `wrk`) and by hyper's client inside the bench process (sharing the
//! service's runtime and cores); the table says which.
//!
//! ```sh
//! cargo bench --bench load                                      # SQLite (temporary file)
//! YINGJI_BENCH_DATABASE_URL=postgres://…/empty_db cargo bench --bench load
//! YINGJI_BENCH_SCALE=0.1 YINGJI_BENCH_SECONDS=5 YINGJI_BENCH_CONNECTIONS=64 cargo bench --bench load
//! YINGJI_BENCH_CLIENT=wrk|hyper|both (default: both when wrk is installed)
//! YINGJI_BENCH_ONLY=regions,nearest (any of healthz, regions, regions1, nearest)
//! YINGJI_BENCH_PERF=1   # `perf record` of the service during each request kind, into /tmp
//! YINGJI_BENCH_READ_CACHES=0   # the service without its token and region-page caches
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use yingji::app::{self, Config};
use yingji::audit::Actor;
use yingji::auth::Role;
use yingji::bench::wrk;
use yingji::clock::{SharedClock, SystemClock};
use yingji::regions::RegionCode;
use yingji::time::Timestamp;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Requests per second and latency percentiles of `paths` asked round-robin by `connections`
/// concurrent clients for `seconds`.
async fn hammer(
    base: &str,
    token: &str,
    paths: Arc<Vec<String>>,
    connections: usize,
    seconds: f64,
) -> (f64, f64, f64, usize) {
    let client: Client<_, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).pool_max_idle_per_host(connections).build_http();
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..connections {
        let (client, stop, paths) = (client.clone(), stop.clone(), paths.clone());
        let (base, auth) = (base.to_string(), format!("Bearer {token}"));
        tasks.push(tokio::spawn(async move {
            let mut times = Vec::new();
            let mut errors = 0usize;
            let mut i = c;
            while !stop.load(Ordering::Relaxed) {
                let req = http::Request::get(format!("{base}{}", paths[i % paths.len()]))
                    .header("authorization", &auth)
                    .body(Empty::<Bytes>::new())
                    .expect("a valid request");
                i += connections;
                let t = Instant::now();
                match client.request(req).await {
                    Ok(resp) => {
                        let ok = resp.status().is_success();
                        if resp.into_body().collect().await.is_err() || !ok {
                            errors += 1;
                        }
                    }
                    Err(_) => errors += 1,
                }
                times.push(t.elapsed());
            }
            (times, errors)
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((times, e)) = t.await {
            all.extend(times);
            errors += e;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pick = |p: f64| {
        all.get(((all.len().max(1) - 1) as f64 * p).round() as usize).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    (all.len() as f64 / elapsed, pick(0.5), pick(0.99), errors)
}

/// `perf record` of this process (call graphs) until dropped.
struct Perf(Option<std::process::Child>);

impl Perf {
    fn start(kind: &str) -> Perf {
        let out = std::env::temp_dir().join(format!("yingji-perf-{kind}.data"));
        let child = std::process::Command::new("perf")
            .args(["record", "-F", "499", "--call-graph", "dwarf,16384", "-p"])
            .arg(std::process::id().to_string())
            .arg("-o")
            .arg(&out)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        match child {
            Ok(c) => {
                println!("(perf: {})", out.display());
                // Let perf attach before the load starts.
                std::thread::sleep(Duration::from_millis(500));
                Perf(Some(c))
            }
            Err(e) => {
                println!("(perf could not start: {e})");
                Perf(None)
            }
        }
    }
}

impl Drop for Perf {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            // SIGINT makes perf write its file and exit (the id is our own child's).
            unsafe { libc::kill(c.id() as i32, libc::SIGINT) };
            let _ = c.wait();
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `cargo test --all-targets` runs bench binaries too (without `--bench`): measure only when
    // asked to, under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(());
    }
    let scale: f64 = env("YINGJI_BENCH_SCALE", 1.0);
    let seconds: f64 = env("YINGJI_BENCH_SECONDS", 10.0);
    let connections: usize = env("YINGJI_BENCH_CONNECTIONS", 64);
    let pool: u32 = env("YINGJI_BENCH_POOL", 8);
    let only: String = env("YINGJI_BENCH_ONLY", String::new());
    let perf = std::env::var("YINGJI_BENCH_PERF").is_ok_and(|v| !v.is_empty() && v != "0");
    let has_wrk = wrk::available();
    let clients: Vec<&str> = match env("YINGJI_BENCH_CLIENT", String::new()).as_str() {
        "wrk" if has_wrk => vec!["wrk"],
        "wrk" => anyhow::bail!("YINGJI_BENCH_CLIENT=wrk but wrk is not installed (apt-get install wrk)"),
        "hyper" => vec!["hyper"],
        _ if has_wrk => vec!["wrk", "hyper"],
        _ => {
            println!("\n!!! wrk is not installed (apt-get install wrk): measuring with the in-process client only");
            vec!["hyper"]
        }
    };
    let tmp = std::env::temp_dir().join(format!("yingji-bench-load-{}.db", std::process::id()));
    let url = std::env::var("YINGJI_BENCH_DATABASE_URL").unwrap_or_else(|_| format!("sqlite://{}", tmp.display()));
    let mut config = Config::new(url.clone());
    config.listen = "127.0.0.1:0".parse()?;
    config.scheduler = false;
    config.db.max_connections = pool;
    config.max_concurrent_requests = config.max_concurrent_requests.max(4 * connections);
    config.pii_key = Some(yingji::personal::Cipher::generate_hex());
    config.read_caches = env("YINGJI_BENCH_READ_CACHES", 1) != 0;
    let clock: SharedClock = Arc::new(SystemClock);
    let server = app::start(config, clock.clone()).await?;
    let db = server.state.db.clone();
    let now = Timestamp(clock.now());
    let counts = yingji::bench::data::generate(&db, yingji::bench::data::Size::province(scale), now, 42).await?;
    yingji::with_db!(&db, |p| sqlx::query("ANALYZE").execute(p).await.map(|_| ()))?;
    let qs = yingji::bench::nearest::questions(&db, 1000, 11).await?;
    // A running service has its nearest indexes after its first questions; build them before
    // measuring (under 64 connections a first build in the background competes with the load).
    let t = std::time::Instant::now();
    server.state.supply_index.refresh(&db).await?;
    server.state.team_index.refresh(&db).await?;
    eprintln!("nearest indexes built in {:.1} s", t.elapsed().as_secs_f64());
    // One banner's bureau asks everything (a token covers one banner).
    let banner = qs[0].banner.clone();
    let token = yingji::auth::tokens::issue(
        &db,
        &Actor::cli(),
        now,
        "bench-load",
        Role::Admin,
        &RegionCode::parse(&banner).map_err(|e| anyhow::anyhow!("{e}"))?,
        None,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:?}"))?
    .token;
    let supplies: Vec<String> = qs
        .iter()
        .filter(|q| q.kind == 0 && q.banner == banner)
        .chain(qs.iter().filter(|q| q.kind == 0))
        .take(1000)
        .map(|q| {
            let (lon, lat) = q.point;
            format!("/api/v1/supplies/nearest?item={}&quantity={}&lon={lon}&lat={lat}", q.what, q.amount)
        })
        .collect();
    let base = format!("http://{}", server.addr);
    let load = |s: &str| s.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
    println!(
        "\n{} at scale {scale} ({} regions, {} depots, {} batches); {connections} connections, pool {pool}, {seconds} s each, read caches {}",
        if url.starts_with("postgres") { "PostgreSQL" } else { "SQLite" },
        counts.regions,
        counts.depots,
        counts.batches,
        if server.state.config.read_caches { "on" } else { "off" }
    );
    println!("\n| request | client | requests/s | p50 | p99 | errors | load before |");
    println!("|---|---|---|---|---|---|---|");
    for (kind, label, paths) in [
        ("healthz", "`GET /healthz` (no token)", vec!["/healthz".to_string()]),
        ("regions", "`GET /api/v1/regions`", vec!["/api/v1/regions".to_string()]),
        ("regions1", "`GET /api/v1/regions?limit=1`", vec!["/api/v1/regions?limit=1".to_string()]),
        ("nearest", "nearest supplies (open radius)", supplies.clone()),
    ] {
        if !only.is_empty() && !only.split(',').any(|o| o.trim() == kind) {
            continue;
        }
        for client in &clients {
            let before = load(&std::fs::read_to_string("/proc/loadavg").unwrap_or_default());
            let recording = perf.then(|| Perf::start(&format!("{kind}-{client}")));
            let (rps, p50, p99, errors) = if *client == "wrk" {
                let (base, token, paths) = (base.clone(), token.clone(), paths.clone());
                let secs = seconds.round().max(1.0) as u64;
                // The service keeps serving on this runtime while wrk runs on a blocking thread.
                let run = tokio::task::spawn_blocking(move || {
                    let tok = (kind != "healthz").then_some(token.as_str());
                    wrk::run(&base, tok, &paths, connections, 2, secs)
                })
                .await??;
                (run.rps, run.p50_ms, run.p99_ms, run.errors as usize)
            } else {
                hammer(&base, &token, Arc::new(paths.clone()), connections, seconds).await
            };
            drop(recording);
            println!("| {label} | {client} | {rps:.0} | {p50:.2} ms | {p99:.2} ms | {errors} | {before} |");
        }
    }
    server.shutdown().await;
    for suffix in ["", "-wal", "-shm", ".migrate-lock"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", tmp.display()));
    }
    Ok(())
}
