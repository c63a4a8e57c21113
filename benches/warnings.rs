//! Benchmark of a warning covering a whole banner at province scale: the targeted readiness
//! check and the fan-out to every township and village, timed through the API.
//!
//! ```sh
//! cargo bench --bench warnings                               # scale 1.0, three warnings
//! YINGJI_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:55432/postgres cargo bench --bench warnings
//! YINGJI_BENCH_SCALES=0.1 cargo bench --bench warnings       # quicker
//! ```

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `cargo test --all-targets` runs bench binaries too (without `--bench`): measure only when
    // asked to, under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(());
    }
    let scales: Vec<f64> = std::env::var("YINGJI_BENCH_SCALES")
        .unwrap_or_else(|_| "1.0".into())
        .split(',')
        .map(|s| s.trim().parse::<f64>())
        .collect::<Result<_, _>>()?;
    // Any database on a PostgreSQL server: the benchmark creates its own beside it.
    let postgres = std::env::var("YINGJI_BENCH_DATABASE_URL").ok().filter(|u| u.starts_with("postgres"));
    let figures = yingji::bench::warnings::run(&std::env::temp_dir(), postgres.as_deref(), &scales, 3).await?;
    println!(
        "| backend | scale | regions | plans | depots | batches | teams | members | recipients | snow plans in the banner | findings | issue (3 runs) | CAP import |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for f in figures {
        let c = f.counts;
        let runs: Vec<String> = f.issue_s.iter().map(|s| format!("{s:.2} s")).collect();
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} s |",
            f.backend,
            f.scale,
            c.regions,
            c.plans,
            c.depots,
            c.batches,
            c.teams,
            c.members,
            f.recipients,
            f.plans,
            f.findings,
            runs.join(", "),
            f.import_s
        );
    }
    Ok(())
}
