//! Drills (应急演练): the calendar, reminders before each drill, what happened, the evaluation,
//! findings and corrective actions, and the summary report.

pub mod action_handlers;
pub mod actions;
pub mod feed;
pub mod handlers;
pub mod ics;
pub mod indicators;
pub mod reminders;
pub mod report;
pub mod routes;
pub mod series;
pub mod store;
pub mod validate;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

crate::vocabulary! {
    /// Drill form.
    Form { Tabletop = "tabletop", "桌面推演"; Field = "field", "实战演练"; }
}

crate::vocabulary! {
    /// Drill scope.
    Scope { Single = "single", "单项演练"; Comprehensive = "comprehensive", "综合演练"; }
}

crate::vocabulary! {
    /// Drill purpose.
    Purpose { Test = "test", "检验性演练"; Demonstration = "demonstration", "示范性演练"; Research = "research", "研究性演练"; }
}

crate::vocabulary! {
    /// Drill status: planned → in_progress → completed → evaluated, or cancelled / postponed.
    Status {
        Planned = "planned", "计划中";
        InProgress = "in_progress", "进行中";
        Completed = "completed", "已完成";
        Evaluated = "evaluated", "已评估";
        Cancelled = "cancelled", "已取消";
        Postponed = "postponed", "已延期";
    }
}

impl Status {
    /// Whether the drill is still ahead (reminders apply).
    pub fn is_upcoming(self) -> bool {
        matches!(self, Status::Planned | Status::Postponed)
    }
}

/// Default reminder offsets before the start: 7 days, 1 day, 2 hours (minutes).
pub const DEFAULT_REMINDER_OFFSETS: [i64; 3] = [7 * 24 * 60, 24 * 60, 120];

/// One line of the drill's timeline.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TimelineEntry {
    /// When.
    pub at: Timestamp,
    /// What happened.
    pub event: String,
}

/// What actually happened (recorded when the drill is completed).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Actual {
    /// Number of people who took part.
    pub participant_count: i64,
    /// Units that took part.
    #[serde(default)]
    pub units: Vec<String>,
    /// Teams (codes) that took part.
    #[serde(default)]
    pub teams: Vec<String>,
    /// The scenario played (演练情景).
    pub scenario: String,
    /// Outline of the drill (演练概况).
    #[serde(default)]
    pub outline: String,
    /// Timeline.
    #[serde(default)]
    pub timeline: Vec<TimelineEntry>,
}

/// A score against one indicator.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IndicatorScore {
    /// Indicator code from the set for the drill's form (see `GET /api/v1/drills/indicators`).
    pub code: String,
    /// Score 0–100.
    pub score: f64,
    /// Remarks.
    #[serde(default)]
    pub comment: String,
}

/// The evaluation of a drill.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Evaluation {
    /// Who evaluated (person or unit).
    pub evaluator: String,
    /// Scores, one per indicator of the form's set.
    pub indicators: Vec<IndicatorScore>,
    /// Overall conclusion.
    pub conclusion: String,
    /// Lessons learned (经验教训).
    #[serde(default)]
    pub lessons: String,
    /// Improvement suggestions (改进建议).
    #[serde(default)]
    pub suggestions: String,
    /// Weighted total 0–100 (computed).
    #[serde(default)]
    pub total: f64,
    /// Grade from the total (computed): 优秀 ≥ 90, 良好 ≥ 75, 合格 ≥ 60, else 不合格.
    #[serde(default)]
    pub grade: String,
}

/// A drill as the API shows it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Drill {
    /// Id.
    pub id: i64,
    /// First drill of the recurring series this one belongs to.
    pub series_id: Option<i64>,
    /// Recurrence (standard 5-field cron) of the series.
    pub recurrence: Option<String>,
    /// Title.
    pub title: String,
    /// Form.
    pub form: Form,
    /// Scope.
    pub scope: Scope,
    /// Purpose.
    pub purpose: Purpose,
    /// What the drill is meant to test or show (演练目的).
    pub objective: String,
    /// Organising region.
    pub region_code: String,
    /// Organising unit.
    pub organiser_unit: String,
    /// Participating units.
    pub participating_units: Vec<String>,
    /// Plans the drill exercises.
    pub plan_ids: Vec<i64>,
    /// Participating teams (codes).
    pub team_codes: Vec<String>,
    /// Place name.
    pub place_name: String,
    /// Longitude (WGS84).
    pub lon: Option<f64>,
    /// Latitude (WGS84).
    pub lat: Option<f64>,
    /// Scheduled start.
    pub starts_at: Timestamp,
    /// Scheduled end.
    pub ends_at: Timestamp,
    /// Status.
    pub status: Status,
    /// Chinese status.
    pub status_label: &'static str,
    /// Reminder offsets before the start, in minutes.
    pub reminder_offsets: Vec<i64>,
    /// Original start, when postponed.
    pub postponed_from: Option<Timestamp>,
    /// Why it was cancelled.
    pub cancel_reason: Option<String>,
    /// What happened.
    pub actual: Option<Actual>,
    /// Evaluation.
    pub evaluation: Option<Evaluation>,
    /// Revision counter (the iCalendar SEQUENCE).
    pub sequence: i64,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}
