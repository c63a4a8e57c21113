//! Import benchmark (`cargo bench --bench imports`): large depot and stock files through the
//! HTTP API of a service started in this process, with a stock movement running in a loop
//! beside each import (the longest it waited is the write lock the import held, on SQLite), and
//! the process's peak memory (`VmHWM`, reset before each case through `/proc/self/clear_refs`).
//! The figures include this process's own copy of the file it sends (shown beside them).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::app::{self, Config};
use crate::audit::Actor;
use crate::auth::Role;
use crate::clock::{SharedClock, SystemClock};
use crate::regions::RegionCode;
use crate::time::Timestamp;

/// Region every generated depot belongs to (满都拉图镇).
const REGION: &str = "152523100000";

/// One measured case.
#[derive(Debug, Clone)]
pub struct Figure {
    /// What was imported.
    pub case: String,
    /// Data rows in the file.
    pub rows: usize,
    /// File size in bytes.
    pub bytes: usize,
    /// HTTP status of the import.
    pub status: u16,
    /// Wall time of the import request.
    pub seconds: f64,
    /// Movements that ran during the import, and the longest one (ms).
    pub movements: usize,
    /// Longest movement during the import, in milliseconds.
    pub longest_movement_ms: f64,
    /// Movements that failed (anything but 201).
    pub failed_movements: usize,
    /// Peak resident memory of this process during the case (MiB).
    pub peak_mib: f64,
    /// Resident memory before the case (MiB).
    pub before_mib: f64,
    /// Resident memory after the case (MiB).
    pub after_mib: f64,
    /// Errors listed and counted by a 422.
    pub errors: Option<(usize, usize)>,
}

/// Sizes to run.
#[derive(Debug, Clone)]
pub struct Sizes {
    /// Depot rows.
    pub depots: usize,
    /// Stock rows.
    pub stock: usize,
    /// Size of the file with an error on every line (bytes; 0 skips it).
    pub all_errors_bytes: usize,
    /// Stock rows of the large case (0 skips it).
    pub big_stock: usize,
}

/// A depots file of `n` rows.
pub fn depots_csv(n: usize) -> String {
    let mut s = String::with_capacity(n * 90 + 64);
    s.push_str("code,name,region_code,kind,lon,lat,address,manager,phone\n");
    for i in 0..n {
        let (lon, lat) = (111.0 + (i % 1000) as f64 * 0.004, 43.0 + (i / 1000 % 1000) as f64 * 0.002);
        s.push_str(&format!(
            "BD{i},储备点{i},{REGION},village_point,{lon:.4},{lat:.4},满都拉图镇{i}号,管理员{i},138{:08}\n",
            i % 100_000_000
        ));
    }
    s
}

/// A stock file of `n` rows spread over depots `BD0…BD{depots-1}` (a new batch each).
pub fn stock_csv(n: usize, depots: usize, tag: &str) -> String {
    let mut s = String::with_capacity(n * 32 + 64);
    s.push_str("depot_code,item_code,quantity,batch,production_date,expiry_date\n");
    for i in 0..n {
        s.push_str(&format!("BD{},1999902,{},{tag}{i},2025-01-01,2030-12-31\n", i % depots.max(1), 1 + i % 50));
    }
    s
}

/// A stock file of about `bytes` bytes with an error on every line (quantity 0).
pub fn all_errors_csv(bytes: usize) -> (String, usize) {
    let mut s = String::with_capacity(bytes + 64);
    s.push_str("depot_code,item_code,quantity,batch\n");
    let mut n = 0;
    while s.len() < bytes {
        s.push_str(&format!("BD{},1999902,0,ERR-BATCH-{n:012}\n", n % 1000));
        n += 1;
    }
    (s, n)
}

fn status_kib(field: &str) -> f64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
}

fn reset_peak() {
    // Writing 5 resets VmHWM to the current RSS (Linux ≥ 4.0).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Runs the cases against `url` (a SQLite path or a PostgreSQL URL of an empty database).
pub async fn run(url: &str, sizes: &Sizes) -> anyhow::Result<Vec<Figure>> {
    let mut c = Config::new(url.to_string());
    c.listen = "127.0.0.1:0".parse()?;
    c.pii_key = Some("00".repeat(32));
    c.scheduler = false;
    c.max_import_bytes = 256 * 1024 * 1024;
    // The 1,000,000-row case may take longer than the default request limit (120 s).
    c.request_timeout = Duration::from_secs(3600);
    let clock: SharedClock = Arc::new(SystemClock);
    let server = app::start(c, clock).await?;
    let state = server.state.clone();
    let base = format!("http://{}", server.addr);
    let region = RegionCode::parse(REGION).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let now = Timestamp(chrono::Utc::now());
    let token = crate::auth::tokens::issue(&state.db, &Actor::cli(), now, "bench-imports", Role::Admin, &region, None)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .token;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(3600)).build()?;
    // The depot the concurrent movements go to.
    let r = client
        .post(format!("{base}/api/v1/depots"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"code": "MOVER", "name": "并发出入库", "region_code": REGION, "kind": "township_point", "lon": 113.6, "lat": 43.8}))
        .send()
        .await?;
    anyhow::ensure!(r.status().as_u16() == 201, "creating the movement depot: {}", r.text().await?);
    let mover: i64 = r.json::<serde_json::Value>().await?["id"].as_i64().unwrap_or_default();

    let mut out = Vec::new();
    let cases = [
        (format!("depots {}", sizes.depots), "depots", sizes.depots),
        (format!("stock {}", sizes.stock), "stock", sizes.stock),
        (format!("all errors {} MB", sizes.all_errors_bytes / 1_000_000), "stock", sizes.all_errors_bytes),
        (format!("stock {}", sizes.big_stock), "stock", sizes.big_stock),
    ];
    for (i, (case, kind, size)) in cases.into_iter().enumerate() {
        if size == 0 {
            continue;
        }
        let (file, rows) = match i {
            0 => (depots_csv(size), size),
            1 => (stock_csv(size, sizes.depots, "S"), size),
            2 => all_errors_csv(size),
            _ => (stock_csv(size, sizes.depots, "L"), size),
        };
        let bytes = file.len();
        let before_mib = status_kib("VmRSS:") / 1024.0;
        reset_peak();
        let done = Arc::new(AtomicBool::new(false));
        let mover_task = {
            let (client, base, token, done) = (client.clone(), base.clone(), token.clone(), done.clone());
            tokio::spawn(async move {
                let (mut n, mut failed, mut longest) = (0usize, 0usize, Duration::ZERO);
                while !done.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let body = serde_json::json!({"kind": "receive", "item_code": "1999905", "quantity": 1, "batch": format!("MV{i}-{n}")});
                    let ok = client
                        .post(format!("{base}/api/v1/depots/{mover}/movements"))
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .await
                        .map(|r| r.status().as_u16() == 201)
                        .unwrap_or(false);
                    longest = longest.max(t.elapsed());
                    n += 1;
                    if !ok {
                        failed += 1;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                (n, failed, longest)
            })
        };
        let started = Instant::now();
        let r = client
            .post(format!("{base}/api/v1/import/{kind}"))
            .bearer_auth(&token)
            .header("content-type", "text/csv")
            .body(file)
            .send()
            .await?;
        let status = r.status().as_u16();
        let body: serde_json::Value = r.json().await.unwrap_or_default();
        let seconds = started.elapsed().as_secs_f64();
        done.store(true, Ordering::Relaxed);
        let (movements, failed_movements, longest) = mover_task.await?;
        let errors = (status == 422).then(|| {
            (body["errors"].as_array().map_or(0, Vec::len), body["total_errors"].as_u64().unwrap_or(0) as usize)
        });
        if status != 200 && status != 422 {
            anyhow::bail!("{case}: HTTP {status}: {body}");
        }
        out.push(Figure {
            case,
            rows,
            bytes,
            status,
            seconds,
            movements,
            longest_movement_ms: longest.as_secs_f64() * 1000.0,
            failed_movements,
            peak_mib: status_kib("VmHWM:") / 1024.0,
            before_mib,
            after_mib: status_kib("VmRSS:") / 1024.0,
            errors,
        });
    }
    server.shutdown().await;
    Ok(out)
}
