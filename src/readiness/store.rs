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

/// Why a run did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Another run is under way (at most one runs at a time, on every instance).
    #[error("已有一次准备情况检查（编号 {0}）正在运行，请等待其完成")]
    Running(i64),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Starts a run under `lease` (token, expiry), unless another is running: a unique index lets
/// one row be `running`, so of two instances starting together one wins and the other learns
/// the winner's id. A run whose lease has lapsed (its instance died) is marked failed first.
pub async fn start_run(db: &Db, trigger: &str, now: Timestamp, lease: (&str, Timestamp)) -> Result<i64, StartError> {
    let mut tx = db.begin().await?;
    abandon_lapsed_tx(&mut tx, now).await?;
    let id: Option<i64> = with_tx!(&mut tx, |c| {
        sqlx::query_scalar(
        "INSERT INTO readiness_runs (triggered_by, started_at, status, lease, lease_until) VALUES ($1, $2, 'running', $3, $4)
         ON CONFLICT (status) WHERE status = 'running' DO NOTHING RETURNING id"
    )
    .bind(trigger)
    .bind(now)
    .bind(lease.0)
    .bind(lease.1)
    .fetch_optional(c)
    .await
    })?;
    match id {
        Some(id) => {
            tx.commit().await?;
            Ok(id)
        }
        None => {
            let running: Option<i64> =
                with_tx!(&mut tx, |c| sqlx::query_scalar("SELECT id FROM readiness_runs WHERE status = 'running'")
                    .fetch_optional(c)
                    .await)?;
            // The running run may have finished between the insert and the look-up: still a
            // refusal (the caller may simply try again).
            Err(StartError::Running(running.unwrap_or(0)))
        }
    }
}

/// The error of a run abandoned by its instance.
pub const ABANDONED: &str = "检查中断：执行检查的服务实例在完成前停止（崩溃、被强制结束或关闭），租约已过期";

/// Marks failed every running run whose lease has lapsed (its instance stopped renewing it:
/// crash, SIGKILL, power cut); returns how many. Each is a fenced transition, so a run whose
/// instance renewed its lease in the meantime is left alone.
pub async fn abandon_lapsed(db: &Db, now: Timestamp) -> Result<u64, sqlx::Error> {
    let mut tx = db.begin().await?;
    let n = abandon_lapsed_tx(&mut tx, now).await?;
    tx.commit().await?;
    Ok(n)
}

async fn abandon_lapsed_tx(tx: &mut Tx, now: Timestamp) -> Result<u64, sqlx::Error> {
    let lapsed: Vec<(i64, Option<String>)> = with_tx!(tx, |c| sqlx::query_as(
        "SELECT id, lease FROM readiness_runs WHERE status = 'running' AND lease_until < $1"
    )
    .bind(now)
    .fetch_all(c)
    .await)?;
    let mut n = 0;
    for (id, lease) in lapsed {
        let done = crate::transition!(tx, RUN, id, from ["running"] => "failed",
            set { "finished_at" = now, "error" = ABANDONED, "progress_phase" = None::<String> },
            guard { "lease" = lease });
        match done {
            Ok(()) => {
                tracing::warn!(run = id, "readiness run abandoned by its instance (lease lapsed): marked failed");
                n += 1;
            }
            Err(crate::transition::TransitionError::Db(e)) => return Err(e),
            Err(_) => {}
        }
    }
    Ok(n)
}

/// The lease token of a running run (None when it is not running).
pub async fn run_lease(db: &Db, id: i64) -> Result<Option<String>, sqlx::Error> {
    with_db!(db, |p| sqlx::query_scalar("SELECT lease FROM readiness_runs WHERE id = $1 AND status = 'running'")
        .bind(id)
        .fetch_optional(p)
        .await)
    .map(Option::flatten)
}

/// Inside a run's write transaction: confirms the run still holds its lease and pushes the
/// expiry to `until`. False when it does not (the run was taken for abandoned after its lease
/// lapsed): the run must stop writing. On PostgreSQL the run's row stays locked until the
/// transaction ends, so it cannot be declared abandoned while a chunk is being written.
pub async fn hold_lease(tx: &mut Tx, id: i64, token: &str, until: Timestamp) -> Result<bool, sqlx::Error> {
    with_tx!(tx, |c| sqlx::query(
        "UPDATE readiness_runs SET lease_until = $3 WHERE id = $1 AND lease = $2 AND status = 'running'"
    )
    .bind(id)
    .bind(token)
    .bind(until)
    .execute(c)
    .await
    .map(|r| r.rows_affected() == 1))
}

/// Readiness runs: `running` → `succeeded` or `failed`.
pub const RUN: crate::transition::Lifecycle = crate::transition::Lifecycle::new("readiness_runs", "准备情况检查");

/// Findings: `open` → `resolved`.
pub const FINDING: crate::transition::Lifecycle =
    crate::transition::Lifecycle::new("readiness_findings", "准备情况问题");

/// Finishes a running run with its summary or error, fenced by its lease `token`: a run
/// declared abandoned (its lease lapsed) is not finished by its late instance.
pub async fn finish_run(
    db: &Db,
    id: i64,
    token: &str,
    now: Timestamp,
    result: Result<&Value, &str>,
) -> Result<(), crate::transition::TransitionError> {
    let (status, summary, error) = match result {
        Ok(v) => ("succeeded", Some(Json(v.clone())), None),
        Err(e) => ("failed", None, Some(e.to_string())),
    };
    let mut tx = db.begin().await?;
    crate::transition!(&mut tx, RUN, id, from ["running"] => status,
        set { "finished_at" = now, "summary" = summary, "error" = error, "progress_phase" = None::<String> },
        guard { "lease" = token })?;
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
    /// Message.
    pub message: String,
    /// Action.
    pub action: String,
    /// When a run last wrote it (see [`list`] for when it was last seen).
    pub last_seen: Timestamp,
    /// The run that last wrote it.
    pub last_run_id: i64,
}

/// Every open finding.
pub async fn open_findings(db: &Db) -> Result<Vec<OpenRow>, sqlx::Error> {
    with_db!(db, |p| {
        sqlx::query_as::<_, OpenRow>(
        "SELECT id, identity, severity, facts, message, action, last_seen, last_run_id FROM readiness_findings WHERE status = 'open'"
    )
    .fetch_all(p)
    .await
    })
}

/// The latest run that succeeded: (id, started at). Every finding still open was seen by it
/// (a run resolves what it no longer finds), so it is when an open finding was last seen,
/// unless a later (failed) run wrote the finding.
pub async fn latest_succeeded(db: &Db) -> Result<Option<(i64, Timestamp)>, sqlx::Error> {
    with_db!(db, |p| sqlx::query_as(
        "SELECT id, started_at FROM readiness_runs WHERE status = 'succeeded' ORDER BY id DESC LIMIT 1"
    )
    .fetch_optional(p)
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

/// Rows per multi-row statement (11 values each). Small enough that binding stays cheap:
/// SQLite looks a numbered parameter (`$n`) up by walking the statement's parameter list, so
/// binding a statement costs the square of its parameter count (500 rows of 11 took about
/// 100 ms to bind; 100 rows take a twenty-fifth of that per statement).
const INSERT_ROWS: usize = 100;

/// Findings seen again with different numbers (or severity): writes the new numbers, message
/// and action, many per statement. Unchanged findings are not written at all.
pub async fn touch_many(
    tx: &mut Tx,
    changed: &[(i64, &Found, Severity)],
    run_id: i64,
    now: Timestamp,
) -> Result<(), sqlx::Error> {
    const COLUMNS: usize = 5;
    for chunk in changed.chunks(INSERT_ROWS) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                let b = 3 + COLUMNS * i;
                format!("(${}, ${}, ${}, ${}, ${})", b, b + 1, b + 2, b + 3, b + 4)
            })
            .collect();
        // `UPDATE … FROM` a list of values: the same text on both backends (SQLite ≥ 3.33).
        let sql = format!(
            "WITH v (id, facts, message, action, severity) AS (VALUES {})
             UPDATE readiness_findings SET last_seen = $1, last_run_id = $2, facts = v.facts, message = v.message,
                    action = v.action, severity = v.severity
             FROM v WHERE readiness_findings.id = v.id",
            values.join(", ")
        );
        with_tx!(tx, |c| {
            let mut q = sqlx::query(&sql).bind(now).bind(run_id);
            for (id, f, severity) in chunk {
                q = q.bind(*id).bind(Json(&f.facts)).bind(&f.message).bind(&f.action).bind(severity.as_str());
            }
            q.execute(c).await.map(|_| ())
        })?;
    }
    Ok(())
}

/// Resolves an open finding, recording when it was last seen (`last_seen`: time and run); false
/// when it was no longer open (a concurrent run resolved it).
pub async fn resolve(tx: &mut Tx, id: i64, now: Timestamp, last_seen: (Timestamp, i64)) -> Result<bool, sqlx::Error> {
    match crate::transition!(tx, FINDING, id, from ["open"] => "resolved",
        set { "resolved_at" = now, "last_seen" = last_seen.0, "last_run_id" = last_seen.1 })
    {
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
    let (mut items, total) = with_db!(db, |p| {
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
        Ok::<_, sqlx::Error>((items, total))
    })?;
    // An open finding was seen by every run that succeeded since it opened (a run resolves
    // what it no longer finds), so its last sighting is the latest successful run, unless a
    // later run wrote it: runs do not rewrite unchanged findings just to date them.
    if status == "open"
        && let Some((_, at)) = latest_succeeded(db).await?
    {
        for f in &mut items {
            if f.last_seen.0 < at.0 {
                f.last_seen = at;
            }
        }
    }
    Ok((items, total))
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
