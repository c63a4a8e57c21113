//! Drill endpoints.

use chrono::Duration;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use super::actions::{self, ActionQuery, CorrectiveAction, Finding, NewAction, NewFinding};
use super::indicators::{self, Indicator};
use super::reminders::{self, Reminder};
use super::{Actual, DEFAULT_REMINDER_OFFSETS, Drill, Evaluation, Form, Purpose, Scope, Status, ics, report, store};
use crate::audit::{self, Change};
use crate::auth::{Perm, Principal};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::http::Ctx;
use crate::http::ctx::{Page, body, json, json_status, no_content, page};
use crate::http::router::{Access, BodyKind, Doc, Route, route, schema};
use crate::regions::{RegionCode, check_lon_lat};
use crate::scheduler::cron_expr::CronExpr;
use crate::time::Timestamp;

const TAG: &str = "应急演练";

/// Body of `POST /api/v1/drills`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDrill {
    /// Title.
    pub title: String,
    /// Plans exercised.
    #[serde(default)]
    pub plan_ids: Vec<i64>,
    /// Form: tabletop or field.
    pub form: Form,
    /// Scope: single or comprehensive.
    pub scope: Scope,
    /// Purpose: test, demonstration or research.
    pub purpose: Purpose,
    /// What the drill is meant to test or show.
    #[serde(default)]
    pub objective: String,
    /// Organising region (within the caller's jurisdiction).
    pub region: RegionCode,
    /// Organising unit.
    pub organiser_unit: String,
    /// Participating units.
    #[serde(default)]
    pub participating_units: Vec<String>,
    /// Participating teams (codes of filed teams).
    #[serde(default)]
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
    pub limit: Option<u32>,
    /// Items to skip.
    pub offset: Option<u32>,
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
            |c| Box::pin(list(c)),
        ),
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
            |c| Box::pin(create(c)),
        ),
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
        ),
        r(
            Method::GET,
            "/api/v1/drills/{id}",
            BodyKind::None,
            Doc { response: Some(schema::<Drill>()), ..Doc::new(TAG, "查看演练") },
            |c| Box::pin(get(c)),
        ),
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
            |c| Box::pin(patch(c)),
        ),
        r(
            Method::POST,
            "/api/v1/drills/{id}/start",
            BodyKind::None,
            Doc { response: Some(schema::<Drill>()), ..Doc::new(TAG, "开始演练") },
            |c| Box::pin(start(c)),
        ),
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
            |c| Box::pin(complete(c)),
        ),
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
            |c| Box::pin(evaluate(c)),
        ),
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
            |c| Box::pin(cancel(c)),
        ),
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
            |c| Box::pin(postpone(c)),
        ),
        r(
            Method::GET,
            "/api/v1/drills/{id}/reminders",
            BodyKind::None,
            Doc { response: Some(schema::<Vec<Reminder>>()), ..Doc::new(TAG, "演练提醒") },
            |c| Box::pin(list_reminders(c)),
        ),
        r(
            Method::GET,
            "/api/v1/drills/{id}/findings",
            BodyKind::None,
            Doc { response: Some(schema::<Vec<Finding>>()), ..Doc::new(TAG, "演练发现的问题") },
            |c| Box::pin(list_findings(c)),
        ),
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
            |c| Box::pin(add_finding(c)),
        ),
        r(
            Method::GET,
            "/api/v1/drills/{id}/actions",
            BodyKind::None,
            Doc { response: Some(schema::<Vec<CorrectiveAction>>()), ..Doc::new(TAG, "演练整改措施") },
            |c| Box::pin(list_drill_actions(c)),
        ),
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
            |c| Box::pin(add_action(c)),
        ),
        r(
            Method::GET,
            "/api/v1/drills/{id}/report",
            BodyKind::None,
            Doc {
                response_type: Some("text/html"),
                description: "可打印的演练总结报告（中文）。",
                ..Doc::new(TAG, "演练总结报告")
            },
            |c| Box::pin(get_report(c)),
        ),
        r(
            Method::GET,
            "/api/v1/actions",
            BodyKind::None,
            Doc {
                query: Some(schema::<ActionQuery>()),
                response: Some(schema::<Page<CorrectiveAction>>()),
                ..Doc::new(TAG, "整改措施")
            },
            |c| Box::pin(list_actions(c)),
        ),
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
            |c| Box::pin(patch_action(c)),
        ),
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
            |c| Box::pin(feed(c)),
        ),
        r(
            Method::GET,
            "/api/v1/feed-tokens",
            BodyKind::None,
            Doc { response: Some(schema::<Vec<ics::FeedToken>>()), ..Doc::new(TAG, "我的日历订阅令牌") },
            |c| Box::pin(list_feed_tokens(c)),
        ),
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
            |c| Box::pin(issue_feed_token(c)),
        ),
        r(
            Method::DELETE,
            "/api/v1/feed-tokens/{id}",
            BodyKind::None,
            Doc { status: 204, ..Doc::new(TAG, "吊销日历订阅令牌") },
            |c| Box::pin(revoke_feed_token(c)),
        ),
    ]
}

fn to_value<T: Serialize>(v: &T) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(v).map_err(|e| ApiError::Internal(e.into()))
}

fn check_offsets(offsets: &[i64], errors: &mut Vec<FieldError>) {
    if offsets.len() > 10 {
        errors.push(FieldError::field("reminder_offsets", "提醒最多 10 个"));
    }
    for (i, o) in offsets.iter().enumerate() {
        if !(1..=60 * 24 * 180).contains(o) {
            errors.push(FieldError::field(format!("reminder_offsets[{i}]"), "提醒应提前 1 分钟到 180 天（以分钟计）"));
        }
        if offsets[..i].contains(o) {
            errors.push(FieldError::field(format!("reminder_offsets[{i}]"), "提醒时间重复"));
        }
    }
}

fn check_times(starts: Timestamp, ends: Timestamp, errors: &mut Vec<FieldError>) {
    if ends <= starts {
        errors.push(FieldError::field("ends_at", "结束时间应晚于开始时间"));
    } else if ends.0 - starts.0 > Duration::days(30) {
        errors.push(FieldError::field("ends_at", "一次演练不超过 30 天"));
    }
}

fn check_text(field: &str, v: &str, max: usize, required: bool, errors: &mut Vec<FieldError>) {
    if required && v.trim().is_empty() {
        errors.push(FieldError::field(field, "不能为空"));
    }
    if v.chars().count() > max {
        errors.push(FieldError::field(field, format!("不超过 {max} 个字符")));
    }
}

fn check_location(lon: Option<f64>, lat: Option<f64>, errors: &mut Vec<FieldError>) {
    match (lon, lat) {
        (Some(lon), Some(lat)) => {
            if let Err(m) = check_lon_lat(lon, lat) {
                errors.push(FieldError::field("lon", m));
            }
        }
        (None, None) => {}
        _ => errors.push(FieldError::field("lon", "经度和纬度须同时给出")),
    }
}

fn fail(errors: Vec<FieldError>) -> ApiResult<()> {
    if errors.is_empty() {
        Ok(())
    } else {
        let first = errors[0].message.clone();
        let field = errors[0].field.clone().unwrap_or_default();
        Err(ApiError::invalid_many(format!("{field}：{first}"), errors))
    }
}

/// Loads a drill the caller may see; `perm` is checked on its region.
async fn load(c: &Ctx, perm: Perm) -> ApiResult<(Principal, Drill)> {
    let p = c.require(perm)?.clone();
    let id = c.id_param("id")?;
    let d = store::get(&c.app.db, id).await?.ok_or_else(|| ApiError::NotFound(format!("演练 {id} 不存在")))?;
    if !p.scope.contains(&d.region_code) {
        return Err(ApiError::NotFound(format!("演练 {id} 不存在")));
    }
    Ok((p, d))
}

async fn list(c: Ctx) -> ApiResult<Response> {
    let p = c.require(Perm::Read)?;
    let q: DrillQuery = c.query()?;
    let (limit, offset) = page(q.limit, q.offset)?;
    let bounds = bounds_for(p, q.region.as_ref())?;
    let f = store::Filter { bounds, from: q.from, to: q.to, status: q.status, plan_id: q.plan };
    let (items, total) = store::list(&c.app.db, &f, limit, offset).await?;
    json(&Page { items, total })
}

fn bounds_for(p: &Principal, region: Option<&RegionCode>) -> ApiResult<(String, String)> {
    match region {
        None => Ok(p.scope.bounds()),
        Some(r) => {
            p.require_region(r.as_str())?;
            let level = if r.as_str().ends_with("000000") {
                crate::regions::Level::Banner
            } else if r.as_str().ends_with("000") {
                crate::regions::Level::Township
            } else {
                crate::regions::Level::Village
            };
            Ok(crate::auth::Scope { code: r.clone(), level }.bounds())
        }
    }
}

async fn create(c: Ctx) -> ApiResult<Response> {
    let p = c.require(Perm::Write)?.clone();
    let b: NewDrill = c.json()?;
    p.require_region(b.region.as_str())?;
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
        ensure_next(&mut tx, &actor, series, now).await?;
    }
    tx.commit().await?;
    c.app.wake.notify_one();
    let d = store::get(&c.app.db, id).await?.ok_or_else(|| anyhow::anyhow!("drill vanished"))?;
    json_status(StatusCode::CREATED, &d)
}

/// Keeps one materialised occurrence ahead in a recurring series: when fewer than two are still
/// upcoming, the occurrence after the latest is created (with its own record and reminders).
async fn ensure_next(tx: &mut crate::db::Tx, actor: &audit::Actor, series: i64, now: Timestamp) -> ApiResult<()> {
    let upcoming = store::upcoming_in_series(tx, series).await?;
    if upcoming >= 2 {
        return Ok(());
    }
    let Some((latest_id, _)) = store::latest_in_series(tx, series).await? else { return Ok(()) };
    let Some(latest) = store::get_tx(tx, latest_id).await? else { return Ok(()) };
    let Some(expr) = latest.recurrence.as_deref().and_then(|e| CronExpr::parse(e).ok()) else { return Ok(()) };
    let after = latest.postponed_from.unwrap_or(latest.starts_at);
    let Some(next) = expr.next_after(&after.0.with_timezone(&crate::time::LOCAL_TZ)) else { return Ok(()) };
    let start = Timestamp(next.with_timezone(&chrono::Utc));
    let d = Drill {
        id: 0,
        starts_at: start,
        ends_at: Timestamp(start.0 + (latest.ends_at.0 - latest.starts_at.0)),
        status: Status::Planned,
        status_label: Status::Planned.label(),
        postponed_from: None,
        cancel_reason: None,
        actual: None,
        evaluation: None,
        sequence: 0,
        created_at: now,
        updated_at: now,
        ..latest
    };
    let id = store::insert(tx, &d).await?;
    let d = Drill { id, ..d };
    reminders::plan(tx, &d, now).await?;
    audit::record(
        tx,
        actor,
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
    Ok(())
}

async fn get(c: Ctx) -> ApiResult<Response> {
    let (_, d) = load(&c, Perm::Read).await?;
    json(&d)
}

/// Saves a changed drill with its audit row (and re-plans reminders).
async fn save(c: &Ctx, before: &Drill, mut after: Drill, action: &str) -> ApiResult<Drill> {
    let now = c.now();
    after.updated_at = now;
    after.sequence = before.sequence + 1;
    after.status_label = after.status.label();
    let actor = c.actor()?;
    let mut tx = c.app.db.begin().await?;
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
        ensure_next(&mut tx, &actor, series, now).await?;
    }
    if after.status == Status::Completed && before.status != Status::Completed {
        crate::drills::store::record_drilled(&mut tx, &after, now).await?;
    }
    tx.commit().await?;
    c.app.wake.notify_one();
    Ok(after)
}

fn require_status(d: &Drill, allowed: &[Status], what: &str) -> ApiResult<()> {
    if allowed.contains(&d.status) {
        Ok(())
    } else {
        Err(ApiError::Conflict(format!("演练 {} 当前状态为「{}」，不能{what}", d.id, d.status.label())))
    }
}

async fn patch(c: Ctx) -> ApiResult<Response> {
    let b: DrillPatch = c.json()?;
    let (_, before) = load(&c, Perm::Write).await?;
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
    if b.lon.is_some() || b.lat.is_some() {
        check_location(b.lon, b.lat, &mut errors);
        (d.lon, d.lat) = (b.lon, b.lat);
    }
    if let Some(v) = b.reminder_offsets {
        check_offsets(&v, &mut errors);
        d.reminder_offsets = v;
    }
    fail(errors)?;
    json(&save(&c, &before, d, "update").await?)
}

async fn start(c: Ctx) -> ApiResult<Response> {
    let (_, before) = load(&c, Perm::Write).await?;
    require_status(&before, &[Status::Planned, Status::Postponed], "开始")?;
    let d = Drill { status: Status::InProgress, ..before.clone() };
    json(&save(&c, &before, d, "start").await?)
}

async fn complete(c: Ctx) -> ApiResult<Response> {
    let actual: Actual = c.json()?;
    let (_, before) = load(&c, Perm::Write).await?;
    require_status(&before, &[Status::Planned, Status::Postponed, Status::InProgress], "完成")?;
    let mut errors = Vec::new();
    if actual.participant_count < 0 {
        errors.push(FieldError::field("participant_count", "参演人数不能为负"));
    }
    check_text("scenario", &actual.scenario, 8000, true, &mut errors);
    fail(errors)?;
    let d = Drill { status: Status::Completed, actual: Some(actual), ..before.clone() };
    json(&save(&c, &before, d, "complete").await?)
}

async fn evaluate(c: Ctx) -> ApiResult<Response> {
    let mut e: Evaluation = c.json()?;
    let (_, before) = load(&c, Perm::Write).await?;
    require_status(&before, &[Status::Completed, Status::Evaluated], "评估（须先完成演练）")?;
    indicators::score(before.form, &mut e).map_err(|errs| {
        let errors: Vec<FieldError> = errs.into_iter().map(|(f, m)| FieldError::field(f, m)).collect();
        ApiError::invalid_many(format!("评估有 {} 处错误：{}", errors.len(), errors[0].message), errors)
    })?;
    let d = Drill { status: Status::Evaluated, evaluation: Some(e), ..before.clone() };
    json(&save(&c, &before, d, "evaluate").await?)
}

async fn cancel(c: Ctx) -> ApiResult<Response> {
    let b: Cancel = c.json()?;
    let (_, before) = load(&c, Perm::Write).await?;
    require_status(&before, &[Status::Planned, Status::Postponed], "取消")?;
    if b.reason.trim().is_empty() {
        return Err(ApiError::invalid("reason", "请说明取消原因"));
    }
    let d = Drill { status: Status::Cancelled, cancel_reason: Some(b.reason.trim().to_string()), ..before.clone() };
    json(&save(&c, &before, d, "cancel").await?)
}

async fn postpone(c: Ctx) -> ApiResult<Response> {
    let b: Postpone = c.json()?;
    let (_, before) = load(&c, Perm::Write).await?;
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
    json(&save(&c, &before, d, "postpone").await?)
}

async fn list_reminders(c: Ctx) -> ApiResult<Response> {
    let (_, d) = load(&c, Perm::Read).await?;
    json(&reminders::list(&c.app.db, d.id).await?)
}

async fn list_findings(c: Ctx) -> ApiResult<Response> {
    let (_, d) = load(&c, Perm::Read).await?;
    json(&actions::findings(&c.app.db, d.id).await?)
}

async fn add_finding(c: Ctx) -> ApiResult<Response> {
    let b: NewFinding = c.json()?;
    let (_, d) = load(&c, Perm::Write).await?;
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

async fn list_drill_actions(c: Ctx) -> ApiResult<Response> {
    let (_, d) = load(&c, Perm::Read).await?;
    json(&actions::actions_of(&c.app.db, d.id).await?)
}

async fn add_action(c: Ctx) -> ApiResult<Response> {
    let b: NewAction = c.json()?;
    let (_, d) = load(&c, Perm::Write).await?;
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

async fn list_actions(c: Ctx) -> ApiResult<Response> {
    let p = c.require(Perm::Read)?;
    let q: ActionQuery = c.query()?;
    let (limit, offset) = page(q.limit, q.offset)?;
    let (lo, hi) = p.scope.bounds();
    let today = c.now().0.with_timezone(&crate::time::LOCAL_TZ).date_naive();
    let (items, total) = actions::list_actions(&c.app.db, (&lo, &hi), &q, today, limit, offset).await?;
    json(&Page { items, total })
}

async fn patch_action(c: Ctx) -> ApiResult<Response> {
    let b: ActionPatch = c.json()?;
    let p = c.require(Perm::Write)?;
    let id = c.id_param("id")?;
    let before = actions::get_action(&c.app.db, id)
        .await?
        .filter(|a| p.scope.contains(&a.region_code))
        .ok_or_else(|| ApiError::NotFound(format!("整改措施 {id} 不存在")))?;
    let allowed = matches!(
        (before.status.as_str(), b.status.as_str()),
        ("open", "done") | ("done", "verified") | ("done", "open")
    );
    if !["open", "done", "verified"].contains(&b.status.as_str()) {
        return Err(ApiError::invalid("status", "状态应为 open、done 或 verified"));
    }
    if !allowed {
        return Err(ApiError::Conflict(format!(
            "整改措施不能从 {} 改为 {}（open → done → verified）",
            before.status, b.status
        )));
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

async fn get_report(c: Ctx) -> ApiResult<Response> {
    let (_, d) = load(&c, Perm::Read).await?;
    let findings = actions::findings(&c.app.db, d.id).await?;
    let acts = actions::actions_of(&c.app.db, d.id).await?;
    let titles = store::plan_titles(&c.app.db, &d.plan_ids).await.unwrap_or_default();
    Ok(body("text/html; charset=utf-8", report::render(&d, &findings, &acts, &titles)))
}

async fn feed(c: Ctx) -> ApiResult<Response> {
    let q: FeedQuery = c.query()?;
    let principal = match &q.token {
        Some(t) => {
            let user = ics::authenticate(&c.app.db, t).await?.ok_or_else(|| {
                c.app.metrics.auth_failure("feed");
                ApiError::Unauthorized("订阅令牌无效或已吊销".into())
            })?;
            crate::auth::tokens::principal_for_user(&c.app.db, user)
                .await?
                .ok_or_else(|| ApiError::Unauthorized("订阅令牌无效".into()))?
        }
        None => crate::http::authenticate_headers(&c.app, &c.headers, &c.request_id).await?,
    };
    let now = c.now();
    let bounds = bounds_for(&principal, q.region.as_ref())?;
    let f = store::Filter {
        bounds,
        from: Some(q.from.unwrap_or(Timestamp(now.0 - Duration::days(90)))),
        to: Some(q.to.unwrap_or(Timestamp(now.0 + Duration::days(366)))),
        status: None,
        plan_id: None,
    };
    let (drills, _) = store::list(&c.app.db, &f, 5000, 0).await?;
    Ok(body("text/calendar; charset=utf-8", ics::render(&drills, now)))
}

async fn list_feed_tokens(c: Ctx) -> ApiResult<Response> {
    let p = c.require(Perm::Read)?;
    json(&ics::list(&c.app.db, p.user_id).await?)
}

async fn issue_feed_token(c: Ctx) -> ApiResult<Response> {
    let p = c.require(Perm::Read)?;
    let issued = ics::issue(&c.app.db, p.user_id, c.now()).await?;
    json_status(StatusCode::CREATED, &issued)
}

async fn revoke_feed_token(c: Ctx) -> ApiResult<Response> {
    let p = c.require(Perm::Read)?;
    let id = c.id_param("id")?;
    if ics::revoke(&c.app.db, p.user_id, id, c.now()).await? {
        Ok(no_content())
    } else {
        Err(ApiError::NotFound(format!("订阅令牌 {id} 不存在")))
    }
}
