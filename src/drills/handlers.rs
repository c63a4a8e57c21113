//! Drill handlers: the calendar and the lifecycle.

use warp::http::StatusCode;
use warp::reply::Response;

use super::indicators;
use super::reminders;
use super::routes::{Cancel, DrillPatch, DrillQuery, NewDrill, Postpone};
use super::validate::*;
use super::{Actual, DEFAULT_REMINDER_OFFSETS, Drill, Evaluation, Status, series, store};
use crate::audit::{self, Change};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::http::Ctx;
use crate::http::ctx::{Page, json, json_status, page};
use crate::regions::RegionCode;
use crate::scheduler::cron_expr::CronExpr;

/// Loads the drill named in the path (the route's guard has checked access to it).
pub(super) async fn load(c: &Ctx) -> ApiResult<Drill> {
    let id = c.id_param("id")?;
    store::get(&c.app.db, id).await?.ok_or_else(|| ApiError::NotFound(format!("演练 {id} 不存在")))
}

pub(super) async fn list(c: Ctx) -> ApiResult<Response> {
    let p = c.caller()?;
    let q: DrillQuery = c.query()?;
    let (limit, offset) = page(q.limit, q.offset)?;
    let bounds = bounds_for(p, q.region.as_ref())?;
    let f = store::Filter { bounds, from: q.from, to: q.to, status: q.status, plan_id: q.plan };
    let (items, total) = store::list(&c.app.db, &f, limit, offset).await?;
    json(&Page { items, total })
}

/// Bounds of the caller's jurisdiction, narrowed to `region` when given (the feed, which has no
/// route guard because a feed token authenticates it, relies on the check here).
pub fn bounds_for(p: &Principal, region: Option<&RegionCode>) -> ApiResult<(String, String)> {
    match region {
        None => Ok(p.scope.bounds()),
        Some(r) => {
            p.require_region(r.as_str())?;
            Ok(crate::auth::Scope::of(r).bounds())
        }
    }
}

pub(super) async fn create(c: Ctx) -> ApiResult<Response> {
    let b: NewDrill = c.json()?;
    let mut errors = Vec::new();
    check_text("title", &b.title, 200, true, &mut errors);
    check_text("organiser_unit", &b.organiser_unit, 200, true, &mut errors);
    check_text("place_name", &b.place_name, 200, true, &mut errors);
    check_text("objective", &b.objective, 4000, false, &mut errors);
    check_times(b.starts_at, b.ends_at, &mut errors);
    check_location(b.lon, b.lat, &mut errors);
    let offsets = b.reminder_offsets.clone().unwrap_or_else(|| DEFAULT_REMINDER_OFFSETS.to_vec());
    check_offsets(&offsets, &mut errors);
    let recurrence = match &b.recurrence {
        Some(expr) => match CronExpr::parse(expr) {
            Ok(c) => Some(c),
            Err(m) => {
                errors.push(FieldError::field("recurrence", m));
                None
            }
        },
        None => None,
    };
    if crate::regions::store::get(&c.app.db, b.region.as_str()).await?.is_none() {
        errors.push(FieldError::field("region", format!("区划 {} 不存在", b.region)));
    }
    check_links(&c, b.region.as_str(), &b.plan_ids, &b.team_codes, &mut errors).await?;
    fail(errors)?;
    let now = c.now();
    let d = Drill {
        id: 0,
        series_id: None,
        recurrence: recurrence.as_ref().map(|r| r.as_str().to_string()),
        title: b.title.trim().to_string(),
        form: b.form,
        scope: b.scope,
        purpose: b.purpose,
        objective: b.objective.trim().to_string(),
        region_code: b.region.to_string(),
        organiser_unit: b.organiser_unit.trim().to_string(),
        participating_units: b
            .participating_units
            .iter()
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
            .collect(),
        plan_ids: b.plan_ids.clone(),
        team_codes: b.team_codes.clone(),
        place_name: b.place_name.trim().to_string(),
        lon: b.lon,
        lat: b.lat,
        starts_at: b.starts_at,
        ends_at: b.ends_at,
        status: Status::Planned,
        status_label: Status::Planned.label(),
        reminder_offsets: offsets,
        postponed_from: None,
        cancel_reason: None,
        actual: None,
        evaluation: None,
        sequence: 0,
        created_at: now,
        updated_at: now,
    };
    let actor = c.actor()?;
    let mut tx = c.app.db.begin().await?;
    let id = store::insert(&mut tx, &d).await?;
    let mut d = Drill { id, ..d };
    if recurrence.is_some() {
        d.series_id = Some(id);
        store::update_series(&mut tx, id, id).await?;
    }
    reminders::plan(&mut tx, &d, now).await?;
    audit::record(
        &mut tx,
        &actor,
        now,
        Change {
            action: "create",
            entity_type: "drill",
            entity_id: &id.to_string(),
            region_code: Some(&d.region_code),
            before: None,
            after: Some(to_value(&d)?),
        },
    )
    .await?;
    if let Some(series) = d.series_id {
        series::ensure_next(&mut tx, &actor, series, now).await?;
    }
    tx.commit().await?;
    c.app.wake.notify_one();
    let d = store::get(&c.app.db, id).await?.ok_or_else(|| anyhow::anyhow!("drill vanished"))?;
    json_status(StatusCode::CREATED, &d)
}

pub(super) async fn get(c: Ctx) -> ApiResult<Response> {
    let d = load(&c).await?;
    json(&d)
}

/// States a drill can be edited, started, cancelled or postponed from.
const UPCOMING: &[Status] = &[Status::Planned, Status::Postponed];

/// The drill lifecycle (every change, status or not, bumps `sequence`).
pub const DRILL: crate::transition::Lifecycle = crate::transition::Lifecycle::new("drills", "演练");

/// Saves a changed drill with its audit row (and re-plans reminders). The drill must still be in
/// one of `from` and unchanged since `before` was read (same `sequence`): one
/// [`transition!`](crate::transition!) decides that inside the transaction, so of two steps
/// arriving together (start and cancel, two edits) one wins and the other gets 409 and writes
/// nothing.
pub(super) async fn save(c: &Ctx, before: &Drill, mut after: Drill, action: &str, from: &[Status]) -> ApiResult<Drill> {
    let now = c.now();
    after.updated_at = now;
    after.sequence = before.sequence + 1;
    after.status_label = after.status.label();
    let actor = c.actor()?;
    let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
    let mut tx = c.app.db.begin().await?;
    crate::transition!(&mut tx, DRILL, before.id, from_any &from => after.status.as_str(),
        set { "sequence" = after.sequence, "updated_at" = now }, guard { "sequence" = before.sequence })?;
    store::update(&mut tx, &after).await?;
    reminders::plan(&mut tx, &after, now).await?;
    audit::record(
        &mut tx,
        &actor,
        now,
        Change {
            action,
            entity_type: "drill",
            entity_id: &after.id.to_string(),
            region_code: Some(&after.region_code),
            before: Some(to_value(before)?),
            after: Some(to_value(&after)?),
        },
    )
    .await?;
    if let Some(series) = after.series_id
        && before.status.is_upcoming()
        && !after.status.is_upcoming()
    {
        series::ensure_next(&mut tx, &actor, series, now).await?;
    }
    if after.status == Status::Completed && before.status != Status::Completed {
        // Only plans inside the caller's jurisdiction and the drill's region (audited on each).
        let p = c.caller()?;
        let (lo, hi) = p.scope.bounds();
        store::record_drilled(&mut tx, &actor, now, &after, (&lo, &hi)).await?;
    }
    tx.commit().await?;
    c.app.wake.notify_one();
    Ok(after)
}

/// Early answer for a step that cannot start from the drill's state as read (validation only:
/// [`save`]'s transition decides).
pub(super) fn require_status(d: &Drill, allowed: &[Status], what: &str) -> ApiResult<()> {
    if allowed.contains(&d.status) {
        Ok(())
    } else {
        Err(ApiError::StateConflict {
            detail: format!("演练 {} 当前状态为「{}」（{}），不能{what}", d.id, d.status.label(), d.status.as_str()),
            current: d.status.as_str().to_string(),
        })
    }
}

pub(super) async fn patch(c: Ctx) -> ApiResult<Response> {
    let b: DrillPatch = c.json()?;
    let before = load(&c).await?;
    require_status(&before, &[Status::Planned, Status::Postponed], "修改")?;
    let mut d = before.clone();
    let mut errors = Vec::new();
    if let Some(v) = b.title {
        check_text("title", &v, 200, true, &mut errors);
        d.title = v.trim().to_string();
    }
    if let Some(v) = b.objective {
        check_text("objective", &v, 4000, false, &mut errors);
        d.objective = v.trim().to_string();
    }
    if let Some(v) = b.organiser_unit {
        check_text("organiser_unit", &v, 200, true, &mut errors);
        d.organiser_unit = v.trim().to_string();
    }
    if let Some(v) = b.place_name {
        check_text("place_name", &v, 200, true, &mut errors);
        d.place_name = v.trim().to_string();
    }
    if let Some(v) = b.participating_units {
        d.participating_units = v;
    }
    if let Some(v) = b.plan_ids {
        d.plan_ids = v;
    }
    if let Some(v) = b.team_codes {
        d.team_codes = v;
    }
    check_links(&c, &d.region_code, &d.plan_ids, &d.team_codes, &mut errors).await?;
    if b.lon.is_some() || b.lat.is_some() {
        check_location(b.lon, b.lat, &mut errors);
        (d.lon, d.lat) = (b.lon, b.lat);
    }
    if let Some(v) = b.reminder_offsets {
        check_offsets(&v, &mut errors);
        d.reminder_offsets = v;
    }
    fail(errors)?;
    json(&save(&c, &before, d, "update", UPCOMING).await?)
}

pub(super) async fn start(c: Ctx) -> ApiResult<Response> {
    let before = load(&c).await?;
    require_status(&before, &[Status::Planned, Status::Postponed], "开始")?;
    let d = Drill { status: Status::InProgress, ..before.clone() };
    json(&save(&c, &before, d, "start", UPCOMING).await?)
}

pub(super) async fn complete(c: Ctx) -> ApiResult<Response> {
    let actual: Actual = c.json()?;
    let before = load(&c).await?;
    require_status(&before, &[Status::Planned, Status::Postponed, Status::InProgress], "完成")?;
    let mut errors = Vec::new();
    if actual.participant_count < 0 {
        errors.push(FieldError::field("participant_count", "参演人数不能为负"));
    }
    check_text("scenario", &actual.scenario, 8000, true, &mut errors);
    fail(errors)?;
    let d = Drill { status: Status::Completed, actual: Some(actual), ..before.clone() };
    json(&save(&c, &before, d, "complete", &[Status::Planned, Status::Postponed, Status::InProgress]).await?)
}

pub(super) async fn evaluate(c: Ctx) -> ApiResult<Response> {
    let mut e: Evaluation = c.json()?;
    let before = load(&c).await?;
    require_status(&before, &[Status::Completed, Status::Evaluated], "评估（须先完成演练）")?;
    indicators::score(before.form, &mut e).map_err(|errs| {
        let errors: Vec<FieldError> = errs.into_iter().map(|(f, m)| FieldError::field(f, m)).collect();
        ApiError::invalid_many(format!("评估有 {} 处错误：{}", errors.len(), errors[0].message), errors)
    })?;
    let d = Drill { status: Status::Evaluated, evaluation: Some(e), ..before.clone() };
    json(&save(&c, &before, d, "evaluate", &[Status::Completed, Status::Evaluated]).await?)
}

pub(super) async fn cancel(c: Ctx) -> ApiResult<Response> {
    let b: Cancel = c.json()?;
    let before = load(&c).await?;
    require_status(&before, &[Status::Planned, Status::Postponed], "取消")?;
    if b.reason.trim().is_empty() {
        return Err(ApiError::invalid("reason", "请说明取消原因"));
    }
    let d = Drill { status: Status::Cancelled, cancel_reason: Some(b.reason.trim().to_string()), ..before.clone() };
    json(&save(&c, &before, d, "cancel", UPCOMING).await?)
}

pub(super) async fn postpone(c: Ctx) -> ApiResult<Response> {
    let b: Postpone = c.json()?;
    let before = load(&c).await?;
    require_status(&before, &[Status::Planned, Status::Postponed], "延期")?;
    let mut errors = Vec::new();
    check_times(b.starts_at, b.ends_at, &mut errors);
    if b.starts_at <= c.now() {
        errors.push(FieldError::field("starts_at", "新的开始时间应在将来"));
    }
    fail(errors)?;
    let d = Drill {
        status: Status::Postponed,
        postponed_from: Some(before.postponed_from.unwrap_or(before.starts_at)),
        starts_at: b.starts_at,
        ends_at: b.ends_at,
        ..before.clone()
    };
    json(&save(&c, &before, d, "postpone", UPCOMING).await?)
}

pub(super) async fn list_reminders(c: Ctx) -> ApiResult<Response> {
    let d = load(&c).await?;
    json(&reminders::list(&c.app.db, d.id).await?)
}
