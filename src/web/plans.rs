//! 预案: the plan list with the API's filters, a plan's page with its deadlines and document,
//! and the lifecycle steps (submit, reject, approve, file) as forms. Lists, views and steps are
//! the API's own handlers ([`super::api`]), so roles, jurisdiction, state checks and audit are
//! exactly the API's.

use askama::Template;
use serde::Deserialize;
use serde_json::json;

use super::form::{self, FormState};
use super::layout::Layout;
use super::{Req, WebError, WebResult, api, html, redirect, urlencode};
use crate::error::ApiError;
use crate::plans::types::{PlanKind, PlanStatus, RevisionReason};

/// Deadlines as the API shows them.
#[derive(Deserialize)]
struct Deadlines {
    filing_due: Option<String>,
    filing_overdue: bool,
    evaluation_due: Option<String>,
    evaluation_overdue: bool,
    drill_due: Option<String>,
    drill_overdue: bool,
}

/// A plan in the list.
#[derive(Deserialize)]
struct Summary {
    id: i64,
    region_code: String,
    kind: String,
    title: String,
    status: String,
    latest_version: i64,
    current_version: Option<i64>,
    deadlines: Deadlines,
}

#[derive(Deserialize)]
struct ListAnswer {
    items: Vec<Summary>,
    total: i64,
}

fn kind_label(code: &str) -> &'static str {
    PlanKind::parse(code).map_or("其他", PlanKind::label)
}

fn status_label(code: &str) -> &'static str {
    PlanStatus::parse(code).map_or("未知", PlanStatus::label)
}

/// Query of the list page (the API's filters).
#[derive(Deserialize, Default)]
struct Filters {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    overdue: String,
}

#[derive(Template)]
#[template(path = "web/plans.html")]
struct ListPage {
    layout: Layout,
    items: Vec<Summary>,
    total: i64,
    f: Filters,
    kinds: Vec<(&'static str, &'static str)>,
    statuses: Vec<(&'static str, &'static str)>,
}

impl ListPage {
    fn kind_label(&self, c: &str) -> &'static str {
        kind_label(c)
    }
    fn status_label(&self, c: &str) -> &'static str {
        status_label(c)
    }
}

/// `GET /plans`.
pub async fn list(req: Req) -> WebResult {
    let s = req.session().await?;
    let f: Filters = req.query().unwrap_or_default();
    let mut q = vec!["limit=1000".to_string()];
    if PlanKind::parse(&f.kind).is_some() {
        q.push(format!("kind={}", f.kind));
    }
    if PlanStatus::parse(&f.status).is_some() {
        q.push(format!("status={}", f.status));
    }
    if f.overdue == "true" {
        q.push("overdue=true".into());
    }
    let v = api::get(&req, &s, "/api/v1/plans", &q.join("&")).await?;
    let answer: ListAnswer = api::decode(v)?;
    let page = ListPage {
        layout: Layout::new(&req, &s, "预案", "plans").await?,
        items: answer.items,
        total: answer.total,
        f,
        kinds: PlanKind::ALL.iter().map(|k| (k.code(), k.label())).collect(),
        statuses: PlanStatus::ALL.iter().map(|k| (k.code(), k.label())).collect(),
    };
    Ok(html(page.render()?))
}

#[derive(Deserialize)]
struct Content {
    title: String,
}

#[derive(Deserialize)]
struct Version {
    content: Content,
    #[serde(default)]
    issued_on: Option<String>,
    #[serde(default)]
    issuing_body: Option<String>,
    #[serde(default)]
    filed_on: Option<String>,
    #[serde(default)]
    filed_with: Option<String>,
}

#[derive(Deserialize)]
struct View {
    id: i64,
    region_code: String,
    kind_label: String,
    status: String,
    latest_version: i64,
    current_version: Option<i64>,
    deadlines: Deadlines,
    version: Version,
}

#[derive(Template)]
#[template(path = "web/plan.html")]
struct DetailPage {
    layout: Layout,
    p: View,
    done: Option<&'static str>,
    today: String,
    can_plan: bool,
    can_approve: bool,
    reasons: Vec<(&'static str, &'static str)>,
    form: FormState,
}

impl DetailPage {
    fn status_label(&self) -> &'static str {
        status_label(&self.p.status)
    }
}

#[derive(Deserialize, Default)]
struct Done {
    done: Option<String>,
}

fn step_label(step: &str) -> Option<&'static str> {
    match step {
        "submit" => Some("已提交审核"),
        "reject" => Some("已退回修改"),
        "approve" => Some("已批准印发"),
        "file" => Some("已登记备案"),
        "saved" => Some("已保存草稿"),
        "revise" => Some("已生成新的草稿版本，可修改后重新提交"),
        _ => None,
    }
}

/// `GET /plans/{id}`.
pub async fn detail(req: Req) -> WebResult {
    let s = req.session().await?;
    render_detail(&req, &s, FormState::none()).await
}

async fn render_detail(req: &Req, s: &crate::auth::login::Session, form: FormState) -> WebResult {
    let id = super::path_id(&req.path)?;
    let v = api::get(req, s, &format!("/api/v1/plans/{id}"), "").await?;
    let p: View = api::decode(v)?;
    let done: Done = req.query().unwrap_or_default();
    let role = s.principal.role;
    let page = DetailPage {
        layout: Layout::new(req, s, p.version.content.title.clone(), "plans").await?,
        p,
        done: done.done.as_deref().and_then(step_label),
        today: crate::plans::view::today(req.now()).to_string(),
        can_plan: role.allows(crate::auth::Perm::Plan),
        can_approve: role.allows(crate::auth::Perm::Approve),
        reasons: RevisionReason::ALL.iter().map(|k| (k.code(), k.label())).collect(),
        form,
    };
    Ok(html(page.render()?))
}

/// The fields any step form may carry.
#[derive(Deserialize)]
struct StepForm {
    csrf: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    issued_on: String,
    #[serde(default)]
    issuing_body: String,
    #[serde(default)]
    filed_with: String,
    #[serde(default)]
    filed_on: String,
    #[serde(default)]
    receipt_no: String,
    #[serde(default)]
    reason: String,
}

/// `POST /plans/{id}/{step}`: one lifecycle step through the API's handler.
pub async fn step(req: Req) -> WebResult {
    let id = super::path_id(&req.path)?;
    let step = req.path.rsplit('/').next().unwrap_or("").to_string();
    let f: StepForm = req.form()?;
    let s = req.post_session(&f.csrf).await?;
    let note = |n: &str| if n.trim().is_empty() { json!({}) } else { json!({ "note": n.trim() }) };
    let body = match step.as_str() {
        "submit" | "reject" => note(&f.note),
        "approve" => json!({ "issued_on": f.issued_on, "issuing_body": f.issuing_body }),
        "file" => json!({ "filed_with": f.filed_with, "filed_on": f.filed_on, "receipt_no": f.receipt_no }),
        "revise" if f.note.trim().is_empty() => json!({ "reason": f.reason }),
        "revise" => json!({ "reason": f.reason, "note": f.note.trim() }),
        _ => return Err(WebError::Api(ApiError::NotFound(format!("没有这个操作：{step}")))),
    };
    let result = api::post(&req, &s, &format!("/api/v1/plans/{id}/{step}"), &body)
        .await
        .map(|_| redirect(&format!("/plans/{id}?done={}", urlencode(&step))));
    let mut req = req;
    req.path = format!("/plans/{id}");
    form::again(&format!("plan-{step}"), &req.body, result, |form| render_detail(&req, &s, form)).await
}
