//! Close and learn: requisitions linked to the event, what is left to return and compensate,
//! recovery tasks (恢复重建), and the investigation and assessment (调查评估) whose lessons become
//! plan revisions and corrective actions (for an exercise: the drill's findings and actions).

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use warp::http::StatusCode;
use warp::reply::Response;

use super::board::board;
use super::handlers::{load, load_tx};
use super::store::{self, Assessment, Lesson, Task};
use super::{EventStatus, TASK, audit_event, entry};
use crate::auth::Perm;
use crate::error::{ApiError, ApiResult};
use crate::forces::text;
use crate::http::Ctx;
use crate::http::ctx::{json, json_status};
use crate::plans::RevisionReason;
use crate::plans::lifecycle::Revision;
use crate::supplies::requisitions::Requisition;
use crate::{transition, with_db, with_tx};

/// Body of `POST /api/v1/events/{id}/requisitions`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkRequisition {
    /// A requisition recorded with `POST /api/v1/requisitions`.
    pub requisition_id: i64,
}

/// Body of `POST /api/v1/events/{id}/tasks`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    /// What is to be done (e.g. 修复受损棚圈).
    pub title: String,
    /// Unit responsible.
    pub owner_unit: String,
    /// Due date.
    pub due_on: NaiveDate,
}

/// Body of `POST /api/v1/events/{id}/assessment`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAssessment {
    /// Causes of the event.
    pub causes: String,
    /// Assessment of the response.
    pub summary: String,
    /// Lessons (problems, causes, and what follows from each).
    #[serde(default)]
    pub lessons: Vec<Lesson>,
}

/// A call-up of the event with its compensation claim, if any.
#[derive(Debug, Serialize, JsonSchema, sqlx::FromRow)]
pub struct CallUpCompensation {
    /// Call-up.
    pub callup_id: i64,
    /// Team code.
    pub team_code: String,
    /// Call-up state.
    pub callup_status: String,
    /// Claim state (`claimed`, `approved`, `paid`), none when no claim was made.
    pub claim_status: Option<String>,
}

/// What is left after the response.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CloseOut {
    /// Linked requisitions not yet returned.
    pub to_return: Vec<Requisition>,
    /// Linked requisitions whose compensation is pending.
    pub to_compensate: Vec<Requisition>,
    /// Call-ups of the event the team accepted, with their compensation claims (to decide).
    pub callup_compensation: Vec<CallUpCompensation>,
    /// Open recovery and corrective tasks.
    pub open_tasks: Vec<Task>,
}

pub(super) async fn link_requisition(c: Ctx) -> ApiResult<Response> {
    let b: LinkRequisition = c.json()?;
    let (actor, now) = (c.actor()?, c.now());
    let mut tx = c.app.db.begin().await?;
    let ev = load_tx(&c, &mut tx, Perm::Write).await?;
    let sql = format!("{} WHERE id = $1", crate::supplies::requisitions::SELECT);
    let r = with_tx!(&mut tx, |conn| sqlx::query_as::<_, Requisition>(&sql)
        .bind(b.requisition_id)
        .fetch_optional(conn)
        .await)?
    .ok_or_else(|| ApiError::invalid("requisition_id", format!("征用记录 {} 不存在", b.requisition_id)))?;
    c.principal()?.require_region(&r.region_code)?;
    if !store::link_requisition(&mut tx, ev.id, r.id).await? {
        return Err(ApiError::Conflict(format!("征用记录 {} 已关联本事件", r.id)));
    }
    entry(
        &mut tx,
        &ev,
        &actor,
        now,
        "requisition",
        &format!("{}征用 {} 的物资 {} 共 {}（{}）", ev.tag(), r.owner, r.item_code, r.quantity, r.condition),
    )
    .await?;
    audit_event(
        &mut tx,
        &actor,
        now,
        "link_requisition",
        Some(&ev),
        &ev,
        Some(serde_json::json!({"requisition_id": r.id})),
    )
    .await?;
    tx.commit().await?;
    json_status(StatusCode::CREATED, &board(&c, ev).await?)
}

pub(super) async fn close_out(c: Ctx) -> ApiResult<Response> {
    let ev = load(&c, Perm::Read).await?;
    let db = &c.app.db;
    let sql = format!(
        "{} WHERE id IN (SELECT requisition_id FROM event_requisitions WHERE event_id = $1) ORDER BY id",
        crate::supplies::requisitions::SELECT
    );
    let reqs = with_db!(db, |p| sqlx::query_as::<_, Requisition>(&sql).bind(ev.id).fetch_all(p).await)?;
    let callup_compensation = with_db!(db, |p| sqlx::query_as::<_, CallUpCompensation>(
        "SELECT c.id AS callup_id, t.code AS team_code, c.status AS callup_status, k.status AS claim_status
         FROM event_lines l JOIN callups c ON c.id = l.callup_id JOIN teams t ON t.id = c.team_id
         LEFT JOIN compensation_claims k ON k.callup_id = c.id
         WHERE l.event_id = $1 AND c.responded_at IS NOT NULL AND c.decline_reason IS NULL ORDER BY c.id"
    )
    .bind(ev.id)
    .fetch_all(p)
    .await)?;
    let out = CloseOut {
        to_return: reqs.iter().filter(|r| r.returned_on.is_none()).cloned().collect(),
        to_compensate: reqs
            .iter()
            .filter(|r| r.compensation_status == crate::supplies::CompensationStatus::Pending)
            .cloned()
            .collect(),
        callup_compensation,
        open_tasks: store::tasks(db, ev.id).await?.into_iter().filter(|t| t.status == "open").collect(),
    };
    json(&out)
}

pub(super) async fn add_task(c: Ctx) -> ApiResult<Response> {
    let b: NewTask = c.json()?;
    let (actor, now) = (c.actor()?, c.now());
    let mut tx = c.app.db.begin().await?;
    let ev = load_tx(&c, &mut tx, Perm::Write).await?;
    let t = Task {
        id: 0,
        kind: "recovery".into(),
        title: text("title", &b.title, 500)?,
        owner_unit: text("owner_unit", &b.owner_unit, 200)?,
        due_on: b.due_on,
        status: "open".into(),
    };
    let id = store::insert_task(&mut tx, ev.id, &t, &actor.name, now).await?;
    entry(
        &mut tx,
        &ev,
        &actor,
        now,
        "task",
        &format!("{}恢复重建任务：{}（{}，{} 前完成）", ev.tag(), t.title, t.owner_unit, t.due_on),
    )
    .await?;
    audit_event(&mut tx, &actor, now, "task", Some(&ev), &ev, Some(serde_json::json!({"task_id": id}))).await?;
    tx.commit().await?;
    json_status(StatusCode::CREATED, &store::tasks(&c.app.db, ev.id).await?)
}

pub(super) async fn task_done(c: Ctx) -> ApiResult<Response> {
    let (actor, now) = (c.actor()?, c.now());
    let task_id = c.id_param("task")?;
    let mut tx = c.app.db.begin().await?;
    let ev = load_tx(&c, &mut tx, Perm::Write).await?;
    let owned: Option<i64> =
        with_tx!(&mut tx, |conn| sqlx::query_scalar("SELECT id FROM event_tasks WHERE id = $1 AND event_id = $2")
            .bind(task_id)
            .bind(ev.id)
            .fetch_optional(conn)
            .await)?;
    if owned.is_none() {
        return Err(ApiError::NotFound(format!("本事件没有任务 {task_id}")));
    }
    transition!(&mut tx, TASK, task_id, from ["open"] => "done", set { "updated_at" = now })?;
    entry(&mut tx, &ev, &actor, now, "task", &format!("{}任务 {task_id} 完成", ev.tag())).await?;
    audit_event(&mut tx, &actor, now, "task_done", Some(&ev), &ev, Some(serde_json::json!({"task_id": task_id})))
        .await?;
    tx.commit().await?;
    json(&store::tasks(&c.app.db, ev.id).await?)
}

pub(super) async fn assess(c: Ctx) -> ApiResult<Response> {
    let b: NewAssessment = c.json()?;
    let causes = text("causes", &b.causes, 10_000)?;
    let summary = text("summary", &b.summary, 10_000)?;
    let mut lessons = Vec::new();
    for (i, l) in b.lessons.iter().enumerate() {
        let mut l = l.clone();
        l.problem = text(&format!("lessons[{i}].problem"), &l.problem, 2000)?;
        l.cause = text(&format!("lessons[{i}].cause"), &l.cause, 2000)?;
        if let Some(a) = &mut l.action {
            a.action = text(&format!("lessons[{i}].action.action"), &a.action, 2000)?;
            a.owner_unit = text(&format!("lessons[{i}].action.owner_unit"), &a.owner_unit, 200)?;
        }
        lessons.push(l);
    }
    let (actor, now) = (c.actor()?, c.now());
    let mut tx = c.app.db.begin().await?;
    let ev = load_tx(&c, &mut tx, Perm::Decide).await?;
    if ev.status != EventStatus::Terminated {
        return Err(ApiError::StateConflict {
            detail: "响应终止后才能作调查评估".into(),
            current: ev.status.code().into(),
        });
    }
    let a = Assessment {
        causes,
        summary,
        lessons: sqlx::types::Json(lessons.clone()),
        assessed_by: actor.name.clone(),
        assessed_at: now,
    };
    if !store::insert_assessment(&mut tx, ev.id, &a).await? {
        return Err(ApiError::Conflict("本事件已有调查评估".into()));
    }
    let mut revised = None;
    if let Some(plan_id) = ev.plan_id
        && lessons.iter().any(|l| l.revise_plan)
    {
        let note: Vec<&str> = lessons.iter().filter(|l| l.revise_plan).map(|l| l.problem.as_str()).collect();
        let r = Revision {
            reason: RevisionReason::DrillOrEventFindings,
            note: Some(format!("{}事件{}调查评估：{}", ev.tag(), ev.id, note.join("；"))),
        };
        revised = Some(crate::plans::lifecycle::revise(&mut tx, &actor, now, plan_id, &r, None, false).await?);
    }
    let mut findings = Vec::new();
    for l in &lessons {
        match (ev.drill_id, &l.action) {
            // An exercise's lessons are the drill's findings and corrective actions.
            (Some(drill), action) => {
                let f = crate::drills::actions::NewFinding { problem: l.problem.clone(), cause: l.cause.clone() };
                let fid = crate::drills::actions::insert_finding(&mut tx, drill, &f, now).await?;
                if let Some(a) = action {
                    let na = crate::drills::actions::NewAction {
                        finding_id: Some(fid),
                        action: a.action.clone(),
                        owner_unit: a.owner_unit.clone(),
                        due_on: a.due_on,
                    };
                    crate::drills::actions::insert_action(&mut tx, drill, &ev.region_code, &na, now).await?;
                }
                findings.push(fid);
            }
            (None, Some(a)) => {
                let t = Task {
                    id: 0,
                    kind: "corrective".into(),
                    title: a.action.clone(),
                    owner_unit: a.owner_unit.clone(),
                    due_on: a.due_on,
                    status: "open".into(),
                };
                store::insert_task(&mut tx, ev.id, &t, &actor.name, now).await?;
            }
            (None, None) => {}
        }
    }
    entry(
        &mut tx,
        &ev,
        &actor,
        now,
        "assessment",
        &format!("{}完成调查评估，总结经验教训 {} 条", ev.tag(), lessons.len()),
    )
    .await?;
    audit_event(
        &mut tx,
        &actor,
        now,
        "assess",
        Some(&ev),
        &ev,
        Some(serde_json::json!({"plan_revised_to_version": revised, "drill_findings": findings})),
    )
    .await?;
    tx.commit().await?;
    json_status(StatusCode::CREATED, &board(&c, ev).await?)
}
