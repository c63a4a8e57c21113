//! Events (突发事件应对): from the first report to the assessment. An event carries its
//! information reports (初报/续报/核报/终报) with the first-report deadline; a response activation
//! (启动响应) picks a plan in force and a level, and turns that level's supply and force
//! requirements into a **resource plan** of lines computed from the event's point with the
//! nearest-supplies and nearest-teams searches; chosen lines become dispatch movements (the
//! ledger) and call-ups (forces); everything lands on the timeline; termination, requisitions to
//! return, recovery tasks and the assessment close it.
//!
//! Drill mode: an event with `exercise: true` (linked to a drill) runs the same workflow, but its
//! supply lines move no stock, its call-ups have purpose `drill` (演练), every message and page is
//! labelled 【演练】, and its assessment's lessons become the drill's findings and actions.
//!
//! Every status change goes through [`crate::transition!`].

pub mod board;
pub mod closeout;
pub mod dispatch;
pub mod handlers;
pub mod intake;
pub mod lines;
pub mod matching;
pub mod nearby;
pub mod report;
pub mod resource;
pub mod response;
pub mod routes;
pub mod settings;
pub mod store;
pub mod watch;

use schemars::JsonSchema;
use serde::Serialize;

use crate::audit::{self, Actor, Change};
use crate::db::Tx;
use crate::error::ApiError;
use crate::notify::outbox::{self, Message};
use crate::time::Timestamp;
use crate::transition::Lifecycle;
use crate::vocab::Hazard;

crate::vocabulary! {
    /// Event grade (突发事件分级, 应对法 art. 3).
    Severity {
        EspeciallySerious = "especially_serious", "特别重大";
        Serious = "serious", "重大";
        RelativelySerious = "relatively_serious", "较大";
        General = "general", "一般";
    }
}

crate::vocabulary! {
    /// Kind of information report (信息报告).
    ReportKind {
        Initial = "initial", "初报";
        FollowUp = "follow_up", "续报";
        Verified = "verified", "核报";
        Final = "final", "终报";
    }
}

crate::vocabulary! {
    /// State of an event.
    EventStatus {
        Reported = "reported", "已报告";
        Responding = "responding", "响应中";
        Terminated = "terminated", "响应已终止";
    }
}

crate::vocabulary! {
    /// State of a resource-plan line: proposed → requested (call-up sent) / dispatched (stock
    /// sent) → on_site / arrived → returned; `superseded` when a level change replaced a
    /// proposal before it was acted on.
    LineStatus {
        Proposed = "proposed", "建议";
        Superseded = "superseded", "已被新方案替代";
        Requested = "requested", "已发出调用";
        Dispatched = "dispatched", "已调出";
        Arrived = "arrived", "已送达";
        OnSite = "on_site", "已到场";
        Returned = "returned", "已撤回/归还";
    }
}

/// Events as a lifecycle.
pub const EVENT: Lifecycle = Lifecycle::new("events", "突发事件");
/// The first-report deadline of an event (`pending` → `overdue` → `done`).
pub const FIRST_REPORT: Lifecycle = Lifecycle::new("events", "事件初报").state_column("first_report_state");
/// Resource-plan lines.
pub const LINE: Lifecycle = Lifecycle::new("event_lines", "资源方案条目");
/// Escalation of an unanswered call-up line (`none` → `region` → `banner`).
pub const ESCALATION: Lifecycle = Lifecycle::new("event_lines", "调用催办").state_column("escalation");
/// Recovery and corrective tasks.
pub const TASK: Lifecycle = Lifecycle::new("event_tasks", "事件任务");

/// An event as stored and shown.
#[derive(Debug, Clone, Serialize, JsonSchema, sqlx::FromRow)]
pub struct Event {
    /// Id.
    pub id: i64,
    /// Region where it happened (the region that runs it).
    pub region_code: String,
    /// Hazard.
    #[sqlx(try_from = "String")]
    pub hazard: Hazard,
    /// Title.
    pub title: String,
    /// When it happened.
    pub occurred_at: Timestamp,
    /// When it became known.
    pub known_at: Timestamp,
    /// Place name.
    pub place: String,
    /// Longitude of the scene (WGS84).
    pub lon: f64,
    /// Latitude of the scene.
    pub lat: f64,
    /// Description.
    pub description: String,
    /// Dead.
    pub dead: i64,
    /// Injured.
    pub injured: i64,
    /// Missing.
    pub missing: i64,
    /// Trapped.
    pub trapped: i64,
    /// Affected people.
    pub affected_people: i64,
    /// Affected households.
    pub affected_households: i64,
    /// Affected livestock (head).
    pub affected_livestock: i64,
    /// Where the information came from.
    pub source: String,
    /// Who reported it.
    pub reporter: String,
    /// Estimated grade (revised by reports).
    #[sqlx(try_from = "String")]
    pub severity: Severity,
    /// State.
    #[sqlx(try_from = "String")]
    pub status: EventStatus,
    /// A drill-mode event (演练): moves no stock, calls teams up for a drill.
    pub exercise: bool,
    /// The drill it rehearses.
    pub drill_id: Option<i64>,
    /// Plan of the response in force.
    pub plan_id: Option<i64>,
    /// Its version.
    pub plan_version: Option<i64>,
    /// Response level in force (1 highest).
    pub level: Option<i64>,
    /// When the response was first activated.
    pub activated_at: Option<Timestamp>,
    /// When the response was terminated.
    pub terminated_at: Option<Timestamp>,
    /// Who terminated it.
    pub terminated_by: Option<String>,
    /// The termination decision.
    pub termination_note: Option<String>,
    /// When the first report (初报) is due.
    pub first_report_due: Timestamp,
    /// When it was made.
    pub first_report_at: Option<Timestamp>,
    /// `pending`, `overdue` (flagged and notified) or `done`.
    pub first_report_state: String,
    /// Who opened it.
    pub created_by: String,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

impl Event {
    /// How ledger movements and call-ups name this event.
    pub fn reference(&self) -> String {
        format!("{}事件{}：{}", self.tag(), self.id, self.title)
    }

    /// `【演练】` for drill-mode events, else empty: every message and page of an exercise
    /// carries it.
    pub fn tag(&self) -> &'static str {
        if self.exercise { "【演练】" } else { "" }
    }
}

/// The banner a region belongs to (6-digit prefix, padded).
pub fn banner_of(region: &str) -> String {
    format!("{:0<12}", &region[..6.min(region.len())])
}

/// Inclusive region-code bounds of the banner a region belongs to: where an event's resource
/// plan looks for depots and teams.
pub fn banner_bounds(region: &str) -> (String, String) {
    let p = &region[..6.min(region.len())];
    (format!("{p:0<12}"), format!("{p:9<12}"))
}

/// Writes a timeline entry.
pub async fn entry(
    tx: &mut Tx,
    ev: &Event,
    actor: &Actor,
    at: Timestamp,
    kind: &str,
    text: &str,
) -> Result<(), sqlx::Error> {
    store::insert_entry(tx, ev.id, at, &actor.name, &ev.region_code, kind, text).await
}

/// Writes an audit row about an event.
pub async fn audit_event(
    tx: &mut Tx,
    actor: &Actor,
    now: Timestamp,
    action: &str,
    before: Option<&Event>,
    after: &Event,
    detail: Option<serde_json::Value>,
) -> Result<(), ApiError> {
    let mut a = crate::supplies::to_audit(after)?;
    if let (Some(d), Some(obj)) = (detail, a.as_object_mut()) {
        obj.insert("detail".into(), d);
    }
    audit::record(
        tx,
        actor,
        now,
        Change {
            action,
            entity_type: "event",
            entity_id: &after.id.to_string(),
            region_code: Some(&after.region_code),
            before: before.map(crate::supplies::to_audit).transpose()?,
            after: Some(a),
        },
    )
    .await?;
    Ok(())
}

/// Notifies each region once (inbox and channels); titles of exercise events carry 【演练】.
#[allow(clippy::too_many_arguments)]
pub async fn notify(
    tx: &mut Tx,
    ev: &Event,
    now: Timestamp,
    key: &str,
    kind: &str,
    regions: &[String],
    title: &str,
    body: &str,
) -> Result<(), sqlx::Error> {
    let mut seen: Vec<&String> = Vec::new();
    for r in regions {
        if seen.contains(&r) {
            continue;
        }
        seen.push(r);
        let m = Message {
            key: format!("event:{}:{key}:{r}", ev.id),
            region_code: r.clone(),
            kind: kind.to_string(),
            title: format!("{}{title}", ev.tag()),
            body: format!("{}{body}", ev.tag()),
            data: serde_json::json!({ "event_id": ev.id, "exercise": ev.exercise, "kind": kind }),
            late: false,
            source: Some(("event".into(), ev.id.to_string())),
        };
        outbox::enqueue(tx, now, &m).await?;
    }
    Ok(())
}
