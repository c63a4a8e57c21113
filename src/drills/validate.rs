//! Input checks shared by the drill handlers, collecting every error before answering.

use chrono::Duration;
use serde::Serialize;

use crate::auth::Scope;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::http::Ctx;
use crate::http::refs::{self, Kind, Within};
use crate::regions::RegionCode;
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

/// Most plans one drill exercises.
pub const MAX_DRILL_PLANS: usize = 50;
/// Most teams one drill names (their channels receive its reminders).
pub const MAX_DRILL_TEAMS: usize = 50;

/// Checks a drill's references: the exercised plans belong to the organising region's subtree
/// (the drill's completion records on them that they were drilled), the participating teams are
/// visible to the caller, and both lists are within their maximum lengths.
pub(super) async fn check_links(
    c: &Ctx,
    region: &str,
    plans: &[i64],
    teams: &[String],
    errors: &mut Vec<FieldError>,
) -> ApiResult<()> {
    let p = c.caller()?;
    let mine = Within { scope: &p.scope, reason: "您的管辖范围" };
    let Ok(code) = RegionCode::parse(region) else { return Ok(()) };
    let organiser = Scope::of(&code);
    let plan_within = [mine, Within { scope: &organiser, reason: "演练组织区划" }];
    refs::check(&c.app.db, "plan_ids", Kind::Plan, plans, MAX_DRILL_PLANS, &plan_within, errors).await?;
    let team_within = [Within { scope: &p.scope, reason: "您的管辖范围" }];
    refs::check(&c.app.db, "team_codes", Kind::Team, teams, MAX_DRILL_TEAMS, &team_within, errors).await?;
    Ok(())
}

pub(super) fn fail(errors: Vec<FieldError>) -> ApiResult<()> {
    ApiError::fail_with(errors)
}
