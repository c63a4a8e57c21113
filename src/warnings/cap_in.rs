//! CAP in: reads a CAP 1.2 message safely and checks it against the CAP 1.2 schema's rules
//! (the official XSD's element order, required elements, enumerations and the datetime pattern
//! with an offset), so a bad message is refused with the element and the reason.
//!
//! Safety: a document type declaration is refused outright (no DTD, so no entity declarations
//! and no entity expansion, "billion laughs" or external entities); only XML's five predefined
//! entities and character references are read. Every element must be in the CAP 1.2 namespace
//! (an XML signature from the xmldsig namespace may close the alert and is skipped).
//!
//! The one documented leniency: some feeds send `severity` as a colour (`Red` … `Blue`); that is
//! accepted, as DOMAIN.md asks. Everything else follows the schema.

pub use super::cap_tree::{CapError, Node, parse};
use super::{CapStatus, MsgType, Reference, severity_level};
use crate::time::Timestamp;

/// What an element holds, per the CAP 1.2 schema.
enum Kind {
    Text,
    Enum(&'static [&'static str]),
    Time,
    Integer,
    Decimal,
    Complex(&'static [Spec]),
}

/// One element of a sequence: name, occurrences (max 0 = unbounded), content.
struct Spec(&'static str, u32, u32, Kind);

const STATUS: &[&str] = &["Actual", "Exercise", "System", "Test", "Draft"];
const MSG_TYPE: &[&str] = &["Alert", "Update", "Cancel", "Ack", "Error"];
const SCOPE: &[&str] = &["Public", "Restricted", "Private"];
const CATEGORY: &[&str] =
    &["Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport", "Infra", "CBRNE", "Other"];
const RESPONSE: &[&str] =
    &["Shelter", "Evacuate", "Prepare", "Execute", "Avoid", "Monitor", "Assess", "AllClear", "None"];
const URGENCY: &[&str] = &["Immediate", "Expected", "Future", "Past", "Unknown"];
const SEVERITY: &[&str] = &["Extreme", "Severe", "Moderate", "Minor", "Unknown", "Red", "Orange", "Yellow", "Blue"];
const CERTAINTY: &[&str] = &["Observed", "Likely", "Possible", "Unlikely", "Unknown"];

const PAIR: &[Spec] = &[Spec("valueName", 1, 1, Kind::Text), Spec("value", 1, 1, Kind::Text)];

const RESOURCE: &[Spec] = &[
    Spec("resourceDesc", 1, 1, Kind::Text),
    Spec("mimeType", 1, 1, Kind::Text),
    Spec("size", 0, 1, Kind::Integer),
    Spec("uri", 0, 1, Kind::Text),
    Spec("derefUri", 0, 1, Kind::Text),
    Spec("digest", 0, 1, Kind::Text),
];

const AREA: &[Spec] = &[
    Spec("areaDesc", 1, 1, Kind::Text),
    Spec("polygon", 0, 0, Kind::Text),
    Spec("circle", 0, 0, Kind::Text),
    Spec("geocode", 0, 0, Kind::Complex(PAIR)),
    Spec("altitude", 0, 1, Kind::Decimal),
    Spec("ceiling", 0, 1, Kind::Decimal),
];

const INFO: &[Spec] = &[
    Spec("language", 0, 1, Kind::Text),
    Spec("category", 1, 0, Kind::Enum(CATEGORY)),
    Spec("event", 1, 1, Kind::Text),
    Spec("responseType", 0, 0, Kind::Enum(RESPONSE)),
    Spec("urgency", 1, 1, Kind::Enum(URGENCY)),
    Spec("severity", 1, 1, Kind::Enum(SEVERITY)),
    Spec("certainty", 1, 1, Kind::Enum(CERTAINTY)),
    Spec("audience", 0, 1, Kind::Text),
    Spec("eventCode", 0, 0, Kind::Complex(PAIR)),
    Spec("effective", 0, 1, Kind::Time),
    Spec("onset", 0, 1, Kind::Time),
    Spec("expires", 0, 1, Kind::Time),
    Spec("senderName", 0, 1, Kind::Text),
    Spec("headline", 0, 1, Kind::Text),
    Spec("description", 0, 1, Kind::Text),
    Spec("instruction", 0, 1, Kind::Text),
    Spec("web", 0, 1, Kind::Text),
    Spec("contact", 0, 1, Kind::Text),
    Spec("parameter", 0, 0, Kind::Complex(PAIR)),
    Spec("resource", 0, 0, Kind::Complex(RESOURCE)),
    Spec("area", 0, 0, Kind::Complex(AREA)),
];

const ALERT: &[Spec] = &[
    Spec("identifier", 1, 1, Kind::Text),
    Spec("sender", 1, 1, Kind::Text),
    Spec("sent", 1, 1, Kind::Time),
    Spec("status", 1, 1, Kind::Enum(STATUS)),
    Spec("msgType", 1, 1, Kind::Enum(MSG_TYPE)),
    Spec("source", 0, 1, Kind::Text),
    Spec("scope", 1, 1, Kind::Enum(SCOPE)),
    Spec("restriction", 0, 1, Kind::Text),
    Spec("addresses", 0, 1, Kind::Text),
    Spec("code", 0, 0, Kind::Text),
    Spec("note", 0, 1, Kind::Text),
    Spec("references", 0, 1, Kind::Text),
    Spec("incidents", 0, 1, Kind::Text),
    Spec("info", 0, 0, Kind::Complex(INFO)),
];

/// Checks a CAP datetime: `YYYY-MM-DDThh:mm:ss±hh:mm` (the schema's pattern: an offset, never
/// `Z`, no fractions) that is also a real instant.
pub fn parse_cap_time(s: &str) -> Result<Timestamp, String> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| r.clone().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    let shape = b.len() == 25
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && (b[19] == b'+' || b[19] == b'-')
        && digits(20..22)
        && b[22] == b':'
        && digits(23..25);
    if !shape {
        return Err(format!(
            "时间 {s:?} 不符合 CAP 1.2 格式 YYYY-MM-DDThh:mm:ss±hh:mm（须带时区偏移，如 +08:00；不接受 Z 和小数秒）"
        ));
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| Timestamp(t.with_timezone(&chrono::Utc)))
        .map_err(|e| format!("时间 {s:?} 无效：{e}"))
}

fn check_sequence(node: &Node, specs: &[Spec]) -> Result<(), CapError> {
    let mut i = 0;
    for spec in specs {
        let Spec(name, min, max, kind) = spec;
        let mut n = 0u32;
        while i < node.children.len() && node.children[i].name == *name {
            check_content(&node.children[i], kind)?;
            n += 1;
            i += 1;
        }
        if n < *min {
            return Err(CapError::cap(node, format!("缺少必需的元素 <{name}>（在 <{}> 中）", node.name)));
        }
        if *max > 0 && n > *max {
            return Err(CapError::cap(node, format!("元素 <{name}> 最多出现 {max} 次（在 <{}> 中）", node.name)));
        }
    }
    if let Some(extra) = node.children.get(i) {
        let known = specs.iter().any(|s| s.0 == extra.name);
        let order = specs.iter().map(|s| s.0).collect::<Vec<_>>().join(", ");
        let why = if known {
            format!("元素 <{}> 的位置不对：CAP 1.2 规定 <{}> 的子元素顺序为 {order}", extra.name, node.name)
        } else {
            format!("<{}> 中不允许出现元素 <{}>（允许的子元素：{order}）", node.name, extra.name)
        };
        return Err(CapError::cap(extra, why));
    }
    Ok(())
}

fn check_content(node: &Node, kind: &Kind) -> Result<(), CapError> {
    if !matches!(kind, Kind::Complex(_))
        && let Some(child) = node.children.first()
    {
        return Err(CapError::cap(child, format!("<{}> 只能包含文本，不能包含元素 <{}>", node.name, child.name)));
    }
    match kind {
        Kind::Text => Ok(()),
        Kind::Enum(values) if values.contains(&node.text.as_str()) => Ok(()),
        Kind::Enum(values) => {
            Err(CapError::cap(node, format!("<{}> 的值 {:?} 无效，应为：{}", node.name, node.text, values.join("、"))))
        }
        Kind::Time => parse_cap_time(&node.text).map(|_| ()).map_err(|m| CapError::cap(node, m)),
        Kind::Integer if node.text.parse::<i64>().is_ok() => Ok(()),
        Kind::Decimal if node.text.parse::<f64>().is_ok_and(f64::is_finite) => Ok(()),
        Kind::Integer | Kind::Decimal => {
            Err(CapError::cap(node, format!("<{}> 应为数字，实际为 {:?}", node.name, node.text)))
        }
        Kind::Complex(specs) => {
            if !node.text.is_empty() {
                return Err(CapError::cap(node, format!("<{}> 不能直接包含文本", node.name)));
            }
            check_sequence(node, specs)
        }
    }
}

/// One `area` of a received message.
#[derive(Debug, Clone)]
pub struct Area {
    /// Path, for errors.
    pub path: String,
    /// Description.
    pub desc: String,
    /// Polygons as (lon, lat) rings.
    pub polygons: Vec<Vec<(f64, f64)>>,
    /// Geocodes: (valueName, value, path).
    pub geocodes: Vec<(String, String, String)>,
}

/// The first `info` of a received message (the Chinese one when there are several).
#[derive(Debug, Clone)]
pub struct Info {
    /// Categories.
    pub categories: Vec<String>,
    /// Event.
    pub event: String,
    /// Event codes: (valueName, value).
    pub event_codes: Vec<(String, String)>,
    /// Level from the severity, None for `Unknown`.
    pub level: Option<u8>,
    /// Effective.
    pub effective: Option<Timestamp>,
    /// Expires.
    pub expires: Option<Timestamp>,
    /// Sender name.
    pub sender_name: Option<String>,
    /// Headline.
    pub headline: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Instruction.
    pub instruction: Option<String>,
    /// Areas.
    pub areas: Vec<Area>,
    /// Path, for errors.
    pub path: String,
}

/// A message that passed the checks.
#[derive(Debug, Clone)]
pub struct Received {
    /// Identifier.
    pub identifier: String,
    /// Sender.
    pub sender: String,
    /// Sent.
    pub sent: Timestamp,
    /// Actual or exercise.
    pub status: CapStatus,
    /// Alert, update or cancel.
    pub msg_type: MsgType,
    /// References.
    pub refs: Vec<Reference>,
    /// The info block used (None: a cancel without one).
    pub info: Option<Info>,
}

/// Parses a CAP `polygon`: at least four `lat,lon` pairs, the first equal to the last.
pub fn parse_polygon(s: &str) -> Result<Vec<(f64, f64)>, String> {
    let mut pts = Vec::new();
    for pair in s.split_whitespace() {
        let (lat, lon) = pair.split_once(',').ok_or_else(|| format!("坐标 {pair:?} 应为“纬度,经度”"))?;
        let lat: f64 = lat.trim().parse().map_err(|_| format!("纬度 {lat:?} 不是数字"))?;
        let lon: f64 = lon.trim().parse().map_err(|_| format!("经度 {lon:?} 不是数字"))?;
        crate::regions::check_lon_lat(lon, lat)?;
        pts.push((lon, lat));
    }
    if pts.len() < 4 {
        return Err("多边形至少需要 4 个点（首尾相同）".into());
    }
    if pts.first() != pts.last() {
        return Err("多边形的首点和尾点应相同（闭合）".into());
    }
    Ok(pts)
}

/// Reads and checks a CAP 1.2 message; what this service does not act on (System/Test/Draft
/// status, Ack/Error messages) is refused with the reason.
pub fn read(xml: &str) -> Result<Received, CapError> {
    let root = parse(xml)?;
    if root.name != "alert" {
        return Err(CapError::cap(&root, format!("根元素应为 CAP 1.2 的 <alert>，实际为 <{}>", root.name)));
    }
    check_sequence(&root, ALERT)?;
    let text = |name: &str| root.text_of(name).unwrap_or_default().to_string();
    let node = |name: &str| root.first(name).unwrap_or(&root);
    for name in ["identifier", "sender"] {
        let v = text(name);
        if v.is_empty() || v.contains([' ', ',', '<', '&']) {
            return Err(CapError::cap(node(name), format!("<{name}> 不能为空，且不能含空格、逗号、< 或 &")));
        }
    }
    let sent = parse_cap_time(&text("sent")).map_err(|m| CapError::cap(node("sent"), m))?;
    let status = match text("status").as_str() {
        "Actual" => CapStatus::Actual,
        "Exercise" => CapStatus::Exercise,
        other => {
            return Err(CapError::cap(
                node("status"),
                format!("status={other} 的消息不作为预警处理（只接收 Actual 实际预警和 Exercise 演练）"),
            ));
        }
    };
    let msg_type = match text("msgType").as_str() {
        "Alert" => MsgType::Alert,
        "Update" => MsgType::Update,
        "Cancel" => MsgType::Cancel,
        other => {
            return Err(CapError::cap(
                node("msgType"),
                format!("msgType={other} 的消息不作为预警处理（只接收 Alert、Update、Cancel）"),
            ));
        }
    };
    let mut refs = Vec::new();
    if let Some(r) = root.first("references") {
        for entry in r.text.split_whitespace() {
            let parts: Vec<&str> = entry.split(',').collect();
            if parts.len() != 3 {
                return Err(CapError::cap(r, format!("引用 {entry:?} 应为“发送者,标识符,发送时间”")));
            }
            refs.push(Reference { sender: parts[0].into(), identifier: parts[1].into(), sent: parts[2].into() });
        }
    }
    if msg_type != MsgType::Alert && refs.is_empty() {
        return Err(CapError::cap(
            &root,
            format!("msgType={} 的消息必须有 <references> 指明所更新或解除的预警", msg_type.cap()),
        ));
    }
    let infos: Vec<&Node> = root.all("info").collect();
    let chosen = infos
        .iter()
        .find(|i| i.text_of("language").is_some_and(|l| l.to_ascii_lowercase().starts_with("zh")))
        .or(infos.first())
        .copied();
    let info = match chosen {
        None if msg_type == MsgType::Cancel => None,
        None => return Err(CapError::cap(&root, "缺少 <info>：预警消息必须说明事件、级别和区域")),
        Some(i) => Some(read_info(i)?),
    };
    Ok(Received { identifier: text("identifier"), sender: text("sender"), sent, status, msg_type, refs, info })
}

fn read_info(i: &Node) -> Result<Info, CapError> {
    let time = |name: &str| -> Result<Option<Timestamp>, CapError> {
        match i.first(name) {
            None => Ok(None),
            Some(n) => parse_cap_time(&n.text).map(Some).map_err(|m| CapError::cap(n, m)),
        }
    };
    let opt = |name: &str| i.text_of(name).filter(|t| !t.is_empty()).map(str::to_string);
    let pairs = |n: &Node| {
        (n.text_of("valueName").unwrap_or_default().to_string(), n.text_of("value").unwrap_or_default().to_string())
    };
    let mut areas = Vec::new();
    for a in i.all("area") {
        let mut polygons = Vec::new();
        for p in a.all("polygon") {
            polygons.push(parse_polygon(&p.text).map_err(|m| CapError::cap(p, format!("多边形无效：{m}")))?);
        }
        let geocodes = a
            .all("geocode")
            .map(|g| {
                let (n, v) = pairs(g);
                (n, v, g.path.clone())
            })
            .collect();
        areas.push(Area {
            path: a.path.clone(),
            desc: a.text_of("areaDesc").unwrap_or_default().into(),
            polygons,
            geocodes,
        });
    }
    Ok(Info {
        categories: i.all("category").map(|c| c.text.clone()).collect(),
        event: i.text_of("event").unwrap_or_default().to_string(),
        event_codes: i.all("eventCode").map(pairs).collect(),
        level: i.text_of("severity").and_then(severity_level),
        effective: time("effective")?,
        expires: time("expires")?,
        sender_name: opt("senderName"),
        headline: opt("headline"),
        description: opt("description"),
        instruction: opt("instruction"),
        areas,
        path: i.path.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>15252300000001_20261127083000</identifier>
  <sender>yingji.152523000000</sender>
  <sent>2026-11-27T08:30:00+08:00</sent>
  <status>Actual</status>
  <msgType>Alert</msgType>
  <scope>Public</scope>
  <info>
    <category>Met</category>
    <event>暴雪</event>
    <urgency>Expected</urgency>
    <severity>Severe</severity>
    <certainty>Likely</certainty>
    <area><areaDesc>满都拉图镇</areaDesc><geocode><valueName>x</valueName><value>152523100000</value></geocode></area>
  </info>
</alert>"#;

    #[test]
    fn a_valid_message_is_read() {
        let r = read(OK).unwrap();
        let info = r.info.unwrap();
        assert_eq!((r.status, r.msg_type, info.level), (CapStatus::Actual, MsgType::Alert, Some(2)));
        assert_eq!(info.areas[0].geocodes[0].1, "152523100000");
    }

    #[test]
    fn dtds_entities_namespaces_order_and_times_are_refused() {
        let dtd = OK.replace("<alert ", "<!DOCTYPE alert [<!ENTITY a \"aaaa\"><!ENTITY b \"&a;&a;&a;&a;\">]>\n<alert ");
        let e = read(&dtd).unwrap_err();
        assert!(e.malformed && e.message.contains("DOCTYPE"), "{e:?}");
        let e = read(&OK.replace("<event>暴雪</event>", "<event>&lol;</event>")).unwrap_err();
        assert!(e.message.contains("&lol;"), "{e:?}");
        let e = read(&OK.replace("cap:1.2", "cap:1.1")).unwrap_err();
        assert!(e.message.contains("命名空间"), "{e:?}");
        let e = read(&OK.replace("2026-11-27T08:30:00+08:00", "2026-11-27T00:30:00Z")).unwrap_err();
        assert_eq!(e.element, "alert/sent[1]");
        let e = read(&OK.replace("<severity>Severe</severity>", "<severity>Bad</severity>")).unwrap_err();
        assert!(e.element.ends_with("severity[1]") && !e.malformed, "{e:?}");
        let e = read(&OK.replace("<scope>Public</scope>", "")).unwrap_err();
        assert!(e.message.contains("<scope>"), "{e:?}");
        let swapped = OK.replace(
            "<status>Actual</status>\n  <msgType>Alert</msgType>",
            "<msgType>Alert</msgType>\n  <status>Actual</status>",
        );
        assert!(read(&swapped).is_err());
        assert!(read("<alert").unwrap_err().malformed);
    }
}
