//! Burst benchmark: many drill reminders due in the same minute, delivered to a loopback webhook.
//!
//! ```sh
//! cargo bench --bench burst                                 # SQLite (temporary file)
//! YINGJI_BENCH_DATABASE_URL=postgres://… cargo bench --bench burst
//! YINGJI_BENCH_INSTANCES=3 YINGJI_BENCH_DATABASE_URL=postgres://… cargo bench --bench burst
//! ```
//!
//! Plants `YINGJI_BENCH_REMINDERS` (default 100,000) pending reminders of one region, all due
//! now, on drills a day ahead, and one webhook channel for the region pointing at a receiver in
//! this process (which answers at once and records each `Idempotency-Key`). It then starts
//! `YINGJI_BENCH_INSTANCES` (default 1) service instances with their schedulers on and times
//! until every reminder's webhook delivery has arrived. Each reminder also makes an in-app
//! delivery (an inbox row), so the service does twice as many deliveries as the count shown.
//! It fails when a reminder is missing, or when anything is left undelivered.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use warp::Filter;
use yingji::app::{self, Config};
use yingji::clock::{SharedClock, SystemClock};
use yingji::notify::channels::{self, ChannelKind, NewChannel};
use yingji::regions::RegionCode;
use yingji::time::Timestamp;
use yingji::with_db;

/// 满都拉图镇.
const REGION: &str = "152523100000";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[derive(Default)]
struct Seen {
    keys: Mutex<HashSet<String>>,
    requests: AtomicUsize,
}

async fn receiver(seen: Arc<Seen>) -> anyhow::Result<std::net::SocketAddr> {
    let route = warp::post().and(warp::header::optional::<String>("idempotency-key")).and(warp::body::bytes()).map(
        move |key: Option<String>, _body: bytes::Bytes| {
            seen.requests.fetch_add(1, Ordering::Relaxed);
            if let Some(k) = key {
                seen.keys.lock().unwrap().insert(k);
            }
            warp::reply::json(&serde_json::json!({"errcode": 0}))
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(warp::serve(route).incoming(listener).run());
    Ok(addr)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `cargo test --all-targets` runs bench binaries too (without `--bench`): measure only when
    // asked to, under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(());
    }
    let count = env("YINGJI_BENCH_REMINDERS", 100_000);
    let instances = env("YINGJI_BENCH_INSTANCES", 1).max(1);
    let tmp = std::env::temp_dir().join(format!("yingji-bench-burst-{}.db", std::process::id()));
    let url = std::env::var("YINGJI_BENCH_DATABASE_URL").unwrap_or_else(|_| format!("sqlite://{}", tmp.display()));
    let config = |scheduler: bool| -> anyhow::Result<Config> {
        let mut c = Config::new(url.clone());
        c.listen = "127.0.0.1:0".parse()?;
        c.pii_key = Some("00".repeat(32));
        c.scheduler = scheduler;
        Ok(c)
    };
    let clock: SharedClock = Arc::new(SystemClock);
    let setup = app::start(config(false)?, clock.clone()).await?;
    let db = setup.state.db.clone();
    println!(
        "database: {}  backend: {:?}  instances: {instances}",
        if url.starts_with("postgres") { "postgres" } else { &url },
        db.backend()
    );
    let existing: i64 =
        with_db!(&db, |p| sqlx::query_scalar("SELECT COUNT(*) FROM drill_reminders").fetch_one(p).await)?;
    anyhow::ensure!(existing == 0, "the benchmark needs an empty database ({existing} reminders found)");

    let seen = Arc::new(Seen::default());
    let addr = receiver(seen.clone()).await?;
    let now = Timestamp(chrono::Utc::now());
    let mut tx = db.begin().await?;
    let new = NewChannel {
        region: RegionCode::parse(REGION).map_err(|e| anyhow::anyhow!("{e:?}"))?,
        kind: ChannelKind::Webhook,
        name: "压力测试接收端".into(),
        url: format!("http://{addr}/hook"),
        secret: None,
    };
    channels::create(&mut tx, &setup.state.cipher, now, &new).await?;
    tx.commit().await?;
    let started = Instant::now();
    yingji::bench::burst::plant_reminders(&db, REGION, count, now, now).await?;
    println!("planted {count} reminders due at once in {:.1} s", started.elapsed().as_secs_f64());

    let started = Instant::now();
    let mut servers = Vec::new();
    for _ in 0..instances {
        servers.push(app::start(config(true)?, clock.clone()).await?);
    }
    let deadline = started + Duration::from_secs(600);
    let mut last = 0;
    while seen.keys.lock().unwrap().len() < count && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let n = seen.keys.lock().unwrap().len();
        if n / 10_000 > last / 10_000 {
            println!("  {n} delivered after {:.1} s", started.elapsed().as_secs_f64());
        }
        last = n;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let unique = seen.keys.lock().unwrap().len();
    let requests = seen.requests.load(Ordering::Relaxed);
    for s in servers {
        s.shutdown().await;
    }
    let left: i64 = with_db!(&db, |p| sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE status <> 'delivered'")
        .fetch_one(p)
        .await)?;
    println!(
        "burst: {unique} of {count} reminders reached the webhook in {elapsed:.1} s ({:.0}/s), {} repeated, \
         {left} deliveries left undelivered",
        unique as f64 / elapsed,
        requests - unique
    );
    setup.shutdown().await;
    if !url.starts_with("postgres") {
        for suffix in ["", "-wal", "-shm", ".migrate-lock"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", tmp.display()));
        }
    }
    anyhow::ensure!(unique == count, "lost reminders: {} of {count} arrived", unique);
    anyhow::ensure!(left == 0, "{left} deliveries left undelivered");
    Ok(())
}
