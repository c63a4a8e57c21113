//! `cargo bench --bench warnings`: a warning covering a whole banner of a generated province,
//! issued through the API (targeted readiness check and fan-out to every township and village in
//! one request), and the same as a received CAP message, on SQLite or PostgreSQL.

use std::sync::Arc;
use std::time::Instant;

use super::data::{self, Size};
use super::scratch::Scratch;
use crate::app::{self, Config};
use crate::clock::{SharedClock, SystemClock};
use crate::time::Timestamp;

/// One scale's figures.
#[derive(Debug, serde::Serialize)]
pub struct Figures {
    /// `SQLite` or `PostgreSQL`.
    pub backend: &'static str,
    /// Scale (1.0 = province).
    pub scale: f64,
    /// What was generated.
    pub counts: data::Counts,
    /// Generation time, s.
    pub generate_s: f64,
    /// Regions the warning reached.
    pub recipients: i64,
    /// Plans in force for the hazard in the banner.
    pub plans: i64,
    /// Findings of the targeted check.
    pub findings: i64,
    /// `POST /api/v1/warnings` (issue at once), s: each of the runs.
    pub issue_s: Vec<f64>,
    /// `POST /api/v1/warnings/import` of a CAP message for the same banner, s.
    pub import_s: f64,
}

/// The banner the warning covers (the first generated one).
const BANNER: &str = "150101000000";

/// Runs the benchmark at each scale on a fresh database: a SQLite file in `dir`, or a database
/// created on the PostgreSQL server of `postgres` (and dropped afterwards).
pub async fn run(
    dir: &std::path::Path,
    postgres: Option<&str>,
    scales: &[f64],
    runs: usize,
) -> anyhow::Result<Vec<Figures>> {
    let mut out = Vec::new();
    for &scale in scales {
        let scratch = Scratch::create(dir, postgres, &format!("yingji_bench_warnings_{scale}")).await?;
        let mut config = Config::new(scratch.url.clone());
        config.listen = "127.0.0.1:0".parse()?;
        config.scheduler = false;
        config.pii_key = Some(crate::personal::Cipher::generate_hex());
        let clock: SharedClock = Arc::new(SystemClock);
        let server = app::start(config, clock.clone()).await?;
        let state = server.state.clone();
        let started = Instant::now();
        let counts = data::generate(&state.db, Size::province(scale), Timestamp(clock.now()), 42).await?;
        let generate_s = started.elapsed().as_secs_f64();
        eprintln!("scale {scale}: generated {counts:?} in {generate_s:.1} s");
        // A service's database has planner statistics (autovacuum gathers them); freshly bulk
        // loaded tables have none yet, and PostgreSQL would plan as if they were empty.
        crate::with_db!(&state.db, |p| sqlx::query("ANALYZE").execute(p).await.map(|_| ()))?;
        let token = crate::auth::tokens::issue(
            &state.db,
            &crate::audit::Actor::cli(),
            Timestamp(clock.now()),
            "bench",
            crate::auth::Role::Admin,
            &crate::regions::RegionCode::parse(BANNER).map_err(|e| anyhow::anyhow!(e))?,
            None,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .token;
        let client = reqwest::Client::new();
        let base = format!("http://{}", server.addr);
        let expires = Timestamp(clock.now() + chrono::Duration::days(1));
        let mut issue_s = Vec::new();
        let mut last = serde_json::Value::Null;
        for i in 0..runs {
            let body = serde_json::json!({
                "hazard": "snow_disaster", "level": 2, "headline": format!("测试旗暴雪橙色预警（第 {} 次）", i + 1),
                "issuer": "测试旗气象台", "expires_at": expires, "regions": [BANNER], "issue": true,
            });
            let t = Instant::now();
            let resp = client.post(format!("{base}/api/v1/warnings")).bearer_auth(&token).json(&body).send().await?;
            let status = resp.status();
            let v: serde_json::Value = resp.json().await?;
            issue_s.push(t.elapsed().as_secs_f64());
            anyhow::ensure!(status.as_u16() == 201, "issue failed: {v}");
            last = v;
        }
        let id = last["id"].as_i64().unwrap_or(0);
        let xml = client
            .get(format!("{base}/api/v1/warnings/{id}.xml"))
            .bearer_auth(&token)
            .send()
            .await?
            .text()
            .await?
            .replace(last["identifier"].as_str().unwrap_or(""), "15010141600000_20261127080000")
            .replace(&format!("yingji.{BANNER}"), "15010141600000");
        let t = Instant::now();
        let resp = client
            .post(format!("{base}/api/v1/warnings/import"))
            .bearer_auth(&token)
            .header("content-type", "application/xml")
            .body(xml)
            .send()
            .await?;
        let status = resp.status();
        let imported: serde_json::Value = resp.json().await?;
        let import_s = t.elapsed().as_secs_f64();
        anyhow::ensure!(status.as_u16() == 201, "import failed: {imported}");
        let f = Figures {
            backend: scratch.backend(),
            scale,
            counts,
            generate_s,
            recipients: last["recipients"].as_i64().unwrap_or(0),
            plans: last["readiness"]["plans"].as_i64().unwrap_or(0),
            findings: last["readiness"]["findings"].as_i64().unwrap_or(0),
            issue_s,
            import_s,
        };
        eprintln!("scale {scale}: {f:?}");
        out.push(f);
        server.shutdown().await;
        scratch.remove().await?;
    }
    Ok(out)
}
