//! The administrative tree: banner (旗) → township (苏木/镇) → village (嘎查/社区).

pub mod import;
pub mod routes;
pub mod store;

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// The banner's own code (苏尼特左旗).
pub const BANNER_CODE: &str = "152523000000";

/// The official division list shipped with the service (the banner and its nine township-level
/// units, national statistics release 2023).
pub const SHIPPED_DIVISIONS: &str = include_str!("../../data/divisions_152523.csv");

/// The banner seat 满都拉图镇 (WGS84), the one location shipped as fact.
pub const BANNER_SEAT: (f64, f64) = (113.64402, 43.85223);

/// Level of a region in the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// 旗/县 (county level).
    Banner,
    /// 苏木/镇 (township level, including township-like zones).
    Township,
    /// 嘎查/社区 (village level).
    Village,
}

impl Level {
    /// Parses `banner`, `township`, `village` (or the Chinese 旗/县, 苏木/镇/乡, 嘎查/社区/村).
    pub fn parse(s: &str) -> Option<Level> {
        match s.trim() {
            "banner" | "旗" | "县" | "旗县" => Some(Level::Banner),
            "township" | "苏木" | "镇" | "乡" | "苏木镇" | "乡镇" => Some(Level::Township),
            "village" | "嘎查" | "社区" | "村" | "嘎查村" => Some(Level::Village),
            _ => None,
        }
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Banner => "banner",
            Level::Township => "township",
            Level::Village => "village",
        }
    }

    /// Chinese name.
    pub fn label(self) -> &'static str {
        match self {
            Level::Banner => "旗",
            Level::Township => "苏木/镇",
            Level::Village => "嘎查/社区",
        }
    }

    /// How many leading digits of a code identify a region at this level (6, 9 or 12): every
    /// region below it shares them.
    pub fn prefix_len(self) -> usize {
        match self {
            Level::Banner => 6,
            Level::Township => 9,
            Level::Village => 12,
        }
    }

    /// The level a parent of this level must have, if any is kept in the tree.
    pub fn parent_level(self) -> Option<Level> {
        match self {
            Level::Banner => None,
            Level::Township => Some(Level::Banner),
            Level::Village => Some(Level::Township),
        }
    }
}

impl TryFrom<String> for Level {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Level::parse(&s).ok_or_else(|| format!("unknown level {s:?}"))
    }
}

/// A 12-digit official statistical division code. Can only be built valid.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct RegionCode(String);

impl JsonSchema for RegionCode {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RegionCode".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[0-9]{12}$",
            "description": "12 位统计用区划代码",
            "example": BANNER_CODE
        })
    }
}

impl RegionCode {
    /// Parses a 12-digit code.
    pub fn parse(s: &str) -> Result<RegionCode, String> {
        let s = s.trim();
        if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(RegionCode(s.to_string()))
        } else {
            Err(format!("区划代码 {s:?} 无效：应为 12 位数字"))
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Checks that the code's shape fits the level: a banner code ends in six zeros, a township
    /// code has a non-zero township part and ends in three zeros, a village code has a non-zero
    /// village part.
    pub fn check_level(&self, level: Level) -> Result<(), String> {
        let c = &self.0;
        let ok = match level {
            Level::Banner => &c[4..6] != "00" && &c[6..] == "000000",
            Level::Township => &c[6..9] != "000" && &c[9..] == "000",
            Level::Village => &c[6..9] != "000" && &c[9..] != "000",
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "区划代码 {c} 与级别「{}」不符（旗级代码后 6 位为 0，苏木镇级代码后 3 位为 0，嘎查/社区级代码后 3 位非 0）",
                level.label()
            ))
        }
    }

    /// Whether this code lies under `parent` (shares the parent level's prefix).
    pub fn is_under(&self, parent: &RegionCode, parent_level: Level) -> bool {
        let n = parent_level.prefix_len();
        self.0[..n] == parent.0[..n]
    }
}

impl fmt::Display for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RegionCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // In JSON and query strings the code is exactly 12 digits, as the schema says (files
        // imported by people may pad it with spaces: those go through `parse`).
        let s = String::deserialize(d)?;
        if s.trim() != s {
            return Err(serde::de::Error::custom(format!("区划代码 {s:?} 无效：应为 12 位数字")));
        }
        RegionCode::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A region as the API shows it.
#[derive(Debug, Clone, Serialize, JsonSchema, sqlx::FromRow)]
pub struct Region {
    /// 12-digit official code.
    pub code: String,
    /// Official name.
    pub name: String,
    /// Level.
    #[sqlx(try_from = "String")]
    pub level: Level,
    /// Parent's code (for the banner: the league, which is not kept).
    pub parent_code: Option<String>,
    /// Longitude, WGS84.
    pub lon: Option<f64>,
    /// Latitude, WGS84.
    pub lat: Option<f64>,
    /// Boundary as a GeoJSON Polygon or MultiPolygon geometry.
    #[schemars(with = "Option<serde_json::Value>")]
    pub boundary: Option<sqlx::types::Json<serde_json::Value>>,
    /// When the row was created.
    pub created_at: Timestamp,
    /// When the row last changed.
    pub updated_at: Timestamp,
}

/// Checks a longitude/latitude pair (WGS84).
pub fn check_lon_lat(lon: f64, lat: f64) -> Result<(), String> {
    if !(-180.0..=180.0).contains(&lon) || !lon.is_finite() {
        return Err(format!("经度 {lon} 超出范围 [-180, 180]"));
    }
    if !(-90.0..=90.0).contains(&lat) || !lat.is_finite() {
        return Err(format!("纬度 {lat} 超出范围 [-90, 90]"));
    }
    Ok(())
}
