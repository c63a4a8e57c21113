//! CAP out: a warning as a CAP 1.2 message following the GB/T 35965.1 profile — identifier built
//! from the division code, times with an offset (never `Z`, which the official CAP 1.2 schema
//! rejects), severity from the colour, `area` with division-code `geocode`s and the polygon,
//! `references` for updates and cancellations.

use std::fmt::Write;

use chrono::{DateTime, Utc};

use super::store::Warning;
use super::{MsgType, Reference, category_of, level_severity};
use crate::plans::document::esc;
use crate::time::{LOCAL_TZ, Timestamp};

/// The CAP 1.2 namespace.
pub const CAP_NS: &str = "urn:oasis:names:tc:emergency:cap:1.2";

/// The issuing department and unit codes of warnings issued here (`DDDUUU` of the identifier:
/// the 3-digit 机构行业编码 of GB/T 4657 and the unit's 3-digit internal code). The bureau's
/// assigned codes were not at hand: `000000` until configured (`YINGJI_CAP_ISSUER_CODE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerCode(String);

impl IssuerCode {
    /// Six ASCII digits, or an error saying what is wrong.
    pub fn parse(s: &str) -> Result<IssuerCode, String> {
        let s = s.trim();
        if s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(IssuerCode(s.to_string()))
        } else {
            Err(format!("发布机构和单位代码应为 6 位数字（3 位机构行业编码 + 3 位单位内部编码），而不是 {s:?}"))
        }
    }

    /// The six digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for IssuerCode {
    fn default() -> Self {
        IssuerCode("000000".into())
    }
}

/// The identifier's 2-digit extension code `XX` (the value rules' default).
const EXTENSION: &str = "00";

/// `valueName` of division-code geocodes.
pub const GEOCODE_NAME: &str = "行政区划代码";

/// `valueName` of the event code.
pub const EVENT_CODE_NAME: &str = "预警事件类型代码";

/// A CAP datetime: Asia/Shanghai with its offset, `2026-11-27T08:00:00+08:00`.
pub fn cap_time(t: DateTime<Utc>) -> String {
    t.with_timezone(&LOCAL_TZ).format("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// The issuing unit and second of an identifier, `ZZZZZZDDDUUUXX_YYYYMMDDhhmmss`: the issuing
/// region's 6-digit county code, the department and unit codes, the extension code, and the
/// time in Asia/Shanghai. Warnings of one unit in one second are numbered within it.
pub fn unit_second(issuing_region: &str, unit: &IssuerCode, sent: Timestamp) -> String {
    let county = issuing_region.get(..6).unwrap_or("000000");
    let time = sent.0.with_timezone(&LOCAL_TZ).format("%Y%m%d%H%M%S");
    format!("{county}{}{EXTENSION}_{time}", unit.as_str())
}

/// Most warnings one unit can number within one second: the serial `N` is one digit, 0–9
/// (GB/T 35965.1 appendix A.1.1).
pub const SERIALS_PER_SECOND: i64 = 10;

/// The profile's identifier `ZZZZZZDDDUUUXX_YYYYMMDDhhmmss_N` (31 characters; GB/T 35965.1
/// appendix A.1.1): the unit and second ([`unit_second`]) and the serial `N` (0–9) of the
/// warning among those the unit issued in that second.
pub fn identifier(unit_second: &str, serial: i64) -> String {
    format!("{unit_second}_{serial}")
}

/// The CAP sender of warnings issued for a region here.
pub fn sender(issuing_region: &str) -> String {
    format!("yingji.{issuing_region}")
}

/// CAP `references` text: `sender,identifier,sent` entries separated by spaces.
pub fn references_text(refs: &[Reference]) -> String {
    refs.iter().map(|r| format!("{},{},{}", r.sender, r.identifier, r.sent)).collect::<Vec<_>>().join(" ")
}

/// A polygon as CAP writes it: `lat,lon` pairs separated by spaces, closed (first = last).
pub fn polygon_text(points: &[(f64, f64)]) -> String {
    let mut pts: Vec<(f64, f64)> = points.to_vec();
    if pts.first() != pts.last() {
        pts.push(pts[0]);
    }
    pts.iter().map(|(lon, lat)| format!("{lat},{lon}")).collect::<Vec<_>>().join(" ")
}

fn element(out: &mut String, indent: &str, name: &str, text: &str) {
    let _ = writeln!(out, "{indent}<{name}>{}</{name}>", esc(text));
}

/// The warning as a CAP 1.2 XML document. `geocodes` are the division codes named in its area.
pub fn render(w: &Warning, geocodes: &[String]) -> String {
    let mut x = String::with_capacity(2048);
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(x, "<alert xmlns=\"{CAP_NS}\">");
    element(&mut x, "  ", "identifier", &w.identifier);
    element(&mut x, "  ", "sender", &w.sender);
    element(&mut x, "  ", "sent", &cap_time(w.sent_at.0));
    element(&mut x, "  ", "status", w.cap_status.cap());
    element(&mut x, "  ", "msgType", w.msg_type.cap());
    element(&mut x, "  ", "scope", "Public");
    if !w.refs.0.is_empty() {
        element(&mut x, "  ", "references", &references_text(&w.refs.0));
    }
    x.push_str("  <info>\n");
    element(&mut x, "    ", "language", "zh-CN");
    element(&mut x, "    ", "category", category_of(w.hazard));
    element(&mut x, "    ", "event", &w.event);
    let (response, urgency) = match w.msg_type {
        MsgType::Cancel => ("AllClear", "Past"),
        _ => ("Prepare", "Expected"),
    };
    element(&mut x, "    ", "responseType", response);
    element(&mut x, "    ", "urgency", urgency);
    element(&mut x, "    ", "severity", level_severity(w.level as u8));
    element(&mut x, "    ", "certainty", "Likely");
    if let Some(code) = &w.event_code {
        x.push_str("    <eventCode>\n");
        element(&mut x, "      ", "valueName", EVENT_CODE_NAME);
        element(&mut x, "      ", "value", code);
        x.push_str("    </eventCode>\n");
    }
    element(&mut x, "    ", "effective", &cap_time(w.effective_at.0));
    element(&mut x, "    ", "expires", &cap_time(w.expires_at.0));
    element(&mut x, "    ", "senderName", &w.issuer);
    element(&mut x, "    ", "headline", &w.headline);
    element(&mut x, "    ", "description", &w.description);
    if !w.instruction.is_empty() {
        element(&mut x, "    ", "instruction", &w.instruction);
    }
    x.push_str("    <area>\n");
    element(&mut x, "      ", "areaDesc", &w.area_desc);
    if let Some(p) = &w.polygon {
        element(&mut x, "      ", "polygon", &polygon_text(&p.0));
    }
    for code in geocodes {
        x.push_str("      <geocode>\n");
        element(&mut x, "        ", "valueName", GEOCODE_NAME);
        element(&mut x, "        ", "value", code);
        x.push_str("      </geocode>\n");
    }
    x.push_str("    </area>\n");
    x.push_str("  </info>\n");
    x.push_str("</alert>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn identifiers_and_times_follow_the_profile() {
        let sent = Timestamp(Utc.with_ymd_and_hms(2026, 11, 27, 0, 30, 5).unwrap());
        let unit = unit_second("152523000000", &IssuerCode::default(), sent);
        assert_eq!(identifier(&unit, 0), "15252300000000_20261127083005_0");
        assert_eq!(identifier(&unit, 0).len(), 31);
        let unit = unit_second("152523101000", &IssuerCode::parse("416001").unwrap(), sent);
        assert_eq!(identifier(&unit, 3), "15252341600100_20261127083005_3");
        assert!(IssuerCode::parse("41600").is_err() && IssuerCode::parse("41600a").is_err());
        assert_eq!(cap_time(sent.0), "2026-11-27T08:30:05+08:00");
        assert_eq!(polygon_text(&[(113.0, 43.0), (114.0, 43.0), (114.0, 44.0)]), "43,113 43,114 44,114 43,113");
    }
}
