//! Warnings (预警): records of CAP 1.2 / GB/T 35965.1 warnings issued here or received from
//! others, passed down to every township and village in the affected area, acknowledged per
//! region, and each one triggering a readiness check of exactly what it threatens.
//!
//! Lifecycle (every step through [`crate::transition!`]): `draft` → `issued` → `updated` (a later
//! Update message replaced it), `cancelled` (a Cancel message ended it) or `expired` (the
//! scheduler, at its expiry time). An acknowledgement per region: `pending` → `reminded` →
//! `acknowledged` (or `pending` → `acknowledged`).

pub mod area;
pub mod cap;
pub mod cap_in;
pub mod cap_tree;
pub mod charset;
pub mod feed;
pub mod handlers;
pub mod issue;
pub mod jobs;
pub mod notice;
pub mod receive;
pub mod routes;
pub mod store;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::transition::Lifecycle;
use crate::vocab::Hazard;

/// The warning lifecycle.
pub const WARNING: Lifecycle = Lifecycle::new("warnings", "预警");

/// The acknowledgement of one region.
pub const ACK: Lifecycle = Lifecycle::new("warning_regions", "预警签收").state_column("ack_status");

crate::vocabulary! {
    /// CAP `status` of a warning (GB/T 35965.1 keeps `Exercise`, so drills are never mistaken
    /// for real warnings).
    CapStatus {
        Actual = "actual", "实际";
        Exercise = "exercise", "演练";
    }
}

crate::vocabulary! {
    /// CAP `msgType`: a new warning, an update (升级/降级/变更) or a cancellation (解除).
    MsgType {
        Alert = "alert", "发布";
        Update = "update", "变更";
        Cancel = "cancel", "解除";
    }
}

crate::vocabulary! {
    /// Where a warning stands.
    Status {
        Draft = "draft", "草稿";
        Issued = "issued", "已发布";
        Updated = "updated", "已被更新";
        Cancelled = "cancelled", "已解除";
        Expired = "expired", "已过期";
    }
}

impl CapStatus {
    /// The CAP value.
    pub fn cap(self) -> &'static str {
        match self {
            CapStatus::Actual => "Actual",
            CapStatus::Exercise => "Exercise",
        }
    }
}

impl MsgType {
    /// The CAP value.
    pub fn cap(self) -> &'static str {
        match self {
            MsgType::Alert => "Alert",
            MsgType::Update => "Update",
            MsgType::Cancel => "Cancel",
        }
    }
}

/// A warning level, 1 (一级, red, highest) to 4 (四级, blue) (《突发事件应对法》（2024）).
pub fn level_colour(level: u8) -> &'static str {
    match level {
        1 => "红色",
        2 => "橙色",
        3 => "黄色",
        _ => "蓝色",
    }
}

/// CAP severity of a level: 红→Extreme, 橙→Severe, 黄→Moderate, 蓝→Minor.
pub fn level_severity(level: u8) -> &'static str {
    match level {
        1 => "Extreme",
        2 => "Severe",
        3 => "Moderate",
        _ => "Minor",
    }
}

/// The level of a CAP severity. Some feeds wrongly send the colour (`Red` … `Blue`): accepted on
/// input, never written.
pub fn severity_level(severity: &str) -> Option<u8> {
    match severity {
        "Extreme" | "Red" | "red" => Some(1),
        "Severe" | "Orange" | "orange" => Some(2),
        "Moderate" | "Yellow" | "yellow" => Some(3),
        "Minor" | "Blue" | "blue" => Some(4),
        _ => None,
    }
}

/// Chinese level name: 一级（红色）.
pub fn level_name(level: u8) -> String {
    format!("{}（{}）", crate::plans::types::level_label(level), level_colour(level))
}

/// One row of the event table: an event code, its Chinese name, the hazard it maps to and its
/// CAP category.
#[derive(Debug, Clone, Copy)]
pub struct EventKind {
    /// Event code as seen in meteorological CAP feeds.
    pub code: &'static str,
    /// Chinese event name (CAP `event`).
    pub name: &'static str,
    /// Hazard the plans know it as.
    pub hazard: Hazard,
    /// CAP `category`.
    pub category: &'static str,
}

/// The documented event table (README "Warnings"). The codes are those seen in public code of
/// meteorological feeds (DOMAIN.md: check before relying on them); messages without a known
/// code are mapped by the words of their `event`.
pub const EVENTS: &[EventKind] = &[
    EventKind { code: "11B04", name: "暴雪", hazard: Hazard::SnowDisaster, category: "Met" },
    EventKind { code: "11B05", name: "寒潮", hazard: Hazard::ExtremeCold, category: "Met" },
    EventKind { code: "11B06", name: "大风", hazard: Hazard::Sandstorm, category: "Met" },
    EventKind { code: "11B07", name: "沙尘暴", hazard: Hazard::Sandstorm, category: "Met" },
    EventKind { code: "11B25", name: "森林火险", hazard: Hazard::GrasslandFire, category: "Fire" },
    EventKind { code: "11B26", name: "草原火险", hazard: Hazard::GrasslandFire, category: "Fire" },
];

/// Words of an `event` text and the hazard they name, tried in order when no code is known.
const EVENT_WORDS: &[(&str, Hazard)] = &[
    ("暴雪", Hazard::SnowDisaster),
    ("雪灾", Hazard::SnowDisaster),
    ("白灾", Hazard::SnowDisaster),
    ("寒潮", Hazard::ExtremeCold),
    ("低温", Hazard::ExtremeCold),
    ("沙尘", Hazard::Sandstorm),
    ("大风", Hazard::Sandstorm),
    ("火险", Hazard::GrasslandFire),
    ("草原火", Hazard::GrasslandFire),
    ("森林火", Hazard::GrasslandFire),
    ("干旱", Hazard::Drought),
    ("暴雨", Hazard::Flood),
    ("洪", Hazard::Flood),
    ("地震", Hazard::Earthquake),
    ("疫情", Hazard::AnimalEpidemic),
];

/// The event of a code.
pub fn event_by_code(code: &str) -> Option<&'static EventKind> {
    EVENTS.iter().find(|e| e.code.eq_ignore_ascii_case(code.trim()))
}

/// The hazard named by an event text (暴雪黄色预警 → snow).
pub fn hazard_of_event(event: &str) -> Option<Hazard> {
    EVENT_WORDS.iter().find(|(w, _)| event.contains(w)).map(|(_, h)| *h)
}

/// The event a hazard is written as when no event name is given (the first table row for it).
pub fn default_event(hazard: Hazard) -> (&'static str, Option<&'static str>, &'static str) {
    match EVENTS.iter().find(|e| e.hazard == hazard) {
        Some(e) => (e.name, Some(e.code), e.category),
        None => (hazard.label(), None, category_of(hazard)),
    }
}

/// CAP category of a hazard.
pub fn category_of(hazard: Hazard) -> &'static str {
    match hazard {
        Hazard::SnowDisaster | Hazard::Drought | Hazard::Sandstorm | Hazard::ExtremeCold | Hazard::Flood => "Met",
        Hazard::Earthquake => "Geo",
        Hazard::GrasslandFire | Hazard::BuildingFire => "Fire",
        Hazard::InfectiousDisease | Hazard::AnimalEpidemic | Hazard::FoodSafety => "Health",
        Hazard::MineAccident | Hazard::RoadTraffic => "Safety",
        Hazard::Hazmat => "CBRNE",
        Hazard::PowerOutage => "Infra",
        Hazard::SocialSecurity => "Security",
    }
}

/// A reference to an earlier message (CAP `references`: `sender,identifier,sent`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Reference {
    /// Sender of the earlier message.
    pub sender: String,
    /// Its identifier.
    pub identifier: String,
    /// Its `sent` time as written.
    pub sent: String,
}

/// Default minutes a region has to acknowledge before it is reminded.
pub const DEFAULT_ACK_MINUTES: i64 = 60;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_to_severity_and_back() {
        for level in 1..=4u8 {
            assert_eq!(severity_level(level_severity(level)), Some(level));
        }
        assert_eq!(severity_level("Orange"), Some(2));
        assert_eq!(severity_level("Unknown"), None);
        assert_eq!(level_name(2), "二级（橙色）");
    }

    #[test]
    fn events_map_by_code_and_by_words() {
        assert_eq!(event_by_code("11b04").map(|e| e.hazard), Some(Hazard::SnowDisaster));
        assert_eq!(hazard_of_event("草原火险橙色预警"), Some(Hazard::GrasslandFire));
        assert_eq!(hazard_of_event("台风"), None);
        assert_eq!(default_event(Hazard::SnowDisaster).1, Some("11B04"));
    }
}
