//! Handlers for findings, corrective actions and the summary report.

use warp::http::StatusCode;
use warp::reply::Response;

use super::actions::{self, ActionQuery, CorrectiveAction, Finding, NewAction, NewFinding};
use super::handlers::load;
use super::routes::ActionPatch;
use super::validate::*;
use super::{report, store};
use crate::audit::{self, Change};
use crate::auth::Perm;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::http::Ctx;
use crate::http::ctx::{Page, body, json, json_status, page};

pub(super) async fn list_findings(c: Ctx) -> ApiResult<Response> {
    let d = load(&c).await?;
    json(&actions::findings(&c.app.db, d.id).await?)
}

pub(super) async fn add_finding(c: Ctx) -> ApiResult<Response> {
    let b: NewFinding = c.json()?;
    let d = load(&c).await?;
    let mut errors = Vec::new();
    check_text("problem", &b.problem, 2000, true, &mut errors);
    check_text("cause", &b.cause, 2000, false, &mut errors);
    fail(errors)?;
    let now = c.now();
    let mut tx = c.app.db.begin().await?;
    let id = actions::insert_finding(&mut tx, d.id, &b, now).await?;
    let f =
        Finding { id, drill_id: d.id, problem: b.problem.trim().into(), cause: b.cause.trim().into(), created_at: now };
    audit::record(
        &mut tx,
        &c.actor()?,
        now,
        Change {
            action: "create",
            entity_type: "drill_finding",
            entity_id: &id.to_string(),
            region_code: Some(&d.region_code),
            before: None,
            after: Some(to_value(&f)?),
        },
    )
    .await?;
    tx.commit().await?;
    json_status(StatusCode::CREATED, &f)
}

pub(super) async fn list_drill_actions(c: Ctx) -> ApiResult<Response> {
    let d = load(&c).await?;
    json(&actions::actions_of(&c.app.db, d.id).await?)
}

pub(super) async fn add_action(c: Ctx) -> ApiResult<Response> {
    let b: NewAction = c.json()?;
    let d = load(&c).await?;
    let mut errors = Vec::new();
    check_text("action", &b.action, 2000, true, &mut errors);
    check_text("owner_unit", &b.owner_unit, 200, true, &mut errors);
    if let Some(fid) = b.finding_id
        && !actions::findings(&c.app.db, d.id).await?.iter().any(|f| f.id == fid)
    {
        errors.push(FieldError::field("finding_id", format!("演练 {} 没有编号为 {fid} 的问题", d.id)));
    }
    fail(errors)?;
    let now = c.now();
    let mut tx = c.app.db.begin().await?;
    let id = actions::insert_action(&mut tx, d.id, &d.region_code, &b, now).await?;
    let a = CorrectiveAction {
        id,
        drill_id: d.id,
        finding_id: b.finding_id,
        region_code: d.region_code.clone(),
        action: b.action.trim().into(),
        owner_unit: b.owner_unit.trim().into(),
        due_on: b.due_on,
        status: "open".into(),
        done_at: None,
        verified_at: None,
        created_at: now,
        updated_at: now,
    };
    audit::record(
        &mut tx,
        &c.actor()?,
        now,
        Change {
            action: "create",
            entity_type: "corrective_action",
            entity_id: &id.to_string(),
            region_code: Some(&d.region_code),
            before: None,
            after: Some(to_value(&a)?),
        },
    )
    .await?;
    tx.commit().await?;
    json_status(StatusCode::CREATED, &a)
}

pub(super) async fn list_actions(c: Ctx) -> ApiResult<Response> {
    let p = c.caller()?;
    let q: ActionQuery = c.query()?;
    let (limit, offset) = page(q.limit, q.offset)?;
    let (lo, hi) = p.scope.bounds();
    let today = c.now().0.with_timezone(&crate::time::LOCAL_TZ).date_naive();
    let (items, total) = actions::list_actions(&c.app.db, (&lo, &hi), &q, today, limit, offset).await?;
    json(&Page { items, total })
}

pub(super) async fn patch_action(c: Ctx) -> ApiResult<Response> {
    let b: ActionPatch = c.json()?;
    let p = c.caller()?;
    let id = c.id_param("id")?;
    let before =
        actions::get_action(&c.app.db, id).await?.ok_or_else(|| ApiError::NotFound(format!("整改措施 {id} 不存在")))?;
    let allowed = matches!(
        (before.status.as_str(), b.status.as_str()),
        ("open", "done") | ("done", "verified") | ("done", "open")
    );
    if !["open", "done", "verified"].contains(&b.status.as_str()) {
        return Err(ApiError::invalid("status", "状态应为 open、done 或 verified"));
    }
    if !allowed {
        return Err(ApiError::StateConflict {
            detail: format!("整改措施当前状态为 {}，不能改为 {}（open → done → verified）", before.status, b.status),
            current: before.status.clone(),
        });
    }
    if b.status == "verified" {
        p.require(Perm::Decide)?;
    }
    let now = c.now();
    let mut after = CorrectiveAction { status: b.status.clone(), updated_at: now, ..before.clone() };
    match b.status.as_str() {
        "done" => after.done_at = Some(now),
        "verified" => after.verified_at = Some(now),
        _ => (after.done_at, after.verified_at) = (None, None),
    }
    let mut tx = c.app.db.begin().await?;
    actions::set_action_status(&mut tx, id, &b.status, now).await?;
    audit::record(
        &mut tx,
        &c.actor()?,
        now,
        Change {
            action: "update",
            entity_type: "corrective_action",
            entity_id: &id.to_string(),
            region_code: Some(&after.region_code),
            before: Some(to_value(&before)?),
            after: Some(to_value(&after)?),
        },
    )
    .await?;
    tx.commit().await?;
    json(&after)
}

pub(super) async fn get_report(c: Ctx) -> ApiResult<Response> {
    let d = load(&c).await?;
    let findings = actions::findings(&c.app.db, d.id).await?;
    let acts = actions::actions_of(&c.app.db, d.id).await?;
    let titles = store::plan_titles(&c.app.db, &d.plan_ids).await.unwrap_or_default();
    let html = crate::blocking::cpu(move || report::render(&d, &findings, &acts, &titles)).await?;
    Ok(body("text/html; charset=utf-8", html))
}
