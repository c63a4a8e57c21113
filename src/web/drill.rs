//! A drill's page: what is planned, what happened and how it was judged, and the steps a
//! person takes from here (postpone, cancel, start, complete with what happened, evaluate
//! against the form's indicators). Every step is the API's handler ([`super::api`]), so the
//! state checks (one transition each), reminders and audit are the API's; a refused form comes
//! back with its values and messages ([`super::form`]).

use askama::Template;
use serde::Deserialize;
use serde_json::{Value, json};

use super::drills::times;
use super::form::{self, FormState};
use super::layout::Layout;
use super::{Req, WebError, WebResult, api, html, redirect};
use crate::auth::login::Session;
use crate::drills::{Actual, Evaluation, Form, Purpose, Scope, Status, indicators};
use crate::error::{ApiError, FieldError};

#[derive(Deserialize)]
struct Drill {
    id: i64,
    title: String,
    form: String,
    scope: String,
    purpose: String,
    objective: String,
    region_code: String,
    organiser_unit: String,
    place_name: String,
    starts_at: String,
    ends_at: String,
    status: String,
    status_label: String,
    postponed_from: Option<String>,
    cancel_reason: Option<String>,
    actual: Option<Actual>,
    evaluation: Option<Evaluation>,
}

/// One indicator of the drill's form, as the evaluation form shows it.
struct Row {
    /// Indicator code.
    code: &'static str,
    /// Chinese name.
    name: &'static str,
    /// Weight in the total.
    weight: u32,
    /// The form field (the API's JSON path, so its errors land beside it): `indicators[2]`.
    field: String,
}

#[derive(Template)]
#[template(path = "web/drill.html")]
struct Page {
    layout: Layout,
    d: Drill,
    done: Option<&'static str>,
    can_write: bool,
    upcoming: bool,
    completable: bool,
    evaluable: bool,
    rows: Vec<Row>,
    form: FormState,
}

impl Page {
    fn when(&self, at: &str) -> String {
        crate::time::parse_instant(at).map_or_else(|_| at.to_string(), |t| t.local_display())
    }
    /// A `datetime-local` value of an instant (Asia/Shanghai).
    fn local_input(&self, at: &str) -> String {
        crate::time::parse_instant(at).map_or_else(
            |_| String::new(),
            |t| t.0.with_timezone(&crate::time::LOCAL_TZ).format("%Y-%m-%dT%H:%M").to_string(),
        )
    }
    /// The calendar month of the drill (`2026-11`).
    fn month(&self) -> String {
        self.local_input(&self.d.starts_at).chars().take(7).collect()
    }
    fn labels(&self) -> String {
        let f = Form::parse(&self.d.form).map_or("", Form::label);
        let s = Scope::parse(&self.d.scope).map_or("", Scope::label);
        let p = Purpose::parse(&self.d.purpose).map_or("", Purpose::label);
        format!("{f} · {s} · {p}")
    }
    /// The score of indicator `code` in the evaluation on record, for the form's initial value.
    fn recorded(&self, code: &str) -> String {
        self.d
            .evaluation
            .as_ref()
            .and_then(|e| e.indicators.iter().find(|i| i.code == code))
            .map_or_else(String::new, |i| i.score.to_string())
    }
}

#[derive(Deserialize, Default)]
struct Done {
    done: Option<String>,
}

fn done_label(step: &str) -> Option<&'static str> {
    Some(match step {
        "created" => "已安排演练，提醒已按设置生成",
        "postpone" => "已延期，提醒已按新时间重新安排",
        "cancel" => "已取消演练，未发送的提醒已撤回",
        "start" => "演练已开始",
        "complete" => "已记录演练情况",
        "evaluate" => "已保存评估",
        _ => return None,
    })
}

/// `GET /drills/{id}`.
pub async fn detail(req: Req) -> WebResult {
    let s = req.session().await?;
    render(&req, &s, FormState::none()).await
}

async fn render(req: &Req, s: &Session, form: FormState) -> WebResult {
    let id = super::path_id(&req.path)?;
    let v = api::get(req, s, &format!("/api/v1/drills/{id}"), "").await?;
    let d: Drill = api::decode(v)?;
    let status = Status::parse(&d.status);
    let done: Done = req.query().unwrap_or_default();
    let rows = Form::parse(&d.form)
        .map(indicators::set)
        .unwrap_or(&[])
        .iter()
        .enumerate()
        .map(|(i, ind)| Row { code: ind.code, name: ind.name, weight: ind.weight, field: format!("indicators[{i}]") })
        .collect();
    let page = Page {
        layout: Layout::new(req, s, d.title.clone(), "drills").await?,
        done: done.done.as_deref().and_then(done_label),
        can_write: s.principal.role.allows(crate::auth::Perm::Write),
        upcoming: status.is_some_and(Status::is_upcoming),
        completable: matches!(status, Some(Status::Planned | Status::Postponed | Status::InProgress)),
        evaluable: matches!(status, Some(Status::Completed | Status::Evaluated)),
        rows,
        d,
        form,
    };
    Ok(html(page.render()?))
}

/// `POST /drills/{id}/{step}`: postpone, cancel, start, complete or evaluate through the API.
pub async fn step(req: Req) -> WebResult {
    let id = super::path_id(&req.path)?;
    let step = req.path.rsplit('/').next().unwrap_or("").to_string();
    let pairs: Vec<(String, String)> = form_urlencoded::parse(&req.body).into_owned().collect();
    let field = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.trim().to_string()).unwrap_or_default();
    let s = req.post_session(&field("csrf")).await?;
    let result = match body(&step, &field) {
        Ok(body) => api::post(&req, &s, &format!("/api/v1/drills/{id}/{step}"), &body).await.map(|_| ()),
        Err(e) => Err(e),
    }
    .map(|()| redirect(&format!("/drills/{id}?done={step}")));
    let mut req = req;
    req.path = format!("/drills/{id}");
    req.query = String::new();
    form::again(&format!("drill-{step}"), &req.body, result, |form| render(&req, &s, form)).await
}

/// The API body of step `step` from the form's fields; values that are not even readable
/// (a time, a number) are refused here with the field named, the rest is the API's to judge.
fn body(step: &str, field: &dyn Fn(&str) -> String) -> Result<Value, WebError> {
    let lines = |k: &str| -> Vec<String> {
        field(k).lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect()
    };
    Ok(match step {
        "postpone" => {
            let (a, b) = times(("新的开始时间", &field("starts_at")), ("新的结束时间", &field("ends_at")))?;
            json!({ "starts_at": a, "ends_at": b })
        }
        "cancel" => json!({ "reason": field("reason") }),
        "start" => json!({}),
        "complete" => {
            let n = field("participant_count");
            let count: i64 = n.parse().map_err(|_| {
                ApiError::invalid(
                    "participant_count",
                    if n.is_empty() {
                        "请填写参演人数".to_string()
                    } else {
                        format!("参演人数“{n}”不是整数")
                    },
                )
            })?;
            json!({ "participant_count": count, "units": lines("units"), "scenario": field("scenario"),
                    "outline": field("outline") })
        }
        "evaluate" => {
            let mut errors = Vec::new();
            let mut scores = Vec::new();
            let mut i = 0;
            loop {
                let name = format!("indicators[{i}]");
                let code = field(&format!("code[{i}]"));
                if code.is_empty() {
                    break;
                }
                let v = field(&name);
                match v.parse::<f64>() {
                    Ok(score) => scores.push(json!({ "code": code, "score": score })),
                    Err(_) if v.is_empty() => errors.push(FieldError::field(&name, "请给这项指标评分（0–100）")),
                    Err(_) => errors.push(FieldError::field(&name, format!("评分“{v}”不是数字"))),
                }
                i += 1;
            }
            ApiError::fail_with(errors)?;
            json!({ "evaluator": field("evaluator"), "indicators": scores, "conclusion": field("conclusion"),
                    "lessons": field("lessons"), "suggestions": field("suggestions") })
        }
        _ => return Err(WebError::Api(ApiError::NotFound(format!("没有这个操作：{step}")))),
    })
}
