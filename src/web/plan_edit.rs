//! 预案 editing: a new draft (第 1 版) and changes to a draft's text: title, units, hazards, the
//! sections and the response levels' criteria and measures. Everything else the plan's content
//! holds (member units, the supplies and forces a level needs, drill and evaluation settings)
//! is carried over unchanged from the version on record. Saving is the API's own `POST
//! /api/v1/plans` or `PUT /api/v1/plans/{id}` (only a draft can change; roles and jurisdiction
//! are the API's); a refused form comes back with its values and messages ([`super::form`]).

use askama::Template;
use serde_json::{Map, Value, json};
use warp::http::Method;

use super::form::{self, FormState};
use super::layout::Layout;
use super::{Req, WebError, WebResult, api, html, redirect};
use crate::auth::login::Session;
use crate::error::ApiError;
use crate::plans::types::PlanKind;
use crate::vocab::Hazard;

/// The sections of a plan: `(key, Chinese name, required)`.
const SECTIONS: &[(&str, &str, bool)] = &[
    ("general", "总则", false),
    ("organization", "组织指挥体系与职责", true),
    ("prevention", "预防与预警机制", true),
    ("response", "处置程序", true),
    ("support", "应急保障措施", true),
    ("recovery", "事后恢复与重建", true),
    ("supplementary", "附则", false),
];

/// One field of the form: its name (the API's JSON path), label, and the value on record.
struct Field {
    name: String,
    label: String,
    value: String,
    required: bool,
}

#[derive(Template)]
#[template(path = "web/plan_edit.html")]
struct Page {
    layout: Layout,
    /// The plan's id, or None for a new draft.
    id: Option<i64>,
    form_id: &'static str,
    title: String,
    owning_unit: String,
    lead_department: String,
    hazards: Vec<(&'static str, &'static str, bool)>,
    kinds: Vec<(&'static str, &'static str)>,
    regions: Vec<api::RegionChoice>,
    home: String,
    sections: Vec<Field>,
    levels: Vec<(u8, Field, Field)>,
    form: FormState,
}

fn text(v: &Value, path: &[&str]) -> String {
    path.iter().try_fold(v, |v, k| v.get(k)).and_then(Value::as_str).unwrap_or("").to_string()
}

/// The content of the plan's latest version (an empty object for a new draft).
async fn content(req: &Req, s: &Session, id: Option<i64>) -> Result<Value, WebError> {
    match id {
        None => Ok(json!({})),
        Some(id) => {
            let v = api::get(req, s, &format!("/api/v1/plans/{id}"), "").await?;
            Ok(v.get("version").and_then(|v| v.get("content")).cloned().unwrap_or_else(|| json!({})))
        }
    }
}

fn plan_id(req: &Req) -> Result<Option<i64>, WebError> {
    if req.path.starts_with("/plans/new") { Ok(None) } else { super::path_id(&req.path).map(Some) }
}

/// `GET /plans/new` and `GET /plans/{id}/edit`.
pub async fn page(req: Req) -> WebResult {
    let s = req.session().await?;
    render(&req, &s, FormState::none()).await
}

async fn render(req: &Req, s: &Session, form: FormState) -> WebResult {
    let id = plan_id(req)?;
    let c = content(req, s, id).await?;
    let on_record: Vec<String> = c
        .get("hazards")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    let levels = (1..=4u8)
        .map(|n| {
            let l = c
                .get("response_levels")
                .and_then(Value::as_array)
                .and_then(|a| a.iter().find(|l| l.get("level").and_then(Value::as_u64) == Some(n as u64)));
            let get = |k: &str| l.map(|l| text(l, &[k])).unwrap_or_default();
            let label = ["一", "二", "三", "四"][n as usize - 1];
            (
                n,
                Field {
                    name: format!("level{n}.criteria"),
                    label: format!("{label}级响应启动条件"),
                    value: get("criteria"),
                    required: false,
                },
                Field {
                    name: format!("level{n}.measures"),
                    label: format!("{label}级响应措施"),
                    value: get("measures"),
                    required: false,
                },
            )
        })
        .collect();
    let title = if id.is_some() { format!("修改预案：{}", text(&c, &["title"])) } else { "新建预案".into() };
    let page = Page {
        layout: Layout::new(req, s, title, "plans").await?,
        id,
        form_id: if id.is_some() { "plan-edit" } else { "plan-new" },
        title: text(&c, &["title"]),
        owning_unit: text(&c, &["owning_unit"]),
        lead_department: text(&c, &["lead_department"]),
        hazards: Hazard::ALL.iter().map(|h| (h.code(), h.label(), on_record.iter().any(|x| x == h.code()))).collect(),
        kinds: PlanKind::ALL.iter().map(|k| (k.code(), k.label())).collect(),
        regions: if id.is_none() { api::regions(req, s).await? } else { vec![] },
        home: s.principal.scope.code.to_string(),
        sections: SECTIONS
            .iter()
            .map(|(k, label, required)| Field {
                name: format!("sections.{k}"),
                label: label.to_string(),
                value: text(&c, &["sections", k]),
                required: *required,
            })
            .collect(),
        levels,
        form,
    };
    Ok(html(page.render()?))
}

/// `POST /plans/new` and `POST /plans/{id}/edit`.
pub async fn save(req: Req) -> WebResult {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(&req.body).into_owned().collect();
    let field = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.trim().to_string()).unwrap_or_default();
    let s = req.post_session(&field("csrf")).await?;
    let id = plan_id(&req)?;
    let result = async {
        let mut c = content(&req, &s, id).await?;
        let obj =
            c.as_object_mut().ok_or_else(|| WebError::Api(ApiError::Internal(anyhow::anyhow!("plan content"))))?;
        for k in ["title", "owning_unit", "lead_department"] {
            obj.insert(k.into(), json!(field(k)));
        }
        if id.is_none() {
            obj.insert("kind".into(), json!(field("kind")));
            obj.insert("region".into(), json!(field("region")));
        }
        let hazards: Vec<&str> = pairs.iter().filter(|(n, _)| n == "hazards").map(|(_, v)| v.as_str()).collect();
        obj.insert("hazards".into(), json!(hazards));
        let mut sections = Map::new();
        for (k, _, _) in SECTIONS {
            sections.insert(k.to_string(), json!(field(&format!("sections.{k}"))));
        }
        obj.insert("sections".into(), Value::Object(sections));
        // A level is in the plan when its criteria are filled in; what it needs stays as recorded.
        let old: Vec<Value> = obj.get("response_levels").and_then(Value::as_array).cloned().unwrap_or_default();
        let levels: Vec<Value> = (1..=4u64)
            .filter_map(|n| {
                let criteria = field(&format!("level{n}.criteria"));
                if criteria.is_empty() {
                    return None;
                }
                let mut l = old
                    .iter()
                    .find(|l| l.get("level").and_then(Value::as_u64) == Some(n))
                    .cloned()
                    .unwrap_or_else(|| json!({ "level": n }));
                l["criteria"] = json!(criteria);
                l["measures"] = json!(field(&format!("level{n}.measures")));
                Some(l)
            })
            .collect();
        obj.insert("response_levels".into(), json!(levels));
        let answer = match id {
            None => api::post(&req, &s, "/api/v1/plans", &c).await?,
            Some(id) => api::send(&req, &s, Method::PUT, &format!("/api/v1/plans/{id}"), &c).await?,
        };
        let saved = answer.get("id").and_then(Value::as_i64).or(id).unwrap_or_default();
        Ok::<_, WebError>(redirect(&format!("/plans/{saved}?done=saved")))
    }
    .await;
    let form_id = if id.is_some() { "plan-edit" } else { "plan-new" };
    form::again(form_id, &req.body, result, |form| render(&req, &s, form)).await
}
