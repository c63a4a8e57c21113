//! Plan endpoints.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use super::diff::{self, Change};
use super::evaluations::{self, EvaluationInput};
use super::lifecycle::{self, Approval, Filing, Note, Revision};
use super::store::{self, PlanRow};
use super::view::{self, PlanQuery, PlanSummary, PlanView};
use super::{Evaluation, PlanContent, PlanStatus, PlanVersion, document};
use crate::auth::Perm;
use crate::error::{ApiError, ApiResult};
use crate::http::Ctx;
use crate::http::access::{self, Region};
use crate::http::ctx::{Page, body, json, json_status};
use crate::http::router::{Access, BodyKind, Doc, Route, route, schema};

const TAG: &str = "应急预案";

/// `GET /api/v1/plans/{id}/diff` query.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    /// Older version number.
    pub from: i64,
    /// Newer version number.
    pub to: i64,
}

/// Differences between two versions.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DiffView {
    /// Older version.
    pub from: i64,
    /// Newer version.
    pub to: i64,
    /// Changed values.
    pub changes: Vec<Change>,
}

/// `GET /api/v1/plans/{id}/document` query.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DocumentQuery {
    /// Version to render (default: the latest).
    pub version: Option<i64>,
}

/// The plan named in the path.
const ON_PLAN: &[Region] = &[Region::Path("id", &access::PLAN)];

fn r(method: Method, path: &'static str, body: BodyKind, doc: Doc, h: crate::http::router::Handler) -> Route {
    route(method, path, Access::Token, body, doc, h)
}

/// Routes of this module.
pub fn routes() -> Vec<Route> {
    use BodyKind::{Json, None as NoBody};
    use Method as M;
    vec![
        r(
            M::GET,
            "/api/v1/plans",
            NoBody,
            Doc {
                description: "辖区内的预案（按区划、编号排序），含最新版本状态与现行版本的备案、评估、演练期限。筛选：region（含下级）、kind、hazard、status（最新版本或现行版本）、overdue。",
                query: Some(schema::<PlanQuery>()),
                response: Some(schema::<Page<PlanSummary>>()),
                ..Doc::new(TAG, "列出预案")
            },
            |c| Box::pin(view::list(c)),
        )
        .guard(Perm::Read, &[Region::Query("region")]),
        r(
            M::POST,
            "/api/v1/plans",
            Json,
            Doc {
                description: "新建预案（第 1 版，草稿）。规划员、管理员，限辖区内。",
                request: Some(schema::<PlanContent>()),
                response: Some(schema::<PlanView>()),
                status: 201,
                ..Doc::new(TAG, "新建预案")
            },
            |c| Box::pin(create(c)),
        )
        .guard(Perm::Plan, &[Region::Body("region")]),
        r(
            M::GET,
            "/api/v1/plans/{id}",
            NoBody,
            Doc {
                description: "预案的最新版本全文、现行版本、演练与评估要求，以及按注入时钟计算的备案、评估、演练期限与是否逾期。",
                response: Some(schema::<PlanView>()),
                ..Doc::new(TAG, "查看预案")
            },
            |c| Box::pin(get(c)),
        )
        .guard(Perm::Read, ON_PLAN),
        r(
            M::PUT,
            "/api/v1/plans/{id}",
            Json,
            Doc {
                description: "修改草稿的内容（只有最新版本为草稿时可改；类别、区划、key 不可改）。规划员、管理员。",
                request: Some(schema::<PlanContent>()),
                response: Some(schema::<PlanView>()),
                ..Doc::new(TAG, "修改预案草稿")
            },
            |c| Box::pin(update(c)),
        )
        .guard(Perm::Plan, ON_PLAN),
        r(
            M::POST,
            "/api/v1/plans/{id}/submit",
            NoBody,
            Doc {
                description: "草稿提交审核（draft → review）。规划员、管理员。",
                response: Some(schema::<PlanView>()),
                ..Doc::new(TAG, "提交审核")
            },
            |c| Box::pin(submit(c)),
        )
        .guard(Perm::Plan, ON_PLAN),
        r(
            M::POST,
            "/api/v1/plans/{id}/reject",
            Json,
            Doc {
                description: "退回审核中的版本（review → draft）。仅管理员。",
                request: Some(schema::<Note>()),
                response: Some(schema::<PlanView>()),
                ..Doc::new(TAG, "退回修改")
            },
            |c| Box::pin(reject(c)),
        )
        .guard(Perm::Approve, ON_PLAN),
        r(
            M::POST,
            "/api/v1/plans/{id}/approve",
            Json,
            Doc {
                description: "批准印发审核中的版本（review → approved），记录印发日期与印发机关；原现行版本改为 superseded。仅管理员。",
                request: Some(schema::<Approval>()),
                response: Some(schema::<PlanView>()),
                ..Doc::new(TAG, "批准印发")
            },
            |c| Box::pin(approve(c)),
        )
        .guard(Perm::Approve, ON_PLAN),
        r(
            M::POST,
            "/api/v1/plans/{id}/file",
            Json,
            Doc {
                description: "登记现行版本的备案（approved → filed）：备案机关、日期、回执编号。仅管理员。",
                request: Some(schema::<Filing>()),
                response: Some(schema::<PlanView>()),
                ..Doc::new(TAG, "登记备案")
            },
            |c| Box::pin(file(c)),
        )
        .guard(Perm::Approve, ON_PLAN),
        r(
            M::POST,
            "/api/v1/plans/{id}/revise",
            Json,
            Doc {
                description: "修订已印发或已备案的预案：以现行内容生成新的草稿版本，并记录修订原因（法定情形）。规划员、管理员。",
                request: Some(schema::<Revision>()),
                response: Some(schema::<PlanView>()),
                status: 201,
                ..Doc::new(TAG, "修订预案（新版本）")
            },
            |c| Box::pin(revise(c)),
        )
        .guard(Perm::Plan, ON_PLAN),
        r(
            M::POST,
            "/api/v1/plans/{id}/retire",
            Json,
            Doc {
                description: "废止预案：所有未被替代的版本改为 retired。仅管理员。",
                request: Some(schema::<Note>()),
                response: Some(schema::<PlanView>()),
                ..Doc::new(TAG, "废止预案")
            },
            |c| Box::pin(retire(c)),
        )
        .guard(Perm::Approve, ON_PLAN),
        r(
            M::GET,
            "/api/v1/plans/{id}/versions",
            NoBody,
            Doc {
                description: "预案的全部版本（从旧到新），含各版本的状态、修订原因、印发与备案信息和内容。",
                response: Some(schema::<Page<PlanVersion>>()),
                ..Doc::new(TAG, "版本历史")
            },
            |c| Box::pin(versions(c)),
        )
        .guard(Perm::Read, ON_PLAN),
        r(
            M::GET,
            "/api/v1/plans/{id}/versions/{version}",
            NoBody,
            Doc { response: Some(schema::<PlanVersion>()), ..Doc::new(TAG, "查看某一版本") },
            |c| Box::pin(version(c)),
        )
        .guard(Perm::Read, ON_PLAN),
        r(
            M::GET,
            "/api/v1/plans/{id}/diff",
            NoBody,
            Doc {
                description: "两个版本内容的逐项差异（from 为旧版本号，to 为新版本号）。",
                query: Some(schema::<DiffQuery>()),
                response: Some(schema::<DiffView>()),
                ..Doc::new(TAG, "版本差异")
            },
            |c| Box::pin(diff_versions(c)),
        )
        .guard(Perm::Read, ON_PLAN),
        r(
            M::GET,
            "/api/v1/plans/{id}/document",
            NoBody,
            Doc {
                description: "预案全文的可打印中文文档（HTML），按总则、组织指挥体系与职责、预防与预警机制、应急处置（含响应分级）、应急保障措施、恢复与重建、附则排列。",
                query: Some(schema::<DocumentQuery>()),
                response_type: Some("text/html; charset=utf-8"),
                ..Doc::new(TAG, "预案文档")
            },
            |c| Box::pin(render(c)),
        )
        .guard(Perm::Read, ON_PLAN),
        r(
            M::GET,
            "/api/v1/plans/{id}/evaluations",
            NoBody,
            Doc { response: Some(schema::<Page<Evaluation>>()), ..Doc::new(TAG, "评估记录") },
            |c| Box::pin(evaluations(c)),
        )
        .guard(Perm::Read, ON_PLAN),
        r(
            M::POST,
            "/api/v1/plans/{id}/evaluations",
            Json,
            Doc {
                description: "记录对现行版本的评估（日期、评估人、结论、是否需要修订及原因）；评估期限从最近一次评估起算。规划员、管理员。",
                request: Some(schema::<EvaluationInput>()),
                response: Some(schema::<Evaluation>()),
                status: 201,
                ..Doc::new(TAG, "记录评估")
            },
            |c| Box::pin(evaluate(c)),
        )
        .guard(Perm::Plan, ON_PLAN),
    ]
}

/// Loads the plan named in the path (the route's guard has checked access to it).
async fn load(c: &Ctx) -> ApiResult<PlanRow> {
    let id = c.id_param("id")?;
    store::get(&c.app.db, id).await?.ok_or_else(|| ApiError::NotFound(format!("预案 {id} 不存在")))
}

async fn get(c: Ctx) -> ApiResult<Response> {
    let plan = load(&c).await?;
    json(&view::view(&c, plan.id).await?)
}

async fn create(c: Ctx) -> ApiResult<Response> {
    let content: PlanContent = c.json()?;
    lifecycle::check(&content)?;
    let mut tx = c.app.db.begin().await?;
    let id = lifecycle::create(&mut tx, &c.actor()?, c.now(), content).await?;
    tx.commit().await?;
    json_status(StatusCode::CREATED, &view::view(&c, id).await?)
}

async fn update(c: Ctx) -> ApiResult<Response> {
    let content: PlanContent = c.json()?;
    let plan = load(&c).await?;
    lifecycle::check(&content)?;
    let mut tx = c.app.db.begin().await?;
    lifecycle::update(&mut tx, &c.actor()?, c.now(), plan.id, content).await?;
    tx.commit().await?;
    json(&view::view(&c, plan.id).await?)
}

async fn submit(c: Ctx) -> ApiResult<Response> {
    let plan = load(&c).await?;
    let mut tx = c.app.db.begin().await?;
    let (actor, now) = (c.actor()?, c.now());
    lifecycle::simple_transition(&mut tx, &actor, now, plan.id, "submit", PlanStatus::Draft, PlanStatus::Review, None)
        .await?;
    tx.commit().await?;
    json(&view::view(&c, plan.id).await?)
}

async fn reject(c: Ctx) -> ApiResult<Response> {
    let note: Note = c.json()?;
    let plan = load(&c).await?;
    let mut tx = c.app.db.begin().await?;
    let (actor, now) = (c.actor()?, c.now());
    lifecycle::simple_transition(
        &mut tx,
        &actor,
        now,
        plan.id,
        "reject",
        PlanStatus::Review,
        PlanStatus::Draft,
        note.note.as_deref(),
    )
    .await?;
    tx.commit().await?;
    json(&view::view(&c, plan.id).await?)
}

async fn approve(c: Ctx) -> ApiResult<Response> {
    let a: Approval = c.json()?;
    let plan = load(&c).await?;
    let mut tx = c.app.db.begin().await?;
    lifecycle::approve(&mut tx, &c.actor()?, c.now(), view::today(c.now()), plan.id, &a).await?;
    tx.commit().await?;
    json(&view::view(&c, plan.id).await?)
}

async fn file(c: Ctx) -> ApiResult<Response> {
    let f: Filing = c.json()?;
    let plan = load(&c).await?;
    let mut tx = c.app.db.begin().await?;
    lifecycle::file(&mut tx, &c.actor()?, c.now(), view::today(c.now()), plan.id, &f).await?;
    tx.commit().await?;
    json(&view::view(&c, plan.id).await?)
}

async fn revise(c: Ctx) -> ApiResult<Response> {
    let rev: Revision = c.json()?;
    let plan = load(&c).await?;
    let mut tx = c.app.db.begin().await?;
    lifecycle::revise(&mut tx, &c.actor()?, c.now(), plan.id, &rev, None, false).await?;
    tx.commit().await?;
    json_status(StatusCode::CREATED, &view::view(&c, plan.id).await?)
}

async fn retire(c: Ctx) -> ApiResult<Response> {
    let note: Note = c.json()?;
    let plan = load(&c).await?;
    let mut tx = c.app.db.begin().await?;
    lifecycle::retire(&mut tx, &c.actor()?, c.now(), plan.id, &note).await?;
    tx.commit().await?;
    json(&view::view(&c, plan.id).await?)
}

async fn versions(c: Ctx) -> ApiResult<Response> {
    let plan = load(&c).await?;
    let items = store::versions(&c.app.db, plan.id).await?;
    json(&Page { total: items.len() as i64, items })
}

async fn one_version(c: &Ctx, plan: &PlanRow, n: i64) -> ApiResult<PlanVersion> {
    store::version(&c.app.db, plan.id, n)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("预案 {} 没有第 {n} 版", plan.id)))
}

async fn version(c: Ctx) -> ApiResult<Response> {
    let plan = load(&c).await?;
    let n = c.id_param("version")?;
    json(&one_version(&c, &plan, n).await?)
}

async fn diff_versions(c: Ctx) -> ApiResult<Response> {
    let plan = load(&c).await?;
    let q: DiffQuery = c.query()?;
    let a = one_version(&c, &plan, q.from).await?;
    let b = one_version(&c, &plan, q.to).await?;
    let to_value = |v: &PlanVersion| serde_json::to_value(&v.content).map_err(|e| ApiError::Internal(e.into()));
    let changes = diff::diff(&to_value(&a)?, &to_value(&b)?);
    json(&DiffView { from: q.from, to: q.to, changes })
}

async fn render(c: Ctx) -> ApiResult<Response> {
    let plan = load(&c).await?;
    let q: DocumentQuery = c.query()?;
    let v = one_version(&c, &plan, q.version.unwrap_or(plan.latest_version)).await?;
    let region = crate::regions::store::get(&c.app.db, &plan.region_code).await?;
    let name = region.map(|r| r.name).unwrap_or_else(|| plan.region_code.clone());
    let html = crate::blocking::cpu(move || document::render(&v, &name)).await?;
    Ok(body("text/html; charset=utf-8", html))
}

async fn evaluations(c: Ctx) -> ApiResult<Response> {
    let plan = load(&c).await?;
    let items = evaluations::list(&c.app.db, plan.id).await?;
    json(&Page { total: items.len() as i64, items })
}

async fn evaluate(c: Ctx) -> ApiResult<Response> {
    let e: EvaluationInput = c.json()?;
    let plan = load(&c).await?;
    let mut tx = c.app.db.begin().await?;
    let ev = evaluations::record(&mut tx, &c.actor()?, c.now(), view::today(c.now()), plan.id, &e).await?;
    tx.commit().await?;
    json_status(StatusCode::CREATED, &ev)
}
