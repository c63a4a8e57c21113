//! The printable Chinese readiness report of a region.

use super::Severity;
use super::store::{Finding, ScorePoint};
use crate::regions::Region;
use crate::time::Timestamp;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Renders the report.
pub fn render(
    region: &Region,
    latest: Option<&ScorePoint>,
    findings: &[Finding],
    total: i64,
    children: &[(String, String, i64)],
    now: Timestamp,
) -> String {
    let mut h = String::new();
    h.push_str("<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">");
    h.push_str(&format!("<title>{}应急准备情况报告</title>", esc(&region.name)));
    h.push_str("<style>body{font-family:\"SimSun\",\"Songti SC\",serif;max-width:900px;margin:2em auto;line-height:1.7}h1{text-align:center}table{border-collapse:collapse;width:100%}td,th{border:1px solid #333;padding:4px 8px;vertical-align:top}.critical{color:#b00}.warning{color:#a60}</style></head><body>");
    h.push_str(&format!("<h1>{}应急准备情况报告</h1>", esc(&region.name)));
    h.push_str(&format!("<p>区划代码：{}　生成时间：{}（北京时间）</p>", region.code, now.local_display()));
    match latest {
        Some(s) => h.push_str(&format!(
            "<p>最近一次检查：{}　<strong>得分：{}</strong>（严重 {} 项，警告 {} 项，提示 {} 项）</p><p>得分 = 100 − 15×严重 − 5×警告 − 1×提示，最低 0 分；按本级及下级区划未解决的问题计算。</p>",
            s.run_at.local_display(),
            s.score,
            s.critical,
            s.warning,
            s.info
        )),
        None => h.push_str("<p>尚未运行准备情况检查。</p>"),
    }
    if !children.is_empty() {
        h.push_str("<h2>下级区划得分</h2><table><tr><th>区划</th><th>代码</th><th>得分</th></tr>");
        for (code, name, score) in children {
            h.push_str(&format!("<tr><td>{}</td><td>{code}</td><td>{score}</td></tr>", esc(name)));
        }
        h.push_str("</table>");
    }
    for sev in [Severity::Critical, Severity::Warning, Severity::Info] {
        let list: Vec<&Finding> = findings.iter().filter(|f| f.severity == sev).collect();
        if list.is_empty() {
            continue;
        }
        h.push_str(&format!("<h2 class=\"{}\">{}问题（{} 项）</h2>", sev.as_str(), sev.label(), list.len()));
        h.push_str("<table><tr><th>规则</th><th>问题</th><th>依据</th><th>建议措施</th><th>首次发现</th></tr>");
        for f in list {
            h.push_str(&format!(
                "<tr><td>{}<br><small>{}</small></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                f.rule.0.label(),
                f.rule.0.id(),
                esc(&f.message),
                esc(&f.basis),
                esc(&f.action),
                f.first_seen.local_display()
            ));
        }
        h.push_str("</table>");
    }
    if findings.is_empty() {
        h.push_str("<p>没有未解决的问题。</p>");
    } else if (findings.len() as i64) < total {
        h.push_str(&format!("<p>（共 {total} 项，报告列出前 {} 项；完整清单见系统。）</p>", findings.len()));
    }
    h.push_str("</body></html>");
    h
}
