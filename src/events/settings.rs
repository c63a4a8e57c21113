//! Event settings: first-report deadlines per grade and call-up escalation times. Only the
//! 2-hour 初报 for natural disasters is a rule (《自然灾害情况统计调查制度》, 应急〔2020〕19号); the
//! other figures are local-policy placeholders (Inner Mongolia's own rule was not at hand) and
//! are meant to be set by the banner.

use chrono::Duration;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Severity;
use crate::db::{Db, Tx};
use crate::time::Timestamp;
use crate::vocab::Hazard;
use crate::{with_db, with_tx};

/// The settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Minutes from "became known" to the first report (初报) for 特别重大 events (local policy,
    /// placeholder).
    #[schemars(range(min = 1, max = 43200))]
    pub first_report_minutes_especially_serious: i64,
    /// The same for 重大 (local policy, placeholder).
    #[schemars(range(min = 1, max = 43200))]
    pub first_report_minutes_serious: i64,
    /// The same for 较大 (local policy, placeholder).
    #[schemars(range(min = 1, max = 43200))]
    pub first_report_minutes_relatively_serious: i64,
    /// The same for 一般 (local policy, placeholder).
    #[schemars(range(min = 1, max = 43200))]
    pub first_report_minutes_general: i64,
    /// Upper bound for natural disasters: 120 minutes (应急〔2020〕19号: the county sends the
    /// 初报 within 2 hours).
    #[schemars(range(min = 1, max = 43200))]
    pub natural_disaster_cap_minutes: i64,
    /// Minutes an unanswered call-up waits before the team's region is reminded (local policy,
    /// placeholder).
    #[schemars(range(min = 1, max = 43200))]
    pub escalate_to_region_minutes: i64,
    /// Minutes before the banner is told (local policy, placeholder).
    #[schemars(range(min = 1, max = 43200))]
    pub escalate_to_banner_minutes: i64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            first_report_minutes_especially_serious: 30,
            first_report_minutes_serious: 60,
            first_report_minutes_relatively_serious: 120,
            first_report_minutes_general: 120,
            natural_disaster_cap_minutes: 120,
            escalate_to_region_minutes: 30,
            escalate_to_banner_minutes: 60,
        }
    }
}

impl Settings {
    /// Checks every figure is between 1 minute and 30 days and the banner comes after the region.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let all = [
            ("first_report_minutes_especially_serious", self.first_report_minutes_especially_serious),
            ("first_report_minutes_serious", self.first_report_minutes_serious),
            ("first_report_minutes_relatively_serious", self.first_report_minutes_relatively_serious),
            ("first_report_minutes_general", self.first_report_minutes_general),
            ("natural_disaster_cap_minutes", self.natural_disaster_cap_minutes),
            ("escalate_to_region_minutes", self.escalate_to_region_minutes),
            ("escalate_to_banner_minutes", self.escalate_to_banner_minutes),
        ];
        for (field, v) in all {
            if !(1..=43_200).contains(&v) {
                return Err((field, "应在 1 到 43200 分钟之间".into()));
            }
        }
        if self.escalate_to_banner_minutes <= self.escalate_to_region_minutes {
            return Err(("escalate_to_banner_minutes", "应晚于 escalate_to_region_minutes".into()));
        }
        Ok(())
    }

    /// When the first report is due for an event of this grade and hazard known at `known`.
    pub fn first_report_due(&self, severity: Severity, hazard: Hazard, known: Timestamp) -> Timestamp {
        let mut minutes = match severity {
            Severity::EspeciallySerious => self.first_report_minutes_especially_serious,
            Severity::Serious => self.first_report_minutes_serious,
            Severity::RelativelySerious => self.first_report_minutes_relatively_serious,
            Severity::General => self.first_report_minutes_general,
        };
        if is_natural(hazard) {
            minutes = minutes.min(self.natural_disaster_cap_minutes);
        }
        Timestamp(known.0 + Duration::minutes(minutes))
    }
}

/// Natural disasters (自然灾害), to which the 2-hour 初报 rule applies.
pub fn is_natural(h: Hazard) -> bool {
    matches!(
        h,
        Hazard::SnowDisaster
            | Hazard::Drought
            | Hazard::GrasslandFire
            | Hazard::Sandstorm
            | Hazard::ExtremeCold
            | Hazard::Earthquake
            | Hazard::Flood
    )
}

/// The settings in force (defaults until the banner saves its own).
pub async fn load(db: &Db) -> Result<Settings, sqlx::Error> {
    let row: Option<sqlx::types::Json<Settings>> =
        with_db!(db, |p| sqlx::query_scalar("SELECT settings FROM event_settings WHERE id = 1")
            .fetch_optional(p)
            .await)?;
    Ok(row.map(|j| j.0).unwrap_or_default())
}

/// The settings inside a transaction.
pub async fn load_tx(tx: &mut Tx) -> Result<Settings, sqlx::Error> {
    let row: Option<sqlx::types::Json<Settings>> =
        with_tx!(tx, |c| sqlx::query_scalar("SELECT settings FROM event_settings WHERE id = 1")
            .fetch_optional(c)
            .await)?;
    Ok(row.map(|j| j.0).unwrap_or_default())
}

/// Saves the settings.
pub async fn save(tx: &mut Tx, s: &Settings, now: Timestamp) -> Result<(), sqlx::Error> {
    let j = sqlx::types::Json(s);
    with_tx!(tx, |c| sqlx::query(
        "INSERT INTO event_settings (id, settings, updated_at) VALUES (1, $1, $2)
         ON CONFLICT (id) DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at"
    )
    .bind(j)
    .bind(now)
    .execute(c)
    .await
    .map(|_| ()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_disasters_are_capped_at_two_hours() {
        let s = Settings { first_report_minutes_general: 240, ..Settings::default() };
        let known = crate::time::parse_instant("2026-11-27T08:00:00+08:00").unwrap();
        let due = |sev, hazard| s.first_report_due(sev, hazard, known).in_tz(crate::time::LOCAL_TZ);
        assert_eq!(due(Severity::General, Hazard::SnowDisaster), "2026-11-27T10:00:00+08:00");
        assert_eq!(due(Severity::General, Hazard::MineAccident), "2026-11-27T12:00:00+08:00");
        assert_eq!(due(Severity::EspeciallySerious, Hazard::MineAccident), "2026-11-27T08:30:00+08:00");
        assert!(Settings::default().check().is_ok());
        let bad = Settings { escalate_to_banner_minutes: 10, ..Settings::default() };
        assert_eq!(bad.check().unwrap_err().0, "escalate_to_banner_minutes");
    }
}
