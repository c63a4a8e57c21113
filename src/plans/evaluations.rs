//! Plan evaluations (预案评估): recorded against the version in force; the latest one restarts
//! the evaluation clock.

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::Deserialize;

use super::lifecycle::{load, state_error, to_value};
use super::{Evaluation, RevisionReason};
use crate::audit::{self, Actor, Change};
use crate::db::{Db, Tx};
use crate::error::ApiError;
use crate::time::Timestamp;
use crate::{with_db, with_tx};

/// Body of `POST /api/v1/plans/{id}/evaluations`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvaluationInput {
    /// Date of the evaluation (not in the future).
    pub evaluated_on: NaiveDate,
    /// Who evaluated.
    pub evaluator: String,
    /// Conclusion.
    pub conclusion: String,
    /// Whether the plan needs revision.
    pub revision_needed: bool,
    /// The trigger, required when revision is needed.
    #[serde(default)]
    pub revision_reason: Option<RevisionReason>,
    /// Explanation.
    #[serde(default)]
    pub revision_note: Option<String>,
}

/// Records an evaluation of the version in force.
pub async fn record(
    tx: &mut Tx,
    actor: &Actor,
    now: Timestamp,
    today: NaiveDate,
    id: i64,
    e: &EvaluationInput,
) -> Result<Evaluation, ApiError> {
    for (field, v) in [("evaluator", &e.evaluator), ("conclusion", &e.conclusion)] {
        if v.trim().is_empty() {
            return Err(ApiError::invalid(field, format!("{field} 不能为空")));
        }
    }
    if e.evaluated_on > today {
        return Err(ApiError::invalid("evaluated_on", "评估日期不能晚于今天"));
    }
    if e.revision_needed && e.revision_reason.is_none() {
        return Err(ApiError::invalid("revision_reason", "需要修订时须给出修订原因"));
    }
    let (plan, latest) = load(tx, id).await?;
    let Some(cur) = plan.current_version else {
        return Err(state_error(&latest, "尚无已印发的版本可评估"));
    };
    let mut ev = Evaluation {
        id: 0,
        plan_id: id,
        version: cur,
        evaluated_on: e.evaluated_on,
        evaluator: e.evaluator.trim().to_string(),
        conclusion: e.conclusion.trim().to_string(),
        revision_needed: e.revision_needed,
        revision_reason: e.revision_reason,
        revision_note: e.revision_note.clone(),
        created_by: actor.name.clone(),
        created_at: now,
    };
    ev.id = insert(tx, &ev).await?;
    let id_s = id.to_string();
    audit::record(
        tx,
        actor,
        now,
        Change {
            action: "evaluate",
            entity_type: "plan",
            entity_id: &id_s,
            region_code: Some(&plan.region_code),
            before: None,
            after: Some(to_value(&ev)?),
        },
    )
    .await?;
    Ok(ev)
}

#[derive(Debug, sqlx::FromRow)]
struct EvaluationRow {
    id: i64,
    plan_id: i64,
    version: i64,
    evaluated_on: NaiveDate,
    evaluator: String,
    conclusion: String,
    revision_needed: bool,
    revision_reason: Option<String>,
    revision_note: Option<String>,
    created_by: String,
    created_at: Timestamp,
}

/// Evaluations of a plan, newest first.
pub async fn list(db: &Db, plan_id: i64) -> Result<Vec<Evaluation>, sqlx::Error> {
    let rows = with_db!(db, |p| {
        sqlx::query_as::<_, EvaluationRow>(
        "SELECT id, plan_id, version, evaluated_on, evaluator, conclusion, revision_needed, revision_reason, revision_note, created_by, created_at
         FROM plan_evaluations WHERE plan_id = $1 ORDER BY evaluated_on DESC, id DESC"
    )
    .bind(plan_id)
    .fetch_all(p)
    .await
    })?;
    Ok(rows
        .into_iter()
        .map(|r| Evaluation {
            id: r.id,
            plan_id: r.plan_id,
            version: r.version,
            evaluated_on: r.evaluated_on,
            evaluator: r.evaluator,
            conclusion: r.conclusion,
            revision_needed: r.revision_needed,
            revision_reason: r.revision_reason.as_deref().and_then(RevisionReason::parse),
            revision_note: r.revision_note,
            created_by: r.created_by,
            created_at: r.created_at,
        })
        .collect())
}

/// Latest evaluation date of a plan.
pub async fn last_evaluated_on(db: &Db, plan_id: i64) -> Result<Option<NaiveDate>, sqlx::Error> {
    with_db!(db, |p| sqlx::query_scalar("SELECT MAX(evaluated_on) FROM plan_evaluations WHERE plan_id = $1")
        .bind(plan_id)
        .fetch_one(p)
        .await)
}

/// Inserts an evaluation; returns its id.
pub async fn insert(tx: &mut Tx, e: &Evaluation) -> Result<i64, sqlx::Error> {
    with_tx!(tx, |c| {
        sqlx::query_scalar(
        "INSERT INTO plan_evaluations (plan_id, version, evaluated_on, evaluator, conclusion, revision_needed, revision_reason, revision_note, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id"
    )
    .bind(e.plan_id)
    .bind(e.version)
    .bind(e.evaluated_on)
    .bind(&e.evaluator)
    .bind(&e.conclusion)
    .bind(e.revision_needed)
    .bind(e.revision_reason.map(RevisionReason::code))
    .bind(&e.revision_note)
    .bind(&e.created_by)
    .bind(e.created_at)
    .fetch_one(c)
    .await
    })
}
