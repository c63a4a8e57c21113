//! Schedule and job-history endpoints.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use warp::http::Method;
use warp::reply::Response;

use super::cron_expr::CronExpr;
use super::runs::{self, JobRun, RunQuery};
use super::schedules::{self, MissedPolicy, Schedule};
use crate::audit::{self, Change};
use crate::auth::Perm;
use crate::error::{ApiError, ApiResult};
use crate::http::Ctx;
use crate::http::access::Region;
use crate::http::ctx::{Page, json, page};
use crate::http::router::{Access, BodyKind, Doc, Route, route, schema};
use crate::time::Timestamp;

/// A schedule with its last run, for the overview.
#[derive(Debug, Serialize, JsonSchema)]
pub struct JobOverview {
    /// The schedule (its `next_due_at` is the next run).
    #[serde(flatten)]
    pub schedule: Schedule,
    /// Chinese name of the job.
    pub job_label: &'static str,
    /// The latest run, if any.
    pub last_run: Option<JobRun>,
}

/// Body of `PATCH /api/v1/jobs/{name}`. A changed expression or zone takes effect from now.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SchedulePatch {
    /// Standard 5-field cron: minute hour day-of-month month day-of-week (0–7, 0 and 7 Sunday).
    pub cron: Option<String>,
    /// IANA time zone, e.g. Asia/Shanghai.
    pub timezone: Option<String>,
    /// Whether it runs.
    pub enabled: Option<bool>,
    /// Policy for occurrences missed during downtime.
    pub missed_policy: Option<MissedPolicy>,
    /// Cap for `run_all` catch-up (1–1000).
    pub max_catchup: Option<i64>,
}

/// Routes of this module.
pub fn routes() -> Vec<Route> {
    vec![
        route(
            Method::GET,
            "/api/v1/jobs",
            Access::Token,
            BodyKind::None,
            Doc {
                description: "每个调度任务及其上次、下次运行时间（Asia/Shanghai）。",
                response: Some(schema::<Page<JobOverview>>()),
                ..Doc::new("调度", "调度任务")
            },
            |c| Box::pin(list(c)),
        )
        .guard(Perm::Read, &[Region::Global]),
        route(
            Method::PATCH,
            "/api/v1/jobs/{name}",
            Access::Token,
            BodyKind::Json,
            Doc {
                description: "管理员：修改调度任务的 cron 表达式（标准 5 字段）、时区、启停、错过运行的处理策略。新表达式从现在起生效。",
                request: Some(schema::<SchedulePatch>()),
                response: Some(schema::<Schedule>()),
                ..Doc::new("调度", "修改调度任务")
            },
            |c| Box::pin(patch(c)),
        )
        .guard(Perm::Approve, &[Region::Banner]),
        route(
            Method::GET,
            "/api/v1/jobs/runs",
            Access::Token,
            BodyKind::None,
            Doc {
                description: "运行记录：每次运行的计划时间、开始与结束时间、状态、计数、错误；停机期间跳过的运行也在其中。",
                query: Some(schema::<RunQuery>()),
                response: Some(schema::<Page<JobRun>>()),
                ..Doc::new("调度", "运行记录")
            },
            |c| Box::pin(list_runs(c)),
        )
        .guard(Perm::Read, &[Region::Global]),
    ]
}

async fn list(c: Ctx) -> ApiResult<Response> {
    let all = schedules::list(&c.app.db).await?;
    let mut last = runs::latest_per_schedule(&c.app.db).await?;
    let items: Vec<JobOverview> = all
        .into_iter()
        .map(|s| {
            let pos = last.iter().position(|r| r.schedule == s.name);
            JobOverview { job_label: s.job.label(), last_run: pos.map(|i| last.swap_remove(i)), schedule: s }
        })
        .collect();
    let total = items.len() as i64;
    json(&Page { items, total })
}

async fn patch(c: Ctx) -> ApiResult<Response> {
    let b: SchedulePatch = c.json()?;
    let name = c.param("name").to_string();
    let before =
        schedules::get(&c.app.db, &name).await?.ok_or_else(|| ApiError::NotFound(format!("调度任务 {name} 不存在")))?;
    let mut s = before.clone();
    if let Some(cron) = &b.cron {
        CronExpr::parse(cron).map_err(|m| ApiError::invalid("cron", m))?;
        s.cron = cron.trim().to_string();
    }
    if let Some(tz) = &b.timezone {
        tz.parse::<chrono_tz::Tz>().map_err(|_| {
            ApiError::invalid("timezone", format!("时区 {tz:?} 无效，应为 IANA 名称，如 Asia/Shanghai"))
        })?;
        s.timezone = tz.clone();
    }
    if let Some(e) = b.enabled {
        s.enabled = e;
    }
    if let Some(m) = b.missed_policy {
        s.missed_policy = m;
    }
    if let Some(n) = b.max_catchup {
        if !(1..=1000).contains(&n) {
            return Err(ApiError::invalid("max_catchup", "应在 1 到 1000 之间"));
        }
        s.max_catchup = n;
    }
    let now = c.now();
    if s.cron != before.cron || s.timezone != before.timezone || (s.enabled && !before.enabled) {
        let cron = CronExpr::parse(&s.cron).map_err(|m| ApiError::invalid("cron", m))?;
        let tz: chrono_tz::Tz = s.timezone.parse().unwrap_or(crate::time::LOCAL_TZ);
        let next = schedules::next_occurrence(&cron, tz, now.0)
            .ok_or_else(|| ApiError::invalid("cron", "该表达式以后不会再触发"))?;
        s.next_due_at = Timestamp(next);
    }
    s.updated_at = now;
    let mut tx = c.app.db.begin().await?;
    schedules::save(&mut tx, &s).await?;
    audit::record(
        &mut tx,
        &c.actor()?,
        now,
        Change {
            action: "update",
            entity_type: "schedule",
            entity_id: &s.name,
            region_code: Some(&c.principal()?.scope.code.to_string()),
            before: Some(serde_json::to_value(&before).map_err(anyhow::Error::from)?),
            after: Some(serde_json::to_value(&s).map_err(anyhow::Error::from)?),
        },
    )
    .await?;
    tx.commit().await?;
    c.app.wake.notify_one();
    json(&s)
}

async fn list_runs(c: Ctx) -> ApiResult<Response> {
    let q: RunQuery = c.query()?;
    let (limit, offset) = page(q.limit, q.offset)?;
    let (items, total) = runs::list(&c.app.db, &q, limit, offset).await?;
    json(&Page { items, total })
}
