//! Event endpoints: open an event, information reports, notes, settings (the board and the list
//! are in [`super::board`], matching plans in [`super::matching`]).

use schemars::JsonSchema;
use serde::Deserialize;
use warp::http::StatusCode;
use warp::reply::Response;

use super::board::board;
pub use super::intake::{Figures, NewEvent};
use super::settings::{self, Settings};
use super::store::{self, Report};
use super::{Event, EventStatus, FIRST_REPORT, ReportKind, Severity, audit_event, banner_of, entry, notify};
use crate::auth::Perm;
use crate::db::Tx;
use crate::error::{ApiError, ApiResult};
use crate::forces::{opt_text, text};
use crate::http::Ctx;
use crate::http::ctx::{json, json_status};
use crate::regions::check_lon_lat;
use crate::time::Timestamp;
use crate::transition;

/// Body of `POST /api/v1/events/{id}/reports`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReport {
    /// 初报, 续报, 核报 or 终报.
    pub kind: ReportKind,
    /// Content.
    pub content: String,
    /// When it was sent (default now).
    #[serde(default)]
    pub reported_at: Option<Timestamp>,
    /// Revised grade.
    #[serde(default)]
    pub severity: Option<Severity>,
    /// Revised figures.
    #[serde(default, flatten)]
    pub figures: Figures,
}

/// Body of a note.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Note {
    /// Text.
    pub text: String,
}

/// Loads an event and checks the caller's permission in its region.
pub async fn load(c: &Ctx, perm: Perm) -> ApiResult<Event> {
    let p = c.require(perm)?;
    let id = c.id_param("id")?;
    let ev = store::get(&c.app.db, id).await?.ok_or_else(|| ApiError::NotFound(format!("突发事件 {id} 不存在")))?;
    p.require_in(perm, &ev.region_code)?;
    Ok(ev)
}

/// Loads an event inside a transaction and checks the caller's permission in its region.
pub async fn load_tx(c: &Ctx, tx: &mut Tx, perm: Perm) -> ApiResult<Event> {
    let p = c.require(perm)?;
    let id = c.id_param("id")?;
    let ev = store::get_tx(tx, id).await?.ok_or_else(|| ApiError::NotFound(format!("突发事件 {id} 不存在")))?;
    p.require_in(perm, &ev.region_code)?;
    Ok(ev)
}

pub(super) async fn create(c: Ctx) -> ApiResult<Response> {
    let p = c.require(Perm::Write)?;
    let b: NewEvent = c.json()?;
    p.require_in(Perm::Write, b.region_code.as_str())?;
    check_lon_lat(b.lon, b.lat).map_err(|m| ApiError::invalid("lon", m))?;
    let (actor, now) = (c.actor()?, c.now());
    let known_at = b.known_at.unwrap_or(now);
    if b.occurred_at > known_at {
        return Err(ApiError::invalid("occurred_at", "发生时间不能晚于获知时间"));
    }
    if b.exercise != b.drill_id.is_some() {
        return Err(ApiError::invalid(
            "drill_id",
            "演练模式（exercise: true）须关联演练，且只有演练模式事件可以关联演练",
        ));
    }
    let mut tx = c.app.db.begin().await?;
    if crate::regions::store::get_tx(&mut tx, b.region_code.as_str()).await?.is_none() {
        return Err(ApiError::invalid("region_code", format!("区划 {} 不存在", b.region_code)));
    }
    if let Some(d) = b.drill_id {
        let drill = crate::drills::store::get_tx(&mut tx, d)
            .await?
            .ok_or_else(|| ApiError::invalid("drill_id", format!("演练 {d} 不存在")))?;
        p.require_region(&drill.region_code)?;
    }
    let config = settings::load_tx(&mut tx).await?;
    let mut ev = Event {
        id: 0,
        region_code: b.region_code.as_str().to_string(),
        hazard: b.hazard,
        title: text("title", &b.title, 200)?,
        occurred_at: b.occurred_at,
        known_at,
        place: text("place", &b.place, 200)?,
        lon: b.lon,
        lat: b.lat,
        description: text("description", &b.description, 5000)?,
        dead: 0,
        injured: 0,
        missing: 0,
        trapped: 0,
        affected_people: 0,
        affected_households: 0,
        affected_livestock: 0,
        source: text("source", &b.source, 200)?,
        reporter: text("reporter", &b.reporter, 100)?,
        severity: b.severity,
        status: EventStatus::Reported,
        exercise: b.exercise,
        drill_id: b.drill_id,
        plan_id: None,
        plan_version: None,
        level: None,
        activated_at: None,
        terminated_at: None,
        terminated_by: None,
        termination_note: None,
        first_report_due: config.first_report_due(b.severity, b.hazard, known_at),
        first_report_at: None,
        first_report_state: "pending".into(),
        created_by: actor.name.clone(),
        created_at: now,
        updated_at: now,
    };
    b.figures.apply(&mut ev)?;
    ev.id = store::insert(&mut tx, &ev).await?;
    entry(
        &mut tx,
        &ev,
        &actor,
        known_at,
        "open",
        &format!(
            "{}接报：{}（{}，{}），来源：{}，报告人：{}；初报应于 {} 前报出",
            ev.tag(),
            ev.title,
            ev.hazard.label(),
            ev.severity.label(),
            ev.source,
            ev.reporter,
            ev.first_report_due.local_display()
        ),
    )
    .await?;
    audit_event(&mut tx, &actor, now, "create", None, &ev, None).await?;
    let regions = vec![ev.region_code.clone(), banner_of(&ev.region_code)];
    notify(
        &mut tx,
        &ev,
        now,
        "open",
        "event_opened",
        &regions,
        &format!("突发事件：{}", ev.title),
        &format!("{} {}，{}，地点：{}", ev.hazard.label(), ev.severity.label(), ev.description, ev.place),
    )
    .await?;
    tx.commit().await?;
    json_status(StatusCode::CREATED, &board(&c, ev).await?)
}

pub(super) async fn add_report(c: Ctx) -> ApiResult<Response> {
    let b: NewReport = c.json()?;
    let content = text("content", &b.content, 10_000)?;
    let (actor, now) = (c.actor()?, c.now());
    let mut tx = c.app.db.begin().await?;
    let before = load_tx(&c, &mut tx, Perm::Write).await?;
    let mut ev = before.clone();
    let at = b.reported_at.unwrap_or(now);
    if at < ev.known_at {
        return Err(ApiError::invalid("reported_at", "报告时间不能早于获知时间"));
    }
    if b.kind == ReportKind::Initial {
        // One 初报 per event: the deadline moves pending|overdue → done exactly once.
        transition!(&mut tx, FIRST_REPORT, ev.id, from ["pending", "overdue"] => "done",
            set { "first_report_at" = at, "updated_at" = now })?;
        ev.first_report_at = Some(at);
        ev.first_report_state = "done".into();
    } else if ev.first_report_state != "done" {
        return Err(ApiError::invalid("kind", "尚未报出初报：第一份报告应为初报（initial）"));
    }
    if let Some(s) = b.severity {
        ev.severity = s;
    }
    b.figures.apply(&mut ev)?;
    ev.updated_at = now;
    store::update_figures(&mut tx, &ev).await?;
    let report = Report {
        id: 0,
        kind: b.kind,
        reported_at: at,
        content,
        severity: b.severity.map(|s| s.code().to_string()),
        reporter: actor.name.clone(),
    };
    let id = store::insert_report(&mut tx, ev.id, &report, now).await?;
    let late = if b.kind == ReportKind::Initial && at > ev.first_report_due { "（迟报）" } else { "" };
    entry(&mut tx, &ev, &actor, at, "report", &format!("{}{}{late}：{}", ev.tag(), b.kind.label(), report.content))
        .await?;
    audit_event(
        &mut tx,
        &actor,
        now,
        "report",
        Some(&before),
        &ev,
        Some(serde_json::json!({"report_id": id, "kind": b.kind})),
    )
    .await?;
    tx.commit().await?;
    json_status(StatusCode::CREATED, &board(&c, ev).await?)
}

pub(super) async fn add_note(c: Ctx) -> ApiResult<Response> {
    let b: Note = c.json()?;
    let note = text("text", &b.text, 5000)?;
    let (actor, now) = (c.actor()?, c.now());
    let mut tx = c.app.db.begin().await?;
    let ev = load_tx(&c, &mut tx, Perm::Write).await?;
    entry(&mut tx, &ev, &actor, now, "note", &format!("{}{note}", ev.tag())).await?;
    tx.commit().await?;
    json_status(StatusCode::CREATED, &store::timeline(&c.app.db, ev.id).await?)
}

pub(super) async fn get_settings(c: Ctx) -> ApiResult<Response> {
    c.require(Perm::Read)?;
    json(&settings::load(&c.app.db).await?)
}

pub(super) async fn put_settings(c: Ctx) -> ApiResult<Response> {
    let p = c.require(Perm::Approve)?;
    if p.scope.level != crate::regions::Level::Banner {
        return Err(ApiError::Forbidden("只有旗级管理员可以修改事件设置".into()));
    }
    let b: Settings = c.json()?;
    b.check().map_err(|(f, m)| ApiError::invalid(f, m))?;
    let (actor, now) = (c.actor()?, c.now());
    let mut tx = c.app.db.begin().await?;
    let before = settings::load_tx(&mut tx).await?;
    settings::save(&mut tx, &b, now).await?;
    crate::audit::record(
        &mut tx,
        &actor,
        now,
        crate::audit::Change {
            action: "update",
            entity_type: "event_settings",
            entity_id: "1",
            region_code: None,
            before: Some(crate::supplies::to_audit(&before)?),
            after: Some(crate::supplies::to_audit(&b)?),
        },
    )
    .await?;
    tx.commit().await?;
    json(&b)
}

/// Reads an optional text body field.
pub fn optional(field: &str, v: Option<&str>, max: usize) -> ApiResult<Option<String>> {
    opt_text(field, v, max)
}
