//! Event endpoints: open an event, information reports, notes, the board, the list, matching
//! plans, settings.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use warp::http::StatusCode;
use warp::reply::Response;

pub use super::intake::{Figures, NewEvent};
use super::lines::{self, Line};
use super::resource::{self, NeedView};
use super::settings::{self, Settings};
use super::store::{self, Activation, Assessment, Entry, Report, Task};
use super::{Event, EventStatus, FIRST_REPORT, ReportKind, Severity, audit_event, banner_of, entry, notify};
use crate::auth::Perm;
use crate::db::Tx;
use crate::error::{ApiError, ApiResult};
use crate::forces::{opt_text, text};
use crate::http::Ctx;
use crate::http::ctx::{Page, json, json_status, page};
use crate::regions::check_lon_lat;
use crate::supplies::requisitions::Requisition;
use crate::time::Timestamp;
use crate::{transition, with_db};

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

/// A line on the board.
#[derive(Debug, Serialize, JsonSchema)]
pub struct LineView {
    /// The line.
    #[serde(flatten)]
    pub line: Line,
    /// What the board shows: proposed, requested, accepted, declined, dispatched, arrived,
    /// on_site, returned, superseded.
    pub state: String,
}

/// The event board (事件看板): everything about one event.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Board {
    /// The event.
    pub event: Event,
    /// Chinese label of the grade.
    pub severity_label: &'static str,
    /// Chinese label of the state.
    pub status_label: &'static str,
    /// The first report is late (flagged).
    pub first_report_overdue: bool,
    /// Information reports.
    pub reports: Vec<Report>,
    /// Activations and level changes, oldest first.
    pub activations: Vec<Activation>,
    /// The resource plan of the level in force.
    pub resource_plan: Vec<NeedView>,
    /// Every line (dispatch list).
    pub lines: Vec<LineView>,
    /// The timeline.
    pub timeline: Vec<Entry>,
    /// Requisitions linked to the event.
    pub requisitions: Vec<Requisition>,
    /// Recovery and corrective tasks.
    pub tasks: Vec<Task>,
    /// The assessment, once made.
    pub assessment: Option<Assessment>,
}

/// Filters of the event list.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// Only drill-mode events (true) or only real ones (false).
    pub exercise: Option<bool>,
    /// Page size (default 100, max 1000).
    pub limit: Option<crate::http::ctx::Limit>,
    /// Items to skip.
    pub offset: Option<crate::http::ctx::Offset>,
}

/// A plan that matches the event.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MatchingPlan {
    /// Plan id.
    pub plan_id: i64,
    /// Version in force.
    pub version: i64,
    /// Title.
    pub title: String,
    /// Owner region.
    pub region_code: String,
    /// Kind.
    pub kind: crate::plans::PlanKind,
    /// Levels the plan defines (1 highest).
    pub levels: Vec<u8>,
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

/// Builds the board of an event.
pub async fn board(c: &Ctx, ev: Event) -> ApiResult<Board> {
    let db = &c.app.db;
    let lines = lines::of_event(db, ev.id).await?;
    let resource_plan = match level_of(db, &ev).await? {
        Some(level) => resource::view(db, &ev, &level, &lines, c.now()).await?,
        None => Vec::new(),
    };
    let sql = format!(
        "{} WHERE id IN (SELECT requisition_id FROM event_requisitions WHERE event_id = $1) ORDER BY id",
        crate::supplies::requisitions::SELECT
    );
    let requisitions = with_db!(db, |p| sqlx::query_as::<_, Requisition>(&sql).bind(ev.id).fetch_all(p).await)?;
    Ok(Board {
        severity_label: ev.severity.label(),
        status_label: ev.status.label(),
        first_report_overdue: ev.first_report_state == "overdue"
            || (ev.first_report_state == "pending" && c.now() > ev.first_report_due),
        reports: store::reports(db, ev.id).await?,
        activations: store::activations(db, ev.id).await?,
        resource_plan,
        lines: lines.into_iter().map(|l| LineView { state: l.board_state().to_string(), line: l }).collect(),
        timeline: store::timeline(db, ev.id).await?,
        requisitions,
        tasks: store::tasks(db, ev.id).await?,
        assessment: store::assessment(db, ev.id).await?,
        event: ev,
    })
}

/// The response level in force, from the plan version it was activated on.
pub async fn level_of(db: &crate::db::Db, ev: &Event) -> ApiResult<Option<crate::plans::ResponseLevel>> {
    let (Some(plan), Some(version), Some(level)) = (ev.plan_id, ev.plan_version, ev.level) else { return Ok(None) };
    let v = crate::plans::store::version(db, plan, version)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("plan version of event vanished")))?;
    Ok(v.content.response_levels.into_iter().find(|l| i64::from(l.level) == level))
}

pub(super) async fn get(c: Ctx) -> ApiResult<Response> {
    let ev = load(&c, Perm::Read).await?;
    json(&board(&c, ev).await?)
}

pub(super) async fn list(c: Ctx) -> ApiResult<Response> {
    let p = c.require(Perm::Read)?;
    let q: EventQuery = c.query()?;
    let (limit, offset) = page(q.limit, q.offset)?;
    let (lo, hi) = p.scope.bounds();
    let (items, total) = store::list(&c.app.db, (&lo, &hi), q.exercise, limit, offset).await?;
    json(&Page { items, total })
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

/// Plans in force that cover the event's hazard in its region or a region above it, nearest
/// region first (village → township → banner); an overall plan (总体预案) covers every hazard and
/// comes after the hazard's own plans of the same region.
pub async fn matching_plans(db: &crate::db::Db, ev: &Event) -> ApiResult<Vec<MatchingPlan>> {
    let code = &ev.region_code;
    let mut regions = vec![code.clone(), format!("{:0<12}", &code[..9]), format!("{:0<12}", &code[..6])];
    regions.dedup();
    let mut out = Vec::new();
    for r in &regions {
        let mut here: Vec<(bool, MatchingPlan)> = crate::plans::store::current_plans(db, (r, r))
            .await?
            .into_iter()
            .filter(|p| p.content.0.hazards.contains(&ev.hazard) || p.kind == crate::plans::PlanKind::Overall)
            .map(|p| {
                let own = p.content.0.hazards.contains(&ev.hazard);
                let c = &p.content.0;
                (
                    own,
                    MatchingPlan {
                        plan_id: p.plan_id,
                        version: p.version,
                        title: c.title.clone(),
                        region_code: p.region_code.clone(),
                        kind: p.kind,
                        levels: c.response_levels.iter().map(|l| l.level).collect(),
                    },
                )
            })
            .collect();
        here.sort_by_key(|(own, p)| (!*own, p.plan_id));
        out.extend(here.into_iter().map(|(_, p)| p));
    }
    Ok(out)
}

pub(super) async fn plans(c: Ctx) -> ApiResult<Response> {
    let ev = load(&c, Perm::Read).await?;
    let items = matching_plans(&c.app.db, &ev).await?;
    let total = items.len() as i64;
    json(&Page { items, total })
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
