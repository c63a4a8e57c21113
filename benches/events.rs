//! Benchmark of an activation's resource plan (10 supply items, 5 specialties) at province scale.
//!
//! ```sh
//! cargo bench --bench events                                   # SQLite (temporary file)
//! YINGJI_BENCH_DATABASE_URL=postgres://…/empty_db cargo bench --bench events
//! YINGJI_BENCH_SCALE=0.2 YINGJI_BENCH_PLANS=200 cargo bench --bench events   # quicker
//! # measure again over a province an earlier run generated into a kept database:
//! YINGJI_BENCH_REUSE=1 YINGJI_BENCH_DATABASE_URL=sqlite:///tmp/p.db cargo bench --bench events
//! ```
//!
//! Scale 1.0 is the province of `src/bench/data.rs`: ~15,100 regions, 20,000 depots with
//! 1,000,000 stock batches, 50,000 teams with 500,000 members. The resource plan is computed the
//! way activation computes it (`events::resource::propose`: the nearest-supplies search for each
//! item and the nearest-teams query for each specialty, from the event's point). Two passes of
//! `YINGJI_BENCH_PLANS` plans each: with no writes, then with a committed write to a random member
//! (status or insurance) before each plan, as during a real event.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `cargo test --all-targets` runs bench binaries too (without `--bench`): measure only when
    // asked to, under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(());
    }
    let scale: f64 = std::env::var("YINGJI_BENCH_SCALE").ok().and_then(|v| v.parse().ok()).unwrap_or(1.0);
    let plans: usize = std::env::var("YINGJI_BENCH_PLANS").ok().and_then(|v| v.parse().ok()).unwrap_or(500);
    let tmp = std::env::temp_dir().join(format!("yingji-bench-events-{}.db", std::process::id()));
    let url = std::env::var("YINGJI_BENCH_DATABASE_URL").unwrap_or_else(|_| format!("sqlite://{}", tmp.display()));
    let reuse = std::env::var("YINGJI_BENCH_REUSE").is_ok_and(|v| v == "1");
    let f = yingji::bench::events::run(&url, scale, plans, reuse).await;
    for suffix in ["", "-wal", "-shm", ".migrate-lock"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", tmp.display()));
    }
    let f = f?;
    let backend = if url.starts_with("postgres") { "PostgreSQL" } else { "SQLite" };
    println!(
        "| backend | scale | depots | batches | teams | members | resource plans | writes between plans | p50 | p99 | max | teams from the index | lines per plan |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (writes, t) in [("none", &f.quiet), ("one member write before each plan", &f.with_writes)] {
        println!(
            "| {backend} | {scale} | {} | {} | {} | {} | {} | {writes} | {:.1} ms | {:.1} ms | {:.1} ms | {} of {} | {:.1} |",
            f.counts.depots,
            f.counts.batches,
            f.counts.teams,
            f.counts.members,
            f.plans,
            t.p50_ms,
            t.p99_ms,
            t.max_ms,
            t.from_index,
            f.plans,
            f.mean_lines
        );
    }
    Ok(())
}
