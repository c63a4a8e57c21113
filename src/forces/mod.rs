//! Social emergency forces (社会应急力量): teams and their filing (备案), members with
//! certificates and insurance, call-ups (调用) and compensation, nearest qualified teams, CSV and
//! GeoJSON.
//!
//! Only `approved` teams count as available anywhere (nearest teams, call-ups, the map, readiness).
//! Members' ID numbers and phones are personal information (突发事件应对法 arts. 84–85): stored
//! encrypted, masked unless the caller holds [`crate::auth::Perm::RevealPersonal`] and asks for
//! them (`?reveal=true`), and every unmasked read is audited (action `reveal`).

pub mod callup_store;
pub mod callups;
pub mod compensation;
pub mod csv;
pub mod csv_members;
pub mod csv_teams;
pub mod filing;
pub mod geojson;
pub mod idnumber;
pub mod member_store;
pub mod members;
pub mod nearest;
pub mod paper;
pub mod personal;
pub mod routes;
pub mod routes_callups;
pub mod routes_certificates;
pub mod routes_compensation;
pub mod routes_members;
pub mod store;
pub mod team_index;
pub mod teams;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::vocab::Specialty;

crate::vocabulary! {
    /// Kind of organisation a team is.
    OrgType {
        SocialOrg = "social_org", "社会组织";
        VolunteerTeam = "volunteer_team", "志愿者队伍";
        EnterpriseTeam = "enterprise_team", "企业专职救援队";
        GrassrootsTeam = "grassroots_team", "基层应急队伍";
        Militia = "militia", "民兵应急分队";
        Other = "other", "其他";
    }
}

crate::vocabulary! {
    /// Filing (备案) state of a team. Only `approved` teams count as available.
    FilingStatus {
        Submitted = "submitted", "已提交";
        Approved = "approved", "已备案";
        Rejected = "rejected", "未通过";
        Suspended = "suspended", "暂停";
        Revoked = "revoked", "已撤销";
    }
}

crate::vocabulary! {
    /// A member's availability. Members are retired, never deleted.
    MemberStatus {
        Available = "available", "可调用";
        Deployed = "deployed", "执行任务中";
        Unavailable = "unavailable", "暂不可用";
        Retired = "retired", "已退出";
    }
}

/// A specialty a team holds, with its grade under the 2024 grading scheme (1 highest) when the
/// team was graded in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SpecialtyGrade {
    /// Specialty code.
    pub specialty: Specialty,
    /// Grade 1, 2 or 3 (1 highest); null when not graded.
    #[serde(default)]
    pub grade: Option<u8>,
}

/// One kind of equipment a team keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Equipment {
    /// What it is, e.g. 风力灭火机.
    #[schemars(length(min = 1, max = 100), regex(pattern = r"\S"))]
    pub name: String,
    /// How many, when counted.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub quantity: Option<i64>,
}

/// Checks a team's specialties: no duplicates, grades 1–3.
pub fn check_specialties(list: &[SpecialtyGrade]) -> Result<(), String> {
    for (i, s) in list.iter().enumerate() {
        if let Some(g) = s.grade
            && !(1..=3).contains(&g)
        {
            return Err(format!("专业「{}」的等级 {g} 无效：应为 1、2 或 3（1 级最高）", s.specialty.label()));
        }
        if list[..i].iter().any(|o| o.specialty == s.specialty) {
            return Err(format!("专业「{}」重复", s.specialty.label()));
        }
    }
    Ok(())
}

/// Trims a required text field and checks its length.
pub fn text(field: &str, v: &str, max: usize) -> Result<String, ApiError> {
    let v = v.trim();
    if v.is_empty() {
        return Err(ApiError::invalid(field, "不能为空"));
    }
    if v.chars().count() > max {
        return Err(ApiError::invalid(field, format!("超过 {max} 个字符")));
    }
    Ok(v.to_string())
}

/// Trims an optional text field (empty becomes None) and checks its length.
pub fn opt_text(field: &str, v: Option<&str>, max: usize) -> Result<Option<String>, ApiError> {
    match v.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => text(field, v, max).map(Some),
    }
}

/// Serialises a value for an audit row.
pub fn audit_json<T: Serialize>(v: &T) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(v).map_err(|e| ApiError::Internal(e.into()))
}

/// Deserialises a field that distinguishes "absent" (None) from `null` (Some(None)).
pub(crate) fn double_option<'de, T: Deserialize<'de>, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}
