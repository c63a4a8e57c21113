//! The findings a run writes: the open ones read for matching, new ones inserted, changed ones
//! updated, gone ones resolved.

use serde_json::Value;
use sqlx::types::Json;

use crate::db::{Db, Tx};
use crate::readiness::{Found, Severity};
use crate::time::Timestamp;
use crate::{with_db, with_tx};

/// Findings: `open` → `resolved`.
pub const FINDING: crate::transition::Lifecycle =
    crate::transition::Lifecycle::new("readiness_findings", "准备情况问题");
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
