//! Shared vocabularies: hazards, rescue specialties and GB/T 38565 item codes. Plans, supplies,
//! forces, drills and readiness all speak these.

use std::borrow::Cow;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Defines a string-coded vocabulary: an enum with its stored code, Chinese label, every value,
/// parsing (code or label), `Display`, `TryFrom<String>` (for reading rows) and serde/JSON Schema
/// as the code. Every vocabulary in the service is defined with it.
#[macro_export]
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $code:literal, $label:literal;)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ::serde::Serialize, ::serde::Deserialize, ::schemars::JsonSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* #[doc = $label] $variant,)+
        }

        impl $name {
            /// Every value, in documentation order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The stored code, e.g. `grassland_fire`.
            pub fn code(self) -> &'static str {
                match self { $($name::$variant => $code,)+ }
            }

            /// The stored code (same as [`Self::code`]).
            pub fn as_str(self) -> &'static str {
                self.code()
            }

            /// The Chinese label.
            pub fn label(self) -> &'static str {
                match self { $($name::$variant => $label,)+ }
            }

            /// Parses a code (or the Chinese label).
            pub fn parse(s: &str) -> Option<$name> {
                let s = s.trim();
                $name::ALL.iter().copied().find(|v| v.code() == s || v.label() == s)
            }

            /// `code（label）、…`, for error messages.
            pub fn choices() -> String {
                $name::ALL.iter().map(|v| format!("{}（{}）", v.code(), v.label())).collect::<Vec<_>>().join("、")
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.code())
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                $name::parse(&s).ok_or_else(|| format!("unknown {} {s:?}", stringify!($name)))
            }
        }
    };
}

vocabulary! {
    /// A hazard a plan covers (突发事件类别).
    Hazard {
        SnowDisaster = "snow_disaster", "白灾/雪灾";
        Drought = "drought", "干旱(黑灾)";
        GrasslandFire = "grassland_fire", "草原火灾";
        Sandstorm = "sandstorm", "沙尘暴/大风";
        ExtremeCold = "extreme_cold", "寒潮/低温";
        Earthquake = "earthquake", "地震";
        Flood = "flood", "洪涝";
        MineAccident = "mine_accident", "矿山事故";
        Hazmat = "hazmat", "危险化学品事故";
        RoadTraffic = "road_traffic", "道路交通事故";
        BuildingFire = "building_fire", "火灾";
        PowerOutage = "power_outage", "大面积停电";
        InfectiousDisease = "infectious_disease", "传染病疫情";
        AnimalEpidemic = "animal_epidemic", "重大动物疫情";
        FoodSafety = "food_safety", "食品安全事故";
        SocialSecurity = "social_security", "社会安全事件";
    }
}

vocabulary! {
    /// A rescue specialty of a team or member (the 2024 grading scheme's five, plus local ones).
    Specialty {
        CollapseSearch = "collapse_search", "建筑物倒塌搜救";
        MountainSearch = "mountain_search", "山地搜救";
        WaterRescue = "water_rescue", "水上搜救";
        DivingRescue = "diving_rescue", "潜水救援";
        Medical = "medical", "应急医疗救护";
        GrasslandFire = "grassland_fire", "草原灭火";
        SnowRescue = "snow_rescue", "雪灾救援";
        Communications = "communications", "通信保障";
        Transport = "transport", "物资运输";
        Psychological = "psychological", "心理援助";
        AnimalEpidemic = "animal_epidemic", "动物防疫";
        Hazmat = "hazmat", "危化品处置";
        Other = "other", "其他";
    }
}

/// A GB/T 38565-2020 emergency supplies code: 7 digits in four levels D-DD-DD-DD, the first digit
/// 1 (basic living supplies), 2 (emergency equipment and accessories) or 3 (engineering materials
/// and machinery); `99` is the catch-all at each level. Accepted with or without dashes; stored
/// and shown as 7 digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ItemCode(String);

impl ItemCode {
    /// Parses `1010101` or `1-01-01-01`.
    pub fn parse(s: &str) -> Result<ItemCode, String> {
        let digits: String = s.trim().chars().filter(|c| *c != '-').collect();
        if digits.len() != 7 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("物资编码 {s:?} 无效：应为 GB/T 38565 的 7 位数字（如 1-01-01-01）"));
        }
        if !matches!(digits.as_bytes()[0], b'1'..=b'3') {
            return Err(format!("物资编码 {s:?} 无效：首位应为 1（生活类）、2（装备类）或 3（工程材料与机械类）"));
        }
        Ok(ItemCode(digits))
    }

    /// The 7 digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The top-level class: 1, 2 or 3.
    pub fn class(&self) -> u8 {
        self.0.as_bytes()[0] - b'0'
    }

    /// Dashed form `D-DD-DD-DD`.
    pub fn dashed(&self) -> String {
        let c = &self.0;
        format!("{}-{}-{}-{}", &c[..1], &c[1..3], &c[3..5], &c[5..7])
    }
}

impl fmt::Display for ItemCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ItemCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Cow::<str>::deserialize(d)?;
        ItemCode::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for ItemCode {
    fn schema_name() -> Cow<'static, str> {
        "ItemCode".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[1-3]-?[0-9]{2}-?[0-9]{2}-?[0-9]{2}$",
            "description": "GB/T 38565-2020 应急物资编码（7 位，首位 1/2/3）",
            "example": "1010101"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabularies_parse_codes_and_labels() {
        assert_eq!(Hazard::parse("grassland_fire"), Some(Hazard::GrasslandFire));
        assert_eq!(Hazard::parse("草原火灾"), Some(Hazard::GrasslandFire));
        assert_eq!(Specialty::parse("medical").map(Specialty::label), Some("应急医疗救护"));
        assert_eq!(Hazard::ALL.len(), 16);
        assert_eq!(Specialty::ALL.len(), 13);
    }

    #[test]
    fn item_codes_are_validated() {
        assert_eq!(ItemCode::parse("1-01-01-01").unwrap().as_str(), "1010101");
        assert_eq!(ItemCode::parse("2999999").unwrap().dashed(), "2-99-99-99");
        assert!(ItemCode::parse("4010101").is_err());
        assert!(ItemCode::parse("101010").is_err());
        assert!(ItemCode::parse("1o10101").is_err());
    }
}
