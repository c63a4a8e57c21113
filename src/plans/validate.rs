//! Rules a plan's content must satisfy beyond its types, shared by the API (422 with field
//! paths) and `plans check` (errors with file and line, found by mapping the path into the file).

use std::collections::BTreeSet;

use super::PlanContent;
use crate::error::{ApiError, FieldError};

/// One step of a path into the content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// A field name.
    Key(&'static str),
    /// An array index.
    Idx(usize),
}

/// A rule violation: where and what.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    /// Path to the offending value.
    pub path: Vec<Seg>,
    /// What is wrong (Chinese).
    pub message: String,
}

/// Formats a path as `response_levels[0].supplies[1].quantity`.
pub fn path_string(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Idx(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// Largest interval accepted for drills and evaluations, months.
pub const MAX_INTERVAL_MONTHS: u32 = 120;
/// Largest distance accepted for a requirement, km (the banner is ~34,000 km²; the league far
/// less than 1,000 km across).
pub const MAX_WITHIN_KM: f64 = 1000.0;

/// Checks a content. `template` relaxes the rule that the owner region's code fits the kind's
/// level (a template has no real region; see plans/README.md).
pub fn validate(c: &PlanContent, template: bool) -> Vec<Issue> {
    use Seg::{Idx, Key};
    let mut out = Vec::new();
    let mut err = |path: Vec<Seg>, message: String| out.push(Issue { path, message });
    if let Some(key) = &c.key
        && (key.is_empty()
            || key.len() > 64
            || !key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
    {
        err(vec![Key("key")], format!("key {key:?} 无效：应为 1–64 个小写字母、数字或连字符"));
    }
    for (name, value) in [("title", &c.title), ("owning_unit", &c.owning_unit), ("lead_department", &c.lead_department)]
    {
        if value.trim().is_empty() {
            err(vec![Key(name)], format!("{name} 不能为空"));
        }
    }
    if !template
        && let Some(level) = c.kind.required_level()
        && let Err(m) = c.region.check_level(level)
    {
        err(vec![Key("region")], format!("{}的所属区划须为{}级：{m}", c.kind.label(), level.label()));
    }
    if c.hazards.is_empty() {
        err(vec![Key("hazards")], "至少列出一种突发事件类别".into());
    }
    let mut seen = BTreeSet::new();
    for (i, h) in c.hazards.iter().enumerate() {
        if !seen.insert(*h) {
            err(vec![Key("hazards"), Idx(i)], format!("突发事件类别 {h} 重复"));
        }
    }
    for (i, m) in c.member_units.iter().enumerate() {
        if m.name.trim().is_empty() {
            err(vec![Key("member_units"), Idx(i), Key("name")], "成员单位名称不能为空".into());
        }
        if m.duties.trim().is_empty() {
            err(vec![Key("member_units"), Idx(i), Key("duties")], "成员单位职责不能为空".into());
        }
    }
    let s = &c.sections;
    for (name, zh, text) in [
        ("organization", "组织指挥体系与职责", &s.organization),
        ("prevention", "预防与预警机制", &s.prevention),
        ("response", "处置程序", &s.response),
        ("support", "应急保障措施", &s.support),
        ("recovery", "事后恢复与重建", &s.recovery),
    ] {
        if text.trim().is_empty() {
            err(vec![Key("sections"), Key(name)], format!("法定章节「{zh}」不能为空"));
        }
    }
    if c.response_levels.is_empty() {
        err(vec![Key("response_levels")], "至少规定一个响应级别".into());
    }
    let mut levels = BTreeSet::new();
    for (i, l) in c.response_levels.iter().enumerate() {
        let at = |k: &'static str| vec![Key("response_levels"), Idx(i), Key(k)];
        if !(1..=4).contains(&l.level) {
            err(at("level"), format!("响应级别 {} 无效：应为 1（一级）到 4（四级）", l.level));
        } else if !levels.insert(l.level) {
            err(at("level"), format!("响应级别 {} 重复", l.level));
        }
        if l.criteria.trim().is_empty() {
            err(at("criteria"), "启动条件不能为空".into());
        }
        for (j, n) in l.supplies.iter().enumerate() {
            let at = |k: &'static str| vec![Key("response_levels"), Idx(i), Key("supplies"), Idx(j), Key(k)];
            if !(n.quantity.is_finite() && n.quantity > 0.0) {
                err(at("quantity"), format!("数量 {} 无效：应大于 0", n.quantity));
            }
            if !(n.within_km.is_finite() && n.within_km > 0.0 && n.within_km <= MAX_WITHIN_KM) {
                err(at("within_km"), format!("距离 {} 无效：应在 0 到 {MAX_WITHIN_KM} 公里之间", n.within_km));
            }
        }
        for (j, n) in l.forces.iter().enumerate() {
            let at = |k: &'static str| vec![Key("response_levels"), Idx(i), Key("forces"), Idx(j), Key(k)];
            if n.headcount == 0 {
                err(at("headcount"), "人数应至少为 1".into());
            }
            if !(n.within_km.is_finite() && n.within_km > 0.0 && n.within_km <= MAX_WITHIN_KM) {
                err(at("within_km"), format!("距离 {} 无效：应在 0 到 {MAX_WITHIN_KM} 公里之间", n.within_km));
            }
        }
    }
    if let Some(d) = &c.drill {
        if !(1..=MAX_INTERVAL_MONTHS).contains(&d.interval_months) {
            err(
                vec![Key("drill"), Key("interval_months")],
                format!("演练间隔 {} 个月无效：应在 1 到 {MAX_INTERVAL_MONTHS} 之间", d.interval_months),
            );
        }
        if d.forms.is_empty() {
            err(vec![Key("drill"), Key("forms")], "至少允许一种演练形式".into());
        }
    }
    if let Some(m) = c.evaluation_interval_months
        && !(1..=MAX_INTERVAL_MONTHS).contains(&m)
    {
        err(
            vec![Key("evaluation_interval_months")],
            format!("评估间隔 {m} 个月无效：应在 1 到 {MAX_INTERVAL_MONTHS} 之间"),
        );
    }
    out
}

/// Validates API input: a 422 listing every issue by field path.
pub fn check_api(c: &PlanContent) -> Result<(), ApiError> {
    let issues = validate(c, false);
    if issues.is_empty() {
        return Ok(());
    }
    let detail = format!("预案内容有 {} 处错误：{}", issues.len(), issues[0].message);
    Err(ApiError::invalid_many(
        detail,
        issues.into_iter().map(|i| FieldError::field(path_string(&i.path), i.message)).collect(),
    ))
}
