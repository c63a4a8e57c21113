//! Scores: each region's per run, from the open findings of its subtree.

use schemars::JsonSchema;
use serde::Serialize;

use crate::db::{Db, Tx};
use crate::time::Timestamp;
use crate::{with_db, with_tx};

/// Open-finding counts per region and severity.
pub async fn open_counts(db: &Db) -> Result<Vec<(String, String, i64)>, sqlx::Error> {
    with_db!(db, |p| {
        sqlx::query_as("SELECT region_code, severity, COUNT(*) FROM readiness_findings WHERE status = 'open' GROUP BY region_code, severity")
        .fetch_all(p)
        .await
    })
}

/// Stores a batch of scores of one run: (region, score, critical, warning, info).
pub async fn insert_scores(tx: &mut Tx, run_id: i64, rows: &[(String, i64, i64, i64, i64)]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut sql =
        String::from("INSERT INTO readiness_scores (run_id, region_code, score, critical, warning, info) VALUES ");
    for i in 0..rows.len() {
        let b = i * 5 + 2;
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("($1, ${}, ${}, ${}, ${}, ${})", b, b + 1, b + 2, b + 3, b + 4));
    }
    with_tx!(tx, |c| {
        let mut q = sqlx::query(&sql).bind(run_id);
        for r in rows {
            q = q.bind(&r.0).bind(r.1).bind(r.2).bind(r.3).bind(r.4);
        }
        q.execute(c).await.map(|_| ())
    })
}

/// A region's score in one run.
#[derive(Debug, Serialize, JsonSchema, sqlx::FromRow)]
pub struct ScorePoint {
    /// Run.
    pub run_id: i64,
    /// When the run started.
    pub run_at: Timestamp,
    /// Score 0–100.
    pub score: i64,
    /// Open critical findings (own and below).
    pub critical: i64,
    /// Open warnings.
    pub warning: i64,
    /// Open infos.
    pub info: i64,
}

/// A region's score history, newest first.
pub async fn history(db: &Db, region: &str, limit: i64, offset: i64) -> Result<(Vec<ScorePoint>, i64), sqlx::Error> {
    with_db!(db, |p| {
        let items = sqlx::query_as::<_, ScorePoint>(
            "SELECT s.run_id, r.started_at AS run_at, s.score, s.critical, s.warning, s.info
             FROM readiness_scores s JOIN readiness_runs r ON r.id = s.run_id
             WHERE s.region_code = $1 ORDER BY s.run_id DESC LIMIT $2 OFFSET $3",
        )
        .bind(region)
        .bind(limit)
        .bind(offset)
        .fetch_all(p)
        .await?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM readiness_scores WHERE region_code = $1")
            .bind(region)
            .fetch_one(p)
            .await?;
        Ok((items, total))
    })
}

/// The latest score of a region.
pub async fn latest_score(db: &Db, region: &str) -> Result<Option<ScorePoint>, sqlx::Error> {
    Ok(history(db, region, 1, 0).await?.0.pop())
}

/// Latest scores of the direct children of a region.
pub async fn child_scores(db: &Db, parent: &str) -> Result<Vec<(String, String, i64)>, sqlx::Error> {
    with_db!(db, |p| sqlx::query_as(
        "SELECT g.code, g.name, s.score FROM regions g
         JOIN readiness_scores s ON s.region_code = g.code
         WHERE g.parent_code = $1 AND s.run_id = (SELECT MAX(run_id) FROM readiness_scores WHERE region_code = $1)
         ORDER BY s.score, g.code"
    )
    .bind(parent)
    .fetch_all(p)
    .await)
}

/// The latest score of every scored region within `bounds` (for the map): `(region, score)`.
pub async fn latest_scores_in(db: &Db, bounds: (&str, &str)) -> Result<Vec<(String, i64)>, sqlx::Error> {
    with_db!(db, |p| sqlx::query_as(
        "SELECT s.region_code, s.score FROM readiness_scores s
         WHERE s.region_code >= $1 AND s.region_code <= $2
           AND s.run_id = (SELECT MAX(t.run_id) FROM readiness_scores t WHERE t.region_code = s.region_code)"
    )
    .bind(bounds.0)
    .bind(bounds.1)
    .fetch_all(p)
    .await)
}
