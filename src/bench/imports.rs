//! Import benchmark (`cargo bench --bench imports`): large depot, stock, team and member files
//! through the HTTP API of a service started in this process, with a stock movement running in a
//! loop beside each import (the longest it waited is the write lock the import held, on SQLite),
//! and the process's peak memory (`VmHWM`, reset before each case through
//! `/proc/self/clear_refs`). Each file is generated to a temporary file and streamed from it to
//! the service over a plain HTTP/1.1 connection, so the client holds no copy of it and the peak
//! is the service's own.

use std::io::Write;
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
    /// Team rows (0 skips it).
    pub teams: usize,
    /// Member rows, spread over the teams (0 skips it; needs the teams case).
    pub members: usize,
    /// Stock rows of an `.xlsx` workbook (0 skips it), spread over the depots of the depots case.
    pub xlsx_stock: usize,
}

/// A depots file of `n` rows.
pub fn depots_csv(n: usize, out: &mut dyn Write) -> std::io::Result<usize> {
    writeln!(out, "code,name,region_code,kind,lon,lat,address,manager,phone")?;
    for i in 0..n {
        let (lon, lat) = (111.0 + (i % 1000) as f64 * 0.004, 43.0 + (i / 1000 % 1000) as f64 * 0.002);
        writeln!(
            out,
            "BD{i},储备点{i},{REGION},village_point,{lon:.4},{lat:.4},满都拉图镇{i}号,管理员{i},138{:08}",
            i % 100_000_000
        )?;
    }
    Ok(n)
}

/// A stock file of `n` rows spread over depots `BD0…BD{depots-1}` (a new batch each).
pub fn stock_csv(n: usize, depots: usize, tag: &str, out: &mut dyn Write) -> std::io::Result<usize> {
    writeln!(out, "depot_code,item_code,quantity,batch,production_date,expiry_date")?;
    for i in 0..n {
        writeln!(out, "BD{},1999902,{},{tag}{i},2025-01-01,2030-12-31", i % depots.max(1), 1 + i % 50)?;
    }
    Ok(n)
}

/// A stock file of about `bytes` bytes with an error on every line (quantity 0); returns its rows.
pub fn all_errors_csv(bytes: usize, out: &mut dyn Write) -> std::io::Result<usize> {
    let head = "depot_code,item_code,quantity,batch\n";
    out.write_all(head.as_bytes())?;
    let (mut n, mut len) = (0, head.len());
    while len < bytes {
        let line = format!("BD{},1999902,0,ERR-BATCH-{n:012}\n", n % 1000);
        out.write_all(line.as_bytes())?;
        len += line.len();
        n += 1;
    }
    Ok(n)
}

/// A teams file of `n` rows (two specialties each, one graded).
pub fn teams_csv(n: usize, out: &mut dyn Write) -> std::io::Result<usize> {
    writeln!(out, "code,name,org_type,region_code,lon,lat,specialties,grades")?;
    for i in 0..n {
        let (lon, lat) = (111.0 + (i % 1000) as f64 * 0.004, 43.0 + (i / 1000 % 1000) as f64 * 0.002);
        writeln!(out, "BT{i:06},救援队{i},volunteer_team,{REGION},{lon:.4},{lat:.4},medical;grassland_fire,2;")?;
    }
    Ok(n)
}

/// A valid ID number (GB 11643 check digit), distinct for every `seq` below 10,000,000.
pub fn id_number(seq: usize) -> String {
    let born = chrono::NaiveDate::from_ymd_opt(1950, 1, 1).unwrap_or_default() + chrono::Days::new((seq / 1000) as u64);
    let base = format!("152523{}{:03}", born.format("%Y%m%d"), seq % 1000);
    let w = [7u32, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = base.bytes().zip(w).map(|(b, w)| u32::from(b - b'0') * w).sum();
    format!("{base}{}", b"10X98765432"[(sum % 11) as usize] as char)
}

/// A members file of `n` rows spread over teams `BT000000…` (`teams` of them), each member with
/// a phone, a skill, a policy and a certificate.
pub fn members_csv(n: usize, teams: usize, out: &mut dyn Write) -> std::io::Result<usize> {
    writeln!(
        out,
        "team_code,name,id_number,phone,skills,insurer,policy_number,insurance_start,insurance_end,certificate_kind,certificate_number,certificate_issued"
    )?;
    for i in 0..n {
        writeln!(
            out,
            "BT{:06},队员{i},{},139{:08},medical,人保财险,P{i},2026-01-01,2026-12-31,红十字救护员证,C{i},2025-06-01",
            i % teams.max(1),
            id_number(i),
            i % 100_000_000
        )?;
    }
    Ok(n)
}

/// A stock workbook (`.xlsx`, written with rust_xlsxwriter) of `n` rows spread over depots
/// `BD0…BD{depots-1}`, text cells in the shared-strings table as Excel writes them (every batch
/// name a string of its own), written to `path`; returns its rows.
pub fn stock_xlsx(n: usize, depots: usize, path: &std::path::Path) -> anyhow::Result<usize> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (c, name) in
        ["depot_code", "item_code", "quantity", "batch", "production_date", "expiry_date"].iter().enumerate()
    {
        sheet.write_string(0, c as u16, *name)?;
    }
    for i in 0..n {
        let r = i as u32 + 1;
        sheet.write_string(r, 0, format!("BD{}", i % depots.max(1)))?;
        sheet.write_string(r, 1, "1999902")?;
        sheet.write_number(r, 2, (1 + i % 50) as f64)?;
        sheet.write_string(r, 3, format!("X{i}"))?;
        sheet.write_string(r, 4, "2025-01-01")?;
        sheet.write_string(r, 5, "2030-12-31")?;
    }
    book.save(path)?;
    Ok(n)
}

/// Writes a generated file to a temporary path; returns the path, its size and its rows.
fn generate(
    name: &str,
    make: impl FnOnce(&mut dyn Write) -> std::io::Result<usize>,
) -> anyhow::Result<(std::path::PathBuf, usize, usize)> {
    let path = std::env::temp_dir().join(format!("yingji-bench-{}-{name}.csv", std::process::id()));
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?);
    let rows = make(&mut out)?;
    out.flush()?;
    let bytes = std::fs::metadata(&path)?.len() as usize;
    Ok((path, bytes, rows))
}

/// POSTs a file to `path` over a plain HTTP/1.1 connection, streaming it from disk (the
/// benchmark's client holds no copy of it); returns the status and the JSON body.
async fn post_file(
    addr: &str,
    path: &str,
    token: &str,
    file: &std::path::Path,
) -> anyhow::Result<(u16, serde_json::Value)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let len = tokio::fs::metadata(file).await?.len();
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: text/csv\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await?;
    let mut f = tokio::fs::File::open(file).await?;
    tokio::io::copy(&mut f, &mut stream).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    let text = String::from_utf8_lossy(&answer);
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    let json = serde_json::from_str(body).or_else(|_| serde_json::from_str(&unchunk(body))).unwrap_or_default();
    Ok((status, json))
}

/// The payload of a chunked HTTP/1.1 body.
fn unchunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
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
        (format!("teams {}", sizes.teams), "teams", sizes.teams),
        (format!("members {}", sizes.members), "members", sizes.members),
        (format!("stock .xlsx {}", sizes.xlsx_stock), "stock", sizes.xlsx_stock),
    ];
    let addr = server.addr.to_string();
    for (i, (case, kind, size)) in cases.into_iter().enumerate() {
        if size == 0 {
            continue;
        }
        let (file, bytes, rows) = if i == 6 {
            // The workbook is built in memory by the writer: generated, then the heap handed
            // back, before the peak is reset.
            let path = std::env::temp_dir().join(format!("yingji-bench-{}-{i}.xlsx", std::process::id()));
            let rows = stock_xlsx(size, sizes.depots, &path)?;
            crate::imports::give_back_memory();
            let bytes = std::fs::metadata(&path)?.len() as usize;
            (path, bytes, rows)
        } else {
            generate(&i.to_string(), |w| match i {
                0 => depots_csv(size, w),
                1 => stock_csv(size, sizes.depots, "S", w),
                2 => all_errors_csv(size, w),
                3 => stock_csv(size, sizes.depots, "L", w),
                4 => teams_csv(size, w),
                _ => members_csv(size, sizes.teams, w),
            })?
        };
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
        let sent = post_file(&addr, &format!("/api/v1/import/{kind}"), &token, &file).await;
        let _ = std::fs::remove_file(&file);
        let (status, body) = sent?;
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
