//! Benchmark of the readiness check over a generated province, at two sizes to show the cost
//! grows about linearly, with the API read and written during each run.
//!
//! ```sh
//! cargo bench --bench readiness                               # SQLite, scales 0.5 and 1.0
//! YINGJI_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:55432/postgres cargo bench --bench readiness
//! YINGJI_BENCH_SCALES=0.1,0.2 cargo bench --bench readiness   # quicker
//! YINGJI_BENCH_KEEP=1 …                                       # keep the database (for EXPLAIN)
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
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let scales: Vec<f64> = std::env::var("YINGJI_BENCH_SCALES")
        .unwrap_or_else(|_| "0.5,1.0".into())
        .split(',')
        .map(|s| s.trim().parse::<f64>())
        .collect::<Result<_, _>>()?;
    let postgres = std::env::var("YINGJI_BENCH_DATABASE_URL").ok().filter(|u| u.starts_with("postgres"));
    let figures = yingji::bench::readiness::run(&std::env::temp_dir(), postgres.as_deref(), &scales).await?;
    println!(
        "| backend | scale | regions | plans | depots | batches | teams | members | findings | first run (rules) | repeat run (rules) | reads p99 / max, first / repeat (no run) | writes p99 / max, first / repeat (no run) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let probes = |p: &yingji::bench::readiness::Probes| {
        let failed = if p.failed > 0 { format!(", {} failed", p.failed) } else { String::new() };
        format!("{:.1} / {:.1} ms ({}{failed})", p.p99_ms, p.max_ms, p.count)
    };
    let rules_s = |phases: &serde_json::Value| phases["gathered"].as_f64().unwrap_or(0.0) / 1000.0;
    for f in &figures {
        let c = &f.counts;
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} s ({:.1} s) | {:.1} s ({:.1} s) | {}; {} ({}) | {}; {} ({}) |",
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
            rules_s(&f.first_phases),
            f.second_run_s,
            rules_s(&f.second_phases),
            probes(&f.reads),
            probes(&f.reads_again),
            probes(&f.idle_reads),
            probes(&f.writes),
            probes(&f.writes_again),
            probes(&f.idle_writes),
        );
    }
    // Where the time went: ms from the start of the run at the end of each phase.
    println!();
    println!(
        "| backend | scale | run | phases (ms from the start: rules, open findings read, written, resolved, notified, total) |"
    );
    println!("|---|---|---|---|");
    for f in &figures {
        for (run, phases) in [("first", &f.first_phases), ("repeat", &f.second_phases)] {
            println!("| {} | {} | {run} | {phases} |", f.backend, f.scale);
        }
    }
    // The probes' slowest answer in each phase of the run: what the API waited behind.
    println!();
    println!("| backend | scale | run | probe | slowest ms per phase (requests) |");
    println!("|---|---|---|---|---|");
    for f in &figures {
        for (run, probe, p) in [
            ("first", "reads", &f.reads),
            ("first", "writes", &f.writes),
            ("repeat", "reads", &f.reads_again),
            ("repeat", "writes", &f.writes_again),
        ] {
            let phases: Vec<String> =
                p.by_phase.iter().map(|(name, n, max)| format!("{name} {max:.1} ({n})")).collect();
            println!("| {} | {} | {run} | {probe} | {} |", f.backend, f.scale, phases.join(", "));
        }
    }
    Ok(())
}
