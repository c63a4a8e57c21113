//! The event board's steps (`POST /events/{id}/{step}` and
//! `POST /events/{id}/lines/{line}/arrive|return`): each form becomes one call of the events API as the
//! logged-in user, then a 303 back to the board; a refused form comes back with its errors
//! beside its fields ([`super::form::again`]).

use serde_json::{Value, json};

use super::events::{FIGURES, render};
use super::form;
use super::{Req, WebError, WebResult, api, redirect, urlencode};
use crate::error::ApiError;

/// An optional whole number of a form (empty: not sent).
fn opt_count(field: &str, v: &str) -> Result<Option<i64>, WebError> {
    if v.is_empty() {
        return Ok(None);
    }
    v.parse::<i64>().map(Some).map_err(|_| WebError::Api(ApiError::invalid(field, format!("“{v}”应为整数"))))
}

/// `POST /events/{id}/{step}`: one everyday action through the API's handler; a refused form
/// comes back with its errors beside its fields.
pub async fn step(req: Req) -> WebResult {
    let id = super::path_id(&req.path)?;
    let step = req.path.rsplit('/').next().unwrap_or("").to_string();
    // Repeated fields (the chosen lines) are read as pairs.
    let pairs: Vec<(String, String)> = form_urlencoded::parse(&req.body).into_owned().collect();
    let field = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.trim().to_string()).unwrap_or_default();
    let s = req.post_session(&field("csrf")).await?;
    let result = async {
        let bad = |f: &str, m: &str| WebError::Api(ApiError::invalid(f, m.to_string()));
        let (path, body) = match step.as_str() {
            "report" => {
                let mut body = json!({"kind": field("kind"), "content": field("content")});
                let severity = field("severity");
                if !severity.is_empty() {
                    body["severity"] = json!(severity);
                }
                for f in FIGURES {
                    if let Some(n) = opt_count(f, &field(f))? {
                        body[f] = json!(n);
                    }
                }
                ("reports", body)
            }
            "activate" => {
                let choice = field("choice");
                let (plan, level) = choice.split_once(':').ok_or_else(|| bad("choice", "请选择预案和响应级别"))?;
                let plan: i64 = plan.parse().map_err(|_| bad("choice", "请选择预案和响应级别"))?;
                let level: u8 = level.parse().map_err(|_| bad("choice", "请选择预案和响应级别"))?;
                let reason = field("reason");
                ("activate", json!({"plan_id": plan, "level": level, "reason": (!reason.is_empty()).then_some(reason)}))
            }
            "level" => {
                let level: u8 = field("level").parse().map_err(|_| bad("level", "请选择响应级别"))?;
                ("level", json!({"level": level, "reason": field("reason")}))
            }
            "dispatch" => {
                let lines: Vec<i64> =
                    pairs.iter().filter(|(n, _)| n == "line").filter_map(|(_, v)| v.parse().ok()).collect();
                let place = field("report_place");
                ("dispatch", json!({"lines": lines, "report_place": (!place.is_empty()).then_some(place)}))
            }
            "terminate" => ("terminate", json!({"decision": field("decision")})),
            "note" => ("notes", json!({"text": field("text")})),
            "assess" => {
                let mut lessons = Vec::new();
                let problem = field("problem");
                if !problem.is_empty() || !field("cause").is_empty() {
                    let action = field("action");
                    let action = if action.is_empty() && field("owner_unit").is_empty() {
                        Value::Null
                    } else {
                        let due = field("due_on");
                        json!({"action": action, "owner_unit": field("owner_unit"), "due_on": (!due.is_empty()).then_some(due)})
                    };
                    lessons.push(json!({
                        "problem": problem, "cause": field("cause"), "revise_plan": field("revise_plan") == "on",
                        "action": action,
                    }));
                }
                ("assessment", json!({"causes": field("causes"), "summary": field("summary"), "lessons": lessons}))
            }
            _ => return Err(WebError::Api(ApiError::NotFound(format!("没有这个操作：{step}")))),
        };
        api::post(&req, &s, &format!("/api/v1/events/{id}/{path}"), &body).await?;
        Ok(redirect(&format!("/events/{id}?done={}", urlencode(&step))))
    }
    .await;
    let form_id = format!("{step}-form");
    form::again(&form_id, &req.body, result, |form| render(&req, &s, id, form)).await
}

/// `POST /events/{id}/lines/{line}/arrive|return`: a dispatched supply line delivered, a team
/// that accepted its call-up on site, or a team returned, through the API route of the same name.
pub async fn line_step(req: Req) -> WebResult {
    let id = super::path_id(&req.path)?;
    let line: i64 = req
        .path
        .split('/')
        .nth(4)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| WebError::Api(ApiError::NotFound(format!("没有这个页面：{}", req.path))))?;
    let pairs: Vec<(String, String)> = form_urlencoded::parse(&req.body).into_owned().collect();
    let csrf = pairs.iter().find(|(n, _)| n == "csrf").map(|(_, v)| v.as_str()).unwrap_or("");
    let s = req.post_session(csrf).await?;
    let step = if req.path.ends_with("/return") { "return" } else { "arrive" };
    let result = api::post_empty(&req, &s, &format!("/api/v1/events/{id}/lines/{line}/{step}"))
        .await
        .map(|_| redirect(&format!("/events/{id}?done={step}")));
    form::again(&format!("{step}-{line}"), &req.body, result, |form| render(&req, &s, id, form)).await
}
