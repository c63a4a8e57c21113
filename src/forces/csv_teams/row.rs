//! A teams row as parsed from its cells, before any lookup.

use super::super::{FilingStatus, OrgType, SpecialtyGrade, check_specialties};
use crate::csvio::Record;
use crate::error::FieldError;
use crate::regions::{RegionCode, check_lon_lat};
use crate::time::Timestamp;
use crate::vocab::Specialty;

/// A team row as parsed.
pub struct Row {
    pub code: String,
    pub name: String,
    pub org_type: OrgType,
    pub region: RegionCode,
    pub lon: f64,
    pub lat: f64,
    pub specialties: Vec<SpecialtyGrade>,
    pub status: Option<FilingStatus>,
    /// When a new team's filing counts as submitted (the day on paper, or now).
    pub submitted_at: Timestamp,
}

impl Row {
    /// Parses a teams row (CPU only), pushing every problem to `errors`; None when it is invalid.
    pub fn parse(rec: &Record<'_>, now: Timestamp, errors: &mut Vec<FieldError>) -> Option<Row> {
        let code = rec
            .need("code", errors)
            .and_then(|v| super::super::teams::check_code(v).map_err(|m| errors.push(rec.err("code", m))).ok());
        let name = rec.need("name", errors).map(str::to_string);
        if name.as_ref().is_some_and(|n| n.chars().count() > 100) {
            errors.push(rec.err("name", "超过 100 个字符"));
        }
        let org_type = rec.need("org_type", errors).and_then(|v| {
            OrgType::parse(v).or_else(|| {
                errors.push(rec.err("org_type", format!("组织类型「{v}」无效，应为 {}", OrgType::choices())));
                None
            })
        });
        let region = rec
            .need("region_code", errors)
            .and_then(|v| RegionCode::parse(v).map_err(|m| errors.push(rec.err("region_code", m))).ok());
        let lon = rec.need("lon", errors).and(crate::csvio::opt_f64(rec, "lon", errors));
        let lat = rec.need("lat", errors).and(crate::csvio::opt_f64(rec, "lat", errors));
        if let (Some(lon), Some(lat)) = (lon, lat)
            && let Err(m) = check_lon_lat(lon, lat)
        {
            errors.push(rec.err(if (-180.0..=180.0).contains(&lon) { "lat" } else { "lon" }, m));
        }
        let specialties = parse_specialties(rec, errors);
        let status = rec.get("filing_status").and_then(|v| {
            FilingStatus::parse(v).or_else(|| {
                errors.push(rec.err("filing_status", format!("备案状态「{v}」无效，应为 {}", FilingStatus::choices())));
                None
            })
        });
        let submitted_on = crate::supplies::csv::date(rec, "submitted_on", errors);
        let submitted_at = match super::super::paper::submitted_at(submitted_on, now) {
            Ok(t) => t,
            Err(m) => {
                errors.push(rec.err("submitted_on", m));
                now
            }
        };
        Some(Row {
            code: code?,
            name: name?,
            org_type: org_type?,
            region: region?,
            lon: lon?,
            lat: lat?,
            specialties: specialties?,
            status,
            submitted_at,
        })
    }
}

/// The `specialties` and `grades` cells: `;`-separated and aligned, an empty grade meaning "not
/// graded".
fn parse_specialties(rec: &Record, errors: &mut Vec<FieldError>) -> Option<Vec<SpecialtyGrade>> {
    let split = |v: Option<&str>| -> Vec<String> {
        v.map(|v| v.split([';', '；']).map(|s| s.trim().to_string()).collect()).unwrap_or_default()
    };
    let specs = split(rec.get("specialties"));
    let grades = split(rec.get("grades"));
    if !grades.is_empty() && grades.len() != specs.len() {
        errors.push(rec.err(
            "grades",
            format!("等级有 {} 项，专业有 {} 项，应一一对应（未定级的留空）", grades.len(), specs.len()),
        ));
        return None;
    }
    let mut out = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        let Some(specialty) = Specialty::parse(s) else {
            errors.push(rec.err("specialties", format!("专业「{s}」无效")));
            return None;
        };
        let grade = match grades.get(i).map(String::as_str).unwrap_or("") {
            "" => None,
            "1" | "一级" => Some(1),
            "2" | "二级" => Some(2),
            "3" | "三级" => Some(3),
            g => {
                errors.push(rec.err("grades", format!("等级「{g}」无效：应为 1、2、3 或留空")));
                return None;
            }
        };
        out.push(SpecialtyGrade { specialty, grade });
    }
    if let Err(m) = check_specialties(&out) {
        errors.push(rec.err("specialties", m));
        return None;
    }
    Some(out)
}
