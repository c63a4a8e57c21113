//! Drill endpoints: request types and the route table.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use warp::http::Method;

use super::actions::{ActionQuery, CorrectiveAction, Finding, NewAction, NewFinding};
use super::indicators::{self, Indicator};
use super::reminders::Reminder;
use super::{Actual, Drill, Evaluation, Form, Purpose, Scope, Status, action_handlers, feed, handlers, ics};
use crate::auth::Perm;
use crate::http::access::{self, Region};
use crate::http::ctx::{Page, json};
use crate::http::router::{Access, BodyKind, Doc, Route, route, schema};
use crate::regions::RegionCode;
use crate::time::Timestamp;
const TAG: &str = "应急演练";

/// Body of `POST /api/v1/drills`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDrill {
    /// Title.
    #[schemars(length(min = 1, max = 200), regex(pattern = r"\S"))]
    pub title: String,
    /// Plans exercised.
    #[serde(default)]
    #[schemars(length(max = 50))]
    pub plan_ids: Vec<i64>,
    /// Form: tabletop or field.
    pub form: Form,
    /// Scope: single or comprehensive.
    pub scope: Scope,
    /// Purpose: test, demonstration or research.
    pub purpose: Purpose,
    /// What the drill is meant to test or show.
    #[serde(default)]
    #[schemars(length(max = 4000))]
    pub objective: String,
    /// Organising region (within the caller's jurisdiction).
    pub region: RegionCode,
    /// Organising unit.
    #[schemars(length(min = 1, max = 200), regex(pattern = r"\S"))]
    pub organiser_unit: String,
    /// Participating units.
    #[serde(default)]
    pub participating_units: Vec<String>,
    /// Participating teams (codes of filed teams).
    #[serde(default)]
    #[schemars(length(max = 50))]
    pub team_codes: Vec<String>,
    /// Place name.
    #[schemars(length(min = 1, max = 200), regex(pattern = r"\S"))]
    pub place_name: String,
    /// Longitude (WGS84).
    #[schemars(range(min = -180, max = 180))]
    pub lon: Option<f64>,
    /// Latitude (WGS84).
    #[schemars(range(min = -90, max = 90))]
    pub lat: Option<f64>,
    /// Scheduled start.
    pub starts_at: Timestamp,
    /// Scheduled end.
    pub ends_at: Timestamp,
    /// Reminder offsets before the start, in minutes (default 10080, 1440, 120: 7 days, 1 day, 2 hours).
    pub reminder_offsets: Option<Vec<i64>>,
    /// Recurrence as a standard 5-field cron expression (Asia/Shanghai): each occurrence becomes its
    /// own drill, one materialised ahead.
    pub recurrence: Option<String>,
}

/// Body of `PATCH /api/v1/drills/{id}` (planned or postponed drills only; times change by postponing).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DrillPatch {
    /// Title.
    pub title: Option<String>,
    /// Objective.
    pub objective: Option<String>,
    /// Plans exercised.
    pub plan_ids: Option<Vec<i64>>,
    /// Organising unit.
    pub organiser_unit: Option<String>,
    /// Participating units.
    pub participating_units: Option<Vec<String>>,
    /// Participating teams.
    pub team_codes: Option<Vec<String>>,
    /// Place name.
    pub place_name: Option<String>,
    /// Longitude.
    pub lon: Option<f64>,
    /// Latitude.
    pub lat: Option<f64>,
    /// Reminder offsets (minutes).
    pub reminder_offsets: Option<Vec<i64>>,
}

/// Body of `POST /api/v1/drills/{id}/postpone`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Postpone {
    /// New start.
    pub starts_at: Timestamp,
    /// New end.
    pub ends_at: Timestamp,
}

/// Body of `POST /api/v1/drills/{id}/cancel`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cancel {
    /// Why.
    pub reason: String,
}

/// Body of `PATCH /api/v1/actions/{id}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionPatch {
    /// `open`, `done` or `verified` (verifying needs a planner or admin).
    pub status: String,
}

/// Filters of the drill list.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DrillQuery {
    /// Organising region (and below).
    pub region: Option<RegionCode>,
    /// Starting at or after.
    pub from: Option<Timestamp>,
    /// Starting before.
    pub to: Option<Timestamp>,
    /// Status.
    pub status: Option<Status>,
    /// Exercising this plan.
    pub plan: Option<i64>,
    /// Page size (default 100, max 1000).
    pub limit: Option<crate::http::ctx::Limit>,
    /// Items to skip.
    pub offset: Option<crate::http::ctx::Offset>,
}

/// Query of the calendar feed.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedQuery {
    /// Feed token (from `POST /api/v1/feed-tokens`); or send a Bearer token instead.
    pub token: Option<String>,
    /// Organising region (and below).
    pub region: Option<RegionCode>,
    /// Starting at or after (default: 90 days ago).
    pub from: Option<Timestamp>,
    /// Starting before (default: 1 year ahead).
    pub to: Option<Timestamp>,
}

/// The indicator sets by form.
#[derive(Debug, Serialize, JsonSchema)]
pub struct IndicatorSets {
    /// 桌面推演.
    pub tabletop: Vec<Indicator>,
    /// 实战演练.
    pub field: Vec<Indicator>,
}

/// The drill named in the path.
const ON_DRILL: &[Region] = &[Region::Path("id", &access::DRILL)];

fn r(method: Method, path: &'static str, body: BodyKind, doc: Doc, h: crate::http::router::Handler) -> Route {
    route(method, path, Access::Token, body, doc, h)
}

/// Routes of this module.
pub fn routes() -> Vec<Route> {
    vec![
        r(
            Method::GET,
            "/api/v1/drills",
            BodyKind::None,
            Doc {
                query: Some(schema::<DrillQuery>()),
                response: Some(schema::<Page<Drill>>()),
                ..Doc::new(TAG, "演练日程")
            },
            |c| Box::pin(handlers::list(c)),
        )
        .guard(Perm::Read, &[Region::Query("region")]),
        r(
            Method::POST,
            "/api/v1/drills",
            BodyKind::Json,
            Doc {
                description: "安排演练（操作员及以上，限辖区内）。按提醒设置（默认提前 7 天、1 天、2 小时）生成提醒；周期演练按 cron 表达式始终提前生成下一次演练。",
                request: Some(schema::<NewDrill>()),
                status: 201,
                response: Some(schema::<Drill>()),
                ..Doc::new(TAG, "安排演练")
            },
            |c| Box::pin(handlers::create(c)),
        )
        .guard(Perm::Write, &[Region::Body("region")]),
        r(
            Method::GET,
            "/api/v1/drills/indicators",
            BodyKind::None,
            Doc {
                response: Some(schema::<IndicatorSets>()),
                description: "桌面推演与实战演练各自的评估指标及权重（参照 GB/T 46792-2025 的分形式评估结构，具体指标为本地默认）。",
                ..Doc::new(TAG, "评估指标")
            },
            |_| {
                Box::pin(async {
                    json(&IndicatorSets {
                        tabletop: indicators::set(Form::Tabletop).to_vec(),
                        field: indicators::set(Form::Field).to_vec(),
                    })
                })
            },
        )
        .guard(Perm::Read, &[Region::Global]),
        r(
            Method::GET,
            "/api/v1/drills/{id}",
            BodyKind::None,
            Doc { response: Some(schema::<Drill>()), ..Doc::new(TAG, "查看演练") },
            |c| Box::pin(handlers::get(c)),
        )
        .guard(Perm::Read, ON_DRILL),
        r(
            Method::PATCH,
            "/api/v1/drills/{id}",
            BodyKind::Json,
            Doc {
                request: Some(schema::<DrillPatch>()),
                response: Some(schema::<Drill>()),
                description: "修改计划中或已延期的演练；改时间请用延期。",
                ..Doc::new(TAG, "修改演练")
            },
            |c| Box::pin(handlers::patch(c)),
        )
        .guard(Perm::Write, ON_DRILL),
        r(
            Method::POST,
            "/api/v1/drills/{id}/start",
            BodyKind::None,
            Doc { response: Some(schema::<Drill>()), ..Doc::new(TAG, "开始演练") },
            |c| Box::pin(handlers::start(c)),
        )
        .guard(Perm::Write, ON_DRILL),
        r(
            Method::POST,
            "/api/v1/drills/{id}/complete",
            BodyKind::Json,
            Doc {
                request: Some(schema::<Actual>()),
                response: Some(schema::<Drill>()),
                description: "记录实际参演情况、情景和过程；完成后在所检验的预案上记录“最近演练”。",
                ..Doc::new(TAG, "完成演练")
            },
            |c| Box::pin(handlers::complete(c)),
        )
        .guard(Perm::Write, ON_DRILL),
        r(
            Method::POST,
            "/api/v1/drills/{id}/evaluate",
            BodyKind::Json,
            Doc {
                request: Some(schema::<Evaluation>()),
                response: Some(schema::<Drill>()),
                description: "按演练形式的指标评分（0–100），给出结论、经验教训和改进建议；总分和等级由服务计算。",
                ..Doc::new(TAG, "评估演练")
            },
            |c| Box::pin(handlers::evaluate(c)),
        )
        .guard(Perm::Write, ON_DRILL),
        r(
            Method::POST,
            "/api/v1/drills/{id}/cancel",
            BodyKind::Json,
            Doc {
                request: Some(schema::<Cancel>()),
                response: Some(schema::<Drill>()),
                description: "取消演练：未发送的提醒随之撤回。",
                ..Doc::new(TAG, "取消演练")
            },
            |c| Box::pin(handlers::cancel(c)),
        )
        .guard(Perm::Write, ON_DRILL),
        r(
            Method::POST,
            "/api/v1/drills/{id}/postpone",
            BodyKind::Json,
            Doc {
                request: Some(schema::<Postpone>()),
                response: Some(schema::<Drill>()),
                description: "延期演练：按新时间重新安排提醒。",
                ..Doc::new(TAG, "延期演练")
            },
            |c| Box::pin(handlers::postpone(c)),
        )
        .guard(Perm::Write, ON_DRILL),
        r(
            Method::GET,
            "/api/v1/drills/{id}/reminders",
            BodyKind::None,
            Doc { response: Some(schema::<Vec<Reminder>>()), ..Doc::new(TAG, "演练提醒") },
            |c| Box::pin(handlers::list_reminders(c)),
        )
        .guard(Perm::Read, ON_DRILL),
        r(
            Method::GET,
            "/api/v1/drills/{id}/findings",
            BodyKind::None,
            Doc { response: Some(schema::<Vec<Finding>>()), ..Doc::new(TAG, "演练发现的问题") },
            |c| Box::pin(action_handlers::list_findings(c)),
        )
        .guard(Perm::Read, ON_DRILL),
        r(
            Method::POST,
            "/api/v1/drills/{id}/findings",
            BodyKind::Json,
            Doc {
                request: Some(schema::<NewFinding>()),
                status: 201,
                response: Some(schema::<Finding>()),
                ..Doc::new(TAG, "记录发现的问题")
            },
            |c| Box::pin(action_handlers::add_finding(c)),
        )
        .guard(Perm::Write, ON_DRILL),
        r(
            Method::GET,
            "/api/v1/drills/{id}/actions",
            BodyKind::None,
            Doc { response: Some(schema::<Vec<CorrectiveAction>>()), ..Doc::new(TAG, "演练整改措施") },
            |c| Box::pin(action_handlers::list_drill_actions(c)),
        )
        .guard(Perm::Read, ON_DRILL),
        r(
            Method::POST,
            "/api/v1/drills/{id}/actions",
            BodyKind::Json,
            Doc {
                request: Some(schema::<NewAction>()),
                status: 201,
                response: Some(schema::<CorrectiveAction>()),
                ..Doc::new(TAG, "新增整改措施")
            },
            |c| Box::pin(action_handlers::add_action(c)),
        )
        .guard(Perm::Write, ON_DRILL),
        r(
            Method::GET,
            "/api/v1/drills/{id}/report",
            BodyKind::None,
            Doc {
                response_type: Some("text/html"),
                description: "可打印的演练总结报告（中文）。",
                ..Doc::new(TAG, "演练总结报告")
            },
            |c| Box::pin(action_handlers::get_report(c)),
        )
        .guard(Perm::Read, ON_DRILL),
        r(
            Method::GET,
            "/api/v1/actions",
            BodyKind::None,
            Doc {
                query: Some(schema::<ActionQuery>()),
                response: Some(schema::<Page<CorrectiveAction>>()),
                ..Doc::new(TAG, "整改措施")
            },
            |c| Box::pin(action_handlers::list_actions(c)),
        )
        .guard(Perm::Read, &[Region::Query("region")]),
        r(
            Method::PATCH,
            "/api/v1/actions/{id}",
            BodyKind::Json,
            Doc {
                request: Some(schema::<ActionPatch>()),
                response: Some(schema::<CorrectiveAction>()),
                description: "整改状态：open → done → verified（验证需规划员或管理员）。",
                ..Doc::new(TAG, "更新整改措施")
            },
            |c| Box::pin(action_handlers::patch_action(c)),
        )
        .guard(Perm::Write, &[Region::Path("id", &access::ACTION)]),
        route(
            Method::GET,
            "/api/v1/drills.ics",
            Access::FeedToken,
            BodyKind::None,
            Doc {
                description: "RFC 5545 iCalendar 订阅源（UID 稳定、Asia/Shanghai 时间、按提醒设置的 VALARM）。日历应用无法发送 Bearer 请求头：在 URL 中带订阅令牌 token（只读，可吊销）。",
                query: Some(schema::<FeedQuery>()),
                response_type: Some("text/calendar"),
                ..Doc::new(TAG, "演练日历订阅")
            },
            |c| Box::pin(feed::feed(c)),
        ),
        r(
            Method::GET,
            "/api/v1/feed-tokens",
            BodyKind::None,
            Doc {
                response: Some(schema::<crate::http::Page<ics::FeedToken>>()),
                description: "本人的日历订阅令牌（不含令牌本身），{items, total} 与其他列表相同。",
                ..Doc::new(TAG, "我的日历订阅令牌")
            },
            |c| Box::pin(feed::list_feed_tokens(c)),
        )
        .guard(Perm::Read, &[Region::Global]),
        r(
            Method::POST,
            "/api/v1/feed-tokens",
            BodyKind::None,
            Doc {
                status: 201,
                response: Some(schema::<ics::IssuedFeedToken>()),
                description: "为本人签发只读的日历订阅令牌，令牌只显示一次。",
                ..Doc::new(TAG, "签发日历订阅令牌")
            },
            |c| Box::pin(feed::issue_feed_token(c)),
        )
        .guard(Perm::Read, &[Region::Global]),
        r(
            Method::DELETE,
            "/api/v1/feed-tokens/{id}",
            BodyKind::None,
            Doc { status: 204, ..Doc::new(TAG, "吊销日历订阅令牌") },
            |c| Box::pin(feed::revoke_feed_token(c)),
        )
        .guard(Perm::Read, &[Region::Global]),
    ]
}
