//! Event storage: events, reports, activations, timeline entries, linked requisitions, tasks and
//! the assessment. Resource-plan lines live in [`super::lines`].

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Event;
use crate::db::{Db, Tx};
use crate::time::Timestamp;
use crate::{with_db, with_tx};

const SELECT: &str = "SELECT id, region_code, hazard, title, occurred_at, known_at, place, lon, lat, description, dead, injured,
    missing, trapped, affected_people, affected_households, affected_livestock, source, reporter, severity, status, exercise,
    drill_id, plan_id, plan_version, level, activated_at, terminated_at, terminated_by, termination_note, first_report_due,
    first_report_at, first_report_state, created_by, created_at, updated_at FROM events";

/// One event.
pub async fn get(db: &Db, id: i64) -> Result<Option<Event>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE id = $1");
    with_db!(db, |p| sqlx::query_as::<_, Event>(&sql).bind(id).fetch_optional(p).await)
}

/// One event inside a transaction.
pub async fn get_tx(tx: &mut Tx, id: i64) -> Result<Option<Event>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE id = $1");
    with_tx!(tx, |c| sqlx::query_as::<_, Event>(&sql).bind(id).fetch_optional(c).await)
}

/// Events in the bounds, newest first; optionally only exercises or only real ones.
pub async fn list(
    db: &Db,
    bounds: (&str, &str),
    exercise: Option<bool>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Event>, i64), sqlx::Error> {
    const WHERE: &str = "WHERE region_code >= $1 AND region_code <= $2 AND ($3 IS NULL OR exercise = $3)";
    let sql = format!("{SELECT} {WHERE} ORDER BY id DESC LIMIT $4 OFFSET $5");
    let count = format!("SELECT COUNT(*) FROM events {WHERE}");
    with_db!(db, |p| {
        let items = sqlx::query_as::<_, Event>(&sql)
            .bind(bounds.0)
            .bind(bounds.1)
            .bind(exercise)
            .bind(limit)
            .bind(offset)
            .fetch_all(p)
            .await?;
        let total: i64 = sqlx::query_scalar(&count).bind(bounds.0).bind(bounds.1).bind(exercise).fetch_one(p).await?;
        Ok((items, total))
    })
}

/// Inserts an event; returns its id.
pub async fn insert(tx: &mut Tx, e: &Event) -> Result<i64, sqlx::Error> {
    with_tx!(tx, |c| {
        sqlx::query_scalar(
            "INSERT INTO events (region_code, hazard, title, occurred_at, known_at, place, lon, lat, description, dead, injured,
                missing, trapped, affected_people, affected_households, affected_livestock, source, reporter, severity, status,
                exercise, drill_id, first_report_due, first_report_state, created_by, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23,
                'pending', $24, $25, $25) RETURNING id",
        )
        .bind(&e.region_code)
        .bind(e.hazard.code())
        .bind(&e.title)
        .bind(e.occurred_at)
        .bind(e.known_at)
        .bind(&e.place)
        .bind(e.lon)
        .bind(e.lat)
        .bind(&e.description)
        .bind(e.dead)
        .bind(e.injured)
        .bind(e.missing)
        .bind(e.trapped)
        .bind(e.affected_people)
        .bind(e.affected_households)
        .bind(e.affected_livestock)
        .bind(&e.source)
        .bind(&e.reporter)
        .bind(e.severity.code())
        .bind(e.status.code())
        .bind(e.exercise)
        .bind(e.drill_id)
        .bind(e.first_report_due)
        .bind(&e.created_by)
        .bind(e.created_at)
        .fetch_one(c)
        .await
    })
}

/// Writes the figures a report revises (casualties, affected, severity).
pub async fn update_figures(tx: &mut Tx, e: &Event) -> Result<(), sqlx::Error> {
    with_tx!(tx, |c| {
        sqlx::query(
        "UPDATE events SET dead = $2, injured = $3, missing = $4, trapped = $5, affected_people = $6, affected_households = $7,
            affected_livestock = $8, severity = $9, updated_at = $10 WHERE id = $1"
    )
    .bind(e.id)
    .bind(e.dead)
    .bind(e.injured)
    .bind(e.missing)
    .bind(e.trapped)
    .bind(e.affected_people)
    .bind(e.affected_households)
    .bind(e.affected_livestock)
    .bind(e.severity.code())
    .bind(e.updated_at)
    .execute(c)
    .await
    .map(|_| ())
    })
}

/// A timeline entry.
#[derive(Debug, Clone, Serialize, JsonSchema, sqlx::FromRow)]
pub struct Entry {
    /// When.
    pub at: Timestamp,
    /// Who.
    pub actor: String,
    /// Region.
    pub region_code: String,
    /// Kind: `report`, `activate`, `level`, `dispatch`, `callup`, `callup_answer`, `arrive`,
    /// `requisition`, `note`, `escalation`, `overdue`, `terminate`, `task`, `assessment`.
    pub kind: String,
    /// What happened (Chinese).
    pub text: String,
}

/// Appends a timeline entry.
pub async fn insert_entry(
    tx: &mut Tx,
    event_id: i64,
    at: Timestamp,
    actor: &str,
    region: &str,
    kind: &str,
    text: &str,
) -> Result<(), sqlx::Error> {
    with_tx!(tx, |c| sqlx::query(
        "INSERT INTO event_entries (event_id, at, actor, region_code, kind, text) VALUES ($1, $2, $3, $4, $5, $6)"
    )
    .bind(event_id)
    .bind(at)
    .bind(actor)
    .bind(region)
    .bind(kind)
    .bind(text)
    .execute(c)
    .await
    .map(|_| ()))
}

/// The timeline: recorded entries and the answers of the event's call-ups (recorded by the
/// teams through the call-up endpoints), in time order.
pub async fn timeline(db: &Db, event_id: i64) -> Result<Vec<Entry>, sqlx::Error> {
    const SQL: &str = "SELECT at, actor, region_code, kind, text FROM (
            SELECT e.at, e.actor, e.region_code, e.kind, e.text, e.id AS seq FROM event_entries e WHERE e.event_id = $1
            UNION ALL
            SELECT c.responded_at AS at, c.responded_by AS actor, c.region_code, 'callup_answer' AS kind,
                CASE WHEN c.status = 'declined' OR c.decline_reason IS NOT NULL
                     THEN '队伍 ' || t.name || ' 拒绝调用：' || COALESCE(c.decline_reason, '')
                     ELSE '队伍 ' || t.name || ' 接受调用' END AS text, 0 AS seq
            FROM event_lines l JOIN callups c ON c.id = l.callup_id JOIN teams t ON t.id = c.team_id
            WHERE l.event_id = $1 AND c.responded_at IS NOT NULL
        ) x ORDER BY at, seq";
    with_db!(db, |p| sqlx::query_as::<_, Entry>(SQL).bind(event_id).fetch_all(p).await)
}

/// An information report.
#[derive(Debug, Clone, Serialize, JsonSchema, sqlx::FromRow)]
pub struct Report {
    /// Id.
    pub id: i64,
    /// Kind.
    #[sqlx(try_from = "String")]
    pub kind: super::ReportKind,
    /// When it was sent.
    pub reported_at: Timestamp,
    /// Content.
    pub content: String,
    /// Grade estimated in it.
    pub severity: Option<String>,
    /// Who reported.
    pub reporter: String,
}

/// Inserts a report.
pub async fn insert_report(tx: &mut Tx, event_id: i64, r: &Report, now: Timestamp) -> Result<i64, sqlx::Error> {
    with_tx!(tx, |c| sqlx::query_scalar(
        "INSERT INTO event_reports (event_id, kind, reported_at, content, severity, reporter, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id"
    )
    .bind(event_id)
    .bind(r.kind.code())
    .bind(r.reported_at)
    .bind(&r.content)
    .bind(&r.severity)
    .bind(&r.reporter)
    .bind(now)
    .fetch_one(c)
    .await)
}

/// An event's reports in order.
pub async fn reports(db: &Db, event_id: i64) -> Result<Vec<Report>, sqlx::Error> {
    with_db!(db, |p| {
        sqlx::query_as::<_, Report>(
        "SELECT id, kind, reported_at, content, severity, reporter FROM event_reports WHERE event_id = $1 ORDER BY reported_at, id"
    )
    .bind(event_id)
    .fetch_all(p)
    .await
    })
}

/// A response activation or level change.
#[derive(Debug, Clone, Serialize, JsonSchema, sqlx::FromRow)]
pub struct Activation {
    /// Id.
    pub id: i64,
    /// Plan.
    pub plan_id: i64,
    /// Plan version.
    pub plan_version: i64,
    /// Level (1 highest).
    pub level: i64,
    /// `activate`, `raise` or `lower`.
    pub change: String,
    /// Why.
    pub reason: Option<String>,
    /// Who decided.
    pub decided_by: String,
    /// When.
    pub decided_at: Timestamp,
}

/// Inserts an activation; returns its id.
pub async fn insert_activation(tx: &mut Tx, event_id: i64, a: &Activation) -> Result<i64, sqlx::Error> {
    with_tx!(tx, |c| sqlx::query_scalar(
        "INSERT INTO event_activations (event_id, plan_id, plan_version, level, change, reason, decided_by, decided_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id"
    )
    .bind(event_id)
    .bind(a.plan_id)
    .bind(a.plan_version)
    .bind(a.level)
    .bind(&a.change)
    .bind(&a.reason)
    .bind(&a.decided_by)
    .bind(a.decided_at)
    .fetch_one(c)
    .await)
}

/// An event's activations, oldest first.
pub async fn activations(db: &Db, event_id: i64) -> Result<Vec<Activation>, sqlx::Error> {
    with_db!(db, |p| sqlx::query_as::<_, Activation>(
        "SELECT id, plan_id, plan_version, level, change, reason, decided_by, decided_at FROM event_activations
         WHERE event_id = $1 ORDER BY id"
    )
    .bind(event_id)
    .fetch_all(p)
    .await)
}

/// Links a requisition to an event (false when already linked).
pub async fn link_requisition(tx: &mut Tx, event_id: i64, requisition_id: i64) -> Result<bool, sqlx::Error> {
    with_tx!(tx, |c| sqlx::query(
        "INSERT INTO event_requisitions (event_id, requisition_id) VALUES ($1, $2) ON CONFLICT DO NOTHING"
    )
    .bind(event_id)
    .bind(requisition_id)
    .execute(c)
    .await
    .map(|r| r.rows_affected() == 1))
}

/// Ids of the requisitions linked to an event.
pub async fn requisition_ids(db: &Db, event_id: i64) -> Result<Vec<i64>, sqlx::Error> {
    with_db!(db, |p| sqlx::query_scalar(
        "SELECT requisition_id FROM event_requisitions WHERE event_id = $1 ORDER BY requisition_id"
    )
    .bind(event_id)
    .fetch_all(p)
    .await)
}

/// A recovery (恢复重建) or corrective task.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, sqlx::FromRow)]
pub struct Task {
    /// Id.
    pub id: i64,
    /// `recovery` or `corrective`.
    pub kind: String,
    /// What is to be done.
    pub title: String,
    /// Unit responsible.
    pub owner_unit: String,
    /// Due date.
    pub due_on: NaiveDate,
    /// `open` or `done`.
    pub status: String,
}

/// Inserts a task; returns its id.
pub async fn insert_task(tx: &mut Tx, event_id: i64, t: &Task, by: &str, now: Timestamp) -> Result<i64, sqlx::Error> {
    with_tx!(tx, |c| {
        sqlx::query_scalar(
        "INSERT INTO event_tasks (event_id, kind, title, owner_unit, due_on, status, created_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, 'open', $6, $7, $7) RETURNING id"
    )
    .bind(event_id)
    .bind(&t.kind)
    .bind(&t.title)
    .bind(&t.owner_unit)
    .bind(t.due_on)
    .bind(by)
    .bind(now)
    .fetch_one(c)
    .await
    })
}

/// An event's tasks.
pub async fn tasks(db: &Db, event_id: i64) -> Result<Vec<Task>, sqlx::Error> {
    with_db!(db, |p| sqlx::query_as::<_, Task>(
        "SELECT id, kind, title, owner_unit, due_on, status FROM event_tasks WHERE event_id = $1 ORDER BY id"
    )
    .bind(event_id)
    .fetch_all(p)
    .await)
}

/// A lesson of the assessment.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Lesson {
    /// The problem found.
    pub problem: String,
    /// Its cause.
    pub cause: String,
    /// Start a revision of the plan in force (reason `drill_or_event_findings`).
    #[serde(default)]
    pub revise_plan: bool,
    /// A corrective action, when one follows.
    #[serde(default)]
    pub action: Option<LessonAction>,
}

/// A corrective action following a lesson.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LessonAction {
    /// What is to be done.
    pub action: String,
    /// Unit responsible.
    pub owner_unit: String,
    /// Due date.
    pub due_on: NaiveDate,
}

/// The investigation and assessment (调查评估).
#[derive(Debug, Clone, Serialize, JsonSchema, sqlx::FromRow)]
pub struct Assessment {
    /// Causes.
    pub causes: String,
    /// Assessment of the response.
    pub summary: String,
    /// Lessons.
    #[schemars(with = "Vec<Lesson>")]
    pub lessons: sqlx::types::Json<Vec<Lesson>>,
    /// Who assessed.
    pub assessed_by: String,
    /// When.
    pub assessed_at: Timestamp,
}

/// Inserts the assessment (false when the event already has one).
pub async fn insert_assessment(tx: &mut Tx, event_id: i64, a: &Assessment) -> Result<bool, sqlx::Error> {
    with_tx!(tx, |c| sqlx::query(
        "INSERT INTO event_assessments (event_id, causes, summary, lessons, assessed_by, assessed_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING"
    )
    .bind(event_id)
    .bind(&a.causes)
    .bind(&a.summary)
    .bind(&a.lessons)
    .bind(&a.assessed_by)
    .bind(a.assessed_at)
    .execute(c)
    .await
    .map(|r| r.rows_affected() == 1))
}

/// An event's assessment.
pub async fn assessment(db: &Db, event_id: i64) -> Result<Option<Assessment>, sqlx::Error> {
    with_db!(db, |p| sqlx::query_as::<_, Assessment>(
        "SELECT causes, summary, lessons, assessed_by, assessed_at FROM event_assessments WHERE event_id = $1"
    )
    .bind(event_id)
    .fetch_optional(p)
    .await)
}
