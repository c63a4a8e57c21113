//! Readiness endpoints.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use warp::http::Method;
use warp::reply::Response;

use super::store::{self, Finding, FindingQuery, ScorePoint};
use super::{Config, engine, report};
use crate::audit::{self, Change};
use crate::auth::{Perm, Principal, Scope};
use crate::error::{ApiError, ApiResult};
use crate::http::Ctx;
use crate::http::access::Region;
use crate::http::ctx::{Page, body, json, json_status, page};
use crate::http::router::{Access, BodyKind, Doc, Route, route, schema};
use crate::regions::RegionCode;
use crate::time::Timestamp;
use warp::http::StatusCode;

const TAG: &str = "准备情况检查";

/// A region's readiness.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Readiness {
    /// Region code.
    pub region: String,
    /// Region name.
    pub region_name: String,
    /// Score 0–100 of the latest run (None before the first run).
    pub score: Option<i64>,
    /// When the latest run started.
    pub run_at: Option<Timestamp>,
    /// Matching findings (a page of them), as `items` like every list.
    pub items: Vec<Finding>,
    /// How many findings match in all.
    pub total: i64,
}

/// Query of the history.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Region (default: the caller's).
    pub region: Option<RegionCode>,
    /// Page size (default 100, max 1000).
    pub limit: Option<crate::http::ctx::Limit>,
    /// Items to skip.
    pub offset: Option<crate::http::ctx::Offset>,
}

/// Query of a run request.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunQuery {
    /// Wait for the run and answer with its summary (default true); false: answer 202 with the
    /// run id at once and run in the background.
    pub wait: Option<bool>,
}

/// Query of the report.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// Region (default: the caller's).
    pub region: Option<RegionCode>,
}

/// Routes of this module.
pub fn routes() -> Vec<Route> {
    vec![
        route(
            Method::GET,
            "/api/v1/readiness",
            Access::Token,
            BodyKind::None,
            Doc {
                description: "区划的准备情况：最近一次检查的得分和未解决的问题（默认含下级区划）。得分 = 100 − 15×严重 − 5×警告 − 1×提示（不低于 0），按本级及下级未解决问题计算。",
                query: Some(schema::<FindingQuery>()),
                response: Some(schema::<Readiness>()),
                ..Doc::new(TAG, "准备情况")
            },
            |c| Box::pin(get(c)),
        )
        .guard(Perm::Read, &[Region::Query("region")]),
        route(
            Method::GET,
            "/api/v1/readiness/history",
            Access::Token,
            BodyKind::None,
            Doc {
                query: Some(schema::<HistoryQuery>()),
                response: Some(schema::<Page<ScorePoint>>()),
                ..Doc::new(TAG, "得分历史")
            },
            |c| Box::pin(history(c)),
        )
        .guard(Perm::Read, &[Region::Query("region")]),
        route(
            Method::POST,
            "/api/v1/readiness/run",
            Access::Token,
            BodyKind::None,
            Doc {
                description: "管理员：立即运行一次全旗准备情况检查，返回本次摘要（新增、仍存在、已解决的问题数，按规则计数）。带 `wait=false` 时不等待：检查在后台运行，立即返回 202 和检查编号（`run_id`），进度见 `GET /api/v1/readiness/runs/{id}`。",
                query: Some(schema::<RunQuery>()),
                response: Some(schema::<Value>()),
                ..Doc::new(TAG, "立即检查")
            },
            |c| Box::pin(run(c)),
        )
        .guard(Perm::Approve, &[Region::Banner]),
        route(
            Method::GET,
            "/api/v1/readiness/runs/{id}",
            Access::Token,
            BodyKind::None,
            Doc {
                description: "一次检查的状态和进度（已完成步骤 / 总步骤、当前步骤）；完成后含摘要，失败时含错误。",
                response: Some(schema::<store::RunStatus>()),
                ..Doc::new(TAG, "检查进度")
            },
            |c| Box::pin(run_status(c)),
        )
        .guard(Perm::Approve, &[Region::Banner]),
        route(
            Method::GET,
            "/api/v1/readiness/report",
            Access::Token,
            BodyKind::None,
            Doc {
                query: Some(schema::<ReportQuery>()),
                response_type: Some("text/html"),
                description: "可打印的中文准备情况报告。",
                ..Doc::new(TAG, "准备情况报告")
            },
            |c| Box::pin(get_report(c)),
        )
        .guard(Perm::Read, &[Region::Query("region")]),
        route(
            Method::GET,
            "/api/v1/readiness/config",
            Access::Token,
            BodyKind::None,
            Doc { response: Some(schema::<Config>()), ..Doc::new(TAG, "检查配置") },
            |c| Box::pin(get_config(c)),
        )
        .guard(Perm::Read, &[Region::Global]),
        route(
            Method::PUT,
            "/api/v1/readiness/config",
            Access::Token,
            BodyKind::Json,
            Doc {
                description: "旗级管理员：必备专项预案的灾种清单、到期预警天数、备案待审天数、各规则的严重程度。",
                request: Some(schema::<Config>()),
                response: Some(schema::<Config>()),
                ..Doc::new(TAG, "修改检查配置")
            },
            |c| Box::pin(put_config(c)),
        )
        .guard(Perm::Approve, &[Region::Banner]),
    ]
}

/// The region asked about (default: the caller's), checked against the jurisdiction.
fn region_scope(p: &Principal, region: Option<&RegionCode>) -> ApiResult<Scope> {
    let Some(code) = region else { return Ok(p.scope.clone()) };
    p.require_region(code.as_str())?;
    Ok(Scope::of(code))
}

async fn get(c: Ctx) -> ApiResult<Response> {
    let p = c.caller()?;
    let q: FindingQuery = c.query()?;
    let (limit, offset) = page(q.limit, q.offset)?;
    let scope = region_scope(p, q.region.as_ref())?;
    if let Some(r) = &q.rule
        && super::Rule::parse(r).is_none()
    {
        return Err(ApiError::BadRequest {
            detail: format!("未知的规则 {r:?}"),
            errors: vec![crate::error::FieldError::field("rule", "未知的规则")],
        });
    }
    let (lo, hi) = scope.bounds();
    let exact = (!q.include_children.unwrap_or(true)).then(|| scope.code.to_string());
    let (findings, total) = store::list(&c.app.db, (&lo, &hi), exact.as_deref(), &q, limit, offset).await?;
    let latest = store::latest_score(&c.app.db, scope.code.as_str()).await?;
    let name = crate::regions::store::get(&c.app.db, scope.code.as_str()).await?.map(|r| r.name).unwrap_or_default();
    json(&Readiness {
        region: scope.code.to_string(),
        region_name: name,
        score: latest.as_ref().map(|s| s.score),
        run_at: latest.map(|s| s.run_at),
        items: findings,
        total,
    })
}

async fn history(c: Ctx) -> ApiResult<Response> {
    let p = c.caller()?;
    let q: HistoryQuery = c.query()?;
    let (limit, offset) = page(q.limit, q.offset)?;
    let scope = region_scope(p, q.region.as_ref())?;
    let (items, total) = store::history(&c.app.db, scope.code.as_str(), limit, offset).await?;
    json(&Page { items, total })
}

async fn run(c: Ctx) -> ApiResult<Response> {
    let q: RunQuery = c.query()?;
    let state = c.app.clone();
    // Recorded first (refused while another run is under way), so the id handed out names a
    // run that exists; carried out in its own task, which outlives this request.
    let (run_id, now) = engine::start(&state, "api").await.map_err(refused)?;
    if !q.wait.unwrap_or(true) {
        tokio::spawn(async move {
            if let Err(e) = engine::execute(&state, run_id, now).await {
                tracing::warn!(run = run_id, "readiness run failed: {e:#}");
            }
        });
        return json_status(
            StatusCode::ACCEPTED,
            &serde_json::json!({"run_id": run_id, "status": "running", "status_url": format!("/api/v1/readiness/runs/{run_id}")}),
        );
    }
    // The run goes on in its own task: this request waits for it, others are not held up.
    let summary = tokio::spawn(async move { engine::execute(&state, run_id, now).await })
        .await
        .map_err(|e| ApiError::Internal(e.into()))??;
    json(&summary)
}

/// A run that could not start: 409 naming the run under way (one run at a time; its progress
/// is at its status URL).
fn refused(e: store::StartError) -> ApiError {
    match e {
        store::StartError::Running(id) => ApiError::Conflict(format!("{e}；进度见 /api/v1/readiness/runs/{id}")),
        store::StartError::Db(d) => d.into(),
    }
}

async fn run_status(c: Ctx) -> ApiResult<Response> {
    let id = c.id_param("id")?;
    // A run whose instance died shows as failed once its lease has lapsed, not running forever.
    store::abandon_lapsed(&c.app.db, c.now()).await?;
    let run = store::run_status(&c.app.db, id).await?.ok_or_else(|| ApiError::NotFound(format!("检查 {id} 不存在")))?;
    json(&run)
}

async fn get_report(c: Ctx) -> ApiResult<Response> {
    let p = c.caller()?;
    let q: ReportQuery = c.query()?;
    let scope = region_scope(p, q.region.as_ref())?;
    let (lo, hi) = scope.bounds();
    let (findings, total) = store::list(&c.app.db, (&lo, &hi), None, &FindingQuery::default(), 1000, 0).await?;
    let latest = store::latest_score(&c.app.db, scope.code.as_str()).await?;
    let children = store::child_scores(&c.app.db, scope.code.as_str()).await?;
    let region = crate::regions::store::get(&c.app.db, scope.code.as_str())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("区划 {} 不存在", scope.code)))?;
    let now = c.now();
    let html = crate::blocking::cpu(move || report::render(&region, latest.as_ref(), &findings, total, &children, now))
        .await?;
    Ok(body("text/html; charset=utf-8", html))
}

async fn get_config(c: Ctx) -> ApiResult<Response> {
    json(&store::config(&c.app.db).await?)
}

async fn put_config(c: Ctx) -> ApiResult<Response> {
    let p = c.caller()?;
    let new: Config = c.json()?;
    if !(1..=365).contains(&new.expiry_warning_days) {
        return Err(ApiError::invalid("expiry_warning_days", "应在 1 到 365 之间"));
    }
    if !(1..=365).contains(&new.team_filing_pending_days) {
        return Err(ApiError::invalid("team_filing_pending_days", "应在 1 到 365 之间"));
    }
    if !(0..=1000).contains(&new.max_individual_critical) {
        return Err(ApiError::invalid("max_individual_critical", "应在 0 到 1000 之间"));
    }
    if let Some(bad) = new.severity_overrides.keys().find(|k| super::Rule::parse(k).is_none()) {
        return Err(ApiError::invalid("severity_overrides", format!("未知的规则 {bad:?}")));
    }
    let before = store::config(&c.app.db).await?;
    let now = c.now();
    let mut tx = c.app.db.begin().await?;
    store::save_config(&mut tx, &new, now).await?;
    audit::record(
        &mut tx,
        &c.actor()?,
        now,
        Change {
            action: "update",
            entity_type: "readiness_config",
            entity_id: "1",
            region_code: Some(p.scope.code.as_str()),
            before: Some(serde_json::to_value(&before).map_err(anyhow::Error::from)?),
            after: Some(serde_json::to_value(&new).map_err(anyhow::Error::from)?),
        },
    )
    .await?;
    tx.commit().await?;
    json(&new)
}
