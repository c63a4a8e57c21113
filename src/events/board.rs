//! The event board (事件看板): everything about one event in one answer (reports, decisions,
//! the resource plan of the level in force, every line with its state, the timeline,
//! requisitions, tasks, assessment), and the event list.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use warp::reply::Response;

use super::Event;
use super::handlers::load;
use super::lines::{self, Line};
use super::resource::{self, NeedView};
use super::store::{self, Activation, Assessment, Entry, Report, Task};
use crate::auth::Perm;
use crate::error::{ApiError, ApiResult};
use crate::http::Ctx;
use crate::http::ctx::{Page, json, page};
use crate::supplies::requisitions::Requisition;
use crate::with_db;

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

/// Builds the board of an event.
pub async fn board(c: &Ctx, ev: Event) -> ApiResult<Board> {
    let db = &c.app.db;
    let lines = lines::of_event(db, ev.id).await?;
    let resource_plan = match level_of(db, &ev).await? {
        Some(level) => resource::view(db, &c.app.team_index, &ev, &level, &lines, c.now()).await?,
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
