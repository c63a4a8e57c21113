//! Inline form errors, one mechanism for every console form: when a submission is refused
//! because of what was typed (the API's 422 with field errors, a 400, or a 409 conflict), the
//! page is rendered again with the values kept, each message beside its field
//! (`aria-invalid`, `aria-describedby`) and a summary at the top of the form, with the API's
//! status. Templates use the macros in `templates/web/forms.html`; handlers use [`again`].
//!
//! A form is named by its id (the `id` of the `<form>` element), so a page with several forms
//! shows the errors and the kept values only in the one that was sent.

use std::future::Future;

use super::{WebError, WebResult};
use crate::error::{ApiError, FieldError};

/// What a page needs to show a refused form again. [`FormState::none`] on a plain `GET`.
#[derive(Debug, Default)]
pub struct FormState {
    /// Id of the form that was sent and refused (empty: none).
    id: String,
    /// The values as sent (all but the CSRF token), in order.
    values: Vec<(String, String)>,
    /// The API's errors, each with its field when known.
    errors: Vec<FieldError>,
    /// The API's summary.
    detail: String,
}

impl FormState {
    /// No form was refused: every field shows its default.
    pub fn none() -> FormState {
        FormState::default()
    }

    /// The state after form `id` (sent as `body`) was refused with `e`; errors that are not
    /// about the input (403, 404, 500 …) stay errors and render the error page.
    pub fn failed(id: &str, body: &[u8], e: WebError) -> Result<FormState, WebError> {
        let (detail, errors) = match e {
            WebError::Api(ApiError::Validation { detail, errors } | ApiError::BadRequest { detail, errors }) => {
                (detail, errors)
            }
            WebError::Api(ApiError::Conflict(detail) | ApiError::StateConflict { detail, .. }) => (detail, vec![]),
            other => return Err(other),
        };
        let values = form_urlencoded::parse(body).into_owned().filter(|(k, _)| k != "csrf").collect();
        Ok(FormState { id: id.to_string(), values, errors, detail })
    }

    /// Whether form `id` is the one that was refused.
    pub fn failed_here(&self, id: &str) -> bool {
        !self.id.is_empty() && self.id == id
    }

    /// The value sent in `field` of form `id` (empty when the form was not sent).
    pub fn value(&self, id: &str, field: &str) -> &str {
        self.value_or(id, field, "")
    }

    /// The value sent in `field` of form `id`, else `default` (a field's initial value).
    pub fn value_or<'a>(&'a self, id: &str, field: &str, default: &'a str) -> &'a str {
        if !self.failed_here(id) {
            return default;
        }
        self.values.iter().find(|(k, _)| k == field).map_or("", |(_, v)| v.as_str())
    }

    /// Whether `value` was sent in `field` of form `id` (select options, checkboxes), else
    /// whether it is the field's default.
    pub fn chosen(&self, id: &str, field: &str, value: &str, default: bool) -> bool {
        if !self.failed_here(id) {
            return default;
        }
        self.values.iter().any(|(k, v)| k == field && v == value)
    }

    /// Whether an error names `field` (or an entry or member of it: `plan_ids[2]`, `actual.scenario`).
    fn names(e: &FieldError, field: &str) -> bool {
        e.field.as_deref().is_some_and(|f| {
            f == field || f.strip_prefix(field).is_some_and(|rest| rest.starts_with('[') || rest.starts_with('.'))
        })
    }

    /// The messages about `field` of form `id`, joined, or None.
    pub fn error(&self, id: &str, field: &str) -> Option<String> {
        if !self.failed_here(id) {
            return None;
        }
        let msgs: Vec<&str> =
            self.errors.iter().filter(|e| Self::names(e, field)).map(|e| e.message.as_str()).collect();
        (!msgs.is_empty()).then(|| msgs.join("；"))
    }

    /// The attributes that tie an input to its message: ` aria-invalid="true"
    /// aria-describedby="{id}-{field}-error"` when `field` has an error, else nothing. `id` and
    /// `field` are literals from the templates, never user input.
    pub fn attrs(&self, id: &str, field: &str) -> String {
        if self.error(id, field).is_some() {
            format!(r#" aria-invalid="true" aria-describedby="{id}-{field}-error""#)
        } else {
            String::new()
        }
    }

    /// The message of a refused form that named no field (a conflict: someone else changed the
    /// object first), for the top of a page whose forms depend on the object's state.
    pub fn conflict(&self) -> Option<String> {
        (!self.id.is_empty() && self.errors.is_empty()).then(|| self.headline())
    }

    /// The summary's headline: how many things to fix, or the API's own words when it named
    /// no field (a conflict).
    pub fn headline(&self) -> String {
        match self.errors.len() {
            0 => format!("未能保存：{}", self.detail),
            n => format!("未能保存，请修改以下 {n} 处后重新提交："),
        }
    }

    /// Every message for the summary at the top of form `id` (with its field or line).
    pub fn summary(&self, id: &str) -> Vec<String> {
        if !self.failed_here(id) {
            return vec![];
        }
        self.errors
            .iter()
            .map(|e| {
                let label = e.field.as_deref().and_then(label);
                let what = match label {
                    Some(l) if !e.message.contains(l) => format!("{l}：{}", e.message),
                    _ => e.message.clone(),
                };
                match e.line {
                    Some(n) => format!("第 {n} 行：{what}"),
                    None => what,
                }
            })
            .collect()
    }
}

/// Chinese names of the API's input fields that console forms carry, for the summary (the
/// message beside a field needs no name; the summary does). The API names a field by its JSON
/// path: `indicators[2].score` is named after `indicators`.
fn label(field: &str) -> Option<&'static str> {
    let base = field.split(['[', '.']).next().unwrap_or(field);
    Some(match base {
        "title" => "标题",
        "kind" => "类型",
        "item_code" => "物资",
        "quantity" => "数量",
        "batch" => "批次",
        "expiry_date" => "到期日期",
        "reserve_mode" => "储备方式",
        "reason" => "原因",
        "destination" => "去向",
        "note" => "说明",
        "issued_on" => "印发日期",
        "issuing_body" => "印发机关",
        "filed_with" => "备案机关",
        "filed_on" => "备案日期",
        "receipt_no" => "备案回执编号",
        "name" => "姓名",
        "id_number" => "身份证号",
        "phone" => "手机号",
        "skills" => "专业技能",
        "region" | "region_code" => "区划",
        "organiser_unit" => "组织单位",
        "objective" => "演练目的",
        "place_name" => "地点",
        "starts_at" => "开始时间",
        "ends_at" => "结束时间",
        "form" => "演练形式",
        "scope" => "演练范围",
        "purpose" => "演练目的类型",
        "participant_count" => "参演人数",
        "scenario" => "演练情景",
        "outline" => "演练概况",
        "units" | "participating_units" => "参演单位",
        "plan_ids" => "预案",
        "team_codes" => "参演队伍",
        "evaluator" => "评估人",
        "indicators" => "评估指标",
        "conclusion" => "评估结论",
        "lessons" => "经验教训",
        "suggestions" => "改进建议",
        "password" => "密码",
        "role" => "角色",
        // 事件 (event report, board steps)
        "hazard" => "灾种",
        "occurred_at" => "发生时间",
        "known_at" => "获知时间",
        "place" => "地点名称",
        "lon" => "经度",
        "lat" => "纬度",
        "description" => "事件描述",
        "dead" => "死亡",
        "injured" => "受伤",
        "missing" => "失踪",
        "trapped" => "被困",
        "affected_people" => "受灾人口",
        "affected_households" => "受灾户数",
        "affected_livestock" => "受灾牲畜",
        "source" => "信息来源",
        "reporter" => "报告人",
        "severity" => "事件分级",
        "exercise" => "演练模式",
        "drill_id" => "关联演练",
        "content" => "报告内容",
        "choice" | "plan_id" => "预案和响应级别",
        "level" => "响应级别",
        "lines" => "调度条目",
        "report_place" => "报到地点",
        "decision" => "终止决定",
        "causes" => "事件原因",
        "summary" => "应对评估",
        "text" => "内容",
        _ => return None,
    })
}

/// The answer to a form post: `result` when it succeeded (usually a redirect), else the page
/// rendered again by `render` with the refused form's state and the API's status (422, 400 or
/// 409). Errors that are not about the input pass through to the error page.
pub async fn again<F, Fut>(id: &str, body: &[u8], result: WebResult, render: F) -> WebResult
where
    F: FnOnce(FormState) -> Fut,
    Fut: Future<Output = WebResult>,
{
    let e = match result {
        Ok(r) => return Ok(r),
        Err(e) => e,
    };
    let status = match &e {
        WebError::Api(api) => api.status(),
        WebError::Login(_) => return Err(e),
    };
    let state = FormState::failed(id, body, e)?;
    let mut page = render(state).await?;
    *page.status_mut() = status;
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> FormState {
        let e = ApiError::invalid_many(
            "数量必须大于 0",
            vec![FieldError::field("quantity", "数量必须大于 0"), FieldError::field("plan_ids[1]", "编号 9 不存在")],
        );
        FormState::failed("movement", b"csrf=secret&quantity=-3&kind=issue&plan_ids=4", WebError::Api(e)).unwrap()
    }

    #[test]
    fn a_refused_form_keeps_its_values_and_puts_each_message_beside_its_field() {
        let f = refused();
        assert_eq!(f.value("movement", "quantity"), "-3");
        assert_eq!(f.value("movement", "csrf"), "", "the CSRF token is never echoed from the body");
        assert_eq!(f.value("other", "quantity"), "", "another form on the page keeps its defaults");
        assert_eq!(f.value_or("other", "kind", "receive"), "receive");
        assert!(f.chosen("movement", "kind", "issue", false));
        assert!(!f.chosen("movement", "kind", "receive", true));
        assert_eq!(f.error("movement", "quantity").as_deref(), Some("数量必须大于 0"));
        assert_eq!(f.error("movement", "plan_ids").as_deref(), Some("编号 9 不存在"));
        assert_eq!(f.error("movement", "plan"), None, "a prefix of another name is not that field");
        assert!(f.attrs("movement", "quantity").contains(r#"aria-describedby="movement-quantity-error""#));
        assert_eq!(f.attrs("movement", "kind"), "");
        assert_eq!(f.summary("movement"), vec!["数量必须大于 0".to_string(), "预案：编号 9 不存在".to_string()]);
    }

    #[test]
    fn errors_that_are_not_about_the_input_stay_errors() {
        let e = WebError::Api(ApiError::Forbidden("不在辖区内".into()));
        assert!(FormState::failed("x", b"", e).is_err());
        let none = FormState::none();
        assert!(!none.failed_here(""));
        assert_eq!(none.value_or("", "a", "d"), "d");
    }
}
