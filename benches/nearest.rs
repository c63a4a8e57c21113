//! Nearest supplies and nearest teams through HTTP at province scale, side by side with
//! hand-written PostGIS KNN SQL over the same rows (see `src/bench/nearest.rs`).
//!
//! ```sh
//! cargo bench --bench nearest                                   # SQLite only (temporary file)
//! YINGJI_BENCH_DATABASE_URL=postgres://…/empty_db cargo bench --bench nearest   # + PostgreSQL
//! YINGJI_BENCH_POSTGIS=1 …                                       # + raw PostGIS (needs postgis)
//! YINGJI_BENCH_SCALE=0.1 YINGJI_BENCH_QUESTIONS=200 …            # quicker
//! scripts/postgis-bench.sh                                      # all three columns, one command
//! ```
//!
//! Scale 1.0: 20,000 depots, 1,000,000 stock batches, 50,000 teams, 500,000 members (and the
//! province's regions and plans). 1,000 questions of each kind by default.

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn cell(t: Option<yingji::bench::nearest::Timing>) -> String {
    t.map_or("–".into(), |t| format!("{:.2} ms (p50 {:.2})", t.p99, t.p50))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `cargo test --all-targets` runs bench binaries too (without `--bench`): measure only when
    // asked to, under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(());
    }
    let scale: f64 = env("YINGJI_BENCH_SCALE", 1.0);
    let questions: usize = env("YINGJI_BENCH_QUESTIONS", 1000);
    let postgis = std::env::var("YINGJI_BENCH_POSTGIS").is_ok_and(|v| v == "1");
    let tmp = std::env::temp_dir().join(format!("yingji-bench-nearest-{}.db", std::process::id()));
    let lite = yingji::bench::nearest::run(&format!("sqlite://{}", tmp.display()), scale, questions, false).await;
    for suffix in ["", "-wal", "-shm", ".migrate-lock"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", tmp.display()));
    }
    let lite = lite?;
    let pg = match std::env::var("YINGJI_BENCH_DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => {
            Some(yingji::bench::nearest::run(&url, scale, questions, postgis).await?)
        }
        _ => None,
    };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let c = lite.counts;
    println!(
        "\nscale {scale}: {} depots, {} batches, {} teams, {} members; {questions} questions of each kind; load {}",
        c.depots,
        c.batches,
        c.teams,
        c.members,
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    println!("\n| question | yingji on SQLite, p99 | yingji on PostgreSQL, p99 | raw PostGIS SQL, p99 |");
    println!("|---|---|---|---|");
    for (i, kind) in yingji::bench::nearest::KINDS.iter().enumerate() {
        println!(
            "| {kind} | {} | {} | {} |",
            cell(Some(lite.yingji[i])),
            cell(pg.as_ref().map(|r| r.yingji[i])),
            cell(pg.as_ref().and_then(|r| r.postgis.map(|t| t[i])))
        );
    }
    for (i, kind) in yingji::bench::nearest::KINDS.iter().enumerate() {
        println!(
            "| {kind}, indexes off (SQL path) | {} | {} | |",
            cell(Some(lite.sql[i])),
            cell(pg.as_ref().map(|r| r.sql[i]))
        );
    }
    for (name, r) in [("SQLite", Some(&lite)), ("PostgreSQL", pg.as_ref())] {
        if let Some(r) = r {
            println!(
                "\n{name}: the indexes answered {} of {questions} supplies (open), {} supplies (`max_km`) and {} teams questions; the SQL path agreed on {} of {}",
                r.from_index[0],
                r.from_index[1],
                r.from_index[2],
                r.sql_same,
                r.answers.len()
            );
        }
    }
    if let Some(pg) = &pg {
        let same = lite.answers.iter().zip(&pg.answers).filter(|(a, b)| a == b).count();
        println!("\nSQLite and PostgreSQL answers agree on {same} of {} questions", lite.answers.len());
        if pg.postgis.is_some() {
            println!(
                "raw PostGIS answers agree with yingji on {} of {} questions",
                pg.answers.len() - pg.disagreements,
                pg.answers.len()
            );
        } else if postgis {
            println!("PostGIS was asked for but not measured");
        }
    }
    if pg.as_ref().is_none_or(|p| p.postgis.is_none()) {
        println!("\nNO PostGIS COLUMN: run scripts/postgis-bench.sh (PostgreSQL 15 with postgis 3) for it");
    }
    Ok(())
}
