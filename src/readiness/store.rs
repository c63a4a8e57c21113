//! Readiness storage: runs, findings, scores, configuration.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::types::Json;

use super::{Config, Found, Rule, Severity};
use crate::db::{Db, Tx};
use crate::time::Timestamp;
use crate::{with_db, with_tx};

/// The stored configuration, or the defaults.
pub async fn config(db: &Db) -> Result<Config, sqlx::Error> {
    let row: Option<Json<Config>> =
        with_db!(db, |p| sqlx::query_scalar("SELECT config FROM readiness_config WHERE id = 1")
            .fetch_optional(p)
            .await)?;
    Ok(row.map(|j| j.0).unwrap_or_default())
}

/// Stores the configuration.
pub async fn save_config(tx: &mut Tx, c: &Config, now: Timestamp) -> Result<(), sqlx::Error> {
    with_tx!(tx, |conn| sqlx::query(
        "INSERT INTO readiness_config (id, config, updated_at) VALUES (1, $1, $2)
         ON CONFLICT (id) DO UPDATE SET config = excluded.config, updated_at = excluded.updated_at"
    )
    .bind(Json(c))
    .bind(now)
    .execute(conn)
    .await
    .map(|_| ()))
}

/// Starts a run.
pub async fn start_run(db: &Db, trigger: &str, now: Timestamp) -> Result<i64, sqlx::Error> {
    with_db!(db, |p| sqlx::query_scalar(
        "INSERT INTO readiness_runs (triggered_by, started_at, status) VALUES ($1, $2, 'running') RETURNING id"
    )
    .bind(trigger)
    .bind(now)
    .fetch_one(p)
    .await)
}

/// Readiness runs: `running` → `succeeded` or `failed`.
pub const RUN: crate::transition::Lifecycle = crate::transition::Lifecycle::new("readiness_runs", "准备情况检查");

/// Findings: `open` → `resolved`.
pub const FINDING: crate::transition::Lifecycle =
    crate::transition::Lifecycle::new("readiness_findings", "准备情况问题");

/// Finishes a running run with its summary or error.
pub async fn finish_run(
    db: &Db,
    id: i64,
    now: Timestamp,
    result: Result<&Value, &str>,
) -> Result<(), crate::transition::TransitionError> {
    let (status, summary, error) = match result {
        Ok(v) => ("succeeded", Some(Json(v.clone())), None),
        Err(e) => ("failed", None, Some(e.to_string())),
    };
    let mut tx = db.begin().await?;
    crate::transition!(&mut tx, RUN, id, from ["running"] => status,
        set { "finished_at" = now, "summary" = summary, "error" = error, "progress_phase" = None::<String> })?;
    tx.commit().await?;
    Ok(())
}

/// Records how far a running run is: `done` of `total` steps, `phase` now under way. A few
/// cheap updates per run (one per rule group and writing phase), never per finding.
pub async fn set_progress(db: &Db, id: i64, done: i64, total: i64, phase: &str) -> Result<(), sqlx::Error> {
    with_db!(db, |p| sqlx::query(
        "UPDATE readiness_runs SET progress_done = $2, progress_total = $3, progress_phase = $4
         WHERE id = $1 AND status = 'running'"
    )
    .bind(id)
    .bind(done)
    .bind(total)
    .bind(phase)
    .execute(p)
    .await
    .map(|_| ()))
}

/// A run as its status route shows it.
#[derive(Debug, Serialize, JsonSchema, sqlx::FromRow)]
pub struct RunStatus {
    /// Run id.
    pub id: i64,
    /// `schedule` or `api`.
    pub triggered_by: String,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    /// Started.
    pub started_at: Timestamp,
    /// Finished (None while running).
    pub finished_at: Option<Timestamp>,
    /// Steps done.
    pub progress_done: i64,
    /// Steps in all (0 until the run has counted them).
    pub progress_total: i64,
    /// The step under way (Chinese), None when finished or not yet started.
    pub progress_phase: Option<String>,
    /// The summary once succeeded.
    #[schemars(with = "Option<Value>")]
    pub summary: Option<Json<Value>>,
    /// The error once failed.
    pub error: Option<String>,
}

/// One run's status.
pub async fn run_status(db: &Db, id: i64) -> Result<Option<RunStatus>, sqlx::Error> {
    with_db!(db, |p| sqlx::query_as::<_, RunStatus>(
        "SELECT id, triggered_by, status, started_at, finished_at, progress_done, progress_total, progress_phase,
                summary, error
         FROM readiness_runs WHERE id = $1"
    )
    .bind(id)
    .fetch_optional(p)
    .await)
}

/// An open finding's stored state (for matching against a new run).
#[derive(Debug, sqlx::FromRow)]
pub struct OpenRow {
    /// Id.
    pub id: i64,
    /// Identity.
    pub identity: String,
    /// Severity.
    pub severity: String,
    /// Facts.
    pub facts: Json<Value>,
}

/// Every open finding.
pub async fn open_findings(db: &Db) -> Result<Vec<OpenRow>, sqlx::Error> {
    with_db!(db, |p| sqlx::query_as::<_, OpenRow>(
        "SELECT id, identity, severity, facts FROM readiness_findings WHERE status = 'open'"
    )
    .fetch_all(p)
    .await)
}

/// Inserts new open findings in multi-row statements; returns `(identity, id)` of those
/// inserted (one another run opened first is left out). One statement per chunk instead of a
/// round trip per finding: a province run opens hundreds of thousands.
pub async fn insert_many(
    tx: &mut Tx,
    found: &[(&Found, Severity)],
    run_id: i64,
    now: Timestamp,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    const COLUMNS: usize = 11;
    let mut out = Vec::with_capacity(found.len());
    for chunk in found.chunks(INSERT_ROWS) {
        let mut sql = String::from(
            "INSERT INTO readiness_findings (identity, rule, severity, region_code, subject_type, subject_id, requirement, facts, message,
                 basis, action, status, first_seen, last_seen, first_run_id, last_run_id) VALUES ",
        );
        for i in 0..chunk.len() {
            let b = 3 + COLUMNS * i;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for c in 0..COLUMNS {
                sql.push_str(&format!("${}, ", b + c));
            }
            sql.push_str("'open', $1, $1, $2, $2)");
        }
        sql.push_str(" ON CONFLICT (identity) WHERE status = 'open' DO NOTHING RETURNING identity, id");
        let rows: Vec<(String, i64)> = with_tx!(tx, |c| {
            let mut q = sqlx::query_as(&sql).bind(now).bind(run_id);
            for (f, severity) in chunk {
                q = q
                    .bind(f.identity())
                    .bind(f.rule.id())
                    .bind(severity.as_str())
                    .bind(&f.region_code)
                    .bind(f.subject_type)
                    .bind(&f.subject_id)
                    .bind(&f.requirement)
                    .bind(Json(&f.facts))
                    .bind(&f.message)
                    .bind(f.rule.basis())
                    .bind(&f.action);
            }
            q.fetch_all(c).await
        })?;
        out.extend(rows);
    }
    Ok(out)
}

/// Rows per multi-row statement (11 values each: well under both backends' parameter limits).
const INSERT_ROWS: usize = 500;

/// Marks open findings as seen again when nothing about them changed, many per statement.
pub async fn touch_unchanged_many(tx: &mut Tx, ids: &[i64], run_id: i64, now: Timestamp) -> Result<(), sqlx::Error> {
    for chunk in ids.chunks(INSERT_ROWS * 2) {
        let list: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 3)).collect();
        let sql =
            format!("UPDATE readiness_findings SET last_seen = $1, last_run_id = $2 WHERE id IN ({})", list.join(", "));
        with_tx!(tx, |c| {
            let mut q = sqlx::query(&sql).bind(now).bind(run_id);
            for id in chunk {
                q = q.bind(*id);
            }
            q.execute(c).await.map(|_| ())
        })?;
    }
    Ok(())
}

/// Marks an open finding as seen again, with its current numbers.
pub async fn touch(
    tx: &mut Tx,
    id: i64,
    f: &Found,
    severity: Severity,
    run_id: i64,
    now: Timestamp,
) -> Result<(), sqlx::Error> {
    with_tx!(tx, |c| {
        sqlx::query(
        "UPDATE readiness_findings SET last_seen = $2, last_run_id = $3, facts = $4, message = $5, action = $6, severity = $7 WHERE id = $1"
    )
    .bind(id)
    .bind(now)
    .bind(run_id)
    .bind(Json(&f.facts))
    .bind(&f.message)
    .bind(&f.action)
    .bind(severity.as_str())
    .execute(c)
    .await
    .map(|_| ())
    })
}

/// Resolves an open finding; false when it was no longer open (a concurrent run resolved it).
pub async fn resolve(tx: &mut Tx, id: i64, now: Timestamp) -> Result<bool, sqlx::Error> {
    match crate::transition!(tx, FINDING, id, from ["open"] => "resolved", set { "resolved_at" = now }) {
        Ok(()) => Ok(true),
        Err(crate::transition::TransitionError::Db(e)) => Err(e),
        Err(_) => Ok(false),
    }
}

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

/// A finding as the API shows it.
#[derive(Debug, Serialize, JsonSchema, sqlx::FromRow)]
pub struct Finding {
    /// Id.
    pub id: i64,
    /// Rule id.
    #[sqlx(try_from = "String")]
    pub rule: RuleId,
    /// Severity.
    #[sqlx(try_from = "String")]
    pub severity: Severity,
    /// Region.
    pub region: String,
    /// Subject type.
    pub subject_type: String,
    /// Subject id.
    pub subject_id: String,
    /// The requirement it is about.
    pub requirement: String,
    /// The numbers behind it.
    #[schemars(with = "Value")]
    pub facts: Json<Value>,
    /// The finding in Chinese.
    pub message: String,
    /// Legal or normative basis.
    pub basis: String,
    /// What to do.
    pub action: String,
    /// `open` or `resolved`.
    pub status: String,
    /// First seen.
    pub first_seen: Timestamp,
    /// Last seen.
    pub last_seen: Timestamp,
    /// Resolved.
    pub resolved_at: Option<Timestamp>,
}

/// A rule id as stored (a newtype so it can be read with `try_from`).
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct RuleId(pub Rule);

impl TryFrom<String> for RuleId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Rule::parse(&s).map(RuleId).ok_or_else(|| format!("unknown rule {s:?}"))
    }
}

/// Filters of the findings list.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FindingQuery {
    /// Region (default: the caller's jurisdiction).
    pub region: Option<crate::regions::RegionCode>,
    /// Only this rule.
    #[schemars(with = "Option<super::Rule>")]
    pub rule: Option<String>,
    /// Only this severity.
    pub severity: Option<Severity>,
    /// Include the regions below (default true).
    pub include_children: Option<bool>,
    /// Resolved findings instead of open ones (default false).
    pub resolved: Option<bool>,
    /// Page size (default 100, max 1000).
    pub limit: Option<crate::http::ctx::Limit>,
    /// Items to skip.
    pub offset: Option<crate::http::ctx::Offset>,
}

/// Findings in `bounds` (or of exactly `exact` region), most severe first.
pub async fn list(
    db: &Db,
    bounds: (&str, &str),
    exact: Option<&str>,
    q: &FindingQuery,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Finding>, i64), sqlx::Error> {
    const WHERE: &str = "WHERE region_code >= $1 AND region_code <= $2 AND ($3 IS NULL OR region_code = $3)
        AND ($4 IS NULL OR rule = $4) AND ($5 IS NULL OR severity = $5) AND status = $6";
    let sql = format!(
        "SELECT id, rule, severity, region_code AS region, subject_type, subject_id, requirement, facts, message, basis, action, status,
                first_seen, last_seen, resolved_at
         FROM readiness_findings {WHERE}
         ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, rule, region_code, id LIMIT $7 OFFSET $8"
    );
    let count = format!("SELECT COUNT(*) FROM readiness_findings {WHERE}");
    let status = if q.resolved.unwrap_or(false) { "resolved" } else { "open" };
    let severity = q.severity.map(Severity::as_str);
    with_db!(db, |p| {
        let items = sqlx::query_as::<_, Finding>(&sql)
            .bind(bounds.0)
            .bind(bounds.1)
            .bind(exact)
            .bind(&q.rule)
            .bind(severity)
            .bind(status)
            .bind(limit)
            .bind(offset)
            .fetch_all(p)
            .await?;
        let total: i64 = sqlx::query_scalar(&count)
            .bind(bounds.0)
            .bind(bounds.1)
            .bind(exact)
            .bind(&q.rule)
            .bind(severity)
            .bind(status)
            .fetch_one(p)
            .await?;
        Ok((items, total))
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
