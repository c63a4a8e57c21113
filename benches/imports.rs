//! Import benchmark: depots and stock files through the HTTP API, with a stock movement running
//! in a loop beside each import, on SQLite (a temporary file) or PostgreSQL.
//!
//! ```sh
//! cargo bench --bench imports                                   # SQLite
//! YINGJI_BENCH_DATABASE_URL=postgres://… cargo bench --bench imports   # an empty PostgreSQL database
//! YINGJI_BENCH_BIG=0 YINGJI_BENCH_ERRORS_MB=0 cargo bench --bench imports   # the 100,000-row cases only
//! ```
//!
//! Cases: `YINGJI_BENCH_DEPOTS` (default 100,000) depot rows, `YINGJI_BENCH_STOCK` (100,000)
//! stock rows, a file of `YINGJI_BENCH_ERRORS_MB` (60) MB with an error on every line,
//! `YINGJI_BENCH_BIG` (1,000,000) stock rows, `YINGJI_BENCH_TEAMS` (100,000) teams and
//! `YINGJI_BENCH_MEMBERS` (200,000) members spread over those teams, and `YINGJI_BENCH_XLSX` (0)
//! stock rows as an `.xlsx` workbook. Each file is generated to a
//! temporary file and streamed to the service. Each line of the table gives the time, rows per
//! second, the movements that ran meanwhile (the longest is how long the import's write lock
//! kept one waiting on SQLite; every one must succeed) and the process's peak memory.

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `cargo test --all-targets` runs bench binaries too (without `--bench`): measure only when
    // asked to, under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(());
    }
    // The import pipeline logs each import's phases (read and stage, check, wait for the write
    // lock, write): shown on stderr (`RUST_LOG` to change).
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "yingji::imports=info".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let sizes = yingji::bench::imports::Sizes {
        depots: env("YINGJI_BENCH_DEPOTS", 100_000),
        stock: env("YINGJI_BENCH_STOCK", 100_000),
        all_errors_bytes: env("YINGJI_BENCH_ERRORS_MB", 60) * 1_000_000,
        big_stock: env("YINGJI_BENCH_BIG", 1_000_000),
        teams: env("YINGJI_BENCH_TEAMS", 100_000),
        members: env("YINGJI_BENCH_MEMBERS", 200_000),
        xlsx_stock: env("YINGJI_BENCH_XLSX", 0),
    };
    let tmp = std::env::temp_dir().join(format!("yingji-bench-imports-{}.db", std::process::id()));
    let url = std::env::var("YINGJI_BENCH_DATABASE_URL").unwrap_or_else(|_| format!("sqlite://{}", tmp.display()));
    let backend = if url.starts_with("postgres") { "PostgreSQL" } else { "SQLite" };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("backend: {backend}  load average: {}", load.split_whitespace().take(3).collect::<Vec<_>>().join(" "));
    let figures = yingji::bench::imports::run(&url, &sizes).await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", tmp.display()));
    }
    let figures = figures?;
    println!(
        "| case | file | HTTP | time | rows/s | movements meanwhile (failed) | longest movement | peak RSS (before → after) | errors listed / total |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for f in figures {
        println!(
            "| {} | {:.1} MB | {} | {:.2} s | {:.0} | {} ({}) | {:.0} ms | {:.0} MiB ({:.0} → {:.0}) | {} |",
            f.case,
            f.bytes as f64 / 1e6,
            f.status,
            f.seconds,
            f.rows as f64 / f.seconds,
            f.movements,
            f.failed_movements,
            f.longest_movement_ms,
            f.peak_mib,
            f.before_mib,
            f.after_mib,
            f.errors.map_or("—".to_string(), |(l, t)| format!("{l} / {t}")),
        );
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average after: {}", load.split_whitespace().take(3).collect::<Vec<_>>().join(" "));
    Ok(())
}
