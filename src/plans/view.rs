//! What the API shows of a plan: the full view (latest version, version in force, requirements,
//! deadlines) and the list with its filters.

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use warp::reply::Response;

use super::deadlines::{self, DeadlineInput, Deadlines};
use super::store::{self, ListFilter};
use super::{PlanKind, PlanStatus, PlanVersion, Requirements};
use crate::error::{ApiError, ApiResult};
use crate::http::Ctx;
use crate::http::ctx::{Page, json, page};
use crate::regions::RegionCode;
use crate::time::{LOCAL_TZ, Timestamp};
use crate::vocab::Hazard;

/// The banner's calendar date of an instant (deadlines are judged by the local date).
pub fn today(now: Timestamp) -> NaiveDate {
    now.0.with_timezone(&LOCAL_TZ).date_naive()
}

/// Filters of `GET /api/v1/plans`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanQuery {
    /// Only plans owned by this region or regions below it.
    pub region: Option<RegionCode>,
    /// Only this kind.
    pub kind: Option<PlanKind>,
    /// Only plans covering this hazard (latest version).
    pub hazard: Option<Hazard>,
    /// Only plans whose latest version or version in force has this status.
    pub status: Option<PlanStatus>,
    /// `true`: only plans with an overdue filing, evaluation or drill; `false`: only those without.
    pub overdue: Option<bool>,
    /// Page size (default 100, max 1000).
    pub limit: Option<crate::http::ctx::Limit>,
    /// Items to skip.
    pub offset: Option<crate::http::ctx::Offset>,
}

/// A plan in a list.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PlanSummary {
    /// Plan id (stable across versions).
    pub id: i64,
    /// Stable key (plans from `plans/` files).
    pub key: Option<String>,
    /// Owner region.
    pub region_code: String,
    /// Kind.
    pub kind: PlanKind,
    /// Title of the latest version.
    pub title: String,
    /// Hazards of the latest version.
    pub hazards: Vec<Hazard>,
    /// Status of the latest version.
    pub status: PlanStatus,
    /// Number of the latest version.
    pub latest_version: i64,
    /// Number of the version in force (approved or filed), if any.
    pub current_version: Option<i64>,
    /// Deadlines of the version in force.
    pub deadlines: Deadlines,
}

/// A plan: identity, latest version in full, the version in force, requirements and deadlines.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PlanView {
    /// Plan id (stable across versions).
    pub id: i64,
    /// Stable key.
    pub key: Option<String>,
    /// Owner region.
    pub region_code: String,
    /// Kind.
    pub kind: PlanKind,
    /// Chinese name of the kind.
    pub kind_label: &'static str,
    /// Status of the latest version.
    pub status: PlanStatus,
    /// Number of the latest version.
    pub latest_version: i64,
    /// Number of the version in force, if any.
    pub current_version: Option<i64>,
    /// Drill and evaluation requirements of the version in force (else of the latest).
    pub requirements: Requirements,
    /// Deadlines of the version in force.
    pub deadlines: Deadlines,
    /// The latest version.
    pub version: PlanVersion,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

/// Builds the view of plan `id`.
pub async fn view(c: &Ctx, id: i64) -> ApiResult<PlanView> {
    let db = &c.app.db;
    let plan = store::get(db, id).await?.ok_or_else(|| ApiError::NotFound(format!("预案 {id} 不存在")))?;
    let missing = || ApiError::Internal(anyhow::anyhow!("plan {id} lacks a version"));
    let latest = store::version(db, id, plan.latest_version).await?.ok_or_else(missing)?;
    let current = match plan.current_version {
        Some(n) if n == latest.version => Some(latest.clone()),
        Some(n) => store::version(db, id, n).await?,
        None => None,
    };
    let basis = current.as_ref().unwrap_or(&latest);
    let input = DeadlineInput {
        status: current.as_ref().map(|v| v.status),
        issued_on: current.as_ref().and_then(|v| v.issued_on),
        filed_on: current.as_ref().and_then(|v| v.filed_on),
        drill_months: basis.content.drill_months(),
        evaluation_months: basis.content.evaluation_months(),
        last_evaluated_on: super::evaluations::last_evaluated_on(db, id).await?,
        last_drilled_on: plan.last_drilled_on,
    };
    Ok(PlanView {
        id,
        key: plan.plan_key,
        region_code: plan.region_code,
        kind: plan.kind,
        kind_label: plan.kind.label(),
        status: latest.status,
        latest_version: plan.latest_version,
        current_version: plan.current_version,
        requirements: Requirements::of(&basis.content),
        deadlines: deadlines::compute(&c.app.calendar, today(c.now()), &input),
        version: latest,
        created_at: plan.created_at,
        updated_at: plan.updated_at,
    })
}

/// `GET /api/v1/plans`.
pub async fn list(c: Ctx) -> ApiResult<Response> {
    let p = c.caller()?;
    let q: PlanQuery = c.query()?;
    let (limit, offset) = page(q.limit, q.offset)?;
    let (lo, hi) = p.scope.bounds();
    let region = q.region.as_ref().map(|r| crate::auth::Scope::of(r).bounds());
    let filter = ListFilter { region, kind: q.kind, hazard: q.hazard.map(Hazard::code), status: q.status };
    let rows = store::list(&c.app.db, (&lo, &hi), &filter).await?;
    let today = today(c.now());
    let mut items = Vec::new();
    for row in rows {
        let input = DeadlineInput {
            status: row.current_status.as_deref().and_then(PlanStatus::parse),
            issued_on: row.current_issued_on,
            filed_on: row.current_filed_on,
            drill_months: row.current_drill_months.unwrap_or(0).max(0) as u32,
            evaluation_months: row.current_evaluation_months.unwrap_or(0).max(0) as u32,
            last_evaluated_on: row.last_evaluated_on,
            last_drilled_on: row.last_drilled_on,
        };
        let deadlines = deadlines::compute(&c.app.calendar, today, &input);
        if q.overdue.is_some_and(|o| o != deadlines.overdue) {
            continue;
        }
        let hazards = row.hazards.split(',').filter_map(Hazard::parse).collect();
        items.push(PlanSummary {
            id: row.id,
            key: row.plan_key,
            region_code: row.region_code,
            kind: row.kind,
            title: row.title,
            hazards,
            status: row.status,
            latest_version: row.latest_version,
            current_version: row.current_version,
            deadlines,
        });
    }
    let total = items.len() as i64;
    let items = items.into_iter().skip(offset as usize).take(limit as usize).collect();
    json(&Page { items, total })
}
