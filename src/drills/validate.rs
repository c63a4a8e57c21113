//! Input checks shared by the drill handlers, collecting every error before answering.

use chrono::Duration;
use serde::Serialize;

use super::store;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::http::Ctx;
use crate::regions::check_lon_lat;
use crate::time::Timestamp;

pub(super) fn to_value<T: Serialize>(v: &T) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(v).map_err(|e| ApiError::Internal(e.into()))
}

pub(super) fn check_offsets(offsets: &[i64], errors: &mut Vec<FieldError>) {
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

pub(super) fn check_times(starts: Timestamp, ends: Timestamp, errors: &mut Vec<FieldError>) {
    if ends <= starts {
        errors.push(FieldError::field("ends_at", "结束时间应晚于开始时间"));
    } else if ends.0 - starts.0 > Duration::days(30) {
        errors.push(FieldError::field("ends_at", "一次演练不超过 30 天"));
    }
}

pub(super) fn check_text(field: &str, v: &str, max: usize, required: bool, errors: &mut Vec<FieldError>) {
    if required && v.trim().is_empty() {
        errors.push(FieldError::field(field, "不能为空"));
    }
    if v.chars().count() > max {
        errors.push(FieldError::field(field, format!("不超过 {max} 个字符")));
    }
}

pub(super) fn check_location(lon: Option<f64>, lat: Option<f64>, errors: &mut Vec<FieldError>) {
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

/// Checks that the exercised plans exist (a township may drill the banner's plan, so any plan
/// counts).
pub(super) async fn check_links(c: &Ctx, plans: &[i64], errors: &mut Vec<FieldError>) -> ApiResult<()> {
    if plans.len() > 50 {
        errors.push(FieldError::field("plan_ids", "一次演练最多检验 50 个预案"));
        return Ok(());
    }
    for id in store::unknown_plans(&c.app.db, plans).await? {
        errors.push(FieldError::field("plan_ids", format!("预案 {id} 不存在")));
    }
    Ok(())
}

pub(super) fn fail(errors: Vec<FieldError>) -> ApiResult<()> {
    if errors.is_empty() {
        Ok(())
    } else {
        let first = errors[0].message.clone();
        let field = errors[0].field.clone().unwrap_or_default();
        Err(ApiError::invalid_many(format!("{field}：{first}"), errors))
    }
}
