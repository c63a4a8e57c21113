//! What a reporter sends to open an event (the first report): the body of
//! `POST /api/v1/events` and the casualty and damage figures reports carry, with their ranges.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{Event, Severity};
use crate::error::{ApiError, ApiResult};
use crate::regions::RegionCode;
use crate::time::Timestamp;
use crate::vocab::Hazard;

/// Body of `POST /api/v1/events`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEvent {
    /// Hazard (shared vocabulary).
    pub hazard: Hazard,
    /// Title.
    #[schemars(length(min = 1, max = 200), regex(pattern = r"\S"))]
    pub title: String,
    /// When it happened.
    pub occurred_at: Timestamp,
    /// When it became known (default: now).
    #[serde(default)]
    pub known_at: Option<Timestamp>,
    /// Region where it happened.
    pub region_code: RegionCode,
    /// Place name.
    #[schemars(length(min = 1, max = 200), regex(pattern = r"\S"))]
    pub place: String,
    /// Longitude of the scene (WGS84).
    #[schemars(range(min = -180, max = 180))]
    pub lon: f64,
    /// Latitude of the scene.
    #[schemars(range(min = -90, max = 90))]
    pub lat: f64,
    /// Description.
    #[schemars(length(min = 1, max = 5000), regex(pattern = r"\S"))]
    pub description: String,
    /// Casualties and losses.
    #[serde(default, flatten)]
    pub figures: Figures,
    /// Where the information came from (e.g. 牧民电话, 110 转来).
    #[schemars(length(min = 1, max = 200), regex(pattern = r"\S"))]
    pub source: String,
    /// Who reported it.
    #[schemars(length(min = 1, max = 100), regex(pattern = r"\S"))]
    pub reporter: String,
    /// Estimated grade.
    pub severity: Severity,
    /// Drill mode (演练): moves no stock; needs `drill_id`.
    #[serde(default)]
    pub exercise: bool,
    /// The drill this exercise rehearses.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub drill_id: Option<i64>,
}

/// Casualties and losses (each optional; non-negative).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Figures {
    /// Dead.
    #[schemars(range(min = 0, max = 1_000_000_000))]
    pub dead: Option<i64>,
    /// Injured.
    #[schemars(range(min = 0, max = 1_000_000_000))]
    pub injured: Option<i64>,
    /// Missing.
    #[schemars(range(min = 0, max = 1_000_000_000))]
    pub missing: Option<i64>,
    /// Trapped.
    #[schemars(range(min = 0, max = 1_000_000_000))]
    pub trapped: Option<i64>,
    /// Affected people.
    #[schemars(range(min = 0, max = 1_000_000_000))]
    pub affected_people: Option<i64>,
    /// Affected households.
    #[schemars(range(min = 0, max = 1_000_000_000))]
    pub affected_households: Option<i64>,
    /// Affected livestock (head).
    #[schemars(range(min = 0, max = 1_000_000_000))]
    pub affected_livestock: Option<i64>,
}

impl Figures {
    /// Writes the given figures onto the event; 422 for a negative or absurd one.
    pub(super) fn apply(&self, e: &mut Event) -> ApiResult<()> {
        let all = [
            ("dead", self.dead, &mut e.dead),
            ("injured", self.injured, &mut e.injured),
            ("missing", self.missing, &mut e.missing),
            ("trapped", self.trapped, &mut e.trapped),
            ("affected_people", self.affected_people, &mut e.affected_people),
            ("affected_households", self.affected_households, &mut e.affected_households),
            ("affected_livestock", self.affected_livestock, &mut e.affected_livestock),
        ];
        for (field, v, slot) in all {
            if let Some(v) = v {
                if !(0..=1_000_000_000).contains(&v) {
                    return Err(ApiError::invalid(field, "应为 0 到 10 亿之间的整数"));
                }
                *slot = v;
            }
        }
        Ok(())
    }
}
