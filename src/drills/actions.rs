//! Findings of a drill (problem and cause) and the corrective actions that follow them, tracked
//! `open` → `done` → `verified`.

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::db::{Db, Tx};
use crate::time::Timestamp;
use crate::{with_db, with_tx};

/// A problem found in a drill.
#[derive(Debug, Clone, Serialize, JsonSchema, sqlx::FromRow)]
pub struct Finding {
    /// Id.
    pub id: i64,
    /// Drill.
    pub drill_id: i64,
    /// The problem (发现的问题).
    pub problem: String,
    /// Its cause (原因分析).
    pub cause: String,
    /// Recorded.
    pub created_at: Timestamp,
}

/// Body of `POST /api/v1/drills/{id}/findings`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFinding {
    /// The problem.
    pub problem: String,
    /// Its cause.
    pub cause: String,
}

/// A corrective action.
#[derive(Debug, Clone, Serialize, JsonSchema, sqlx::FromRow)]
pub struct CorrectiveAction {
    /// Id.
    pub id: i64,
    /// Drill it came from.
    pub drill_id: i64,
    /// Finding it answers.
    pub finding_id: Option<i64>,
    /// Region (the drill's).
    pub region_code: String,
    /// What is to be done.
    pub action: String,
    /// Unit responsible.
    pub owner_unit: String,
    /// Due date.
    pub due_on: NaiveDate,
    /// `open`, `done` or `verified`.
    pub status: String,
    /// When marked done.
    pub done_at: Option<Timestamp>,
    /// When verified.
    pub verified_at: Option<Timestamp>,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

/// Body of `POST /api/v1/drills/{id}/actions`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAction {
    /// Finding it answers (of the same drill).
    pub finding_id: Option<i64>,
    /// What is to be done.
    pub action: String,
    /// Unit responsible.
    pub owner_unit: String,
    /// Due date (YYYY-MM-DD).
    pub due_on: NaiveDate,
}

/// Inserts a finding.
pub async fn insert_finding(tx: &mut Tx, drill_id: i64, f: &NewFinding, now: Timestamp) -> Result<i64, sqlx::Error> {
    with_tx!(tx, |c| sqlx::query_scalar(
        "INSERT INTO drill_findings (drill_id, problem, cause, created_at) VALUES ($1, $2, $3, $4) RETURNING id"
    )
    .bind(drill_id)
    .bind(f.problem.trim())
    .bind(f.cause.trim())
    .bind(now)
    .fetch_one(c)
    .await)
}

/// A drill's findings.
pub async fn findings(db: &Db, drill_id: i64) -> Result<Vec<Finding>, sqlx::Error> {
    with_db!(db, |p| sqlx::query_as::<_, Finding>(
        "SELECT id, drill_id, problem, cause, created_at FROM drill_findings WHERE drill_id = $1 ORDER BY id"
    )
    .bind(drill_id)
    .fetch_all(p)
    .await)
}

/// Inserts a corrective action.
pub async fn insert_action(
    tx: &mut Tx,
    drill_id: i64,
    region: &str,
    a: &NewAction,
    now: Timestamp,
) -> Result<i64, sqlx::Error> {
    with_tx!(tx, |c| {
        sqlx::query_scalar(
        "INSERT INTO corrective_actions (drill_id, finding_id, region_code, action, owner_unit, due_on, status, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $7) RETURNING id"
    )
    .bind(drill_id)
    .bind(a.finding_id)
    .bind(region)
    .bind(a.action.trim())
    .bind(a.owner_unit.trim())
    .bind(a.due_on)
    .bind(now)
    .fetch_one(c)
    .await
    })
}

const ACTION_COLUMNS: &str = "id, drill_id, finding_id, region_code, action, owner_unit, due_on, status, done_at, verified_at, created_at, updated_at";

/// One corrective action.
pub async fn get_action(db: &Db, id: i64) -> Result<Option<CorrectiveAction>, sqlx::Error> {
    let sql = format!("SELECT {ACTION_COLUMNS} FROM corrective_actions WHERE id = $1");
    with_db!(db, |p| sqlx::query_as::<_, CorrectiveAction>(&sql).bind(id).fetch_optional(p).await)
}

/// A drill's corrective actions.
pub async fn actions_of(db: &Db, drill_id: i64) -> Result<Vec<CorrectiveAction>, sqlx::Error> {
    let sql = format!("SELECT {ACTION_COLUMNS} FROM corrective_actions WHERE drill_id = $1 ORDER BY id");
    with_db!(db, |p| sqlx::query_as::<_, CorrectiveAction>(&sql).bind(drill_id).fetch_all(p).await)
}

/// Filters of the corrective-action list.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionQuery {
    /// Only this status.
    pub status: Option<String>,
    /// Only actions past their due date and not done (true).
    pub overdue: Option<bool>,
    /// Page size (default 100, max 1000).
    pub limit: Option<crate::http::ctx::Limit>,
    /// Items to skip.
    pub offset: Option<crate::http::ctx::Offset>,
}

/// Corrective actions in the jurisdiction bounds; `today` decides what is overdue.
pub async fn list_actions(
    db: &Db,
    bounds: (&str, &str),
    q: &ActionQuery,
    today: NaiveDate,
    limit: i64,
    offset: i64,
) -> Result<(Vec<CorrectiveAction>, i64), sqlx::Error> {
    let overdue = q.overdue.unwrap_or(false);
    const WHERE: &str = "WHERE region_code >= $1 AND region_code <= $2 AND ($3 IS NULL OR status = $3)
        AND ($4 = FALSE OR (status = 'open' AND due_on < $5))";
    let sql = format!("SELECT {ACTION_COLUMNS} FROM corrective_actions {WHERE} ORDER BY due_on, id LIMIT $6 OFFSET $7");
    let count = format!("SELECT COUNT(*) FROM corrective_actions {WHERE}");
    with_db!(db, |p| {
        let items = sqlx::query_as::<_, CorrectiveAction>(&sql)
            .bind(bounds.0)
            .bind(bounds.1)
            .bind(&q.status)
            .bind(overdue)
            .bind(today)
            .bind(limit)
            .bind(offset)
            .fetch_all(p)
            .await?;
        let total: i64 = sqlx::query_scalar(&count)
            .bind(bounds.0)
            .bind(bounds.1)
            .bind(&q.status)
            .bind(overdue)
            .bind(today)
            .fetch_one(p)
            .await?;
        Ok((items, total))
    })
}

/// The corrective-action lifecycle: open → done → verified (done may be reopened).
pub const ACTION: crate::transition::Lifecycle = crate::transition::Lifecycle::new("corrective_actions", "整改措施");

/// Moves an action to `status` from the one state that step starts from, stamping the time.
/// Loses with a conflict when a concurrent step moved it first.
pub async fn set_action_status(
    tx: &mut Tx,
    id: i64,
    status: &str,
    now: Timestamp,
) -> Result<(), crate::transition::TransitionError> {
    let none: Option<Timestamp> = None;
    match status {
        "done" => crate::transition!(tx, ACTION, id, from ["open"] => "done",
            set { "done_at" = now, "updated_at" = now }),
        "verified" => crate::transition!(tx, ACTION, id, from ["done"] => "verified",
            set { "verified_at" = now, "updated_at" = now }),
        _ => crate::transition!(tx, ACTION, id, from ["done"] => "open",
            set { "done_at" = none, "verified_at" = none, "updated_at" = now }),
    }
}
