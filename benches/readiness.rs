//! Benchmark of the readiness check over a generated province, at two sizes to show the cost
//! grows about linearly, with the API read and written during each run.
//!
//! ```sh
//! cargo bench --bench readiness                               # SQLite, scales 0.5 and 1.0
//! YINGJI_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:55432/postgres cargo bench --bench readiness
//! YINGJI_BENCH_SCALES=0.1,0.2 cargo bench --bench readiness   # quicker
//! ```
//!
//! Scale 1.0 is the province: ~15,100 regions, 30,000 plans (approved or filed, with supply and
//! force requirements on special and township plans), 20,000 depots with 1,000,000 stock batches,
//! 50,000 teams with 500,000 members (insurance and certificates with spread-out end dates). The
//! data is written straight into a fresh SQLite file in the system temporary directory, or, with
//! `YINGJI_BENCH_DATABASE_URL` naming any database on a PostgreSQL server, into a fresh database
//! created beside it (and dropped afterwards).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `cargo test --all-targets` runs bench binaries too (without `--bench`): measure only when
    // asked to, under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(());
    }
    let scales: Vec<f64> = std::env::var("YINGJI_BENCH_SCALES")
        .unwrap_or_else(|_| "0.5,1.0".into())
        .split(',')
        .map(|s| s.trim().parse::<f64>())
        .collect::<Result<_, _>>()?;
    let postgres = std::env::var("YINGJI_BENCH_DATABASE_URL").ok().filter(|u| u.starts_with("postgres"));
    let figures = yingji::bench::readiness::run(&std::env::temp_dir(), postgres.as_deref(), &scales).await?;
    println!(
        "| backend | scale | regions | plans | depots | batches | teams | members | findings | first run (gather) | second run | reads p99 / max | writes p99 / max |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for f in figures {
        let c = f.counts;
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} s ({:.1} s) | {:.1} s | {:.1} / {:.1} ms ({} probes, {} failed) | {:.1} / {:.1} ms ({} probes, {} failed) |",
            f.backend,
            f.scale,
            c.regions,
            c.plans,
            c.depots,
            c.batches,
            c.teams,
            c.members,
            f.findings,
            f.first_run_s,
            f.first_gather_s,
            f.second_run_s,
            f.reads.p99_ms,
            f.reads.max_ms,
            f.reads.count,
            f.reads.failed,
            f.writes.p99_ms,
            f.writes.max_ms,
            f.writes.count,
            f.writes.failed
        );
    }
    Ok(())
}
