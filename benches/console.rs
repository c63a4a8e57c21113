//! Benchmark of the console's 今日 and map pages (and the layers the map loads) over a generated
//! province, as an administrator of the whole province after one readiness run.
//!
//! ```sh
//! cargo bench --bench console                                    # scale 1.0, 20 requests per path
//! YINGJI_BENCH_SCALES=0.1 YINGJI_BENCH_ROUNDS=10 cargo bench --bench console
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
    let rounds: usize = std::env::var("YINGJI_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let figures = yingji::bench::console::run(&std::env::temp_dir(), &scales, rounds.max(2)).await?;
    println!("| scale | regions | depots | path | p50 | p95 | response |");
    println!("|---|---|---|---|---|---|---|");
    for f in figures {
        for p in f.paths {
            println!(
                "| {} | {} | {} | `{}` | {:.1} ms | {:.1} ms | {:.0} KiB |",
                f.scale,
                f.regions,
                f.depots,
                p.path,
                p.p50_ms,
                p.p95_ms,
                p.bytes as f64 / 1024.0
            );
        }
    }
    Ok(())
}
