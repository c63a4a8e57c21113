//! Timestamps: stored in UTC, shown in Asia/Shanghai (+08:00) unless the client asks for another
//! zone with the `X-Timezone` header.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The banner's time zone.
pub const LOCAL_TZ: Tz = chrono_tz::Asia::Shanghai;

tokio::task_local! {
    /// Time zone used when serialising [`Timestamp`]s for the current request.
    pub static DISPLAY_TZ: Tz;
}

/// The zone timestamps are shown in right now (the request's choice, else Asia/Shanghai).
pub fn display_tz() -> Tz {
    DISPLAY_TZ.try_with(|tz| *tz).unwrap_or(LOCAL_TZ)
}

/// An instant, stored as UTC, serialised as RFC 3339 in the display zone
/// (e.g. `2026-11-27T08:00:00+08:00`). Accepts any RFC 3339 offset on input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, sqlx::Type)]
#[sqlx(transparent)]
pub struct Timestamp(pub DateTime<Utc>);

impl Timestamp {
    /// Formats in the given zone.
    pub fn in_tz(&self, tz: Tz) -> String {
        self.0.with_timezone(&tz).to_rfc3339_opts(SecondsFormat::AutoSi, false)
    }

    /// Formats for people: `2026-11-27 08:00` in Asia/Shanghai.
    pub fn local_display(&self) -> String {
        self.0.with_timezone(&LOCAL_TZ).format("%Y-%m-%d %H:%M").to_string()
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(t: DateTime<Utc>) -> Self {
        Timestamp(t)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.in_tz(display_tz()))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.in_tz(display_tz()))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Cow::<str>::deserialize(d)?;
        parse_instant(&s).map_err(serde::de::Error::custom)
    }
}

/// Parses an RFC 3339 instant (`2026-11-27T08:00:00+08:00`); a value without an offset is read
/// as Asia/Shanghai local time.
pub fn parse_instant(s: &str) -> Result<Timestamp, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(Timestamp(t.with_timezone(&Utc)));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"] {
        if let Ok(naive) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            use chrono::TimeZone;
            if let Some(t) = LOCAL_TZ.from_local_datetime(&naive).single() {
                return Ok(Timestamp(t.with_timezone(&Utc)));
            }
        }
    }
    Err(format!("时间格式无效：{s:?}，应为 RFC 3339，例如 2026-11-27T08:00:00+08:00"))
}

impl JsonSchema for Timestamp {
    fn schema_name() -> Cow<'static, str> {
        "Timestamp".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "format": "date-time",
            "description": "RFC 3339；输出默认为 Asia/Shanghai (+08:00)，可用请求头 X-Timezone 指定其他时区",
            "example": "2026-11-27T08:00:00+08:00"
        })
    }
}
